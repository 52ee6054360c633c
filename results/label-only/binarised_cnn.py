"""The harness's own quick ``cnn`` with its input binarised at 0.5, as a user would write it: with a hard
threshold (no gradient path: ``hard``) or with a straight-through gradient (BPDA: ``straight_through``).

Schott et al.'s "binary CNN" (3 % robust at L2 ε = 1.5, median adversarial distance 0.86) is this
model; the README in this folder runs both through ``bench run --defenses model:source=...``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defenses.networks import MadryCNN


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return (x >= 0.5).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


class BinarisedCNN(nn.Module):
    def __init__(self, straight_through: bool) -> None:
        super().__init__()
        self.straight_through = straight_through
        self.cnn = MadryCNN()

    def forward(self, x: Tensor) -> Tensor:
        binary = _StraightThrough.apply(x) if self.straight_through else (x >= 0.5).to(x.dtype)
        return self.cnn(binary)


def hard() -> nn.Module:
    return BinarisedCNN(straight_through=False)


def straight_through() -> nn.Module:
    return BinarisedCNN(straight_through=True)
