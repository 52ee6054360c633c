"""Strong white-box L∞ attacks through torchattacks: ``autoattack`` (standard AutoAttack) and ``apgd``.

AutoAttack (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020) runs APGD-CE, APGD-T, FAB-T and Square one after the other, each
on the points the previous ones left standing.  Its "standard" version fixes every setting: APGD
100 iterations, one restart, ρ = 0.75; APGD-T and FAB-T over the 9 most likely other classes, one
restart, 100 iterations; Square with p_init = 0.8, 5000 queries and the unrescaled p schedule.

``torchattacks.AutoAttack(version="standard")`` is *not* used: it builds APGD, APGD-T and FAB with
torchattacks' default of 10 iterations and exposes no budget.  The ensemble is composed here with
``torchattacks.MultiAttack`` and the standard settings; only the budgets (``apgd_steps``,
``fab_steps``, ``square_queries``) change per profile.  ``MultiAttack`` hands each member only the
points still classified correctly and keeps the first adversarial found for each point, so the
result covers every point (the clean input where nothing succeeded), as AutoAttack does.

Both attacks differentiate whatever model the runner hands them: for randomized defenses that is
the EOT module (``attacks.adaptive.ExpectationOverTransformation``), so ``apgd`` is EOT-APGD and
AutoAttack's gradient members are EOT attacks too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attacks.base import Attack, register_attack
from attacks.library_backends import number_of_classes, run_torchattacks, square_linf

#: APGD's step-size checkpoint threshold (Croce & Hein 2020, §3.2); AutoAttack fixes it.
APGD_RHO = 0.75
#: AutoAttack's targeted members attack the 9 most likely wrong classes (all of them on MNIST).
AUTOATTACK_TARGET_CLASSES = 9
#: Square's initial fraction of pixels changed per query (Andriushchenko et al. 2020; AutoAttack's value).
SQUARE_P_INIT = 0.8
#: FAB's step constants (Croce & Hein 2020b; AutoAttack's FABAttack defaults).
FAB_ALPHA_MAX, FAB_ETA, FAB_BETA = 0.1, 1.05, 0.9


@dataclass(frozen=True)
class AutoAttackConfig:
    """Budgets of standard AutoAttack's members; the defaults are the standard version's."""

    apgd_steps: int = 100
    fab_steps: int = 100
    square_queries: int = 5000

    def __post_init__(self) -> None:
        for name in ("apgd_steps", "fab_steps", "square_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


#: Budgets only: smoke and quick shorten every member, the members and their settings stay.
AUTOATTACK_PROFILE_OVERRIDES = {
    "smoke": {"apgd_steps": 10, "fab_steps": 10, "square_queries": 100},
    "quick": {"apgd_steps": 50, "fab_steps": 50, "square_queries": 1000},
}


def apgd_ce(model: nn.Module, eps: float, steps: int, seed: int) -> Any:
    """APGD on the cross-entropy, one restart (AutoAttack's first member, and the ``apgd`` attack)."""
    import torchattacks

    return torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=seed, loss="ce", rho=APGD_RHO)


@register_attack("autoattack")
class AutoAttack(Attack):
    """Standard AutoAttack, L∞: APGD-CE → APGD-T → FAB-T → Square, each on the points still standing.

    The members share one seed drawn from the cell's generator (AutoAttack gives all of them its
    seed), so its APGD-CE run is exactly the ``apgd`` attack's under the same generator and budget:
    AutoAttack's robust accuracy can only be lower.
    """

    description = "AutoAttack standard, L∞: APGD-CE, APGD-T, FAB-T, Square on surviving points (torchattacks)"
    Config = AutoAttackConfig
    profile_overrides = AUTOATTACK_PROFILE_OVERRIDES
    backend = "torchattacks"
    requires = frozenset({"gradients"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: AutoAttackConfig = self.config

        def build(locked: nn.Module, seed: int) -> Any:
            import torchattacks

            classes = min(AUTOATTACK_TARGET_CLASSES, number_of_classes(locked, x) - 1) + 1
            return torchattacks.MultiAttack(
                [
                    apgd_ce(locked, eps, cfg.apgd_steps, seed),
                    torchattacks.APGDT(
                        locked,
                        norm="Linf",
                        eps=eps,
                        steps=cfg.apgd_steps,
                        n_restarts=1,
                        seed=seed,
                        rho=APGD_RHO,
                        n_classes=classes,
                    ),
                    torchattacks.FAB(
                        locked,
                        norm="Linf",
                        eps=eps,
                        steps=cfg.fab_steps,
                        n_restarts=1,
                        alpha_max=FAB_ALPHA_MAX,
                        eta=FAB_ETA,
                        beta=FAB_BETA,
                        seed=seed,
                        multi_targeted=True,
                        n_classes=classes,
                    ),
                    square_linf(locked, eps, cfg.square_queries, SQUARE_P_INIT, rescale=False, seed=seed),
                ]
            )

        return run_torchattacks(build, model, x, y, generator)


@dataclass(frozen=True)
class APGDConfig:
    """APGD-CE's iteration budget (AutoAttack's standard value by default)."""

    steps: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("steps must be at least 1")


#: The same APGD budgets as AutoAttack's per profile, so the two stay comparable.
APGD_PROFILE_OVERRIDES = {"smoke": {"steps": 10}, "quick": {"steps": 50}}


@register_attack("apgd")
class APGD(Attack):
    """APGD-CE alone (Croce & Hein 2020): step-size-free PGD with momentum, one random restart.

    On a randomized defense the runner attacks its EOT module, which makes this EOT-APGD.
    """

    description = "Auto-PGD on the cross-entropy, L∞, one restart (torchattacks APGD)"
    Config = APGDConfig
    profile_overrides = APGD_PROFILE_OVERRIDES
    backend = "torchattacks"
    requires = frozenset({"gradients"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        steps = self.config.steps
        return run_torchattacks(lambda locked, seed: apgd_ce(locked, eps, steps, seed), model, x, y, generator)
