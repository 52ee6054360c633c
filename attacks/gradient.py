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


def uniform_start(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """A uniformly random point of the L-infinity ball around ``x``, clipped to [0, 1] (PGD's random start)."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)


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
    x_adv = uniform_start(x, eps, generator) if random_start else x.clone()
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
    """Iterative budget; the step is ``rel_stepsize * eps`` (Madry: 40 steps of 0.01 at eps 0.3).

    With ``early_stop`` a point leaves the batch at the first iterate that fools the model (by the
    call's criterion) and keeps that iterate; without it, or under a stochastic criterion (a randomized
    defense, see ``Attack.can_stop_early``), every point runs every step and the last iterate is
    returned, as in Madry et al.
    """

    steps: int = 40
    rel_stepsize: float = 0.01 / 0.3
    random_start: bool = True
    early_stop: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.rel_stepsize <= 0:
            raise ValueError("rel_stepsize must be positive")


#: The smoke profile runs a short PGD with a proportionally larger step; the method is unchanged.
PGD_PROFILE_OVERRIDES = {"smoke": {"steps": 10, "rel_stepsize": 0.25}}


@register_attack("pgd")
class PGD(Attack):
    description = "Projected gradient descent, L∞, random start, points leave once fooled (native torch)"
    Config = PGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES
    #: 1: no early stopping under a stochastic criterion (cells of the first early-stopping code are stale).
    revision = 1

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: PGDConfig = self.config
        step_size = cfg.rel_stepsize * eps
        if not (cfg.early_stop and self.can_stop_early()):
            return pgd_ascent(
                cross_entropy_objective(model, y),
                x,
                eps,
                steps=cfg.steps,
                step_size=step_size,
                random_start=cfg.random_start,
                generator=generator,
            )
        x_adv = uniform_start(x, eps, generator) if cfg.random_start else x.clone()
        active = torch.arange(len(x), device=x.device)
        for step in range(cfg.steps + 1):
            inputs = x_adv[active].detach().requires_grad_(True)
            last = step == cfg.steps
            with torch.set_grad_enabled(not last):  # the last iterate is only judged, not stepped from
                logits = model(inputs)
            standing = ~self.fooled(inputs.detach(), y[active], logits=logits, model=model)
            if last or not standing.any():
                break
            loss = F.cross_entropy(logits[standing], y[active[standing]], reduction="sum")
            (grad,) = torch.autograd.grad(loss, inputs)
            active = active[standing]
            x_adv[active] = project_linf(x[active], inputs.detach()[standing] + step_size * grad[standing].sign(), eps)
        return x_adv
