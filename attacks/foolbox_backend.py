"""Adapters over Foolbox 3: ``foolbox.fgsm``, ``foolbox.pgd``, ``foolbox.deepfool``.

Foolbox works on the model's own tensors (no numpy round-trip) and takes a whole list of
epsilons per call: minimisation attacks such as DeepFool run once and are clipped to each.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from attacks.art_backend import DEEPFOOL_PROFILE_OVERRIDES, DeepFoolConfig
from attacks.base import Attack, register_attack
from attacks.gradient import PGD_PROFILE_OVERRIDES, PGDConfig
from attacks.library_backends import derived_seed
from foundation.seeding import seeded


class FoolboxAttack(Attack):
    backend = "foolbox"

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        import foolbox

        fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
        with seeded(derived_seed(generator), x.device):
            _, clipped, _ = self._foolbox_attack()(fmodel, x, y, epsilons=epsilons)
        return [adv.detach().clamp_(0.0, 1.0) for adv in clipped]

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _foolbox_attack(self) -> Any:
        raise NotImplementedError


@register_attack("foolbox.fgsm")
class FoolboxFGSM(FoolboxAttack):
    description = "Fast gradient sign method, L∞ (Foolbox LinfFastGradientAttack)"

    def _foolbox_attack(self) -> Any:
        import foolbox

        return foolbox.attacks.LinfFastGradientAttack(random_start=False)


@register_attack("foolbox.pgd")
class FoolboxPGD(FoolboxAttack):
    description = "Projected gradient descent, L∞, random start (Foolbox LinfPGD)"
    Config = PGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES

    def _foolbox_attack(self) -> Any:
        import foolbox

        cfg: PGDConfig = self.config
        return foolbox.attacks.LinfPGD(rel_stepsize=cfg.rel_stepsize, steps=cfg.steps, random_start=cfg.random_start)


@register_attack("foolbox.deepfool")
class FoolboxDeepFool(FoolboxAttack):
    description = "DeepFool L∞, batched, run once and clipped to each ε (Foolbox LinfDeepFoolAttack)"
    Config = DeepFoolConfig
    profile_overrides = DEEPFOOL_PROFILE_OVERRIDES
    minimization = True

    def _foolbox_attack(self) -> Any:
        import foolbox

        cfg: DeepFoolConfig = self.config
        return foolbox.attacks.LinfDeepFoolAttack(
            steps=cfg.steps, candidates=cfg.candidates, overshoot=cfg.overshoot, loss="logits"
        )
