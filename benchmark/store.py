"""The results store: one JSON record per finished cell, written atomically.

A cell's identity is the hash of its full configuration; resuming a run is "skip every cell
that already has a record".  Killing a run loses at most the cell in progress.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write_text


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cells = self.root / "cells"

    def _path(self, key: str) -> Path:
        return self.cells / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def write(self, record: dict[str, Any]) -> None:
        text = json.dumps({k: _json_safe(v) for k, v in record.items()}, indent=1, sort_keys=True)
        atomic_write_text(self._path(record["cell_key"]), text + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.cells.is_dir():
            return []
        records = []
        for path in sorted(self.cells.glob("*.json")):
            try:
                records.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return records
