"""Adapters over Foolbox 3: ``foolbox.fgsm``, ``foolbox.pgd``, ``foolbox.deepfool`` (L∞ or L2), and the
L2 minimisation attacks ``foolbox.ddn``, ``foolbox.fmn`` and ``foolbox.cw``.

Foolbox works on the model's own tensors (no numpy round-trip) and takes a whole list of
epsilons per call: minimisation attacks such as DeepFool run once and are clipped to each.
Foolbox names its attacks by norm (``LinfPGD``, ``L2PGD``); the adapters pick the class of their
threat model (``attacks.library_backends.LIBRARY_NORMS``) with the same settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from attacks.art_backend import DEEPFOOL_PROFILE_OVERRIDES, DeepFoolConfig
from attacks.base import Attack, ThreatModel, register_attack
from attacks.gradient import PGD_PROFILE_OVERRIDES, PGDConfig
from attacks.library_backends import check_options, derived_seed, library_norm
from foundation.seeding import seeded


class FoolboxAttack(Attack):
    backend = "foolbox"
    norms = frozenset({"linf", "l2"})

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        return self._foolbox_curve(model, x, y, epsilons, generator)[0]

    def _minimal_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> tuple[list[Tensor], Tensor]:
        return self._foolbox_curve(model, x, y, epsilons, generator)

    def _foolbox_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> tuple[list[Tensor], Tensor]:
        """Foolbox's examples clipped to each epsilon by Foolbox, and its raw (unclipped) ones."""
        import foolbox

        fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
        with seeded(derived_seed(generator), x.device):
            raw, clipped, _ = self._foolbox_attack()(fmodel, x, y, epsilons=epsilons)
        return [adv.detach().clamp_(0.0, 1.0) for adv in clipped], raw[0].detach().clamp(0.0, 1.0)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _foolbox_attack(self) -> Any:
        raise NotImplementedError

    def _foolbox_class(self, method: str) -> Any:
        """Foolbox's attack class ``method`` for this instance's threat model (``LinfPGD`` or ``L2PGD``)."""
        import foolbox

        return getattr(foolbox.attacks, library_norm("foolbox", self.threat_model) + method)


@register_attack("foolbox.fgsm")
class FoolboxFGSM(FoolboxAttack):
    description = "Fast gradient method, L∞ (sign) or L2 (Foolbox LinfFastGradientAttack, L2FastGradientAttack)"

    def _foolbox_attack(self) -> Any:
        return self._foolbox_class("FastGradientAttack")(random_start=False)


@register_attack("foolbox.pgd")
class FoolboxPGD(FoolboxAttack):
    """Foolbox's PGD with the native PGD's step rule (``PGDConfig.step_size``).

    Foolbox takes the step relative to ε (one attack serves a whole curve); both of the native rules
    are proportional to ε (L∞ ``rel_stepsize·ε``, L2 ``l2_step_scale·ε/steps``), so the relative step
    is the step at ε = 1.
    """

    description = "Projected gradient descent, L∞ or L2, random start (Foolbox LinfPGD, L2PGD)"
    Config = PGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES

    def _foolbox_attack(self) -> Any:
        cfg: PGDConfig = self.config
        return self._foolbox_class("PGD")(
            rel_stepsize=cfg.step_size(1.0, self.threat_model), steps=cfg.steps, random_start=cfg.random_start
        )


@register_attack("foolbox.deepfool")
class FoolboxDeepFool(FoolboxAttack):
    description = "DeepFool L∞ or L2, batched, run once and clipped to each ε (Foolbox Linf/L2DeepFoolAttack)"
    Config = DeepFoolConfig
    profile_overrides = DEEPFOOL_PROFILE_OVERRIDES
    minimization = True

    def _foolbox_attack(self) -> Any:
        cfg: DeepFoolConfig = self.config
        return self._foolbox_class("DeepFoolAttack")(
            steps=cfg.steps, candidates=cfg.candidates, overshoot=cfg.overshoot, loss="logits"
        )


class FoolboxL2Minimization(FoolboxAttack):
    """An L2 minimal-perturbation attack: run once per batch and clipped to each ε by Foolbox.

    L2 only (``for_threat_model("linf")`` is refused), so instances start in the L2 threat model.
    Each config's defaults are Foolbox's (the paper profile); smoke and quick cut the budgets only.
    """

    norms = frozenset({"l2"})
    threat_model: ThreatModel = "l2"
    minimization = True
    #: Foolbox's class, built with the config's fields as keyword arguments.
    foolbox_class: ClassVar[str] = ""

    def _foolbox_attack(self) -> Any:
        import foolbox

        return getattr(foolbox.attacks, self.foolbox_class)(**dataclasses.asdict(self.config))


#: DDN's and FMN's budgets: smoke and quick shorten the runs, nothing else.
MINIMIZATION_STEPS_OVERRIDES = {"smoke": {"steps": 10}, "quick": {"steps": 50}}


@dataclass(frozen=True)
class DDNConfig:
    """Decoupled Direction and Norm (Rony et al., CVPR 2019), Foolbox's defaults: ``steps`` steps, the
    norm starting at ``init_epsilon`` and changed by the factor 1 ± ``gamma`` each step."""

    steps: int = 100
    init_epsilon: float = 1.0
    gamma: float = 0.05

    def __post_init__(self) -> None:
        check_options(self, counts=("steps",), positive=("init_epsilon",), fractions=("gamma",))


@register_attack("foolbox.ddn")
class FoolboxDDN(FoolboxL2Minimization):
    description = "Decoupled direction and norm, L2 minimisation, run once and clipped to each ε (Foolbox DDNAttack)"
    Config = DDNConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES
    foolbox_class = "DDNAttack"


@dataclass(frozen=True)
class FMNConfig:
    """Fast Minimum-Norm (Pintor et al., NeurIPS 2021), Foolbox's defaults: ``steps`` steps of size decaying
    from ``max_stepsize`` (cosine), the ε constraint adapted by ``gamma`` (also decayed); it starts from the
    clean input (no initial attack), so ``binary_search_steps`` is unused."""

    steps: int = 100
    max_stepsize: float = 1.0
    gamma: float = 0.05

    def __post_init__(self) -> None:
        check_options(self, counts=("steps",), positive=("max_stepsize",), fractions=("gamma",))


@register_attack("foolbox.fmn")
class FoolboxFMN(FoolboxL2Minimization):
    description = "Fast minimum-norm attack, L2 minimisation, run once and clipped to each ε (Foolbox L2FMNAttack)"
    Config = FMNConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES
    foolbox_class = "L2FMNAttack"


@dataclass(frozen=True)
class CarliniWagnerConfig:
    """Carlini & Wagner's L2 attack (S&P 2017), Foolbox's defaults: ``binary_search_steps`` searches for the
    loss constant (from ``initial_const``), each ``steps`` Adam steps of ``stepsize`` in tanh space, aborted
    early once the loss stalls; ``confidence`` is the logit margin asked for."""

    binary_search_steps: int = 9
    steps: int = 10_000
    stepsize: float = 0.01
    confidence: float = 0.0
    initial_const: float = 0.001
    abort_early: bool = True

    def __post_init__(self) -> None:
        check_options(self, counts=("binary_search_steps", "steps"), positive=("stepsize", "initial_const"))
        if self.confidence < 0:
            raise ValueError("confidence must not be negative")


@register_attack("foolbox.cw")
class FoolboxCW(FoolboxL2Minimization):
    description = "Carlini-Wagner, L2 minimisation, run once and clipped to each ε (Foolbox L2CarliniWagnerAttack)"
    Config = CarliniWagnerConfig
    #: Smoke: a short search (constants 10⁻³ to 10) of short runs; quick: the full search of 200 steps each.
    profile_overrides = {
        "smoke": {"binary_search_steps": 5, "steps": 100},
        "quick": {"binary_search_steps": 9, "steps": 200},
    }
    foolbox_class = "L2CarliniWagnerAttack"
