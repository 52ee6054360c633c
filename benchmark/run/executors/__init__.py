"""Executors: who trains the jobs and evaluates the cells of a plan.

Every executor calls the same ``training.train`` and ``evaluation.evaluate_clean/evaluate_cell`` and
hands what they return to the ``Driver``, the one writer of the store.  An executor is one module
with a ``build(config)`` function, registered by name here; it is imported only when chosen, so the
default run never imports Ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from benchmark.config.run_config import RunConfig
    from benchmark.run.build import Build
    from benchmark.run.driver import Driver
    from benchmark.run.plan import Plan

#: Executor name -> the module whose ``build(config)`` returns it.
EXECUTORS = {"local": "benchmark.run.executors.local", "ray": "benchmark.run.executors.ray_cluster"}


class Executor(Protocol):
    def run(self, plan: Plan, driver: Driver, build: Build) -> None:
        """Train the plan's jobs and evaluate its cells (with ``build``'s defenses and attacks in this process),
        handing every result to ``driver``."""


def get_executor(config: RunConfig) -> Executor:
    return importlib.import_module(EXECUTORS[config.executor]).build(config)
