"""The one writer of a run: what executors compute reaches the store and the checkpoint cache only here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.results.frame import records_to_frame
from benchmark.results.leaderboard import write_leaderboard
from benchmark.run.environment import Environment
from benchmark.run.evaluation import CellOutcome
from benchmark.run.interrupts import raise_if_interrupted
from benchmark.run.plan import Cell, CleanEvaluation, TrainingJob
from benchmark.run.progress import Reporter
from benchmark.store.checkpoints import Checkpoint, CheckpointCache
from benchmark.store.result_store import ResultStore


@dataclass(frozen=True)
class CellFailure:
    """A cell that raised: no number is recorded for it, and the run exits 1."""

    defense: str
    attack: str
    message: str


class Driver:
    """The one writer of a run: the results store and the checkpoint cache, the log and the leaderboard.

    Executors ask it for what is stored and hand it what they computed; it holds the claims (lock
    files) that keep concurrent runs on one store from computing a cell or training a checkpoint twice.
    """

    def __init__(self, config: RunConfig, env: Environment, reporter: Reporter) -> None:
        self.config, self.env, self.reporter = config, env, reporter
        self.store = ResultStore(Path(config.out_dir))
        self.cache = CheckpointCache(env.cache_dir)
        self.failures: list[CellFailure] = []
        self.computed = 0

    # Checkpoints ---------------------------------------------------------------------------------
    def checkpoint_lock(self, job: TrainingJob) -> AbstractContextManager[bool]:
        waiting = lambda: self.reporter.log(f"{job.label}: waiting for another run training checkpoint {job.key}")  # noqa: E731
        return self.cache.lock(job.spec.name, job.key, on_wait=waiting)

    def save_checkpoint(self, job: TrainingJob, checkpoint: Checkpoint) -> None:
        self.cache.save(job.spec.name, job.key, checkpoint.state, checkpoint.meta)
        seconds = checkpoint.meta["train_seconds"]
        done = "not trained (loaded and checked)" if seconds is None else f"trained in {seconds:.1f} s"
        self.reporter.log(f"{job.label}: {done}; checkpoint {job.key}")

    # Clean evaluations ---------------------------------------------------------------------------
    def clean_record(self, job: CleanEvaluation, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The stored clean evaluation, or ``compute()``'s, stored now (under its claim)."""
        waiting = lambda: self.reporter.log(f"{job.defense.label}: waiting for another run's clean evaluation")  # noqa: E731
        with self.store.claim(job.key, wait=True, on_wait=waiting):
            record = self.store.get_clean(job.key)
            if record is None:
                record = compute()
                self.store.write_clean(record)
        return record

    # Cells ---------------------------------------------------------------------------------------
    @contextmanager
    def claim(self, cell: Cell, *, wait: bool) -> Iterator[bool]:
        """Hold the cell's claim: yields True if this run should compute it (claimed and not stored
        meanwhile by another run), False if another run holds it and ``wait`` is False or it is done."""
        raise_if_interrupted()
        waiting = lambda: self.reporter.log(f"{cell.label}: waiting for another run computing this cell")  # noqa: E731
        with self.store.claim(cell.keys[0], wait=wait, on_wait=waiting) as held:
            yield held and not all(self.store.has(key) for key in cell.keys)

    def record(self, outcome: CellOutcome) -> None:
        """Write a finished cell's records (those not stored yet), say so, and note failures."""
        cell = outcome.cell
        if outcome.failure is not None:
            self.failures.append(CellFailure(cell.defense.label, cell.attack.label, outcome.failure))
            self.reporter.log(f"error: {cell.label}: {outcome.failure}; no number recorded for this cell")
            return
        for record in outcome.records:
            if self.store.has(record["cell_key"]):
                continue
            x_adv = outcome.adversarials.get(record["cell_key"])
            if x_adv is not None:  # the examples first: a record never names a file that is not there
                record = {**record, "adversarials_sha256": self.store.write_adversarials(record["cell_key"], x_adv)}
            self.store.write(record)
            self.computed += 1
            if record["status"] == "ok":
                self.reporter.log(
                    f"{cell.label} {record['budget']}: robust accuracy {record['robust_accuracy']:.3f} "
                    f"(clean {record['clean_accuracy']:.3f}) in {record['attack_seconds']:.1f} s"
                )
        if outcome.skipped:
            self.reporter.log(f"{cell.label}: skipped ({outcome.skipped})")
        raise_if_interrupted()

    def leaderboard(self, partial: bool = False) -> pd.DataFrame:
        """Rewrite the leaderboard files from what is stored: after the run, or (``partial``: tables only,
        no curve plots) while it goes on.  The site is the faces' to render (``benchmark.publish``)."""
        with self.store.writer_lock():
            frame = records_to_frame(self.store.records())
            write_leaderboard(frame, Path(self.config.out_dir), curves=not partial)
        return frame
