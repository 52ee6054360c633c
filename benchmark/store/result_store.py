"""The results store: one JSON record per finished cell, written atomically, validated when read.

A cell's identity is the hash of its full configuration; resuming a run is "skip every cell
that already has a valid record".  Killing a run loses at most the cell in progress.

The store trusts nothing it reads: every record is checked against its schema
(``benchmark.store.records``).  Readers skip invalid records and say so (``skipped``); a writer moves
them aside to ``OUT/rejected/`` (never deleting them) so that their cells are computed again.

One writer per store: ``claim`` takes a per-cell lock file (``filelock``), so that concurrent
runs on one store never compute the same cell twice, and ``writer_lock`` serialises writes of
the store-wide files (leaderboards, moving records aside).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.store.atomic import atomic_write, atomic_write_text
from benchmark.store.locking import hold
from benchmark.store.records import cell_problem, clean_problem
from foundation.errors import BenchError


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class SkippedRecord:
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}: {self.problem}"


def _read(path: Path, problem: Callable[[Any, str], str | None]) -> tuple[Any, str | None]:
    """A record and what is wrong with it (``None`` when valid)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except ValueError as error:
        return None, f"is not JSON ({error})"
    except RecursionError:
        return None, "nests its values too deeply to be a record"
    except OSError as error:
        return None, f"cannot be read ({error.strerror or error})"
    return record, problem(record, path.stem)


#: What ``bench run`` and ``bench report`` write in a results directory: files, and folders.
OUTPUT_FILES = ("leaderboard.csv", "leaderboard.md", "curves.csv", "paper000.md", "paper001.md", "attacks.md")
OUTPUT_FOLDERS = ("cells", "clean", "rejected", ".locks", "adversarials", "curves", "site", "json")


def check_layout(root: Path) -> None:
    """Refuse a results directory where a file bench writes is a folder, or a folder it keeps is a file (said
    before anything is computed, rather than when the result is written)."""
    for name in OUTPUT_FILES:
        if (root / name).is_dir():
            raise BenchError(
                f"{root / name} is a folder, but bench writes a file there; move it away or pick another --out"
            )
    for name in OUTPUT_FOLDERS:
        if (root / name).exists() and not (root / name).is_dir():
            raise BenchError(
                f"{root / name} is a file, but bench keeps a folder there; move it away or pick another --out"
            )


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cells = self.root / "cells"
        self.clean = self.root / "clean"
        self.rejected = self.root / "rejected"
        self.locks = self.root / ".locks"
        self.adversarials = self.root / "adversarials"
        #: Invalid records met by the last ``records()`` call.
        self.skipped: list[SkippedRecord] = []

    def _path(self, key: str) -> Path:
        return self.cells / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The valid record of a cell, or ``None`` (absent, unreadable or invalid)."""
        path = self._path(key)
        if not path.exists():
            return None
        record, problem = _read(path, cell_problem)
        return None if problem else record

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def write(self, record: dict[str, Any]) -> None:
        self._write_json(self._path(record["cell_key"]), record)

    def remove(self, key: str) -> bool:
        """Delete cell ``key``'s record and its stored adversarial examples (a cell retired, e.g. computed on
        weights since replaced); returns whether a record was there.  Hold ``writer_lock`` around it."""
        self.adversarials_path(key).unlink(missing_ok=True)
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def adversarials_path(self, key: str) -> Path:
        """Where cell ``key``'s adversarial examples are stored (``--save-adversarials``)."""
        return self.adversarials / f"{key}.pt"

    def write_adversarials(self, key: str, x_adv: Any) -> str:
        """Store cell ``key``'s adversarial examples atomically (``{"x_adv": tensor}``); returns the file's sha256."""
        import torch  # here, not at the top: readers of the store need no torch

        buffer = io.BytesIO()
        torch.save({"x_adv": x_adv}, buffer)
        data = buffer.getvalue()
        atomic_write(self.adversarials_path(key), lambda handle: handle.write(data))
        return hashlib.sha256(data).hexdigest()

    def get_clean(self, key: str) -> dict[str, Any] | None:
        """The valid clean-evaluation record ``key`` (a defense's clean predictions), or ``None``.

        ``None`` too for a record stored before the diagnostics looked for input quantisers (no
        ``input_quantizer`` field): computed again, its predictions are drawn from the same seeds, and the
        search is added."""
        path = self.clean / f"{key}.json"
        if not path.exists():
            return None
        record, problem = _read(path, clean_problem)
        return None if problem or "input_quantizer" not in record else record

    def write_clean(self, record: dict[str, Any]) -> None:
        self._write_json(self.clean / f"{record['clean_key']}.json", record)

    @staticmethod
    def _write_json(path: Path, record: dict[str, Any]) -> None:
        text = json.dumps({k: _json_safe(v) for k, v in record.items()}, indent=1, sort_keys=True)
        atomic_write_text(path, text + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Every valid cell record; invalid ones are left out and listed in ``skipped``."""
        records, self.skipped = [], []
        for path in sorted(self.cells.glob("*.json")) if self.cells.is_dir() else []:
            record, problem = _read(path, cell_problem)
            if problem:
                self.skipped.append(SkippedRecord(path, problem))
            else:
                records.append(record)
        return records

    def invalid(self) -> list[SkippedRecord]:
        """Every invalid cell or clean-evaluation record in the store."""
        found = []
        for folder, problem in ((self.cells, cell_problem), (self.clean, clean_problem)):
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                reason = _read(path, problem)[1]
                if reason:
                    found.append(SkippedRecord(path, reason))
        return found

    def move_aside(self) -> list[tuple[SkippedRecord, Path]]:
        """Move every invalid record to ``rejected/`` (never deleting one); returns what moved where."""
        moved = []
        with self.writer_lock():
            for skipped in self.invalid():
                target = self.rejected / skipped.path.parent.name / skipped.path.name
                suffix = 1
                while target.exists():
                    target = target.with_name(f"{skipped.path.stem}.{suffix}.json")
                    suffix += 1
                target.parent.mkdir(parents=True, exist_ok=True)
                skipped.path.replace(target)
                moved.append((skipped, target))
        return moved

    def writer_lock(self) -> AbstractContextManager[bool]:
        """The lock of store-wide writes (leaderboards, moving records aside)."""
        return hold(self.locks / "store.lock")

    def claim(self, key: str, *, wait: bool, on_wait: Callable[[], None] | None = None) -> AbstractContextManager[bool]:
        """Hold the lock of computing cell ``key`` (see ``locking.hold``); whoever holds it checks
        ``has`` again before computing, since another run may have just finished the cell."""
        return hold(self.locks / f"{key}.lock", wait=wait, on_wait=on_wait)
