"""The attack contract and the threat-model guard every adversarial batch passes.

An attack is called like Foolbox's: ``attack(model, inputs, labels, eps) -> adversarials``,
or ``attack.run_curve(model, inputs, labels, epsilons)`` for a whole epsilon curve.  The
public calls are final: they validate the inputs, run the subclass's ``_run`` (or
``_run_curve``), and check every returned batch against the threat model.  Subclasses never
touch the guard, so no attack can hand back an example that breaks its budget.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, Literal, Protocol, final, runtime_checkable

import torch
from torch import Tensor, nn

from attacks.criteria import Criterion, Misclassification
from foundation.errors import BenchError, ThreatModelViolation
from foundation.quantizers import Quantizer
from foundation.registry import Plugin, Registry
from foundation.threat_models import NORM_SYMBOLS, ball_dimension, check_norm, validate_epsilon

ThreatModel = Literal["linf", "l2", "l1", "l0", "semantic"]

#: Slack for float32 rounding when checking a norm ball (x + eps - x is not always eps); L1 sums one such
#: rounding per value, so its slack grows with the dimension (L0 counts exactly).
NORM_TOLERANCE = 1e-6


def changed_pixels(delta: Tensor) -> Tensor:
    """Per example, which pixel positions a perturbation changes, flattened: a pixel of an (N, C, H, W) batch is
    changed when any of its C channels is (Schott et al.'s and Croce & Hein's L0 count); every value of any
    other shape is a pixel."""
    changed = delta != 0
    if delta.ndim == 4:
        changed = changed.any(dim=1)
    return changed.flatten(1)


def perturbation_size(x: Tensor, x_adv: Tensor, threat_model: str) -> Tensor:
    """Per-example size of ``x_adv − x`` in the ``threat_model`` norm (L0: changed pixel positions)."""
    delta = x_adv - x
    if threat_model == "l0":
        return changed_pixels(delta).sum(dim=1).to(x.dtype)
    flat = delta.flatten(1)
    if threat_model == "l1":
        return flat.abs().sum(dim=1)
    if threat_model == "l2":
        return flat.norm(dim=1)
    return flat.abs().amax(dim=1)


def _tolerance(threat_model: str, dimension: int) -> float:
    if threat_model == "l0":
        return 0.0
    return NORM_TOLERANCE * dimension if threat_model == "l1" else NORM_TOLERANCE


def check_threat_model(
    x: Tensor, x_adv: Tensor, threat_model: ThreatModel, eps: float | None, *, attack: str = "attack"
) -> None:
    """Raise ``ThreatModelViolation`` unless every example is finite, in [0, 1], and inside its ball.

    Semantic attacks (parameter ranges rather than a norm ball) are checked for the box only;
    their parameter ranges are checked by the attack itself.
    """
    if x_adv.shape != x.shape:
        raise ThreatModelViolation(f"{attack} returned shape {tuple(x_adv.shape)} for inputs {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise ThreatModelViolation(f"{attack} returned non-finite values")
    outside_box = (x_adv < 0).flatten(1).any(1) | (x_adv > 1).flatten(1).any(1)
    if outside_box.any():
        raise ThreatModelViolation(
            f"{attack} returned {int(outside_box.sum())} of {len(x)} examples outside the [0, 1] box "
            f"(min {x_adv.min().item():.4g}, max {x_adv.max().item():.4g})"
        )
    if threat_model == "semantic" or eps is None:
        return
    norms = perturbation_size(x, x_adv, threat_model)
    outside_ball = norms > eps + _tolerance(threat_model, x[0].numel() if len(x) else 0)
    if outside_ball.any():
        symbol = NORM_SYMBOLS[threat_model]
        what = "changed pixels" if threat_model == "l0" else "perturbation"
        raise ThreatModelViolation(
            f"{attack} returned {int(outside_ball.sum())} of {len(x)} examples outside the {symbol} ball "
            f"of radius {eps:g} (largest {what} {norms.max().item():.6g})"
        )


class Attack(Plugin, ABC):
    """An evasion attack on a differentiable (or query-only) model mapping [0, 1] images to logits."""

    #: The threat model of this instance: one of ``norms`` (set by ``for_threat_model``), or "semantic".
    threat_model: ThreatModel = "linf"
    #: The norm balls the attack can be run in; empty for semantic attacks (parameter ranges).
    norms: ClassVar[frozenset[str]] = frozenset({"linf"})
    backend: ClassVar[str] = "native"
    #: What the attack needs from a defense; the runner skips cells whose defense lacks it.
    requires: ClassVar[frozenset[str]] = frozenset({"gradients"})
    #: Minimisation attacks run once and are clipped to every epsilon of a curve.
    minimization: ClassVar[bool] = False
    #: False for attacks bounded by a parameter range instead of epsilon (e.g. GNA, GTA): the runner
    #: evaluates them once per defense and shows ``budget()`` instead of an epsilon.
    uses_epsilon: ClassVar[bool] = True
    #: A transfer attack names the defense it attacks instead of its target (e.g. "cnn"); the runner
    #: trains that surrogate independently (another seed) and passes its model to the attack.
    surrogate: ClassVar[str | None] = None
    #: Bumped when an attack's results change while its options stay the same; it enters the cell key,
    #: so stored cells of an older revision are recomputed instead of being reused.
    revision: ClassVar[int] = 0
    #: Threshold-aware attacks search the crossings of the model's input quantiser: the runner hands it over
    #: (``with_quantizer``), as declared by the defense or found by the diagnostics.
    uses_quantizer: ClassVar[bool] = False

    def with_quantizer(self, quantizer: Quantizer) -> Attack:
        """A copy that attacks a model behind ``quantizer`` (an attack that uses none is returned as it is)."""
        if not self.uses_quantizer:
            return self
        attack = copy.copy(self)
        attack.quantizer = quantizer
        return attack

    def budget(self) -> str:
        """Human-readable budget for tables: the parameter range of attacks that ignore epsilon."""
        return "ε"

    def requirers(self, capabilities: frozenset[str]) -> list[str]:
        """The parts of this attack that need ``capabilities`` (a composite names its members; others none)."""
        return []

    @classmethod
    def runs_in(cls, norm: str) -> bool:
        """Whether the attack runs under ``--norm norm`` (semantic attacks run under every norm)."""
        return cls.threat_model == "semantic" or norm in cls.norms

    def for_threat_model(self, norm: str) -> Attack:
        """A copy of this attack set to run in the ``norm`` ball (semantic attacks, which keep their parameter
        ranges, are returned as they are); the attack it is called on is left unchanged."""
        check_norm(norm)
        if self.threat_model == "semantic":
            return self
        if norm not in self.norms:
            supported = ", ".join(sorted(self.norms)) or "none"
            raise BenchError(f"attack {self.name!r} does not run in the {norm} threat model (it supports: {supported})")
        attack = copy.copy(self)
        attack.threat_model = norm
        return attack

    def project(self, x: Tensor, x_adv: Tensor, eps: float) -> Tensor:
        """Project ``x_adv`` onto this attack's ball of radius eps around x, intersected with [0, 1]."""
        return project(x, x_adv, eps, self.threat_model)

    @final
    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        eps: float,
        *,
        generator: torch.Generator | None = None,
        criterion: Criterion | None = None,
    ) -> Tensor:
        return self.run_curve(model, x, y, [eps], generator=generator, criterion=criterion)[0]

    @final
    def run_curve(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        epsilons: Sequence[float | None],
        *,
        generator: torch.Generator | None = None,
        criterion: Criterion | None = None,
    ) -> list[Tensor]:
        """Adversarial examples for each epsilon, each checked against the threat model.

        Attacks with ``uses_epsilon = False`` take ``None`` (their budget is their parameter range).
        ``criterion`` says which examples fool the model (default: one prediction of ``model``); attacks
        that stop attacking fooled points ask it through ``fooled``.
        """
        return self._checked(model, x, y, epsilons, generator, criterion, minimal=False)[0]

    @final
    def run_minimal_curve(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        epsilons: Sequence[float],
        *,
        generator: torch.Generator | None = None,
        criterion: Criterion | None = None,
    ) -> tuple[list[Tensor], Tensor]:
        """A minimisation attack's examples for each epsilon, and the unbounded ones they are projected from.

        The unbounded examples are each point's smallest adversarial found (the point itself where none
        was): they are checked to be finite and in the box, their size being what the attack measures.
        """
        if not self.minimization:
            raise BenchError(f"{self.name} is not a minimisation attack: it has no unbounded examples")
        return self._checked(model, x, y, epsilons, generator, criterion, minimal=True)

    def _checked(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        epsilons: Sequence[float | None],
        generator: torch.Generator | None,
        criterion: Criterion | None,
        *,
        minimal: bool,
    ) -> tuple[list[Tensor], Tensor | None]:
        dimension = ball_dimension(x.shape[1:], self.threat_model) if len(x) else None
        epsilons = [
            validate_epsilon(eps, self.threat_model, dimension) if self.uses_epsilon or eps is not None else None
            for eps in epsilons
        ]
        if x.ndim < 2 or y.shape != (len(x),):
            raise BenchError(f"inputs {tuple(x.shape)} and labels {tuple(y.shape)} do not match")
        if not x.is_floating_point() or x.min() < 0 or x.max() > 1:
            raise BenchError("attack inputs must be floating-point images in [0, 1]")
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(0)
        self._criterion = criterion if criterion is not None else Misclassification(model)
        try:
            if minimal:
                adversarials, unbounded = self._minimal_curve(model, x, y, epsilons, generator)
            else:
                adversarials, unbounded = self._run_curve(model, x, y, epsilons, generator), None
        finally:
            del self._criterion
        for eps, x_adv in zip(epsilons, adversarials, strict=True):
            check_threat_model(x, x_adv, self.threat_model, eps, attack=self.name)
        if unbounded is not None:
            check_threat_model(x, unbounded, self.threat_model, None, attack=self.name)
        return adversarials, unbounded

    def fooled(
        self, x_adv: Tensor, y: Tensor, *, logits: Tensor | None = None, model: nn.Module | None = None
    ) -> Tensor:
        """Mask of the examples that fool the model under the current call's criterion.

        ``logits`` of ``x_adv`` under ``model`` stand in for a new prediction when the criterion is
        one prediction of that very model, which saves an attack loop a forward pass per step.
        """
        criterion = self._criterion
        if logits is not None and isinstance(criterion, Misclassification) and criterion.model is model:
            return logits.detach().argmax(dim=1) != y
        return criterion(x_adv, y)

    def until_fooled(self, members: Iterable[Callable[[Tensor, Tensor], Tensor]], x: Tensor, y: Tensor) -> Tensor:
        """Run ``members`` (each ``(x, y) -> x_adv``) in order, each only on the points still standing.

        The criterion decides which points are fooled.  A point keeps the first example that fools it;
        one that no member fools keeps the first member's example.  This is AutoAttack's composition.
        """
        x_adv: Tensor | None = None
        standing = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for member in members:
            index = standing.nonzero().squeeze(1)
            if not len(index):
                break
            candidates = member(x[index], y[index])
            fooled = self.fooled(candidates, y[index])
            if x_adv is None:
                x_adv = candidates.clone()
            else:
                x_adv[index[fooled]] = candidates[fooled]
            standing[index[fooled]] = False
        return x.clone() if x_adv is None else x_adv

    def can_stop_early(self) -> bool:
        """Whether a point the criterion calls fooled is fooled for good, so the attack may stop on it.

        Not under a stochastic criterion (a randomized defense): stopping at the first draw that errs
        keeps borderline examples that the table's fresh draws often classify correctly.  Measured on
        the quick ``vae``: PGD-40 at ε 0.08 left 62.5 % robust with such stopping, 11.5 % without.
        """
        return not getattr(self._criterion, "stochastic", False)

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float | None], generator: torch.Generator
    ) -> list[Tensor]:
        """Default: one run per epsilon (fixed-budget attacks), or a minimisation attack's one run projected
        onto each epsilon; epsilon 0 returns the inputs."""
        if self.minimization:
            return self._minimal_curve(model, x, y, epsilons, generator)[0]
        return [x.clone() if eps == 0 else self._run(model, x, y, eps, generator) for eps in epsilons]

    def _minimal_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> tuple[list[Tensor], Tensor]:
        """A minimisation attack's examples per epsilon (its one run projected onto each ball) and that run."""
        if all(eps == 0 for eps in epsilons):
            return [x.clone() for _ in epsilons], x.clone()
        unbounded = self._run_minimal(model, x, y, generator)
        return [self.project(x, unbounded, eps) for eps in epsilons], unbounded

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """A minimisation attack's unbounded examples: each point's smallest adversarial found, else the point."""
        raise NotImplementedError(f"{self.name} declares minimization but implements no _run_minimal")

    @abstractmethod
    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        """Adversarial examples for one epsilon."""


@runtime_checkable
class PurifierPipeline(Protocol):
    """A deployed ``classifier(purifier(x))`` whose purifier is a VAE (``encode`` -> (mu, logvar), ``decode``)."""

    purifier: nn.Module
    classifier: nn.Module


def find_purifier_pipeline(model: nn.Module) -> PurifierPipeline | None:
    """The VAE purifier pipeline inside ``model`` (looking through wrappers such as EOT), if any."""
    while model is not None:
        if isinstance(model, PurifierPipeline) and hasattr(model.purifier, "encode"):
            return model
        model = getattr(model, "model", None)
    return None


def project_linf(x: Tensor, x_adv: Tensor, eps: float) -> Tensor:
    """Project onto the L-infinity ball of radius eps around x, intersected with [0, 1]."""
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def _per_image(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *[1] * (like.ndim - 1))


def project_l2(x: Tensor, x_adv: Tensor, eps: float) -> Tensor:
    """Scale ``x_adv − x`` into the L2 ball of radius eps, then clip to [0, 1]; examples already inside the ball
    keep their values, clipped to the box only (``x + (x_adv − x)`` can differ from ``x_adv`` in the last bit,
    enough to undo a threshold crossing placed exactly at a quantiser's threshold).

    Clipping moves every pixel towards x (x is in the box), so it never leaves the ball.
    """
    delta = x_adv - x
    norms = delta.flatten(1).norm(dim=1)
    scale = (eps / norms.clamp_min(1e-12)).clamp(max=1.0)
    scaled = x + delta * _per_image(scale, delta)
    return torch.where(_per_image(norms <= eps, delta), x_adv, scaled).clamp_(0.0, 1.0)


def project_l1(x: Tensor, x_adv: Tensor, eps: float) -> Tensor:
    """Scale ``x_adv − x`` into the L1 ball of radius eps (as ``project_l2`` does in L2: a minimal adversarial's
    direction is kept), then clip to [0, 1]; examples already inside keep their values."""
    delta = x_adv - x
    norms = delta.flatten(1).abs().sum(dim=1)
    # The scaled sum of float32 values can exceed eps by a rounding per value: aim a little inside.
    scale = (eps * (1 - 4 * NORM_TOLERANCE) / norms.clamp_min(1e-12)).clamp(max=1.0)
    scaled = x + delta * _per_image(scale, delta)
    return torch.where(_per_image(norms <= eps, delta), x_adv, scaled).clamp_(0.0, 1.0)


def project_l0(x: Tensor, x_adv: Tensor, eps: float) -> Tensor:
    """Keep each example's ``eps`` most changed pixel positions (largest change over its channels) and reset
    the others to x: the nearest point of the L0 ball in every other norm."""
    delta = x_adv - x
    changes = delta.abs().amax(dim=1) if delta.ndim == 4 else delta
    flat = changes.flatten(1)
    keep = int(eps)
    if keep >= flat.shape[1]:
        return x_adv.clone()
    kept = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        kept.scatter_(1, flat.topk(keep, dim=1).indices, True)
    kept &= flat > 0
    mask = kept.view(changes.shape)
    if delta.ndim == 4:
        mask = mask.unsqueeze(1)
    return torch.where(mask, x_adv, x)


def project(x: Tensor, x_adv: Tensor, eps: float, threat_model: str) -> Tensor:
    """Project onto the ``threat_model`` ball of radius eps around x, intersected with [0, 1]."""
    if threat_model == "l0":
        return project_l0(x, x_adv, eps)
    if threat_model == "l1":
        return project_l1(x, x_adv, eps)
    return project_l2(x, x_adv, eps) if threat_model == "l2" else project_linf(x, x_adv, eps)


def l2_normalized(gradient: Tensor) -> Tensor:
    """Each image's gradient scaled to unit L2 norm (zero gradients stay zero): L2 steepest ascent."""
    norms = gradient.flatten(1).norm(dim=1)
    return gradient / _per_image(norms.clamp_min(1e-12), gradient)


def ascent_direction(gradient: Tensor, threat_model: str) -> Tensor:
    """The steepest-ascent direction of unit norm in the threat model: sign for L∞, normalised for L2."""
    return l2_normalized(gradient) if threat_model == "l2" else gradient.sign()


def random_start(x: Tensor, eps: float, threat_model: str, generator: torch.Generator | None) -> Tensor:
    """A uniformly random point of the threat model's ball around x, clipped to [0, 1] (PGD's start).

    L2: a Gaussian direction and a radius ε·U^(1/d), uniform in the ball's volume.
    """
    if threat_model != "l2":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)
    direction = l2_normalized(torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))
    radius = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / x[0].numel())
    return (x + direction * _per_image(eps * radius, x)).clamp_(0.0, 1.0)


ATTACKS: Registry[Attack] = Registry("attack", Attack, "attacks", "bench.attacks")
register_attack = ATTACKS.register
