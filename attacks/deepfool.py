"""Native batched DeepFool (Moosavi-Dezfooli et al.), L∞ and L2, the default ``deepfool``.

Same algorithm as Foolbox's ``LinfDeepFoolAttack`` and ``L2DeepFoolAttack`` (logit-difference
loss, top-k candidate classes, overshoot), but each step makes one forward pass and one backward
pass per candidate on the points that are still correctly classified only, instead of a forward
and backward pass per candidate on the whole batch until the last point falls.  It is a
minimisation attack: one run gives the whole epsilon curve by projecting onto each ball.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attacks.art_backend import DEEPFOOL_PROFILE_OVERRIDES, DeepFoolConfig
from attacks.base import Attack, register_attack


def _closest_boundary_step(differences: Tensor, gradients: Tensor, threat_model: str) -> Tensor:
    """The linearised step to the nearest candidate boundary, per point, with Foolbox's 1e-4 margin.

    ``differences`` (n, k-1) are the candidates' logit differences to the true class and ``gradients``
    (n, k-1, *image) theirs.  L∞: distance |f|/‖w‖₁, step (distance + 1e-4)·sign(w); L2: distance
    |f|/‖w‖₂, step (distance + 1e-4)·w/‖w‖₂.
    """
    flat = gradients.flatten(2)
    dual_norms = (flat.norm(dim=2) if threat_model == "l2" else flat.abs().sum(dim=2)) + 1e-8
    distances = differences.abs() / dual_norms
    best = distances.argmin(dim=1)
    rows = torch.arange(len(best), device=differences.device)
    lengths = distances[rows, best] + 1e-4
    if threat_model == "l2":
        directions = gradients[rows, best]
        lengths = lengths / dual_norms[rows, best]
    else:
        directions = gradients[rows, best].sign()
    return lengths.view(-1, *[1] * (directions.ndim - 1)) * directions


def deepfool(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    candidates: int,
    overshoot: float,
    threat_model: str = "linf",
) -> Tensor:
    """Unbounded DeepFool in ``threat_model``; points already misclassified are returned unchanged."""
    x_adv = x.clone()
    total = torch.zeros_like(x)
    with torch.no_grad():
        classes = model(x).argsort(dim=1, descending=True)[:, :candidates]
    # Put the true class first so that the loss measures distance to the decision boundary of y.
    others = classes[classes != y[:, None]].view(len(x), -1)[:, : candidates - 1]
    classes = torch.cat([y[:, None], others], dim=1)
    active = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        inputs = x_adv[active].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(inputs)
            still_correct = logits.argmax(dim=1) == y[active]
            if not still_correct.any():
                break
            picked = logits.gather(1, classes[active])
            differences = picked[:, 1:] - picked[:, :1]  # (n, k-1): > 0 once class k wins
            gradients = torch.stack(
                [
                    torch.autograd.grad(differences[:, k].sum(), inputs, retain_graph=k < differences.shape[1] - 1)[0]
                    for k in range(differences.shape[1])
                ],
                dim=1,
            )  # (n, k-1, *image)
        step = _closest_boundary_step(differences.detach(), gradients, threat_model)
        keep = still_correct.nonzero().squeeze(1)
        active = active[keep]
        total[active] += step[keep]
        x_adv[active] = (x[active] + (1.0 + overshoot) * total[active]).clamp(0.0, 1.0)
    return x_adv


@register_attack("deepfool")
class DeepFool(Attack):
    description = "DeepFool L∞/L2, batched on the points still standing, one run projected onto each ε (native torch)"
    norms = frozenset({"linf", "l2"})
    Config = DeepFoolConfig
    profile_overrides = DEEPFOOL_PROFILE_OVERRIDES
    minimization = True

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        cfg: DeepFoolConfig = self.config
        return deepfool(
            model,
            x,
            y,
            steps=cfg.steps,
            candidates=cfg.candidates,
            overshoot=cfg.overshoot,
            threat_model=self.threat_model,
        )
