"""Paper 000's gradient-free "semantic" attacks: Gaussian noise (GNA) and geometric transforms (GTA).

Both are plain batched functions (used at evaluation and inside adversarial training) plus
registered attacks.  Their budget is a parameter range, not a norm ball: every image draws its
own parameters from the range (the paper's setting; the reference code drew one transform per
batch), so the attacks ignore epsilon.  All randomness comes from the given generator, which
must live on the images' device.

Geometric conventions (image coordinates: x to the right, y downwards):

- a positive angle rotates the content counter-clockwise as displayed, so +90° equals
  ``torch.rot90(x, 1, dims=(-2, -1))``;
- a scale above 1 enlarges the content (zooms in), below 1 shrinks it;
- a positive translation moves the content right (x) and down (y), as a fraction of the width
  and height; it is continuous (sub-pixel) through the affine grid.

Rotation and scaling are about the image centre; pixels that come from outside the image are 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.base import Attack, register_attack

InterpolationMode = Literal["bilinear", "nearest"]


def _check_finite_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number; got {value!r}")


def _check_geometric_ranges(
    max_rotation_deg: float, scale_range: tuple[float, float], max_translation: float, mode: str
) -> None:
    _check_finite_non_negative(max_rotation_deg=max_rotation_deg, max_translation=max_translation)
    if max_rotation_deg > 180:
        raise ValueError(f"max_rotation_deg must be at most 180; got {max_rotation_deg:g}")
    if max_translation > 1:
        raise ValueError(f"max_translation is a fraction of the image size, at most 1; got {max_translation:g}")
    low, high = scale_range
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise ValueError(f"scale range must satisfy 0 < min <= max; got ({low:g}, {high:g})")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be bilinear or nearest; got {mode!r}")


def _uniform(n: int, low: float, high: float, generator: torch.Generator, like: Tensor) -> Tensor:
    """``n`` draws from U(low, high) on ``like``'s device and dtype, clamped so rounding stays in range."""
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return (low + (high - low) * u).clamp_(low, high)


@dataclass(frozen=True)
class GaussianNoiseParams:
    """Per-image noise parameters, each of shape (N,)."""

    mean: Tensor
    std: Tensor


def gaussian_noise_with_params(
    x: Tensor, generator: torch.Generator, mean_range: float = 0.1, std_max: float = 0.1
) -> tuple[Tensor, GaussianNoiseParams]:
    """GNA and the parameters it drew: ``x + μ + σ·N(0, 1)`` per pixel, μ ~ U(±mean_range) and
    σ ~ U(0, std_max) per image, clamped to [0, 1]."""
    _check_finite_non_negative(mean_range=mean_range, std_max=std_max)
    n = len(x)
    params = GaussianNoiseParams(
        mean=_uniform(n, -mean_range, mean_range, generator, x), std=_uniform(n, 0.0, std_max, generator, x)
    )
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    per_image = (n,) + (1,) * (x.ndim - 1)
    x_adv = x + params.mean.view(per_image) + params.std.view(per_image) * noise
    return x_adv.clamp_(0.0, 1.0), params


def gaussian_noise(x: Tensor, generator: torch.Generator, **ranges: float) -> Tensor:
    """GNA on a batch; ``ranges`` (``mean_range``, ``std_max``) as in ``gaussian_noise_with_params``."""
    return gaussian_noise_with_params(x, generator, **ranges)[0]


@dataclass(frozen=True)
class GeometricParams:
    """Per-image transform: ``angle_deg`` and ``scale`` of shape (N,), ``translation`` of shape (N, 2)
    holding the (x, y) shift as a fraction of the image's width and height."""

    angle_deg: Tensor
    scale: Tensor
    translation: Tensor


def affine_transform(x: Tensor, params: GeometricParams, mode: InterpolationMode = "bilinear") -> Tensor:
    """Rotate, scale and translate each image of an (N, C, H, W) batch by its own parameters, filling 0.

    ``affine_grid`` maps output to input coordinates, so the matrix is the inverse of the content's
    motion ``p_out = s·R·p_in + t``, written in normalised coordinates (the aspect correction keeps
    rotations rigid on non-square images).
    """
    if x.ndim != 4:
        raise ValueError(f"geometric transforms need (N, C, H, W) images; got shape {tuple(x.shape)}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be bilinear or nearest; got {mode!r}")
    height, width = x.shape[-2:]
    angle = torch.deg2rad(params.angle_deg.to(x))
    cos, sin = torch.cos(angle), torch.sin(angle)
    scale = params.scale.to(x)
    inverse = torch.stack(
        [
            torch.stack([cos, -sin * (height / width)], dim=-1),
            torch.stack([sin * (width / height), cos], dim=-1),
        ],
        dim=-2,
    ) / scale.view(-1, 1, 1)
    shift = 2 * params.translation.to(x)
    offset = -(inverse @ shift.unsqueeze(-1))
    theta = torch.cat([inverse, offset], dim=-1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x_adv = F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return x_adv.clamp_(0.0, 1.0)


def geometric_transform_with_params(
    x: Tensor,
    generator: torch.Generator,
    max_rotation_deg: float = 30.0,
    scale_range: tuple[float, float] = (0.8, 1.2),
    max_translation: float = 0.01,
    mode: InterpolationMode = "bilinear",
) -> tuple[Tensor, GeometricParams]:
    """GTA and the parameters it drew: per image, rotation U(±max_rotation_deg), scale U(scale_range),
    translation U(±max_translation) of the size in each axis; see ``affine_transform``."""
    _check_geometric_ranges(max_rotation_deg, scale_range, max_translation, mode)
    n = len(x)
    params = GeometricParams(
        angle_deg=_uniform(n, -max_rotation_deg, max_rotation_deg, generator, x),
        scale=_uniform(n, *scale_range, generator, x),
        translation=_uniform(2 * n, -max_translation, max_translation, generator, x).view(n, 2),
    )
    return affine_transform(x, params, mode), params


def geometric_transform(x: Tensor, generator: torch.Generator, **ranges: Any) -> Tensor:
    """GTA on a batch; ``ranges`` (``max_rotation_deg``, ``scale_range``, ``max_translation``, ``mode``) as in
    ``geometric_transform_with_params``."""
    return geometric_transform_with_params(x, generator, **ranges)[0]


class SemanticAttack(Attack):
    """A gradient-free attack bounded by a parameter range: it needs nothing from the defense and
    ignores epsilon, so a curve is one run shared by every epsilon (epsilon 0 included).

    Its parameter ranges hold by construction (draws are clamped to them); the guard checks the box.
    """

    threat_model = "semantic"
    requires = frozenset()
    uses_epsilon = False

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        x_adv = self._run(model, x, y, 0.0, generator)
        return [x_adv.clone() for _ in epsilons]


@dataclass(frozen=True)
class GNAConfig:
    """Paper 000: μ and σ each within ±0.1 per image (σ non-negative)."""

    mean_range: float = 0.1
    std_max: float = 0.1

    def __post_init__(self) -> None:
        _check_finite_non_negative(mean_range=self.mean_range, std_max=self.std_max)

    def ranges(self) -> dict[str, float]:
        """Keyword arguments of ``gaussian_noise``."""
        return {"mean_range": self.mean_range, "std_max": self.std_max}


@register_attack("gna")
class GNA(SemanticAttack):
    description = "Gaussian noise attack (paper 000): x + μ + σ·N(0, 1), μ and σ drawn per image; ignores ε"
    Config = GNAConfig

    def budget(self) -> str:
        cfg: GNAConfig = self.config
        return f"μ∈[−{cfg.mean_range:g}, {cfg.mean_range:g}], σ∈[0, {cfg.std_max:g}] per image"

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: GNAConfig = self.config
        return gaussian_noise(x, generator, **cfg.ranges())


@dataclass(frozen=True)
class GTAConfig:
    """Paper 000: rotation ±30°, scale 80–120 %, translation up to 1 % of the size, per image."""

    max_rotation_deg: float = 30.0
    scale_min: float = 0.8
    scale_max: float = 1.2
    max_translation: float = 0.01
    mode: InterpolationMode = "bilinear"

    def __post_init__(self) -> None:
        _check_geometric_ranges(self.max_rotation_deg, self.scale_range, self.max_translation, self.mode)

    @property
    def scale_range(self) -> tuple[float, float]:
        return (self.scale_min, self.scale_max)

    def ranges(self) -> dict[str, Any]:
        """Keyword arguments of ``geometric_transform``."""
        return {
            "max_rotation_deg": self.max_rotation_deg,
            "scale_range": self.scale_range,
            "max_translation": self.max_translation,
            "mode": self.mode,
        }


@register_attack("gta")
class GTA(SemanticAttack):
    description = "Geometric transformation attack (paper 000): rotation, scale, shift drawn per image; ignores ε"
    Config = GTAConfig

    def budget(self) -> str:
        cfg: GTAConfig = self.config
        return (
            f"rot ±{cfg.max_rotation_deg:g}°, scale {cfg.scale_min:g}–{cfg.scale_max:g}, "
            f"shift ≤{100 * cfg.max_translation:g} % per image"
        )

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: GTAConfig = self.config
        return geometric_transform(x, generator, **cfg.ranges())
