"""Native batched L-infinity DeepFool (Moosavi-Dezfooli et al.), the default ``deepfool``.

Same algorithm as Foolbox's ``LinfDeepFoolAttack`` (logit-difference loss, top-k candidate
classes, overshoot), but each step makes one forward pass and one backward pass per
candidate on the points that are still correctly classified only, instead of a forward and
backward pass per candidate on the whole batch until the last point falls.  It is a
minimisation attack: one run gives the whole epsilon curve by clipping.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attacks.art_backend import DEEPFOOL_PROFILE_OVERRIDES, DeepFoolConfig
from attacks.base import Attack, project_linf, register_attack


def deepfool_linf(model: nn.Module, x: Tensor, y: Tensor, *, steps: int, candidates: int, overshoot: float) -> Tensor:
    """Unbounded L-infinity DeepFool; points already misclassified are returned unchanged."""
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
        distances = differences.detach().abs() / (gradients.flatten(2).abs().sum(dim=2) + 1e-8)
        best = distances.argmin(dim=1)
        rows = torch.arange(len(best), device=x.device)
        step = (distances[rows, best] + 1e-4).view(-1, *[1] * (x.ndim - 1)) * gradients[rows, best].sign()
        keep = still_correct.nonzero().squeeze(1)
        active = active[keep]
        total[active] += step[keep]
        x_adv[active] = (x[active] + (1.0 + overshoot) * total[active]).clamp(0.0, 1.0)
    return x_adv


@register_attack("deepfool")
class DeepFool(Attack):
    description = "DeepFool L∞, batched on the points still standing, one run clipped to each ε (native torch)"
    Config = DeepFoolConfig
    profile_overrides = DEEPFOOL_PROFILE_OVERRIDES
    minimization = True

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        cfg: DeepFoolConfig = self.config
        unbounded = deepfool_linf(model, x, y, steps=cfg.steps, candidates=cfg.candidates, overshoot=cfg.overshoot)
        return [project_linf(x, unbounded, eps) for eps in epsilons]
