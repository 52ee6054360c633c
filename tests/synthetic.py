"""Tiny synthetic data and a FitContext for unit tests of defenses."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from defenses.base import Split


@dataclass
class TinyContext:
    """A FitContext for tests; ``dependency`` returns ``provided`` (a trained defense) if given."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    provided: object = None

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def dependency(self, name: str):
        if self.provided is None:
            raise AssertionError(f"unexpected dependency {name!r}")
        return self.provided

    def progress(self, iterable, *, desc, total=None):
        return iterable

    def log(self, message: str) -> None:
        pass


def blobs(n: int = 256) -> Split:
    """Two easy classes of 28x28 images: a bright top half or a bright bottom half, plus noise."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 28, 28, generator=generator) * 0.3
    x[y == 0, :, :14] += 0.6
    x[y == 1, :, 14:] += 0.6
    return Split(x.clamp(0, 1), y)
