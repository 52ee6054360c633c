"""Where a plan runs: the device, the directories, the data, and torch's threads.

``Environment`` is a small picklable value: the driver builds it once and every executor (a Ray
worker on another machine too) rebuilds the same surroundings from it.  The dataset is loaded once
per process, however many cells and training jobs that process runs.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir

from benchmark.config.profiles import Profile
from benchmark.config.run_config import RunConfig
from benchmark.datasets.base import DATASETS
from benchmark.datasets.files import resolve_data_dir
from benchmark.datasets.slices import DataSlices, make_slices
from foundation import allocator
from foundation.errors import BenchError
from foundation.splits import Split

CACHE_DIR_ENV = "BENCH_CACHE_DIR"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BenchError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


def resolve_cache_dir(flag: Path | None) -> Path:
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path(user_cache_dir("bench")) / "checkpoints"


@dataclass(frozen=True)
class Environment:
    """The surroundings of training jobs and cells (picklable: it travels to Ray workers)."""

    device: str
    profile: Profile
    dataset: str
    data_dir: Path
    cache_dir: Path | None  # None on Ray workers: they write no cache
    download: bool
    #: ``--n-test``: the test slice's size instead of the profile's (it must not exceed the test set).
    n_test: int | None = None

    @classmethod
    def of(cls, config: RunConfig) -> Environment:
        """A run's environment, its directories resolved (flags, then environment variables, then defaults)."""
        device, cache_dir = resolve_device(config.device), resolve_cache_dir(config.cache_dir)
        data_dir = resolve_data_dir(config.data_dir)
        return cls(str(device), config.profile, config.dataset, data_dir, cache_dir, config.download, config.n_test)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def slices(self, seed: int) -> DataSlices:
        """The profile's train / validation / test slices for ``seed`` (loaded once per process)."""
        p, n_test = self.profile, self.n_test or self.profile.n_test
        slices = _slices(self.dataset, self.data_dir, self.download, self.cache_dir, p.n_train, p.n_val, n_test, seed)
        if self.n_test is not None and len(slices.test) < self.n_test:
            raise BenchError(
                f"--n-test {self.n_test:,} exceeds the {len(slices.test):,} test images of {self.dataset}; "
                f"choose at most {len(slices.test):,}"
            )
        return slices

    def test_points(self, seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` points of the seeded test slice, on the CPU (they travel to workers as they are)."""
        test = self.slices(seed).test
        return test.x[:n], test.y[:n]


@functools.cache
def _dataset(name: str, data_dir: Path, download: bool, cache_dir: Path | None) -> tuple[Split, Split]:
    return DATASETS.build(name, "paper").load(data_dir, download, cache_dir)


@functools.lru_cache(maxsize=4)
def _slices(
    name: str, data_dir: Path, download: bool, cache_dir: Path | None, n_train: int, n_val: int, n_test: int, seed: int
) -> DataSlices:
    full_train, test = _dataset(name, data_dir, download, cache_dir)
    train_size = DATASETS.build(name, "paper").train_size(len(full_train))
    return make_slices(full_train, test, n_train, n_val, n_test, seed, train_size)


def configure_worker(threads: int) -> None:
    """A worker process set for tensor work: torch's intra-op threads (its share of the machine's cores) and
    glibc's allocator thresholds (``foundation.allocator``)."""
    allocator.tune()
    torch.set_num_threads(max(1, threads))
