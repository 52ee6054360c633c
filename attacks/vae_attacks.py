"""Targeted attacks on VAE purifiers (paper 000 after Kos et al.): ``vaea`` and ``latenta``.

Each point x gets a target image t of another class from the same batch, and the attack
*descends* (PGD with signed steps, projected to the L∞ ball of ε and [0, 1], starting at x) on

- VAEA:    δ·‖x − x*‖² + L_VAE(recon(x*), recon(t))   (BCE summed over pixels + KL of q(z|x*))
- LatentA: δ·‖x − x*‖² + ‖enc_μ(x*) − enc_μ(t)‖²

Reconstructions use the posterior mean (a smooth surrogate of the sampled purifier). The
paper's reference code ascended instead of descending and perturbed only element 0 of a batch;
here the whole batch descends.  Success for these targeted attacks is the classifier labelling
recon(x*) as t's class; the harness scores every cell by the untargeted rule (a point fails
when the deployed prediction is wrong at all), which counts every targeted success and more.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.base import Attack, PurifierPipeline, find_purifier_pipeline, register_attack
from attacks.gradient import PGD_PROFILE_OVERRIDES, Objective, pgd_ascent
from foundation.errors import BenchError


@dataclass(frozen=True)
class VAEAttackConfig:
    steps: int = 40
    rel_stepsize: float = 0.01 / 0.3
    distance_weight: float = 1.0  # δ: weight of the squared L2 distance to the original image

    def __post_init__(self) -> None:
        if self.steps < 1 or self.rel_stepsize <= 0 or self.distance_weight < 0:
            raise ValueError("steps >= 1, rel_stepsize > 0 and distance_weight >= 0 are required")


def pick_targets(y: Tensor, generator: torch.Generator) -> Tensor:
    """For each point, the index of a random point of another class in the batch (itself if none)."""
    scores = torch.rand(len(y), len(y), generator=generator, device=generator.device).to(y.device)
    scores = scores.masked_fill(y[:, None] == y[None, :], -1.0)
    scores.fill_diagonal_(-0.5)
    return scores.argmax(dim=1)


class _TargetedVAEAttack(Attack):
    Config = VAEAttackConfig
    profile_overrides = PGD_PROFILE_OVERRIDES
    requires = frozenset({"gradients", "vae"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        pipeline = find_purifier_pipeline(model)
        if pipeline is None:
            raise BenchError(f"{self.name} needs a VAE purifier pipeline; this defense has none")
        cfg: VAEAttackConfig = self.config
        targets = x[pick_targets(y, generator)]
        objective = self._objective(pipeline, x, targets)

        def ascent(x_star: Tensor) -> Tensor:
            distance = (x_star - x).flatten(1).pow(2).sum(dim=1)
            return -(cfg.distance_weight * distance + objective(x_star)).sum()

        return pgd_ascent(ascent, x, eps, steps=cfg.steps, step_size=cfg.rel_stepsize * eps, random_start=False)

    def _objective(self, pipeline: PurifierPipeline, x: Tensor, targets: Tensor) -> Objective:
        raise NotImplementedError


@register_attack("vaea")
class VAEAttack(_TargetedVAEAttack):
    description = "Targeted VAE attack (Kos et al.): match the target's reconstruction, L∞ PGD descent"

    def _objective(self, pipeline: PurifierPipeline, x: Tensor, targets: Tensor) -> Objective:
        vae = pipeline.purifier
        with torch.no_grad():
            target_recon = vae.decode(vae.encode(targets)[0])

        def per_image_loss(x_star: Tensor) -> Tensor:
            mu, logvar = vae.encode(x_star)
            recon = vae.decode(mu)
            bce = F.binary_cross_entropy(recon.flatten(1), target_recon.flatten(1), reduction="none").sum(dim=1)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
            return bce + kl

        return per_image_loss


@register_attack("latenta")
class LatentAttack(_TargetedVAEAttack):
    description = "Targeted latent attack: match the target's encoder mean, L∞ PGD descent"

    def _objective(self, pipeline: PurifierPipeline, x: Tensor, targets: Tensor) -> Objective:
        encoder = pipeline.purifier
        with torch.no_grad():
            target_mu = encoder.encode(targets)[0]
        return lambda x_star: (encoder.encode(x_star)[0] - target_mu).pow(2).sum(dim=1)
