"""Ctrl-C and SIGTERM stop a run at once, keeping finished cells, and never go unnoticed.

Each signal raises where the program is (``KeyboardInterrupt``, or ``Terminated`` for SIGTERM).  Such
an exception is lost when it lands in a finaliser (``__del__``, a weakref callback): Python prints it
as "Exception ignored" and carries on.  So the handler also notes the signal, that report is silenced,
and the driver calls ``raise_if_interrupted`` between cells: a run never goes on past the cell in
progress, and the user sees one line, not a traceback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM: finished cells are kept, as on Ctrl-C."""


_received: int | None = None


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum: int, frame: object) -> None:
    global _received
    _received = signum
    raise _exception(signum)


def raise_if_interrupted() -> None:
    """Raise the interruption a finaliser swallowed, if any."""
    if _received is not None:
        raise _exception(_received)


def _silence_lost_interrupts(unraisable: sys.UnraisableHookArgs, previous=sys.unraisablehook) -> None:
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        previous(unraisable)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block (main thread only), SIGINT and SIGTERM raise and are noted; handlers restored after."""
    global _received
    _received = None
    previous = {number: signal.signal(number, _on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _silence_lost_interrupts
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for number, handler in previous.items():
            signal.signal(number, handler)
