"""Elementwise input quantisers (a binariser, k uniform levels, per-pixel thresholds) as attacks see them.

A quantiser maps each pixel value to one of ``T + 1`` levels separated by ``T`` increasing thresholds.
What an attack needs of threshold ``j`` is where its crossing lies on each side: ``below[j]``, the largest
value known to stay on the lower level, and ``above[j]``, the smallest value known to reach the upper one.
A declared quantiser knows them exactly (``x ≥ 0.5``: below is the float just under 0.5, above is 0.5);
one found by the diagnostics knows them to the bracket its line search ended with.  Thresholds are shared
by every pixel (shape ``(T,)``) or given per pixel (shape ``(D, T)``, D the flattened input size).

The network behind the quantiser sees only levels, so an attack searches the set of pixels whose
threshold it crosses, each priced at its distance to the crossing.  ``representatives`` are the values
the network is assumed to see per level (0 and 1 for the outer levels, the middle between the two
thresholds for an inner one, as a rounding quantiser outputs): first-order estimates of a crossing's
effect use them; every measurement is of the model itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from foundation.errors import BenchError

#: The spec forms of a declared quantiser (``quantizer=…`` of the model defense).
SPEC_FORMS = "binary (x ≥ 0.5), binary@T (x ≥ T), levels@K (rounding to K uniform levels), thresholds@A+B+…"


def _neighbours(values: list[float]) -> tuple[Tensor, Tensor]:
    """The float32 just below and just above each value (inputs are float32 images)."""
    exact = torch.tensor(values, dtype=torch.float32)
    return torch.nextafter(exact, torch.tensor(-math.inf)), torch.nextafter(exact, torch.tensor(math.inf))


@dataclass(frozen=True, eq=False)
class Quantizer:
    """``T`` thresholds per pixel, each as the bracket (``below``, ``above``) its crossing lies in."""

    below: Tensor
    above: Tensor
    #: Who says so: e.g. "declared by binary-abs", "declared in the spec", "found by the diagnostics".
    source: str = ""

    def __post_init__(self) -> None:
        if self.below.shape != self.above.shape or self.below.ndim not in (1, 2) or self.below.shape[-1] < 1:
            raise BenchError(f"a quantizer needs matching (T,) or (D, T) thresholds; got {tuple(self.below.shape)}")
        if not (self.below <= self.above).all() or not (self.above[..., :-1] <= self.below[..., 1:]).all():
            raise BenchError("a quantizer's thresholds must increase, each bracket (below, above) in order")

    # Construction --------------------------------------------------------------------------------------

    @classmethod
    def thresholds(cls, values: list[float], *, inclusive: bool = True, source: str = "") -> Quantizer:
        """Exact thresholds: a value v reaches the level above threshold t when v ≥ t (``inclusive``) or v > t."""
        values = sorted(float(v) for v in values)
        if not values or any(not 0.0 < v < 1.0 for v in values) or len(set(values)) != len(values):
            raise BenchError(f"quantizer thresholds must be distinct numbers strictly inside (0, 1); got {values}")
        exact = torch.tensor(values, dtype=torch.float32)
        lower, upper = _neighbours(values)
        return cls(lower, exact, source) if inclusive else cls(exact, upper, source)

    @classmethod
    def binary(cls, threshold: float = 0.5, *, source: str = "") -> Quantizer:
        """Binarisation ``x ≥ threshold``."""
        return cls.thresholds([threshold], source=source)

    @classmethod
    def uniform(cls, levels: int, *, source: str = "") -> Quantizer:
        """Rounding to ``levels`` uniform levels, ``round(x·(k−1))/(k−1)``: thresholds halfway between levels.

        Rounding sends a tie either way, so each bracket is the two floats around the halfway point."""
        if levels < 2:
            raise BenchError(f"a uniform quantizer needs at least 2 levels; got {levels}")
        return cls(*_neighbours([(j + 0.5) / (levels - 1) for j in range(levels - 1)]), source)

    @classmethod
    def parse(cls, text: str, *, source: str = "declared in the spec") -> Quantizer:
        """A quantiser from its spec form: ``binary``, ``binary@T``, ``levels@K`` or ``thresholds@A+B+…``."""
        kind, _, value = text.strip().partition("@")
        try:
            if kind == "binary":
                return cls.binary(float(value) if value else 0.5, source=source)
            if kind == "levels" and value:
                return cls.uniform(int(value), source=source)
            if kind == "thresholds" and value:
                return cls.thresholds([float(v) for v in value.split("+")], source=source)
        except ValueError:
            pass
        raise BenchError(f"quantizer {text!r} is not one of: {SPEC_FORMS}")

    # What attacks use ----------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Thresholds per pixel, T."""
        return int(self.below.shape[-1])

    def per_pixel(self, dimension: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """``below`` and ``above`` as (D, T) tensors of ``like``'s device and dtype."""
        if self.below.ndim == 2 and self.below.shape[0] != dimension:
            raise BenchError(f"the quantizer has thresholds for {self.below.shape[0]} pixels, the input {dimension}")
        below, above = (t.to(like.device, like.dtype).expand(dimension, self.count) for t in (self.below, self.above))
        return below, above

    def levels(self, flat: Tensor) -> Tensor:
        """Each value's level (0 … T) for flattened inputs (N, D): the thresholds whose ``below`` it exceeds."""
        below, _ = self.per_pixel(flat.shape[1], flat)
        return (flat.unsqueeze(-1) > below).sum(dim=-1)

    def representatives(self, dimension: int, like: Tensor) -> Tensor:
        """The value each level stands for, (D, T + 1): 0 and 1 outside, between-threshold middles inside."""
        below, above = self.per_pixel(dimension, like)
        middles = (below + above) / 2
        inner = (middles[:, :-1] + middles[:, 1:]) / 2
        return torch.cat([torch.zeros_like(middles[:, :1]), inner, torch.ones_like(middles[:, :1])], dim=1)

    def describe(self) -> str:
        """One line: the levels and thresholds, and who said so."""
        where = f" ({self.source})" if self.source else ""
        if self.below.ndim == 2:
            return f"{self.count + 1} levels, thresholds per pixel{where}"
        middles = ", ".join(f"{float(v):.4g}" for v in (self.below + self.above) / 2)
        return f"{self.count + 1} levels, threshold{'s' if self.count > 1 else ''} {middles}{where}"

    def to_json(self) -> dict[str, Any]:
        return {"below": self.below.tolist(), "above": self.above.tolist(), "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quantizer:
        return cls(
            torch.tensor(data["below"], dtype=torch.float32),
            torch.tensor(data["above"], dtype=torch.float32),
            str(data.get("source", "")),
        )
