"""Run a matrix: plan it, hand the plan to an executor, and let the driver keep the store.

``run_benchmark`` is the one-function entry point (as RobustBench's ``benchmark()``): it takes a
``RunConfig`` and returns a ``RunResult``: the leaderboard of everything in the results store, the
number of cells computed and the cells that failed.  The executor (``config.executor``: this process,
or a Ray cluster) trains and evaluates; the ``Driver`` writes every checkpoint, clean evaluation and
record as results come back.  Rendering the site is publishing's (``benchmark.publish``), not the run's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.run.build import Build
from benchmark.run.driver import CellFailure, Driver
from benchmark.run.environment import Environment
from benchmark.run.executors import get_executor
from benchmark.run.plan import Plan, Planner
from benchmark.run.progress import Reporter
from benchmark.store.files import ensure_writable
from benchmark.store.result_store import check_layout
from defenses.base import Defense
from foundation import allocator
from foundation.errors import BenchError
from foundation.registry import Spec


@dataclass(frozen=True)
class RunResult:
    """What a run gives back: the store's leaderboard frame, how many records it computed, the cells that
    failed (each with its message), and, for the adaptive protocol, what it ran on each defense and why."""

    frame: pd.DataFrame
    computed: int = 0
    failures: tuple[CellFailure, ...] = ()
    lines: tuple[str, ...] = ()


def _check_plan_size(plan: Plan, limit: int) -> None:
    if plan.pending_records > limit:
        raise BenchError(
            f"the plan has {plan.pending_records:,} cells to compute, above the limit of {limit:,}; select fewer "
            f"defenses, attacks or epsilons, or pass --max-cells {plan.pending_records} to run them all"
        )


def prepare(
    config: RunConfig, tidy: bool = True, given: Mapping[Spec, Defense] | None = None
) -> tuple[Planner, Driver, Plan]:
    """Check the directories, move invalid records aside (when ``tidy``), and plan what is left to do
    (``given``: defenses handed in built, by their specs among ``config.defenses``).  Sets glibc's allocator for
    the tensor work to come (``foundation.allocator``)."""
    allocator.tune()
    ensure_writable(Path(config.out_dir), "--out")
    check_layout(Path(config.out_dir))
    env = Environment.of(config)
    ensure_writable(env.cache_dir, "--cache-dir")
    reporter = Reporter(config.progress)
    driver = Driver(config, env, reporter)
    for moved, target in driver.store.move_aside() if tidy else []:
        reporter.log(f"warning: invalid record {moved}; moved to {target}, its cell is computed again")
    planner = Planner(config, Build.of(config, given))
    plan = planner.plan(driver.store)
    if plan.pending_records <= config.max_cells:  # a refused plan stays one line
        for line in planner.capped_test_points():
            reporter.log(line)
    return planner, driver, plan


def run_benchmark(config: RunConfig, given: Mapping[Spec, Defense] | None = None) -> RunResult:
    """Run (or resume) the matrix of ``config``; its ``frame`` is the leaderboard of the results store.
    ``given``: defenses already built (``benchmark.evaluate``'s model), by their specs in ``config.defenses``."""
    planner, driver, plan = prepare(config, given=given)
    _check_plan_size(plan, config.max_cells)
    if plan.cells:
        get_executor(config).run(plan, driver, planner.build)
    return RunResult(driver.leaderboard(), driver.computed, tuple(driver.failures))
