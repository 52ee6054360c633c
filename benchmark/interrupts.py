"""SIGTERM stops a run as Ctrl-C does: an exception where the program is, and again at the next safe point.

An exception raised by a signal handler is lost when it lands in a finaliser (``__del__``, e.g. a
lock's), so the handler also notes the signal, and the driver calls ``raise_if_terminated`` between
cells: a run never goes on past the cell in progress.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM: finished cells are kept, as on Ctrl-C."""


_received = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _received
    _received = True
    raise Terminated()


def raise_if_terminated() -> None:
    if _received:
        raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block (on the main thread), SIGTERM raises ``Terminated``; the old handler is restored after."""
    global _received
    _received = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
