"""The dataset contract: what a registered dataset declares (shape, classes, ε, splits) and how it loads.

A dataset is a plugin like defenses and attacks (``@register_dataset("name")``; third-party packages
register through the ``bench.datasets`` entry-point group).  Its name enters every key, record and
table; MNIST, the default, stays out of the keys so that results computed before datasets existed
keep theirs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from benchmark.config.profiles import Profile
from foundation.errors import BenchError
from foundation.registry import Plugin, Registry
from foundation.threat_models import DEFAULT_NORM, NORM_SYMBOLS

if TYPE_CHECKING:
    from foundation.splits import Split

DEFAULT_DATASET = "mnist"


class Dataset(Plugin):
    """An image-classification dataset in [0, 1] with integer labels."""

    #: (channels, height, width) of an image, and the number of classes.
    input_shape: ClassVar[tuple[int, int, int]]
    classes: ClassVar[int]
    #: The L∞ budgets evaluated when ``--eps`` is not given, per profile (``None``: the profile's own list).
    epsilons: ClassVar[Mapping[str, tuple[float, ...]] | None] = None
    #: The L2, L1 and L0 budgets evaluated under ``--norm l2|l1|l0`` when ``--eps`` is not given, per profile
    #: (``None``: none are standard for this dataset, so ``--eps`` is required); L0 budgets count pixels.
    l2_epsilons: ClassVar[Mapping[str, tuple[float, ...]] | None] = None
    l1_epsilons: ClassVar[Mapping[str, tuple[float, ...]] | None] = None
    l0_epsilons: ClassVar[Mapping[str, tuple[float, ...]] | None] = None
    #: Share of the official training set used for training; the rest is the validation split.
    train_share: ClassVar[float]
    #: How ε is written for this dataset in tables and exports, e.g. 8/255 (fractions of 255) or 0.3.
    eps_in_255ths: ClassVar[bool] = False

    @abstractmethod
    def load(self, data_dir: Path, download: bool, cache_dir: Path | None) -> tuple[Split, Split]:
        """The full training and test splits; missing or unreadable data raises a one-line ``BenchError``."""

    def default_epsilons(self, profile: Profile, norm: str = DEFAULT_NORM) -> tuple[float, ...]:
        if norm != DEFAULT_NORM:
            budgets = getattr(self, f"{norm}_epsilons")
            if budgets is None or profile.name not in budgets:
                symbol = NORM_SYMBOLS[norm]
                raise BenchError(
                    f"dataset {self.name!r} has no default {symbol} budgets; pass --eps with --norm {norm}"
                )
            return budgets[profile.name]
        return profile.epsilons if self.epsilons is None else self.epsilons.get(profile.name, profile.epsilons)

    def train_size(self, n_images: int) -> int:
        """How many of ``n_images`` training images train (the rest validate)."""
        return round(n_images * self.train_share)


DATASETS: Registry[Dataset] = Registry("dataset", Dataset, "benchmark.datasets", "bench.datasets")
register_dataset = DATASETS.register
