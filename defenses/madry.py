"""``madry``: PGD adversarial training of the Madry MNIST CNN (Madry et al., the MNIST challenge).

Trains on adversarial examples only: L∞ PGD with ε 0.3, 40 steps of 0.01 from a random start,
Adam lr 1e-4, batch 50, 100k steps (100 epochs of our 50k training split) at the paper profile.
The quick profile keeps the method (PGD adversarial training at ε 0.3) on a CPU budget: 7 PGD
steps of 0.1, Adam lr 1e-3 on batches of 128, 10 epochs; the row's profile says which was used.

With so few steps at lr 1e-3, training at ε 0.3 from the first step collapses to the constant
classifier (measured: train loss 2.302, validation accuracy 11 % after the first quick epoch).  The
quick and smoke profiles therefore warm ε up linearly from 0 over the first epoch (half of smoke's
one epoch), the usual curriculum; the paper profile trains at ε 0.3 throughout, as Madry et al. do.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from torch import Tensor

from attacks.gradient import cross_entropy_objective, pgd_ascent
from defenses.base import FitContext, register_defense
from defenses.cnn import ClassifierDefense
from defenses.training_loops import train_classifier
from foundation.splits import Split


@dataclass(frozen=True)
class MadryConfig:
    epochs: int = 100
    lr: float = 1e-4
    batch_size: int = 50
    eps: float = 0.3
    steps: int = 40
    step_size: float = 0.01
    random_start: bool = True
    #: Epochs over which the training ε (and the PGD step with it) grows linearly from 0 to ``eps``.
    eps_warmup_epochs: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.eps <= 1 or self.steps < 1 or self.step_size <= 0:
            raise ValueError("eps must lie in [0, 1], steps >= 1 and step_size > 0")
        if not 0 <= self.eps_warmup_epochs <= self.epochs:
            raise ValueError("eps_warmup_epochs must lie in [0, epochs]")

    def eps_at(self, step: int, steps_per_epoch: int) -> float:
        """The training ε at optimiser step ``step`` (0-based): ``eps`` once the warm-up is over."""
        warmup_steps = self.eps_warmup_epochs * steps_per_epoch
        return self.eps if step >= warmup_steps else self.eps * (step + 1) / warmup_steps


@register_defense("madry")
class MadryAdversarialTraining(ClassifierDefense):
    description = "Madry CNN with PGD adversarial training (ε 0.3; 40×0.01 at the paper profile)"
    Config = MadryConfig
    profile_overrides = {
        "smoke": {"epochs": 1, "steps": 3, "step_size": 0.1, "lr": 1e-3, "batch_size": 128, "eps_warmup_epochs": 0.5},
        "quick": {"epochs": 10, "steps": 7, "step_size": 0.1, "lr": 1e-3, "batch_size": 128, "eps_warmup_epochs": 1},
    }

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        cfg: MadryConfig = self.config
        generator = ctx.generator()
        steps_per_epoch, step = -(-len(train) // cfg.batch_size), itertools.count()

        def adversarial(x: Tensor, y: Tensor) -> Tensor:
            self.model.eval()
            eps = cfg.eps_at(next(step), steps_per_epoch)
            objective = cross_entropy_objective(self.model, y)
            return pgd_ascent(
                objective,
                x,
                eps,
                steps=cfg.steps,
                step_size=cfg.step_size * eps / cfg.eps,
                random_start=cfg.random_start,
                generator=generator,
            ).detach()

        self.history = train_classifier(
            self.model,
            train,
            val,
            ctx,
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            desc="madry",
            make_inputs=adversarial,
        )
