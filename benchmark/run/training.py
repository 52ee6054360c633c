"""Training jobs: fit one defense (timed, seeded) and return its checkpoint; restore a defense from one.

``train`` is the one copy of the training logic: the local executor calls it in this process, the Ray
executor in a worker, with the job's dependencies already trained and restored.  ``LocalTrainer``
adds the checkpoint cache around it for this process (load, or train and save, under the
checkpoint's lock, dependencies first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import torch

from benchmark.datasets.base import DATASETS
from benchmark.run.build import Build
from benchmark.run.environment import Environment
from benchmark.run.plan import TrainingJob
from benchmark.run.progress import Reporter
from benchmark.run.provenance import describe_device, library_versions
from benchmark.store.checkpoints import Checkpoint, CheckpointCache, CorruptCheckpoint, weights_digest
from defenses.base import DEFENSES, Defense
from foundation.seeding import seeded

T = TypeVar("T")


@dataclass
class TrainedDefense:
    """A defense ready to evaluate, with what its records say about its training."""

    defense: Defense
    key: str
    train_seconds: float
    #: sha256 of the checkpoint's weights (``checkpoints.weights_digest``): the exact model records measure.
    weights_sha256: str
    summary: dict[str, float | str] = field(default_factory=dict)

    @classmethod
    def restore(cls, job: TrainingJob, checkpoint: Checkpoint, env: Environment, build: Build) -> TrainedDefense:
        """The job's built defense with its checkpoint loaded (raises ``KeyError``/``RuntimeError`` on a misfit)."""
        defense = build.restorable(job.spec)
        defense.load_state_dict(checkpoint.state)
        defense.to(env.torch_device)
        meta = checkpoint.meta
        seconds = meta.get("train_seconds")
        return cls(
            defense,
            job.key,
            float("nan") if seconds is None else float(seconds),
            checkpoint.weights_sha256,
            dict(meta.get("fit_summary", {})),
        )


@dataclass
class _FitContext:
    """The ``FitContext`` a defense's ``fit`` receives."""

    device: torch.device
    seed: int
    dependencies: Mapping[str, Defense]
    reporter: Reporter
    image_shape: tuple[int, int, int]
    num_classes: int

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed)

    def dependency(self, name: str) -> Defense:
        return self.dependencies[name]

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        return self.reporter.progress(iterable, desc=desc, total=total)

    def log(self, message: str) -> None:
        self.reporter.log(message)


def train(
    job: TrainingJob, env: Environment, dependencies: Mapping[str, Defense], reporter: Reporter, build: Build
) -> Checkpoint:
    """Fit the job's defense on its seed's slices (timed; every draw seeded by the job) and return its
    checkpoint: weights on the CPU plus plain metadata, ready for the cache or Ray's object store."""
    device, data = env.torch_device, env.slices(job.seed)
    train_split, val_split = data.train.to(device), data.val.to(device)
    trains = DEFENSES.get(job.spec.name).trains
    what = f"training ({len(train_split)} images, profile {env.profile.name})" if trains else "loading (not trained)"
    reporter.log(f"{job.label}: {what}")
    # Seeded before building: weight initialisation and the training's own draws come from it.
    with seeded(job.seed, device):
        defense = build.untrained(job.spec).to(device)
        data = DATASETS.build(env.dataset, env.profile.name)
        context = _FitContext(device, job.seed, dependencies, reporter, data.input_shape, data.classes)
        start = time.perf_counter()
        defense.fit(train_split, val_split, context)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    reporter.log(f"{job.label}: trained in {seconds:.1f} s" if trains else f"{job.label}: loaded and checked")
    state = {name: {k: v.detach().cpu() for k, v in part.items()} for name, part in defense.state_dict().items()}
    meta: dict[str, Any] = {
        "defense": job.spec.label,
        "options": defense.options(),
        "train_seconds": seconds if trains else None,
        "fit_summary": defense.fit_summary(),
        "profile": env.profile.name,
        "seed": job.seed,
        "library_versions": library_versions(),
        "device": describe_device(device),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_hash": job.key,
        "weights_sha256": weights_digest(state),
    }
    return Checkpoint(state, meta)


def load_cached(cache: CheckpointCache, job: TrainingJob, reporter: Reporter) -> Checkpoint | None:
    """The job's cached checkpoint; ``None`` when absent, or corrupt (then reported and removed)."""
    try:
        return cache.load(job.spec.name, job.key)
    except CorruptCheckpoint as error:
        reporter.log(f"warning: checkpoint of {job.label} is corrupt ({error}); retraining it")
        cache.remove(job.spec.name, job.key)
        return None


@dataclass
class LocalTrainer:
    """Trained defenses for this process: from the cache, or trained now and cached, once per key."""

    env: Environment
    cache: CheckpointCache
    reporter: Reporter
    build: Build
    _trained: dict[str, TrainedDefense] = field(default_factory=dict)

    def trained(self, job: TrainingJob) -> TrainedDefense:
        if job.key not in self._trained:
            waiting: Callable[[], None] = lambda: self.reporter.log(  # noqa: E731
                f"{job.label}: waiting for another run training checkpoint {job.key}"
            )
            with self.cache.lock(job.spec.name, job.key, on_wait=waiting):
                self._trained[job.key] = self._load(job) or self._fit(job)
        return self._trained[job.key]

    def _load(self, job: TrainingJob) -> TrainedDefense | None:
        checkpoint = load_cached(self.cache, job, self.reporter)
        if checkpoint is None:
            return None
        try:
            trained = TrainedDefense.restore(job, checkpoint, self.env, self.build)
        except (KeyError, RuntimeError) as error:
            self.reporter.log(f"warning: checkpoint of {job.label} does not fit ({error}); retraining it")
            self.cache.remove(job.spec.name, job.key)
            return None
        self.reporter.log(f"{job.label}: loaded cached checkpoint {job.key}")
        return trained

    def _fit(self, job: TrainingJob) -> TrainedDefense:
        dependencies = {dependency.spec.name: self.trained(dependency).defense for dependency in job.dependencies}
        checkpoint = train(job, self.env, dependencies, self.reporter, self.build)
        self.cache.save(job.spec.name, job.key, checkpoint.state, checkpoint.meta)
        return TrainedDefense.restore(job, checkpoint, self.env, self.build)
