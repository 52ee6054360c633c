"""Epsilons as users write them: lists, ranges, and their bounds under each norm ball."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

from foundation.errors import BenchError
from foundation.threat_models import DEFAULT_NORM, validate_epsilon

#: At most this many epsilons per run.
MAX_EPSILONS = 100


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BenchError(f"{what} {text!r} is not a finite number")
    return value


def parse_epsilons(text: str, norm: str = DEFAULT_NORM, dimension: int | None = None) -> tuple[float, ...]:
    """Epsilons from ``0.1,0.3`` or a range ``start:stop:step`` (inclusive), or a mix of both; L2 budgets
    are bounded by the diameter of the box of ``dimension`` pixels."""
    values: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if ":" in item:
            parts = item.split(":")
            if len(parts) != 3:
                raise BenchError(f"epsilon range {item!r} must be start:stop:step, e.g. 0:0.3:0.1")
            start, stop, step = (_number(part, "epsilon") for part in parts)
            if step <= 0 or stop < start:
                raise BenchError(f"epsilon range {item!r} needs start <= stop and a positive step")
            steps = (stop - start) / step  # inf when the step is tiny beside the span (1e-320, 1e-308)
            count = math.floor(steps + 1e-9) + 1 if steps < 1e15 else math.inf
            if count + len(values) > MAX_EPSILONS:
                many = f"{count:,}" if count < math.inf else f"about {steps:.3g}" if steps < math.inf else "over 1e308"
                raise BenchError(f"epsilon range {item!r} has {many} values; at most {MAX_EPSILONS} per run")
            values.extend(round(start + i * step, 10) for i in range(count))
        else:
            values.append(_number(item, "epsilon"))
    return checked_epsilons(values, norm, dimension)


def checked_epsilons(
    values: Sequence[float], norm: str = DEFAULT_NORM, dimension: int | None = None
) -> tuple[float, ...]:
    """The distinct epsilons of ``values``, sorted, each checked against the ``norm`` ball's bounds (as
    ``parse_epsilons``); a value that is not a finite number, or a list empty or too long, is a ``BenchError``."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real):
            raise BenchError(f"epsilon {value!r} is not a number")
        if not math.isfinite(value):
            raise BenchError(f"epsilon {value!r} is not a finite number")
    if len(values) > MAX_EPSILONS:
        raise BenchError(f"{len(values):,} epsilons given; at most {MAX_EPSILONS} per run")
    if not values:
        raise BenchError("no epsilon given; pass e.g. --eps 0.1,0.3 or --eps 0:0.3:0.1")
    for value in map(float, values):
        if norm != DEFAULT_NORM:
            validate_epsilon(value, norm, dimension)
            continue
        try:
            validate_epsilon(value)
        except BenchError:
            raise BenchError(
                f"epsilon {value:g} is outside [0, 1] (inputs are images in [0, 1]; L2 budgets need --norm l2)"
            ) from None
    return tuple(sorted(set(map(float, values))))
