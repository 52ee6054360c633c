"""The local executor: this process trains and evaluates, one cell after another (the default)."""

from __future__ import annotations

from benchmark.config.run_config import RunConfig
from benchmark.run.build import Build
from benchmark.run.driver import Driver
from benchmark.run.evaluation import evaluate_cell, evaluate_clean
from benchmark.run.plan import Cell, Plan
from benchmark.run.training import LocalTrainer


class LocalExecutor:
    def run(self, plan: Plan, driver: Driver, build: Build) -> None:
        """Each defense's cells in turn; cells another run is computing right now are left to the end, then
        waited for, and whatever that run did not store is computed here."""
        env, reporter = driver.env, driver.reporter
        trainer = LocalTrainer(env, driver.cache, reporter, build)
        deferred: list[Cell] = []

        def attempt(cell: Cell, wait: bool) -> bool:
            with driver.claim(cell, wait=wait) as ours:
                if ours:
                    clean_job = plan.clean(cell.clean_key)
                    trained = trainer.trained(plan.job(cell.defense_key))
                    points = env.test_points(cell.seed, cell.n_test)
                    clean = driver.clean_record(clean_job, lambda: evaluate_clean(clean_job, trained, points, env))
                    surrogate = trainer.trained(plan.job(cell.surrogate_key)).defense if cell.surrogate_key else None
                    keep, attack = driver.config.save_adversarials, build.attack(cell.attack)
                    progress = reporter.progress
                    driver.record(evaluate_cell(cell, attack, trained, clean, points, env, surrogate, progress, keep))
                return ours or wait

        for cell in plan.cells:
            if not attempt(cell, wait=False):
                deferred.append(cell)
        for cell in deferred:
            attempt(cell, wait=True)


def build(config: RunConfig) -> LocalExecutor:
    return LocalExecutor()
