"""Inter-process locks (``filelock``): one writer per store, one trainer per checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def hold(path: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold the lock file ``path``: yields True once held.  When another process holds it, yields
    False at once if ``wait`` is False; otherwise calls ``on_wait`` (to say what it waits for) and waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            yield False
            return
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield True
    finally:
        lock.release()
