"""Black-box attacks that only query the model, L∞ or L2: ``square`` (score-based) and ``hsj`` (decision-based).

They need no gradients (``requires = {"queries"}``), so they also measure defenses whose gradients
are masked or obfuscated.  On a randomized defense the runner hands them the EOT module, so each
query sees the defense's expected prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attacks.art_backend import ART_BATCH_SIZE, art_classifier
from attacks.base import Attack, register_attack
from attacks.library_backends import (
    DeployedModeModel,
    deployed_model,
    derived_seed,
    library_norm,
    run_torchattacks,
    square,
    within_ball,
)
from foundation.seeding import seeded


@dataclass(frozen=True)
class SquareConfig:
    """Square attack's query budget and initial square size (AutoAttack's settings by default)."""

    queries: int = 5000
    p_init: float = 0.8

    def __post_init__(self) -> None:
        if self.queries < 1:
            raise ValueError("queries must be at least 1")
        if not 0 < self.p_init <= 1:
            raise ValueError("p_init must lie in (0, 1]")


@register_attack("square")
class Square(Attack):
    """Square attack (Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial
    attack via random search", ECCV 2020): random search on the logit margin, one restart; L∞:
    vertical-stripe initialisations and ±2ε squares, L2: the paper's L2 initialisation and square updates.

    As in the paper's code, the schedule of the square size is rescaled to the query budget, so a
    smaller profile budget runs the same schedule faster.  The queries run under ``no_grad`` on the
    points not yet misclassified only.
    """

    description = "Square attack, L∞ or L2, score-based random search on the margin (torchattacks Square)"
    Config = SquareConfig
    norms = frozenset({"linf", "l2"})
    profile_overrides = {"smoke": {"queries": 100}, "quick": {"queries": 1000}}
    backend = "torchattacks"
    requires = frozenset({"queries"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        cfg: SquareConfig = self.config

        def build(locked: nn.Module, seed: int) -> Any:
            return square(locked, self.threat_model, eps, cfg.queries, cfg.p_init, rescale=True, seed=seed)

        return within_ball(self, x, run_torchattacks(build, model, x, y, generator), eps)


@dataclass(frozen=True)
class HopSkipJumpConfig:
    """HopSkipJump's budget (ART's defaults, the paper's: 10⁴ evaluations at most per gradient estimate).

    ``max_iter`` boundary steps, each estimating the gradient from ``init_eval·√t`` (at most
    ``max_eval``) queries; ``init_size`` uniform random images are tried to find a starting point.
    """

    max_iter: int = 50
    max_eval: int = 10_000
    init_eval: int = 100
    init_size: int = 100

    def __post_init__(self) -> None:
        for name in ("max_iter", "max_eval", "init_eval", "init_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.init_eval > self.max_eval:
            raise ValueError("init_eval must not exceed max_eval")


#: HopSkipJump queries one image at a time inside ART; smoke and quick cut its budget hard.
HSJ_PROFILE_OVERRIDES = {
    "smoke": {"max_iter": 3, "max_eval": 100, "init_eval": 10, "init_size": 20},
    "quick": {"max_iter": 10, "max_eval": 1000, "init_eval": 50},
}

#: Relative precision of the initial line search towards the clean image (ART's value).
INIT_SEARCH_THRESHOLD = 1e-3


class _CastInputs(DeployedModeModel):
    """Casts ART's queries back to the images' dtype: under NumPy 2's promotion rules ART's L∞ binary
    search hands the model float64 batches."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__(model)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.to(self.dtype))


def _predictions(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def starting_points(
    model: nn.Module, x: Tensor, y: Tensor, trials: int, generator: torch.Generator, threat_model: str = "linf"
) -> tuple[Tensor, Tensor]:
    """HopSkipJump's starting points for correctly classified ``(x, y)``, batched.

    As in ART and the paper: the first of ``trials`` uniform random images that the model
    misclassifies.  Random noise falls into one or two classes on MNIST, so points of those classes
    would never get a start (and would count as robust); they start from the nearest image (in the
    ``threat_model``'s norm) of
    the batch with another label instead, as a decision-based attack may (Foolbox starts from given
    or dataset images the same way).  Each start is then moved along the line towards ``x`` to the
    decision boundary (binary search to ``INIT_SEARCH_THRESHOLD``, ART's value).

    Returns the starting points and the mask of points that have one.  ART draws its random images
    from an unseeded ``np.random.RandomState``; drawing them here from the cell's generator keeps
    HopSkipJump reproducible.
    """
    start = x.clone()
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    if len(x) == 0:
        return start, found
    for _ in range(trials):
        missing = (~found).nonzero().squeeze(1)
        if len(missing) == 0:
            break
        noise = torch.rand(x[missing].shape, generator=generator, device=x.device, dtype=x.dtype)
        fooled = _predictions(model, noise) != y[missing]
        start[missing[fooled]] = noise[fooled]
        found[missing[fooled]] = True
    missing = (~found).nonzero().squeeze(1)
    if len(missing) > 0:
        distances = torch.cdist(x[missing].flatten(1), x.flatten(1), p=library_norm("torch", threat_model))
        distances[y[missing].unsqueeze(1) == y.unsqueeze(0)] = float("inf")
        nearest, index = distances.min(dim=1)
        other = nearest.isfinite()
        start[missing[other]] = x[index[other]]
        found[missing[other]] = True
    low = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    high = torch.ones_like(low)
    shape = (-1,) + (1,) * (x.ndim - 1)
    while bool((high - low).max() > INIT_SEARCH_THRESHOLD):
        middle = (low + high) / 2
        fooled = _predictions(model, torch.lerp(x, start, middle.view(shape))) != y
        high = torch.where(fooled, middle, high)
        low = torch.where(fooled, low, middle)
    start = torch.where(found.view(shape), torch.lerp(x, start, high.view(shape)), x)
    return start, found


@register_attack("art.hsj")
class HopSkipJump(Attack):
    """HopSkipJump, L∞ or L2, untargeted (Chen, Jordan & Wainwright, "HopSkipJumpAttack: a query-efficient
    decision-based attack", IEEE S&P 2020) through ART: it sees only the predicted labels.

    A minimisation attack: it walks along the decision boundary towards the clean image without a
    budget, runs once per batch, and the result is projected onto each ε ball.  Only points the model
    classifies correctly are attacked; the others, and points without a starting point (see
    ``starting_points``), come back unchanged.
    """

    description = "HopSkipJump, L∞ or L2, decision-based, run once and projected onto each ε (ART HopSkipJump)"
    Config = HopSkipJumpConfig
    norms = frozenset({"linf", "l2"})
    profile_overrides = HSJ_PROFILE_OVERRIDES
    backend = "art"
    requires = frozenset({"queries"})
    minimization = True

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        from art.attacks.evasion import HopSkipJump as ArtHopSkipJump

        cfg: HopSkipJumpConfig = self.config
        x = x.detach()
        result = x.clone()
        with deployed_model(model) as locked:
            correct = (_predictions(locked, x) == y).nonzero().squeeze(1)
            start, found = starting_points(locked, x[correct], y[correct], cfg.init_size, generator, self.threat_model)
            attacked = correct[found]
            if len(attacked) == 0:
                return result
            attack = ArtHopSkipJump(
                art_classifier(_CastInputs(locked, x.dtype), x),
                batch_size=ART_BATCH_SIZE,
                targeted=False,
                norm=library_norm("art", self.threat_model),
                max_iter=cfg.max_iter,
                max_eval=cfg.max_eval,
                init_eval=cfg.init_eval,
                init_size=cfg.init_size,
                verbose=False,
            )
            inputs = torch.stack((x[attacked], start[found])).cpu().numpy()
            with seeded(derived_seed(generator), x.device):
                x_adv = attack.generate(x=inputs[0], x_adv_init=inputs[1])
        result[attacked] = torch.from_numpy(np.asarray(x_adv)).to(device=x.device, dtype=x.dtype)
        return result
