"""The harness, by stage: ``config`` → ``select`` → ``run`` (plan, train, evaluate, the driver) → ``store`` →
``results`` (tables) → ``publish`` (site, JSON); ``cli`` and ``api`` are its faces.

``run_benchmark(RunConfig(...))`` runs a matrix and returns a ``RunResult``; ``evaluate(model, ...)``
evaluates an in-memory model.  The public names are imported on first use (PEP 562), so that
``bench --help`` and ``bench list`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark.api import evaluate
    from benchmark.config.epsilons import parse_epsilons
    from benchmark.config.profiles import PROFILES, get_profile
    from benchmark.config.run_config import RunConfig
    from benchmark.run.runner import RunResult, run_benchmark
    from foundation.errors import BenchError

_HOMES = {
    "BenchError": "foundation.errors",
    "PROFILES": "benchmark.config.profiles",
    "RunConfig": "benchmark.config.run_config",
    "get_profile": "benchmark.config.profiles",
    "parse_epsilons": "benchmark.config.epsilons",
    "run_benchmark": "benchmark.run.runner",
    "RunResult": "benchmark.run.runner",
    "evaluate": "benchmark.api",
}
__all__ = [
    "PROFILES",
    "BenchError",
    "RunConfig",
    "RunResult",
    "evaluate",
    "get_profile",
    "parse_epsilons",
    "run_benchmark",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
