"""``bench run --dry-run``: the plan as text, with wall-time estimates from timings already measured.

An estimate uses only measured timings: a checkpoint's training seconds for the same defense and
profile in the cache, a stored cell's attack seconds for the same defense, attack and profile.
Whatever has no such timing is shown as unknown, and so is any total that would need it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable

from tabulate import tabulate

from benchmark.config.run_config import RunConfig
from benchmark.run.plan import Cell, Plan, TrainingJob
from benchmark.run.runner import prepare


def _seconds(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / 3600:.1f} h" if value >= 3600 else f"{value / 60:.1f} min" if value >= 60 else f"{value:.0f} s"


def _total(values: Iterable[float | None]) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


class Timings:
    """Measured timings of a store and a checkpoint cache, by (defense, profile) and (defense, attack, profile)."""

    def __init__(self, records: list[dict], checkpoint_metas: list[dict]) -> None:
        self.training: dict[tuple[str, str], list[float]] = defaultdict(list)
        for meta in checkpoint_metas:
            if isinstance(meta.get("train_seconds"), float):
                self.training[(meta.get("defense", ""), meta.get("profile", ""))].append(meta["train_seconds"])
        self.attacks: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        for record in records:
            if record["status"] == "ok":
                key = (record["defense"], record["attack"], record["profile"])
                self.attacks[key].append(record["attack_seconds"])

    def train(self, job: TrainingJob, profile: str) -> float | None:
        seconds = self.training.get((job.spec.label, profile))
        return statistics.median(seconds) if seconds else None

    def cell(self, cell: Cell) -> float | None:
        seconds = self.attacks.get((cell.defense.label, cell.attack.label, cell.profile))
        return statistics.median(seconds) if seconds else None


def describe(config: RunConfig) -> str:
    """The plan of ``config``: training jobs, pending and stored cells, and the serial and critical-path
    wall-time estimates; nothing is computed or written."""
    _, driver, plan = prepare(config, tidy=False)
    profile = config.profile.name
    timings = Timings(driver.store.records(), driver.cache.metas())
    cached = {job.key: driver.cache.path(job.spec.name, job.key).exists() for job in plan.jobs}
    job_seconds = {job.key: 0.0 if cached[job.key] else timings.train(job, profile) for job in plan.jobs}
    job_rows = [
        [job.label, job.key, "cached" if cached[job.key] else "to train", _seconds(timings.train(job, profile))]
        for job in plan.jobs
    ]
    cell_rows = [
        [cell.label, ", ".join("–" if e is None else f"{e:g}" for e in cell.epsilons), _seconds(timings.cell(cell))]
        for cell in plan.cells
    ]
    critical = _critical_path(plan, job_seconds, timings)
    serial = _total([*job_seconds.values(), *(timings.cell(cell) for cell in plan.cells)])
    lines = [
        f"Plan of `{config.executor}` run, profile {profile}: {len(plan.jobs)} training jobs "
        f"({sum(not c for c in cached.values())} to train), {plan.pending_records} cells to compute "
        f"in {len(plan.cells)} attack runs, {plan.stored} cells already stored.",
        "",
        tabulate(job_rows, headers=["training job", "key", "status", "measured time"], tablefmt="github")
        if job_rows
        else "No training job.",
        "",
        tabulate(cell_rows, headers=["pending cell", "ε", "measured time"], tablefmt="github")
        if cell_rows
        else "No pending cell: the run would compute nothing.",
        "",
        f"Estimated serial wall time: {_seconds(serial)}.",
        f"Critical path (the lower bound with unlimited workers): {_seconds(critical)}.",
        "Estimates use timings measured on earlier runs of the same defense / attack / profile; unknown where none.",
    ]
    return "\n".join(lines)


def _critical_path(plan: Plan, job_seconds: dict[str, float | None], timings: Timings) -> float | None:
    """The longest chain of training jobs (a job after its dependencies) and one cell."""

    def chain(job: TrainingJob) -> float | None:
        """A job's time after its dependencies (which train in parallel: the longest of them counts)."""
        return _longest([job_seconds.get(job.key)], [chain(dependency) for dependency in job.dependencies])

    longest: float | None = 0.0
    for cell in plan.cells:
        jobs = [plan.job(cell.defense_key)] + ([plan.job(cell.surrogate_key)] if cell.surrogate_key else [])
        path = _longest([timings.cell(cell)], [chain(job) for job in jobs])
        if path is None:
            return None
        longest = max(longest, path)
    return longest


def _longest(own: list[float | None], before: list[float | None]) -> float | None:
    """``own`` after the longest of ``before`` (all of them known), or ``None``."""
    if any(value is None for value in [*own, *before]):
        return None
    return sum(own) + max(before, default=0.0)  # type: ignore[arg-type]
