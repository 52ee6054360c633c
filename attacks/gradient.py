"""Native batched L-infinity gradient attacks (FGSM, PGD) in torch.

They run on the model's device on whole batches, differentiate only with respect to the
input (no parameter gradients are accumulated), and are also the attacks used inside
adversarial training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.base import Attack, project_linf, register_attack

#: A batch objective to *maximise*, summed over the batch (so each example's gradient is its own).
Objective = Callable[[Tensor], Tensor]


def objective_gradient(objective: Objective, x: Tensor) -> Tensor:
    """Gradient of ``objective`` with respect to the input batch ``x`` only."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(objective(x), x)
    return grad


def cross_entropy_objective(model: nn.Module, y: Tensor) -> Objective:
    return lambda x: F.cross_entropy(model(x), y, reduction="sum")


def input_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of the summed cross-entropy of ``model(x)`` with respect to ``x``."""
    return objective_gradient(cross_entropy_objective(model, y), x)


def fgsm_step(objective: Objective, x: Tensor, eps: float) -> Tensor:
    """One signed-gradient ascent step of size eps on ``objective``, clipped to [0, 1]."""
    return (x + eps * objective_gradient(objective, x).sign()).clamp_(0.0, 1.0)


def pgd_ascent(
    objective: Objective,
    x: Tensor,
    eps: float,
    *,
    steps: int,
    step_size: float,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """L-infinity projected signed-gradient ascent on ``objective``; returns the last iterate."""
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)
    for _ in range(steps):
        x_adv = project_linf(x, x_adv + step_size * objective_gradient(objective, x_adv).sign(), eps)
    return x_adv


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
    """FGSM on the cross-entropy (Goodfellow et al.)."""
    return fgsm_step(cross_entropy_objective(model, y), x, eps)


@register_attack("fgsm")
class FGSM(Attack):
    description = "Fast gradient sign method, L∞ (native torch)"

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return fgsm(model, x, y, eps)


@dataclass(frozen=True)
class PGDConfig:
    """Iterative budget; the step is ``rel_stepsize * eps`` (Madry: 40 steps of 0.01 at eps 0.3)."""

    steps: int = 40
    rel_stepsize: float = 0.01 / 0.3
    random_start: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.rel_stepsize <= 0:
            raise ValueError("rel_stepsize must be positive")


#: The smoke profile runs a short PGD with a proportionally larger step; the method is unchanged.
PGD_PROFILE_OVERRIDES = {"smoke": {"steps": 10, "rel_stepsize": 0.25}}


@register_attack("pgd")
class PGD(Attack):
    description = "Projected gradient descent, L∞, random start (native torch)"
    Config = PGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: PGDConfig = self.config
        return pgd_ascent(
            cross_entropy_objective(model, y),
            x,
            eps,
            steps=cfg.steps,
            step_size=cfg.rel_stepsize * eps,
            random_start=cfg.random_start,
            generator=generator,
        )
