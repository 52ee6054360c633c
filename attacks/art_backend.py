"""Adapters over the Adversarial Robustness Toolbox (ART): ``art.fgsm``, ``art.pgd``, ``art.deepfool``.

ART works on numpy arrays, so each call crosses to numpy once on the way in and once on the
way out; the model itself stays on its device through ART's ``PyTorchClassifier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attacks.base import Attack, project_linf, register_attack
from attacks.gradient import PGD_PROFILE_OVERRIDES, PGDConfig
from attacks.library_backends import derived_seed, number_of_classes
from foundation.seeding import seeded

ART_BATCH_SIZE = 256


def art_classifier(model: nn.Module, x: Tensor) -> Any:
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=number_of_classes(model, x),
        clip_values=(0.0, 1.0),
        device_type="gpu" if x.device.type == "cuda" else "cpu",
    )


class ArtAttack(Attack):
    backend = "art"

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        attack = self._art_attack(art_classifier(model, x), eps)
        with seeded(derived_seed(generator), x.device):
            x_adv = attack.generate(x=x.detach().cpu().numpy(), y=y.detach().cpu().numpy())
        return torch.from_numpy(np.asarray(x_adv, dtype=np.float32)).to(x.device)

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        raise NotImplementedError


@register_attack("art.fgsm")
class ArtFGSM(ArtAttack):
    description = "Fast gradient sign method, L∞ (ART FastGradientMethod)"

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import FastGradientMethod

        return FastGradientMethod(classifier, norm=np.inf, eps=eps, eps_step=eps, batch_size=ART_BATCH_SIZE)


@register_attack("art.pgd")
class ArtPGD(ArtAttack):
    description = "Projected gradient descent, L∞, random start (ART ProjectedGradientDescent)"
    Config = PGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import ProjectedGradientDescent

        cfg: PGDConfig = self.config
        return ProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=eps,
            eps_step=cfg.rel_stepsize * eps,
            max_iter=cfg.steps,
            num_random_init=int(cfg.random_start),
            batch_size=ART_BATCH_SIZE,
            verbose=False,
        )


@dataclass(frozen=True)
class DeepFoolConfig:
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02


#: Smoke runs cap DeepFool's iterations (a budget, not a change of method).
DEEPFOOL_PROFILE_OVERRIDES = {"smoke": {"steps": 10}}


@register_attack("art.deepfool")
class ArtDeepFool(ArtAttack):
    """ART's DeepFool is the L2 variant; its minimal perturbation is projected onto each L∞ ball."""

    description = "DeepFool (ART, L2 minimal perturbation projected onto the L∞ ball)"
    Config = DeepFoolConfig
    profile_overrides = DEEPFOOL_PROFILE_OVERRIDES
    minimization = True

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import DeepFool

        cfg: DeepFoolConfig = self.config
        return DeepFool(
            classifier,
            max_iter=cfg.steps,
            epsilon=cfg.overshoot,
            nb_grads=cfg.candidates,
            batch_size=ART_BATCH_SIZE,
            verbose=False,
        )

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        if all(eps == 0 for eps in epsilons):
            return [x.clone() for _ in epsilons]
        unbounded = self._run(model, x, y, 1.0, generator)
        return [project_linf(x, unbounded, eps) for eps in epsilons]
