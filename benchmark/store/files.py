"""Directories the store and the checkpoint cache write into, checked before a run starts."""

from __future__ import annotations

import os
from pathlib import Path

from foundation.errors import BenchError


def ensure_writable(directory: Path, flag: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"cannot write to {flag} {directory}: {error.strerror or error}") from None
