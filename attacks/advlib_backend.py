"""Adapters over adv-lib (Rony et al.'s adversarial library), whose attacks AttackBench (Cinà et al. 2025)
found among the strongest: the minimum-norm ``advlib.fmn`` (L∞, L2, L1 or L0), ``advlib.alma`` and ``advlib.ddn``
(L2) and ``advlib.sigma_zero`` (L0), and the ε-bounded ``advlib.apgd`` and ``advlib.apgd_t`` (L∞, L2 or L1).
adv-lib counts L0 over values, the harness over pixel positions (the same on one-channel images).

adv-lib's attacks are batched functions on the model's own tensors that draw their random starts from
torch's global generator: each runs in a ``library_session`` (a seed from the cell's generator, the
model's modes locked, its parameter gradients off).  The minimum-norm attacks run once per batch and
return each point's smallest adversarial found (the point itself where none was); the harness projects
that one run onto every ε ball (``Attack._minimal_curve``) and records its size as the point's ε*.
Paper budgets are AttackBench's (1,000 steps for the minimum-norm attacks, APGD AutoAttack's 100);
smoke and quick shorten them as they do Foolbox's and torchattacks' twins, so the backends cross-check.

adv-lib is optional: its ``visdom`` dependency ships as a source archive that builds only with
setuptools < 81 (see ``ADV_LIB_INSTALL``); without it these attacks answer in one line how to install it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from attacks.autoattack import APGD_PROFILE_OVERRIDES, APGD_RHO, AUTOATTACK_TARGET_CLASSES, APGDConfig
from attacks.base import Attack, ThreatModel, register_attack
from attacks.foolbox_backend import MINIMIZATION_STEPS_OVERRIDES, DDNConfig, FMNConfig
from attacks.library_backends import (
    check_options,
    library_norm,
    library_session,
    number_of_classes,
    within_ball,
)
from foundation.errors import BenchError

#: How to install adv-lib: its ``visdom`` dependency's source archive needs ``pkg_resources``, which setuptools 81
#: dropped; the constraint reaches only visdom's build (on the whole install it would downgrade torch's setuptools).
ADV_LIB_INSTALL = (
    "echo 'setuptools<81' > /tmp/setuptools.txt && PIP_CONSTRAINT=/tmp/setuptools.txt pip install --no-deps visdom"
    " && pip install 'adv-lib>=0.2.8'"
)


def adv_lib_attack(name: str) -> Callable[..., Tensor]:
    """adv-lib's attack function ``name`` (``adv_lib.attacks.<name>``), or a ``BenchError`` saying how to install it."""
    try:
        attacks = importlib.import_module("adv_lib.attacks")
    except ImportError as error:
        raise BenchError(f"the advlib.* attacks need adv-lib ({error}); install it with: {ADV_LIB_INSTALL}") from None
    return getattr(attacks, name)


class AdvLibAttack(Attack):
    backend = "adv_lib"
    norms = frozenset({"linf", "l2"})
    #: adv-lib is an optional extra: ``--attacks all`` leaves its attacks out; name them to run them.
    selected_by_all = False

    @property
    def adv_lib_norm(self) -> float:
        """This instance's threat model as adv-lib's ``norm=``."""
        return library_norm("adv_lib", self.threat_model)

    def _call(
        self, function: str, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator, **options: Any
    ) -> Tensor:
        """adv-lib's ``function`` on ``(x, y)``, seeded from the cell's generator, on the deployed model."""
        attack = adv_lib_attack(function)
        with library_session(model, x, generator) as (locked, _):
            return attack(locked, x.detach(), y.detach(), **options).detach()


class AdvLibMinimization(AdvLibAttack):
    """A minimum-norm attack: one run per batch, projected onto each ε ball by the harness."""

    minimization = True

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        function, options = self._adv_lib_call()
        return self._call(function, model, x, y, generator, **options)

    def _adv_lib_call(self) -> tuple[str, dict[str, Any]]:
        """adv-lib's function name and its keyword arguments from the config."""
        raise NotImplementedError


@dataclass(frozen=True)
class AdvLibFMNConfig(FMNConfig):
    """FMN with AttackBench's settings: 1,000 steps, step size cosine-decayed from ``max_stepsize`` to 1/100 of
    it, the ε update ``gamma`` decayed to 0.001 (adv-lib's ``α_init``, ``γ_init``; no warm start)."""

    steps: int = 1000


@register_attack("advlib.fmn")
class AdvLibFMN(AdvLibMinimization):
    """Fast minimum-norm attack (Pintor et al. 2021) in the threat model's norm.

    On a piecewise-linear model adv-lib's L2 FMN stalls on the boundary: its first step lands on the linearised
    boundary and its ε then grows only by the remaining linearised distance, ~0 (Foolbox's FMN takes the full
    first step instead).  On the unit tests' linear model it fools 5 of 64 points (its L∞ version 63, ALMA and
    DDN all 64); on the quick ``cnn`` it breaks 130 of 198 points at 50 steps, and at 1,000 steps it leaves
    84.5 % at ε = 1.5 where ALMA and DDN leave 56 and 53 %.
    """

    description = (
        "Fast minimum-norm attack, L∞, L2, L1 or L0 minimisation, run once and projected onto each ε (adv-lib fmn)"
    )
    Config = AdvLibFMNConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES
    norms = frozenset({"linf", "l2", "l1", "l0"})

    def _adv_lib_call(self) -> tuple[str, dict[str, Any]]:
        cfg: AdvLibFMNConfig = self.config
        return "fmn", {"norm": self.adv_lib_norm, "steps": cfg.steps, "α_init": cfg.max_stepsize, "γ_init": cfg.gamma}


@dataclass(frozen=True)
class SigmaZeroConfig:
    """σ-zero (Cinà et al., ICLR 2025) with adv-lib's settings: ``steps`` Adam steps (AttackBench's 1,000) on the
    logit difference plus a smooth L0 (sharpness ``sigma``) from step size ``step_size`` (cosine-decayed to a tenth),
    components under a threshold starting at ``threshold`` zeroed, the threshold moved by ``threshold_factor`` · step
    size each step (up once adversarial, else down)."""

    steps: int = 1000
    step_size: float = 1.0
    sigma: float = 0.001
    threshold: float = 0.3
    threshold_factor: float = 0.01

    def __post_init__(self) -> None:
        check_options(
            self,
            counts=("steps",),
            positive=("step_size", "sigma", "threshold_factor"),
            fractions=("threshold",),
        )


@register_attack("advlib.sigma_zero")
class AdvLibSigmaZero(AdvLibMinimization):
    description = "σ-zero, L0 minimisation, run once and projected onto each ε (adv-lib sigma_zero)"
    Config = SigmaZeroConfig
    #: Smoke and quick shorten the run (AttackBench's 1,000 steps at paper).
    profile_overrides = {"smoke": {"steps": 50}, "quick": {"steps": 200}}
    norms = frozenset({"l0"})
    threat_model: ThreatModel = "l0"

    def _adv_lib_call(self) -> tuple[str, dict[str, Any]]:
        cfg: SigmaZeroConfig = self.config
        return "sigma_zero", {
            "num_steps": cfg.steps,
            "η_0": cfg.step_size,
            "σ": cfg.sigma,
            "τ_0": cfg.threshold,
            "τ_factor": cfg.threshold_factor,
        }


class AdvLibL2Minimization(AdvLibMinimization):
    """An L2-only minimum-norm attack: instances start in the L2 threat model, ``linf`` is refused."""

    norms = frozenset({"l2"})
    threat_model: ThreatModel = "l2"


@dataclass(frozen=True)
class ALMAConfig:
    """ALMA (Rony et al., CVPR 2021) with AttackBench's settings: ``steps`` steps, the multiplier's moving
    average ``alpha``, the first step's learning rate set so that it moves ``init_lr_distance`` in L2 (adv-lib's
    other defaults: penalty P2, learning rate decayed to 1 % once adversarial, ρ × 1.2 every 10 stalled steps)."""

    steps: int = 1000
    alpha: float = 0.9
    init_lr_distance: float = 1.0

    def __post_init__(self) -> None:
        check_options(self, counts=("steps",), positive=("init_lr_distance",), fractions=("alpha",))


@register_attack("advlib.alma")
class AdvLibALMA(AdvLibL2Minimization):
    description = (
        "Augmented Lagrangian attack (ALMA), L2 minimisation, run once and projected onto each ε (adv-lib alma)"
    )
    Config = ALMAConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES

    def _adv_lib_call(self) -> tuple[str, dict[str, Any]]:
        cfg: ALMAConfig = self.config
        return "alma", {
            "distance": "l2",
            "num_steps": cfg.steps,
            "α": cfg.alpha,
            "init_lr_distance": cfg.init_lr_distance,
        }


@dataclass(frozen=True)
class AdvLibDDNConfig(DDNConfig):
    """DDN with AttackBench's 1,000 steps, the norm starting at ``init_epsilon`` and changed by 1 ± ``gamma``;
    ``quantize`` rounds every iterate to 256 levels (8-bit images), as adv-lib does by default."""

    steps: int = 1000
    quantize: bool = True


@register_attack("advlib.ddn")
class AdvLibDDN(AdvLibL2Minimization):
    description = "Decoupled direction and norm, L2 minimisation, run once and projected onto each ε (adv-lib ddn)"
    Config = AdvLibDDNConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES

    def _adv_lib_call(self) -> tuple[str, dict[str, Any]]:
        cfg: AdvLibDDNConfig = self.config
        levels = 256 if cfg.quantize else None
        return "ddn", {"steps": cfg.steps, "γ": cfg.gamma, "init_norm": cfg.init_epsilon, "levels": levels}


@dataclass(frozen=True)
class AdvLibAPGDConfig(APGDConfig):
    """APGD with AutoAttack's settings (100 iterations, one restart, ρ 0.75) on adv-lib's and AttackBench's loss,
    the difference of logits ratio (``dlr``), or the cross-entropy (``ce``, the loss of the harness's ``apgd``)."""

    loss: Literal["dlr", "ce"] = "dlr"


@register_attack("advlib.apgd")
class AdvLibAPGD(AdvLibAttack):
    """APGD (Croce & Hein 2020). Where it fools no iterate, adv-lib returns the clean point (as AutoAttack's code),
    unlike the harness's ``apgd``, which keeps the highest-loss iterate for randomized defenses' fresh draws."""

    description = (
        "Auto-PGD, L∞, L2 or L1 (Croce & Hein's L1-APGD), one restart, on the DLR loss (or loss=ce) (adv-lib apgd)"
    )
    Config = AdvLibAPGDConfig
    profile_overrides = APGD_PROFILE_OVERRIDES
    norms = frozenset({"linf", "l2", "l1"})
    #: adv-lib's function, and the classes its DLR loss needs (it normalises by the 3rd, targeted 4th, largest logit).
    function: ClassVar[str] = "apgd"
    dlr_classes: ClassVar[int] = 3

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: AdvLibAPGDConfig = self.config
        classes = number_of_classes(model, x)
        if cfg.loss == "dlr" and classes < self.dlr_classes:
            raise BenchError(
                f"{self.name}'s DLR loss needs at least {self.dlr_classes} classes (the model has {classes}); "
                f"use {self.name}:loss=ce"
            )
        options = {
            "eps": eps,
            "norm": self.adv_lib_norm,
            "n_iter": cfg.steps,
            "n_restarts": 1,
            "loss_function": cfg.loss,
            "rho": APGD_RHO,
            **self._extra_options(classes),
        }
        return within_ball(self, x, self._call(self.function, model, x, y, generator, **options), eps)

    def _extra_options(self, classes: int) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class AdvLibAPGDTConfig(AdvLibAPGDConfig):
    """APGD-T: APGD towards each of the ``targets`` most likely other classes in turn (AutoAttack's 9), on the
    points still standing, on the targeted DLR loss by default."""

    targets: int = AUTOATTACK_TARGET_CLASSES

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, counts=("targets",))


@register_attack("advlib.apgd_t")
class AdvLibAPGDT(AdvLibAPGD):
    description = "Targeted Auto-PGD over the most likely other classes, L∞, L2 or L1 (adv-lib apgd_targeted)"
    Config = AdvLibAPGDTConfig
    function: ClassVar[str] = "apgd_targeted"
    dlr_classes: ClassVar[int] = 4

    def _extra_options(self, classes: int) -> dict[str, Any]:
        return {"num_targets": min(self.config.targets, classes - 1)}
