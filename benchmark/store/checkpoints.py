"""Cache of trained defenses keyed by config hash: weights plus plain metadata.

Files are written atomically and loaded with ``weights_only=True``; a file that cannot be
read, does not match its key, or whose weights do not match the sha256 recorded at training
(``weights_digest``) is reported, removed and retrained by the caller.  A lock file per
checkpoint makes concurrent runs train each checkpoint once: the second waits and loads it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.store.atomic import atomic_write
from benchmark.store.locking import hold
from foundation.errors import BenchError


@dataclass(frozen=True)
class Checkpoint:
    state: dict[str, Any]
    meta: dict[str, Any]

    @property
    def weights_sha256(self) -> str:
        """The weights' sha256: recorded at training (checked on every read), computed for older checkpoints."""
        return self.meta.get("weights_sha256") or weights_digest(self.state)


def weights_digest(state: Mapping[str, Any]) -> str:
    """sha256 over a checkpoint's weights: every entry's name, then a tensor's dtype, shape and bytes (or a
    plain value's repr), in name order.

    Records carry it to name the exact model they measured: a checkpoint trained again under the same
    key can hold other weights (another library version, nondeterministic kernels).
    """
    digest = hashlib.sha256()

    def visit(name: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key in sorted(value, key=str):
                visit(f"{name}.{key}" if name else str(key), value[key])
        elif isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}|{tensor.dtype}|{tuple(value.shape)}|".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f"{name}|{value!r}|".encode())

    visit("", state)
    return digest.hexdigest()


#: A checkpoint's file name: ``<defense name>-<16-digit config hash>.pt`` (other caches share the folder).
CHECKPOINT_NAME = re.compile(r".+-([0-9a-f]{16})\.pt")


class CorruptCheckpoint(Exception):
    pass


def load_failure(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line and without torch's page of advice, which
    suggests loading with ``weights_only=False``: never an option for the harness (it would run the file's code)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1]
        first = next((line.strip() for line in detail.splitlines() if line.strip()), "")
        first = re.split(r" was not an allowed global|\. Please", first)[0].rstrip(".")
        return f"torch.load(weights_only=True) refuses it: {first or 'objects other than tensors'}"
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class CheckpointCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str, key: str) -> Path:
        return self.root / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{key}.pt"

    def load(self, name: str, key: str) -> Checkpoint | None:
        """The checkpoint, ``None`` when absent; raises ``CorruptCheckpoint`` when unreadable."""
        path = self.path(name, key)
        if path.is_dir():
            raise BenchError(
                f"{path} is a folder where the checkpoint of {name} belongs; move it away (or pick another --cache-dir)"
            )
        return self._read(path, key) if path.exists() else None

    def load_key(self, key: str) -> Checkpoint | None:
        """The checkpoint of ``key`` whatever its defense's name (``None`` when absent)."""
        found = sorted(self.root.glob(f"*-{key}.pt"))
        return self._read(found[0], key) if found else None

    def metas(self) -> list[dict[str, Any]]:
        """The metadata of every readable checkpoint in the cache (training times, for estimates; the weights
        are not hashed for it)."""
        metas = []
        for path in sorted(self.root.glob("*.pt")):
            name = CHECKPOINT_NAME.fullmatch(path.name)
            if name is None:
                continue
            try:
                metas.append(self._read(path, name.group(1), check_weights=False).meta)
            except CorruptCheckpoint:
                continue
        return metas

    @staticmethod
    def _read(path: Path, key: str, check_weights: bool = True) -> Checkpoint:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise CorruptCheckpoint(f"{path} cannot be read ({load_failure(error)})") from None
        if not isinstance(payload, dict) or not {"state", "meta"} <= payload.keys():
            raise CorruptCheckpoint(f"{path} is not a checkpoint of this harness")
        if payload["meta"].get("config_hash") != key:
            raise CorruptCheckpoint(f"{path} holds config {payload['meta'].get('config_hash')}, not {key}")
        recorded = payload["meta"].get("weights_sha256")
        if check_weights and recorded is not None and weights_digest(payload["state"]) != recorded:
            raise CorruptCheckpoint(f"{path}: its weights do not match the sha256 recorded when it was trained")
        return Checkpoint(payload["state"], payload["meta"])

    def save(self, name: str, key: str, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        path = self.path(name, key)
        atomic_write(path, lambda handle: torch.save({"state": state, "meta": {**meta, "config_hash": key}}, handle))
        return path

    def lock(self, name: str, key: str, on_wait: Callable[[], None]) -> AbstractContextManager[bool]:
        """Held while checkpoint ``key`` is loaded or trained: concurrent runs train it once."""
        path = self.path(name, key)
        return hold(path.with_name(f".{path.name}.lock"), on_wait=on_wait)

    def remove(self, name: str, key: str) -> None:
        self.path(name, key).unlink(missing_ok=True)
