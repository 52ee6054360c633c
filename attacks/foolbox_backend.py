"""Adapters over Foolbox 3: ``foolbox.fgsm``, ``foolbox.pgd``, ``foolbox.deepfool`` (L∞ or L2), the L2
minimisation attacks ``foolbox.ddn`` and ``foolbox.cw``, the minimisation attacks ``foolbox.fmn`` (L2, L1 or L0)
and ``foolbox.bb`` (Brendel-Bethge, L1 or L0), and the ε-bounded ``foolbox.slide`` (L1).

Foolbox works on the model's own tensors (no numpy round-trip) and takes a whole list of
epsilons per call: minimisation attacks such as DeepFool run once and are clipped to each.
Foolbox names its attacks by norm (``LinfPGD``, ``L2PGD``, ``L1FMNAttack``); the adapters pick the class of
their threat model (``attacks.library_backends.LIBRARY_NORMS``) with the same settings.  Foolbox cannot shrink
an L0 perturbation to a budget, so in L1 and L0 the harness projects a minimisation attack's one run onto each
ε ball (``Attack.project``) instead of Foolbox's clipping.  Foolbox counts L0 over values, the harness over
pixel positions (the same on one-channel images).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from attacks.art_backend import DEEPFOOL_PROFILE_OVERRIDES, DeepFoolConfig
from attacks.base import Attack, ThreatModel, register_attack
from attacks.gradient import PGD_PROFILE_OVERRIDES, PGDConfig
from attacks.library_backends import check_options, library_norm, library_session, within_ball
from foundation.errors import BenchError
from foundation.threat_models import SPARSE_NORMS


@contextlib.contextmanager
def foolbox_model(model: nn.Module, x: Tensor, generator: torch.Generator) -> Iterator[Any]:
    """Foolbox's wrapper of the deployed ``model`` (a ``library_session``: seeded from the cell's generator)."""
    import foolbox

    with library_session(model, x, generator) as (locked, _):
        yield foolbox.PyTorchModel(locked, bounds=(0.0, 1.0), device=x.device)


class FoolboxAttack(Attack):
    backend = "foolbox"
    norms = frozenset({"linf", "l2"})

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        if self.minimization:
            return self._minimal_curve(model, x, y, epsilons, generator)[0]
        return self._foolbox_curve(model, x, y, epsilons, generator)[0]

    def _minimal_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> tuple[list[Tensor], Tensor]:
        """In L∞ and L2 Foolbox clips its one run to each ε; in L1 and L0 the harness projects it."""
        if self.threat_model in SPARSE_NORMS:
            return super()._minimal_curve(model, x, y, epsilons, generator)
        return self._foolbox_curve(model, x, y, epsilons, generator)

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return self._foolbox_curve(model, x, y, [None], generator)[1]

    def _foolbox_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float | None], generator: torch.Generator
    ) -> tuple[list[Tensor], Tensor]:
        """Foolbox's examples clipped to each epsilon by Foolbox (``None``: unclipped), and its raw ones."""
        with foolbox_model(model, x, generator) as fmodel:
            raw, clipped, _ = self._foolbox_attack()(fmodel, x, y, epsilons=epsilons)
        return [adv.detach().clamp_(0.0, 1.0) for adv in clipped], raw[0].detach().clamp(0.0, 1.0)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _foolbox_attack(self) -> Any:
        raise NotImplementedError

    def _foolbox_class(self, method: str) -> Any:
        """Foolbox's attack class ``method`` for this instance's threat model (``LinfPGD``, ``L2PGD``, ``L1…``)."""
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


class FoolboxMinimization(FoolboxAttack):
    """A minimal-perturbation attack: run once per batch, clipped to each L2 ε by Foolbox (projected onto each L1
    or L0 ε ball by the harness).

    L2 only unless a subclass adds norms (``for_threat_model("linf")`` is refused), so instances start in the L2
    threat model.  Each config's defaults are Foolbox's (the paper profile); smoke and quick cut the budgets only.
    """

    norms = frozenset({"l2"})
    threat_model: ThreatModel = "l2"
    minimization = True
    #: Foolbox's class, built with the config's fields as keyword arguments.
    foolbox_class: ClassVar[str] = ""

    def _foolbox_attack(self) -> Any:
        import foolbox

        return getattr(foolbox.attacks, self.foolbox_class)(**dataclasses.asdict(self.config))


#: DDN's, FMN's and SLIDE's budgets: smoke and quick shorten the runs, nothing else.
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
class FoolboxDDN(FoolboxMinimization):
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
class FoolboxFMN(FoolboxMinimization):
    """FMN in L2 (the default), L1 or L0, with one config: Foolbox's class of the threat model."""

    description = (
        "Fast minimum-norm attack, L2, L1 or L0 minimisation, run once and clipped or projected to each ε "
        "(Foolbox L2FMNAttack, L1FMNAttack, L0FMNAttack)"
    )
    Config = FMNConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES
    norms = frozenset({"l2", "l1", "l0"})

    def _foolbox_attack(self) -> Any:
        return self._foolbox_class("FMNAttack")(**dataclasses.asdict(self.config))


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
class FoolboxCW(FoolboxMinimization):
    description = "Carlini-Wagner, L2 minimisation, run once and clipped to each ε (Foolbox L2CarliniWagnerAttack)"
    Config = CarliniWagnerConfig
    #: Smoke: a short search (constants 10⁻³ to 10) of short runs; quick: the full search of 200 steps each.
    profile_overrides = {
        "smoke": {"binary_search_steps": 5, "steps": 100},
        "quick": {"binary_search_steps": 9, "steps": 200},
    }
    foolbox_class = "L2CarliniWagnerAttack"


@dataclass(frozen=True)
class SLIDEConfig:
    """Sparse L1 descent (SLIDE, Tramèr & Boneh, NeurIPS 2019) with Foolbox's settings: ``steps`` steps of
    ``rel_stepsize`` · ε along the sign of the gradient's coordinates at or above its ``quantile`` (the largest 1 %),
    L1-normalised, coordinates at a box edge that point outwards left out; no random start.  The paper profile takes
    Tramèr & Boneh's evaluation budget of 100 steps (Foolbox's default is 10)."""

    steps: int = 100
    quantile: float = 0.99
    rel_stepsize: float = 0.2

    def __post_init__(self) -> None:
        check_options(self, counts=("steps",), positive=("rel_stepsize",), fractions=("quantile",))


@register_attack("foolbox.slide")
class FoolboxSLIDE(FoolboxAttack):
    """SLIDE in the L1 ball: one Foolbox run per ε, Foolbox's L1 clipping then the harness's projection (Foolbox's
    rescaled perturbation can exceed ε by a rounding)."""

    description = "Sparse L1 descent (SLIDE), L1, ε-bounded steps on the top 1 % of the gradient (Foolbox)"
    Config = SLIDEConfig
    profile_overrides = MINIMIZATION_STEPS_OVERRIDES
    norms = frozenset({"l1"})
    threat_model: ThreatModel = "l1"

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        curve = self._foolbox_curve(model, x, y, epsilons, generator)[0]
        return [within_ball(self, x, x_adv, eps) for eps, x_adv in zip(epsilons, curve, strict=True)]

    def _foolbox_attack(self) -> Any:
        import foolbox

        cfg: SLIDEConfig = self.config
        return foolbox.attacks.SparseL1DescentAttack(
            quantile=cfg.quantile, rel_stepsize=cfg.rel_stepsize, steps=cfg.steps, random_start=False
        )


@dataclass(frozen=True)
class BrendelBethgeConfig:
    """Brendel & Bethge's attack (NeurIPS 2019) with Foolbox's defaults: a ``binary_search_steps`` search from the
    starting adversarial to the boundary, then up to ``steps`` trust-region steps along it (radius ``lr``, times
    ``lr_decay`` ``lr_num_decay`` times over the run; boundary estimate averaged with ``momentum``; ``overshoot``
    over the boundary)."""

    steps: int = 1000
    lr: float = 1e-3
    lr_decay: float = 0.5
    lr_num_decay: int = 20
    momentum: float = 0.8
    overshoot: float = 1.1
    binary_search_steps: int = 10

    def __post_init__(self) -> None:
        check_options(
            self,
            counts=("steps", "lr_num_decay", "binary_search_steps"),
            positive=("lr", "overshoot"),
            fractions=("lr_decay", "momentum"),
        )


@register_attack("foolbox.bb")
class FoolboxBrendelBethge(FoolboxMinimization):
    """Brendel-Bethge in L1 (the default) or L0, started as Foolbox starts it by default: from uniform noise blended
    into each point (``LinearSearchBlendedUniformNoiseAttack``: up to 1,000 noise draws until one is misclassified,
    then the least blend that still is).  Points without such a start keep their clean input (Foolbox would fail the
    whole batch); the others run as one batch, Foolbox's trust-region solver looping over them in numba.  Foolbox
    scales the trust region by the batch's size (values × points), so a small batch takes small steps.  Its L0
    version counts changes above 10⁻⁴ only; the harness counts every change, so a point's L0 size can exceed
    Foolbox's by a few tiny changes (up to 4 pixels on the unit tests' linear model), which projection drops first.

    Needs numba, which the harness does not install: ``--attacks all`` leaves it out.
    """

    description = (
        "Brendel-Bethge, L1 or L0 minimisation from blended-noise starts, run once and projected onto each ε "
        "(Foolbox L1BrendelBethgeAttack, L0BrendelBethgeAttack)"
    )
    Config = BrendelBethgeConfig
    #: Smoke: a short walk along the boundary; quick: a tenth of the paper's 1,000 steps of the numba solver.
    profile_overrides = {"smoke": {"steps": 20}, "quick": {"steps": 100}}
    norms = frozenset({"l1", "l0"})
    threat_model: ThreatModel = "l1"
    selected_by_all = False

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        import foolbox

        attack = self._foolbox_attack()
        x_adv = x.clone()
        with foolbox_model(model, x, generator) as fmodel:
            starts = foolbox.attacks.LinearSearchBlendedUniformNoiseAttack(distance=attack.distance).run(fmodel, x, y)
            started = foolbox.criteria.Misclassification(y)(starts, fmodel(starts))
            if started.any():
                x_adv[started] = attack.run(fmodel, x[started], y[started], starting_points=starts[started])
        return x_adv.detach().clamp_(0.0, 1.0)

    def _foolbox_attack(self) -> Any:
        try:
            import numba  # noqa: F401
        except ImportError as error:
            raise BenchError(f"{self.name} needs numba ({error}); install it with: pip install numba") from None
        return self._foolbox_class("BrendelBethgeAttack")(**dataclasses.asdict(self.config))
