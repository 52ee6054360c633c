"""What the perf sections share: settings, the MNIST slices, trained defenses, a silent FitContext."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from benchmark.config.profiles import get_profile
from benchmark.config.run_config import RunConfig
from benchmark.datasets.base import DATASETS
from benchmark.datasets.files import resolve_data_dir
from benchmark.datasets.idx import MNIST_INPUT_SHAPE
from benchmark.datasets.slices import make_slices
from benchmark.run.build import Build
from benchmark.run.environment import Environment
from benchmark.run.plan import Planner, TrainingJob
from benchmark.run.progress import Reporter
from benchmark.run.provenance import describe_device
from benchmark.run.training import LocalTrainer
from benchmark.store.checkpoints import CheckpointCache, CorruptCheckpoint
from defenses.base import Defense
from foundation.registry import Spec
from foundation.splits import Split

T = TypeVar("T")
#: Cached checkpoints are looked for in this order; without one, the cheapest profile is trained.
CACHED_PROFILES = ("paper", "quick", "smoke")


@dataclass(frozen=True)
class PerfSettings:
    device: torch.device
    cache_dir: Path
    data_dir: Path | None = None
    download: bool = True
    seed: int = 0
    repeats: int = 5
    batch_size: int = 256
    quick_check: bool = False  # tiny budgets: checks that every contender runs, numbers are not meaningful
    dataset: str = "mnist"
    #: Test points of the whole ``bench run``s the ``run`` and ``scale`` sections time (``--n-test``).
    n_test: int | None = None

    def run_flags(self) -> list[str]:
        """The ``bench run`` flags that follow from these settings' test points."""
        return [] if self.n_test is None else ["--n-test", str(self.n_test)]

    def run_task(self, task: str) -> str:
        """A timed ``bench run``'s task label, naming its test points when they are not the profile's."""
        return task if self.n_test is None else f"{task} --n-test {self.n_test}"


@dataclass
class QuietContext:
    """A ``FitContext`` that shows and logs nothing (training loops are timed, not watched)."""

    device: torch.device
    seed: int
    image_shape: tuple[int, int, int] = MNIST_INPUT_SHAPE  # the training section's VAEs are MNIST's
    num_classes: int = 10

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed)

    def dependency(self, name: str) -> Defense:
        raise RuntimeError(f"perf trains no dependency (asked for {name!r})")

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        return iterable

    def log(self, message: str) -> None:
        pass


def log(message: str) -> None:
    print(f"perf: {message}", file=sys.stderr, flush=True)


class Workbench:
    """Lazily loaded data and models for the sections, on the settings' device."""

    def __init__(self, settings: PerfSettings) -> None:
        self.settings = settings
        self.device = settings.device
        self.device_name = describe_device(settings.device)

    @functools.cached_property
    def data(self) -> tuple[Split, Split]:
        """The settings' dataset: full training and test splits."""
        s = self.settings
        return DATASETS.build(s.dataset, "paper").load(resolve_data_dir(s.data_dir), s.download, s.cache_dir)

    def test_batch(self, n: int) -> Split:
        """``n`` test images of the seeded test slice, on the device."""
        return make_slices(*self.data, 0, 0, n, self.settings.seed).test.to(self.device)

    def train_images(self, n: int) -> Split:
        """The first ``n`` images of the seeded training split, on the device."""
        return make_slices(*self.data, n, 0, 0, self.settings.seed).train.to(self.device)

    def context(self) -> QuietContext:
        return QuietContext(self.device, self.settings.seed)

    def _job(self, name: str, profile: str) -> tuple[TrainingJob, LocalTrainer]:
        """The training job of a built-in defense at a profile under the settings' seed, and a trainer for it."""
        s, p = self.settings, get_profile(profile)
        config = RunConfig(
            defenses=(Spec(name),),
            attacks=(),
            epsilons=p.epsilons,
            profile=p,
            seed=s.seed,
            device=str(s.device),
            cache_dir=s.cache_dir,
            data_dir=s.data_dir,
            download=s.download,
            progress=False,
            dataset=s.dataset,
        )
        build = Build.of(config)
        trainer = LocalTrainer(Environment.of(config), CheckpointCache(s.cache_dir), Reporter(False), build)
        return Planner(config, build).job(Spec(name), s.seed), trainer

    def trained(self, name: str) -> tuple[Defense, str]:
        """A trained built-in defense and where it came from: its cached checkpoint of the most thorough profile
        (``CACHED_PROFILES``), or trained now at ``smoke``."""
        for profile in CACHED_PROFILES:
            job, trainer = self._job(name, profile)
            try:
                if trainer.cache.load(job.spec.name, job.key) is None:
                    continue
            except CorruptCheckpoint:
                continue
            return trainer.trained(job).defense, f"{name}: cached checkpoint, profile {profile}"
        log(f"no cached {name} checkpoint in {self.settings.cache_dir}; training one at the smoke profile")
        job, trainer = self._job(name, CACHED_PROFILES[-1])
        return trainer.trained(job).defense, f"{name}: trained now, profile {CACHED_PROFILES[-1]}"

    @functools.cached_property
    def cnn(self) -> tuple[nn.Module, str]:
        """The trained ``cnn`` (eval mode) and where it came from."""
        defense, origin = self.trained("cnn")
        return defense.deployed_model().eval(), origin
