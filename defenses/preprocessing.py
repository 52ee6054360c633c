"""A user's input normalisation inside the model: attacks, the threat-model guard and ε stay in [0, 1] pixels.

Models trained on normalised inputs (``(x - mean) / std`` per channel, as torchvision's ``Normalize``) are
given as they are, with ``mean=`` and ``std=``; ``Normalized`` puts that step in front of them, so every
attack perturbs, and every budget measures, the [0, 1] image the dataset holds (AutoAttack #16,
torchattacks #145: normalising outside the model changes ε).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from foundation.errors import BenchError

#: How channel values are written in a spec: ``mean=0.4914+0.4822+0.4465`` (``,`` and ``:`` separate specs).
SEPARATOR = "+"


class Normalized(nn.Module):
    """``model((x - mean) / std)``, ``mean`` and ``std`` per channel (not part of the state dict)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean.to(x)) / self.std.to(x))


def channel_values(text: str, option: str, who: str) -> tuple[float, ...]:
    """``0.4914+0.4822+0.4465`` as finite numbers (``std``: positive ones); else a one-line ``BenchError``."""
    values = []
    for part in text.split(SEPARATOR):
        try:
            value = float(part)
        except ValueError:
            raise BenchError(
                f"option {option} of {who} must be numbers joined by {SEPARATOR!r}, one per channel "
                f"(e.g. {option}=0.4914+0.4822+0.4465); got {text!r}"
            ) from None
        if not math.isfinite(value) or (option == "std" and value <= 0):
            allowed = "positive numbers" if option == "std" else "finite numbers"
            raise BenchError(f"option {option} of {who} must hold {allowed}; got {text!r}")
        values.append(value)
    return tuple(values)


def spec_text(values: Sequence[float], option: str) -> str:
    """Channel values as a spec writes them (``repr``: they read back as the same floats)."""
    try:
        return SEPARATOR.join(repr(float(value)) for value in values)
    except (TypeError, ValueError):
        raise BenchError(f"{option} must be a sequence of numbers, one per channel; got {values!r}") from None


def check_channels(values: dict[str, tuple[float, ...]], input_shape: tuple[int, ...], who: str) -> None:
    """One value per channel of the dataset's images (``input_shape``: channels first), for ``mean`` and ``std``."""
    channels = input_shape[0]
    for option, given in values.items():
        if len(given) != channels:
            raise BenchError(
                f"option {option} of {who} has {len(given)} value(s), but the dataset's images "
                f"({'×'.join(map(str, input_shape))}) have {channels} channel(s): give one per channel, joined "
                f"by {SEPARATOR!r}"
            )
