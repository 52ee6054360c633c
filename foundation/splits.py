"""A dataset split as the defenses train on it and the runner evaluates it: images and labels on one device.

It lives below every package that handles data (``foundation`` < ``attacks`` < ``defenses`` < ``benchmark``): the
datasets build splits, the defenses fit on them, the runner and the perf suite slice them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Split:
    """Images in [0, 1] of shape (N, C, H, W) (the dataset's: MNIST 1×28×28, CIFAR-10 3×32×32) and integer
    labels, on one device."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Mini-batches, shuffled when a generator is given."""
        order = (
            torch.randperm(len(self), generator=generator, device=generator.device).to(self.y.device)
            if generator is not None
            else torch.arange(len(self), device=self.y.device)
        )
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            yield self.x[index], self.y[index]
