"""Native batched gradient attacks (FGSM, PGD) in torch, in the L∞ and L2 threat models.

They run on the model's device on whole batches, differentiate only with respect to the
input (no parameter gradients are accumulated), and are also the attacks used inside
adversarial training (L∞, through ``fgsm_step`` and ``pgd_ascent``).  In the L∞ ball a step
follows the gradient's sign; in the L2 ball the gradient scaled to unit L2 norm per image
(``attacks.base.ascent_direction``), so L2 FGSM is the fast gradient method x + ε·g/‖g‖₂.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.base import Attack, ascent_direction, project, register_attack
from attacks.base import random_start as random_ball_point
from foundation.registry import added_option

#: A batch objective to *maximise*, summed over the batch (so each example's gradient is its own).
Objective = Callable[[Tensor], Tensor]


def objective_gradient(objective: Objective, x: Tensor) -> Tensor:
    """Gradient of ``objective`` with respect to the input batch ``x`` only.

    A model whose output has no gradient path to its input (a hard threshold such as
    ``(x >= 0.5).float()`` without BPDA) has a zero input gradient, as far as any attack can tell:
    it is returned as zeros, so the masking diagnostic measures it and the ``masked`` flag fires,
    instead of autograd raising.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = objective(x)
        if not value.requires_grad:
            return torch.zeros_like(x)
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def cross_entropy_objective(model: nn.Module, y: Tensor) -> Objective:
    return lambda x: F.cross_entropy(model(x), y, reduction="sum")


def input_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of the summed cross-entropy of ``model(x)`` with respect to ``x``."""
    return objective_gradient(cross_entropy_objective(model, y), x)


def fgsm_step(objective: Objective, x: Tensor, eps: float, threat_model: str = "linf") -> Tensor:
    """One steepest-ascent step of size eps on ``objective`` (signed for L∞, unit-L2 for L2), clipped to [0, 1]."""
    return (x + eps * ascent_direction(objective_gradient(objective, x), threat_model)).clamp_(0.0, 1.0)


def pgd_ascent(
    objective: Objective,
    x: Tensor,
    eps: float,
    *,
    steps: int,
    step_size: float,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    threat_model: str = "linf",
) -> Tensor:
    """Projected steepest ascent on ``objective`` in the ``threat_model`` ball; returns the last iterate."""
    x_adv = random_ball_point(x, eps, threat_model, generator) if random_start else x.clone()
    for _ in range(steps):
        ascent = ascent_direction(objective_gradient(objective, x_adv), threat_model)
        x_adv = project(x, x_adv + step_size * ascent, eps, threat_model)
    return x_adv


def fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, threat_model: str = "linf") -> Tensor:
    """FGSM on the cross-entropy (Goodfellow et al.); the fast gradient method in L2."""
    return fgsm_step(cross_entropy_objective(model, y), x, eps, threat_model)


@register_attack("fgsm")
class FGSM(Attack):
    description = "Fast gradient sign method, L∞; fast gradient method ε·g/‖g‖₂, L2 (native torch)"
    norms = frozenset({"linf", "l2"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return fgsm(model, x, y, eps, self.threat_model)


@dataclass(frozen=True)
class PGDConfig:
    """Iterative budget, shared by every PGD (native, ART, Foolbox, and the attacks built on it).

    The step (``step_size``) depends on the threat model.  L∞: ``rel_stepsize * eps`` (Madry: 40
    steps of 0.01 at eps 0.3).  L2: ``l2_step_scale * eps / steps`` (Madry et al.'s L2 rule, 2.5: the
    steps can travel 2.5 ε whatever their number, so the smoke profile's 10 steps take 0.25 ε each
    with no override); ``rel_stepsize`` is the L∞ step only, ``l2_step_scale`` the L2 one only.

    With ``early_stop`` a point leaves the batch at the first iterate that fools the model (by the
    call's criterion) and keeps that iterate; without it, or under a stochastic criterion (a randomized
    defense, see ``Attack.can_stop_early``), every point runs every step and the last iterate is
    returned, as in Madry et al.
    """

    steps: int = 40
    rel_stepsize: float = 0.01 / 0.3
    random_start: bool = True
    early_stop: bool = True
    l2_step_scale: float = added_option(2.5)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.rel_stepsize <= 0:
            raise ValueError("rel_stepsize must be positive")
        if self.l2_step_scale <= 0:
            raise ValueError("l2_step_scale must be positive")

    def step_size(self, eps: float, threat_model: str) -> float:
        """The absolute step at budget ``eps`` in ``threat_model`` (see the class docstring)."""
        return self.l2_step_scale * eps / self.steps if threat_model == "l2" else self.rel_stepsize * eps


@dataclass(frozen=True)
class RestartsPGDConfig(PGDConfig):
    """Native PGD's options: ``PGDConfig`` plus ``restarts``, runs from independent random starts.

    A separate config so that the library PGDs, which cannot restart this way, do not accept it.
    """

    restarts: int = added_option(1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.restarts < 1:
            raise ValueError("restarts must be at least 1")


#: The smoke profile runs a short PGD with a proportionally larger step; the method is unchanged.
#: (Its L2 step, ``l2_step_scale * eps / steps``, grows with fewer steps by itself: 0.25 ε.)
PGD_PROFILE_OVERRIDES = {"smoke": {"steps": 10, "rel_stepsize": 0.25}}


@register_attack("pgd")
class PGD(Attack):
    """PGD with ``restarts`` runs; each restart after the first attacks only the points still standing.

    A point keeps the first restart's example that fools it (by the call's criterion); a point no
    restart fools keeps the example of highest cross-entropy.  Under a stochastic criterion (see
    ``Attack.can_stop_early``) no point is fooled for good: every restart runs on every point and each
    keeps its highest-cross-entropy example.  Judging a restart costs one forward pass of its points
    (none with one restart).
    """

    description = "Projected gradient descent, L∞ or L2, random start, points leave once fooled (native torch)"
    norms = frozenset({"linf", "l2"})
    Config = RestartsPGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES
    #: 1: no early stopping under a stochastic criterion (cells of the first early-stopping code are stale).
    revision = 1

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: RestartsPGDConfig = self.config
        if cfg.restarts == 1:
            return self._ascend(model, x, y, eps, generator)
        can_stop = self.can_stop_early()
        x_adv = x.clone()
        best_loss = torch.full((len(x),), -torch.inf, dtype=x.dtype, device=x.device)
        standing = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for _ in range(cfg.restarts):
            index = standing.nonzero().squeeze(1)
            if not len(index):
                break
            candidates = self._ascend(model, x[index], y[index], eps, generator)
            with torch.no_grad():
                logits = model(candidates)
            loss = F.cross_entropy(logits, y[index], reduction="none")
            keep = loss > best_loss[index]
            if can_stop:
                fooled = self.fooled(candidates, y[index], logits=logits, model=model)
                keep |= fooled
                standing[index[fooled]] = False
            x_adv[index[keep]] = candidates[keep]
            best_loss[index[keep]] = loss[keep]
        return x_adv

    def _ascend(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        """One PGD run from a random start (or from x)."""
        cfg: RestartsPGDConfig = self.config
        step_size = cfg.step_size(eps, self.threat_model)
        if not (cfg.early_stop and self.can_stop_early()):
            return pgd_ascent(
                cross_entropy_objective(model, y),
                x,
                eps,
                steps=cfg.steps,
                step_size=step_size,
                random_start=cfg.random_start,
                generator=generator,
                threat_model=self.threat_model,
            )
        x_adv = random_ball_point(x, eps, self.threat_model, generator) if cfg.random_start else x.clone()
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
            ascent = ascent_direction(grad[standing], self.threat_model)
            x_adv[active] = self.project(x[active], inputs.detach()[standing] + step_size * ascent, eps)
        return x_adv
