"""``vae``: the paper-000 VAE purifier, deployed as ``classifier(vae(x))``.

The classifier is the shared ``cnn`` (trained once on clean MNIST); only the VAE is trained
here.  By default z is sampled at inference, which makes this a *randomized* defense: it is
attacked with EOT and a point counts as robust only if every repeated prediction is correct.
``deterministic=true`` decodes the posterior mean instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from defenses.base import Defense, FitContext, register_defense
from defenses.networks import VAE, CnnVAE, FcVAE, MadryCNN, Purified, reconstruction_loss
from defenses.training_loops import AfterStep, History, train_vae
from foundation.splits import Split


@dataclass(frozen=True)
class VAEConfig:
    arch: Literal["fc", "cnn"] = "fc"
    latent_dim: int = 20
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    patience: int = 3
    kl_weight: float = 1.0
    deterministic: bool = False


def build_vae(arch: str, latent_dim: int) -> VAE:
    return FcVAE(latent_dim) if arch == "fc" else CnnVAE(latent_dim)


@register_defense("vae")
class VAEPurifier(Defense):
    description = "Paper-000 VAE purifier (fc or cnn) before the shared CNN; z sampled (EOT) or mean"
    datasets = frozenset({"mnist"})  # the paper's networks are built for 1×28×28 MNIST
    Config = VAEConfig
    dependencies = ("cnn",)
    provides = Defense.provides | {"vae"}
    profile_overrides = {"smoke": {"epochs": 8}}

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__(config)
        cfg: VAEConfig = self.config
        self.vae = build_vae(cfg.arch, cfg.latent_dim)
        self.vae.sample = not cfg.deterministic
        self.classifier = MadryCNN()
        self.history = History()

    @property
    def randomized(self) -> bool:
        return not self.config.deterministic

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        self.classifier.load_state_dict(ctx.dependency("cnn").deployed_model().state_dict())
        self.history = self.train_purifier(train, val, ctx)

    def train_purifier(self, train: Split, val: Split, ctx: FitContext) -> History:
        """Train the VAE (the classifier is fixed); subclasses change the inputs or add a step hook."""
        return self._train_vae(train, val, ctx, self.training_inputs(ctx))

    def _train_vae(
        self,
        train: Split,
        val: Split,
        ctx: FitContext,
        make_inputs: Callable[[Tensor, Tensor], Tensor] | None,
        after_step: AfterStep | None = None,
    ) -> History:
        cfg: VAEConfig = self.config
        return train_vae(
            self.vae,
            train,
            val,
            ctx,
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            patience=cfg.patience,
            kl_weight=cfg.kl_weight,
            desc=f"{self.name}-{cfg.arch}",
            make_inputs=make_inputs,
            after_step=after_step,
        )

    def training_inputs(self, ctx: FitContext) -> Callable[[Tensor, Tensor], Tensor] | None:
        """What the encoder sees for a clean batch during training (None: the clean batch itself)."""
        return None

    def fit_summary(self) -> dict[str, float]:
        history = self.history
        if not history.val_loss:
            return {}
        return {"epochs": float(len(history.val_loss)), "best_val_loss": min(history.val_loss)}

    @torch.inference_mode()
    def evaluation_metrics(self, x: Tensor, x_adv: Tensor, batch_size: int = 1000) -> dict[str, float]:
        """Paper 000's own measure: per-image BCE of the (deployed) reconstruction of x_adv against the clean x."""
        self.vae.eval()
        losses = [
            reconstruction_loss(self.vae(x_adv[i : i + batch_size]), x[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
        return {"reconstruction_loss": float(torch.cat(losses).mean())} if losses else {}

    def deployed_model(self) -> nn.Module:
        return Purified(self.vae, self.classifier).eval()

    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae, "classifier": self.classifier}
