"""Progress bars and status lines on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


class Reporter:
    """Progress bars (when enabled) and log lines, both on stderr, without breaking each other."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        return tqdm(
            iterable,
            desc=desc,
            total=total,
            disable=not self.enabled or None,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def bar(self, total: int, desc: str) -> tqdm:
        """A progress bar to advance by hand (``update``), e.g. over finished cells; ``close`` it after."""
        return tqdm(total=total, desc=desc, disable=not self.enabled or None, file=sys.stderr, dynamic_ncols=True)

    def log(self, message: str) -> None:
        tqdm.write(message, file=sys.stderr)
