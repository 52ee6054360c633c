"""``adv-vae``: paper 000's adversarially trained VAE purifier (minimax, eq. 6).

Each batch picks an attack and trains on L_VAE(x, recon(x_adv)): reconstruct the *clean* image
from the attacked one.  The gradient attacks maximise that reconstruction loss *through* the
VAE (the paper's reference code did not differentiate through the model; we do).  Paper
settings: FGSM ε 0.15; PGD ε 0.08, step 0.05, 10 steps, random start; GNA and GTA with their
paper parameter ranges; RANDOM picks one of the four per batch.  Deployment, evaluation and
the classifier are those of ``vae`` (shared classifier, sampled or mean decoding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from attacks.gradient import Objective, fgsm_step, pgd_ascent
from attacks.random_mix import ATTACK_TYPES, attack_inputs, choose_attack_type
from defenses.base import FitContext, register_defense
from defenses.networks import VAE, vae_loss_per_image
from defenses.vae import VAEConfig, VAEPurifier

TrainingAttackName = Literal["fgsm", "pgd", "gna", "gta", "random"]


@dataclass(frozen=True)
class AdversarialVAEConfig(VAEConfig):
    train_attack: TrainingAttackName = "random"
    fgsm_eps: float = 0.15
    pgd_eps: float = 0.08
    pgd_step: float = 0.05
    pgd_steps: int = 10

    def __post_init__(self) -> None:
        if not (0 <= self.fgsm_eps <= 1 and 0 <= self.pgd_eps <= 1 and self.pgd_step > 0 and self.pgd_steps >= 1):
            raise ValueError("training epsilons must lie in [0, 1], pgd_step > 0 and pgd_steps >= 1")


def reconstruction_objective(vae: VAE, clean: Tensor, kl_weight: float) -> Objective:
    """What training-time attacks maximise: the VAE loss of reconstructing ``clean`` from the input."""

    def objective(x_adv: Tensor) -> Tensor:
        recon, mu, logvar = vae.reconstruct(x_adv)
        return vae_loss_per_image(recon, clean, mu, logvar, kl_weight).sum()

    return objective


class TrainingAttacks:
    """The four training-time attacks of paper 000, by index in ``ATTACK_TYPES``."""

    def __init__(self, vae: VAE, config: AdversarialVAEConfig, generator: torch.Generator) -> None:
        self.vae, self.config, self.generator = vae, config, generator

    def _fgsm(self, x: Tensor) -> Tensor:
        return fgsm_step(reconstruction_objective(self.vae, x, self.config.kl_weight), x, self.config.fgsm_eps)

    def _pgd(self, x: Tensor) -> Tensor:
        cfg = self.config
        return pgd_ascent(
            reconstruction_objective(self.vae, x, cfg.kl_weight),
            x,
            cfg.pgd_eps,
            steps=cfg.pgd_steps,
            step_size=cfg.pgd_step,
            random_start=True,
            generator=self.generator,
        )

    def run(self, attack_type: int, x: Tensor) -> Tensor:
        """Adversarial version of the clean batch ``x`` under the attack of index ``attack_type``."""
        return attack_inputs(attack_type, x, self.generator, self._fgsm, self._pgd).detach()

    def run_mixed(self, attack_types: Tensor, x: Tensor) -> Tensor:
        """Per-entry attack types (e.g. replayed entries): one batched call per type present."""
        x_adv = torch.empty_like(x)
        for attack_type in attack_types.unique().tolist():
            chosen = attack_types == attack_type
            x_adv[chosen] = self.run(attack_type, x[chosen])
        return x_adv

    def draw_type(self, name: TrainingAttackName) -> int:
        """The batch's attack index: fixed, or uniform over the four for ``random``."""
        return ATTACK_TYPES.index(name) if name != "random" else choose_attack_type(self.generator)


@register_defense("adv-vae")
class AdversarialVAE(VAEPurifier):
    description = "Paper-000 VAE adversarially trained (reconstruct clean from FGSM/PGD/GNA/GTA/RANDOM inputs)"
    Config = AdversarialVAEConfig
    profile_overrides = {"smoke": {"epochs": 4}, "quick": {"epochs": 5}}

    def training_inputs(self, ctx: FitContext) -> Callable[[Tensor, Tensor], Tensor]:
        cfg: AdversarialVAEConfig = self.config
        attacks = TrainingAttacks(self.vae, cfg, ctx.generator())
        return lambda x, y: attacks.run(attacks.draw_type(cfg.train_attack), x)
