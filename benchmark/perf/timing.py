"""The timer: contenders of one task alternate round-robin, each after one untimed warm-up call.

Alternating (rather than timing each contender's repeats back to back) exposes every contender to the
same drift of the machine (other jobs, clock boost, caches), so their medians stay comparable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Contender:
    """One way of doing a task; ``run()`` does it once and returns what it produced."""

    name: str
    run: Callable[[], Any]
    note: str = ""


@dataclass
class Timing:
    """Seconds of each timed call of a contender and the output of its last call."""

    contender: Contender
    seconds: list[float] = field(default_factory=list)
    output: Any = None

    @property
    def name(self) -> str:
        return self.contender.name

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def synchronizer(device: torch.device) -> Callable[[], None]:
    """What to call before reading the clock: wait for queued CUDA work, nothing on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_round_robin(
    contenders: list[Contender],
    repeats: int,
    *,
    synchronize: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Timing]:
    """Warm each contender up once (untimed), then time ``repeats`` rounds of one call each, in order."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    names = [contender.name for contender in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"contender names must be unique; got {names}")
    timings = [Timing(contender) for contender in contenders]
    for timing in timings:
        timing.output = timing.contender.run()
        synchronize()
    for _ in range(repeats):
        for timing in timings:
            synchronize()
            start = clock()
            timing.output = timing.contender.run()
            synchronize()
            timing.seconds.append(clock() - start)
    return timings
