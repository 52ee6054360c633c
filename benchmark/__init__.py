"""The harness: config, data, runner, store, leaderboards and the ``bench`` CLI.

``run_benchmark(RunConfig(...))`` runs a matrix; ``evaluate(model, ...)`` evaluates an in-memory model.
The public names are imported on first use (PEP 562), so that ``bench --help`` and ``bench list`` do
not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark.api import evaluate
    from benchmark.config import PROFILES, RunConfig, get_profile, parse_epsilons
    from benchmark.runner import run_benchmark
    from foundation.errors import BenchError

_HOMES = {
    "BenchError": "foundation.errors",
    "PROFILES": "benchmark.config",
    "RunConfig": "benchmark.config",
    "get_profile": "benchmark.config",
    "parse_epsilons": "benchmark.config",
    "run_benchmark": "benchmark.runner",
    "evaluate": "benchmark.api",
}
__all__ = ["PROFILES", "BenchError", "RunConfig", "evaluate", "get_profile", "parse_epsilons", "run_benchmark"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
