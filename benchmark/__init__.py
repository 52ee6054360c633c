"""The harness: config, data, runner, store, leaderboards and the ``bench`` CLI.

``run_benchmark(RunConfig(...))`` is the one-function entry point.
"""

from benchmark.config import PROFILES, RunConfig, get_profile, parse_epsilons
from benchmark.runner import run_benchmark

__all__ = ["PROFILES", "RunConfig", "get_profile", "parse_epsilons", "run_benchmark"]
