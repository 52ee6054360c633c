"""Batched decision-based attacks: ``boundary``, ``hsj`` and ``pointwise``, in L2 and L∞ (``pointwise`` in L1
and L0 too).

They see only whether an example fools the model (the table's own rule, through the call's
criterion), never gradients or scores, so masked or obfuscated gradients cannot fool them: they are
the evaluations that Carlini et al. and Tramèr et al. ask for whenever gradients may mislead.  All
images of a batch step together (one batched query per step, HopSkipJump's gradient estimates in
chunks of many queries per forward pass), every draw comes from the cell's generator, and each
budget is counted in queries per image.  They are minimisation attacks: one run walks every point
towards its clean image and the result is projected onto each ε ball, so one run gives a whole
curve and each point's smallest adversarial perturbation.

A point without a starting adversarial (no random image and no other-class image of the batch fools
the model on it) comes back unchanged and counts as robust; it never aborts the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attacks.base import Attack, perturbation_size, register_attack
from attacks.library_backends import library_norm

#: Rows of images per forward pass when one query step covers many images (HopSkipJump's estimates).
QUERY_CHUNK_ROWS = 4096


class LabelOracle:
    """Whether examples fool the model on their points, counting the queries each point has spent."""

    def __init__(self, fooled: Callable[[Tensor, Tensor], Tensor], y: Tensor) -> None:
        self._fooled = fooled
        self.y = y
        self.queries = torch.zeros(len(y), dtype=torch.long, device=y.device)

    def __call__(self, x_adv: Tensor, rows: Tensor | None = None) -> Tensor:
        """The verdict on ``x_adv``, whose rows are the points ``rows`` (default: every point, in order).

        ``rows`` may repeat a point (several candidates of one point in one forward pass)."""
        if rows is None:
            rows = torch.arange(len(self.y), device=self.y.device)
        if len(rows) == 0:
            return torch.zeros(0, dtype=torch.bool, device=self.y.device)
        self.queries.index_add_(0, rows, torch.ones_like(rows))
        return self._ask(x_adv, rows)

    def _ask(self, x_adv: Tensor, rows: Tensor) -> Tensor:
        verdicts = [
            self._fooled(x_adv[start : start + QUERY_CHUNK_ROWS], self.y[rows[start : start + QUERY_CHUNK_ROWS]])
            for start in range(0, len(rows), QUERY_CHUNK_ROWS)
        ]
        return torch.cat(verdicts)

    def subset(self, points: Tensor, *, inherit: bool = True) -> LabelOracle:
        """The oracle of ``points`` only (row i is point ``points[i]``): its queries count for this
        oracle too, and start from the points' count so far (``inherit``) or from zero (a sub-attack's
        own budget)."""
        return _SubsetOracle(self, points, inherit)


class _SubsetOracle(LabelOracle):
    def __init__(self, owner: LabelOracle, points: Tensor, inherit: bool) -> None:
        super().__init__(owner._fooled, owner.y[points])
        self.owner, self.points = owner, points
        if inherit:
            self.queries += owner.queries[points]

    def _ask(self, x_adv: Tensor, rows: Tensor) -> Tensor:
        return self.owner(x_adv, self.points[rows])


def _per_image(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *[1] * (like.ndim - 1))


def blend(x: Tensor, x_adv: Tensor, t: Tensor, threat_model: str) -> Tensor:
    """The point at ``t`` ∈ [0, 1] on the way from x (0) to ``x_adv`` (1): the segment in L2; in L∞ the
    perturbation clipped to ``t`` times its L∞ size (HopSkipJump's L∞ projection)."""
    if threat_model == "linf":
        delta = x_adv - x
        bound = _per_image(t * delta.flatten(1).abs().amax(dim=1), x)
        return x + torch.maximum(torch.minimum(delta, bound), -bound)
    return torch.lerp(x, x_adv, _per_image(t, x))


def boundary_search(
    oracle: LabelOracle, x: Tensor, x_adv: Tensor, rows: Tensor, threat_model: str, tolerance: float
) -> Tensor:
    """Move each adversarial ``x_adv`` (of points ``rows``) towards x to the decision boundary, keeping
    the adversarial side, by bisection until the bracket is narrower than ``tolerance`` (relative)."""
    low = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    high = torch.ones_like(low)
    while len(x) and bool((high - low).max() > tolerance):
        middle = (low + high) / 2
        fooled = oracle(blend(x, x_adv, middle, threat_model), rows)
        high = torch.where(fooled, middle, high)
        low = torch.where(fooled, low, middle)
    return blend(x, x_adv, high, threat_model)


def nearest_other_class(x: Tensor, y: Tensor, k: int, threat_model: str) -> tuple[Tensor, Tensor]:
    """For each image, the indices of its ``k`` nearest images of the batch with another label (in the
    threat model's norm) and whether each exists: Foolbox's and Schott et al.'s starting points."""
    k = max(1, min(k, len(x)))
    gaps = torch.cdist(x.flatten(1), x.flatten(1), p=library_norm("torch", threat_model))
    gaps[y.unsqueeze(1) == y.unsqueeze(0)] = float("inf")
    nearest, index = gaps.topk(k, dim=1, largest=False)
    return index, nearest.isfinite()


def starting_points(
    oracle: LabelOracle,
    x: Tensor,
    trials: int,
    generator: torch.Generator,
    threat_model: str,
    *,
    nearest: int = 1,
    tolerance: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Adversarial starting points on the decision boundary, and the mask of points that have one.

    Candidates: the first of ``trials`` uniform random images that fools the model on a point (as in
    the HopSkipJump and Boundary papers) and the ``nearest`` other-class images of the batch that fool
    it.  Each is moved towards x to the boundary; a point keeps its closest.  Random noise falls into
    one or two classes on MNIST, so the other-class images are what gives those classes a start.
    """
    n = len(x)
    best = x.clone()
    best_size = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
    if n == 0:
        return best, best_size.isfinite()
    everyone = torch.arange(n, device=x.device)
    noise_start, noise_found = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
    for _ in range(trials):
        missing = (~noise_found).nonzero().squeeze(1)
        if len(missing) == 0:
            break
        noise = torch.rand(x[missing].shape, generator=generator, device=x.device, dtype=x.dtype)
        fooled = oracle(noise, missing)
        noise_start[missing[fooled]] = noise[fooled]
        noise_found[missing[fooled]] = True
    candidates = [(noise_start, noise_found)]
    if nearest:
        index, exists = nearest_other_class(x, oracle.y, nearest, threat_model)
        candidates += [(x[index[:, j]], exists[:, j]) for j in range(index.shape[1])]
    for candidate, usable in candidates:
        rows = everyone[usable]
        if len(rows) == 0:
            continue
        usable_rows = rows[oracle(candidate[rows], rows)]
        if len(usable_rows) == 0:
            continue
        on_boundary = boundary_search(
            oracle, x[usable_rows], candidate[usable_rows], usable_rows, threat_model, tolerance
        )
        size = perturbation_size(x[usable_rows], on_boundary, threat_model)
        closer = size < best_size[usable_rows]
        best[usable_rows[closer]] = on_boundary[closer]
        best_size[usable_rows[closer]] = size[closer]
    return best, best_size.isfinite()


class DecisionAttack(Attack):
    """A minimisation attack that reads only the criterion's verdicts: the template of the three below.

    Only points the model gets right are attacked; the rest, and points without a starting point,
    come back unchanged.
    """

    norms = frozenset({"linf", "l2"})
    requires = frozenset({"queries"})
    minimization = True

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        x = x.detach()
        result = x.clone()
        everyone = LabelOracle(self.fooled, y)
        with torch.no_grad():
            correct = (~everyone(x)).nonzero().squeeze(1)
            if len(correct):
                result[correct] = self._attack(everyone.subset(correct), x[correct], generator)
        return result

    def _attack(self, oracle: LabelOracle, x: Tensor, generator: torch.Generator) -> Tensor:
        """Adversarials as close to x as the budget allows (x itself where no start was found)."""
        tolerance = self._start_tolerance(x[0].numel())
        trials = self.config.init_size
        start, found = starting_points(oracle, x, trials, generator, self.threat_model, tolerance=tolerance)
        attacked = found.nonzero().squeeze(1)
        result = x.clone()
        if len(attacked):
            result[attacked] = self._walk(oracle.subset(attacked), x[attacked], start[attacked], generator)
        return result

    def _start_tolerance(self, dimension: int) -> float:
        """Relative precision of the bisection that moves each start to the boundary (ART's value)."""
        return 1e-3

    def _walk(self, oracle: LabelOracle, x: Tensor, start: Tensor, generator: torch.Generator) -> Tensor:
        """From adversarial ``start`` towards x, keeping every iterate adversarial."""
        raise NotImplementedError


def _check_budget(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True)
class BoundaryConfig:
    """The Boundary Attack's budget and step sizes (Brendel et al.'s and Foolbox's defaults).

    ``queries`` per image (one per step, plus one spherical probe every ``update_every`` steps);
    ``init_size`` random images tried for a start; step sizes relative to the current distance,
    adapted by ``step_adaptation`` to keep the spherical success rate between 20 % and 50 %.
    """

    queries: int = 25_000
    init_size: int = 100
    spherical_step: float = 0.01
    source_step: float = 0.01
    step_adaptation: float = 1.5
    update_every: int = 10
    convergence: float = 1e-7

    def __post_init__(self) -> None:
        _check_budget(self, "queries", "init_size", "update_every")
        for name in ("spherical_step", "source_step", "convergence"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in (0, 1)")
        if self.step_adaptation <= 1:
            raise ValueError("step_adaptation must exceed 1")


#: Query budgets per image (the issue's: at least 5,000 at quick; 25,000 at paper).
DECISION_PROFILE_OVERRIDES = {"smoke": {"queries": 1000, "init_size": 20}, "quick": {"queries": 5000}}


class _RecentSuccess:
    """Per-image success rates over the last ``length`` trials (a ring buffer per image)."""

    def __init__(self, n: int, length: int, device: torch.device) -> None:
        self.hits = torch.zeros(n, length, device=device)
        self.filled = torch.zeros(n, dtype=torch.long, device=device)
        self.position = 0
        self.length = length

    def add(self, success: Tensor) -> None:
        self.hits[:, self.position] = success.float()
        self.position = (self.position + 1) % self.length
        self.filled = (self.filled + 1).clamp_(max=self.length)

    def full(self) -> Tensor:
        return self.filled == self.length

    def rate(self) -> Tensor:
        return self.hits.sum(dim=1) / self.length

    def clear(self, which: Tensor) -> None:
        self.hits[which] = 0
        self.filled[which] = 0


@register_attack("boundary")
class Boundary(DecisionAttack):
    """The Boundary Attack (Brendel, Rauber & Bethge, "Decision-based adversarial attacks", ICLR 2018),
    batched: from an adversarial start, a random orthogonal step on the sphere around x, then a step
    towards x, kept when still adversarial; step sizes adapt per image to the success rates.  It
    minimises the L2 distance; in the L∞ threat model its result is projected onto the L∞ ball."""

    description = "Boundary Attack, decision-based (labels only), batched, minimises L2; projected onto each ε"
    Config = BoundaryConfig
    profile_overrides = DECISION_PROFILE_OVERRIDES

    def _walk(self, oracle: LabelOracle, x: Tensor, start: Tensor, generator: torch.Generator) -> Tensor:
        cfg: BoundaryConfig = self.config
        n, adv = len(x), start.clone()
        spherical = torch.full((n,), cfg.spherical_step, device=x.device, dtype=x.dtype)
        source = torch.full((n,), cfg.source_step, device=x.device, dtype=x.dtype)
        spherical_stats = _RecentSuccess(n, 100, x.device)
        step_stats = _RecentSuccess(n, 30, x.device)
        step = 0
        while bool((oracle.queries < cfg.queries).any()):
            step += 1
            active = (source >= cfg.convergence) & (oracle.queries < cfg.queries)
            if not bool(active.any()):
                break
            candidates, spherical_candidates = self._proposals(x, adv, spherical, source, generator)
            rows = active.nonzero().squeeze(1)
            fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
            fooled[rows] = oracle(candidates[rows], rows)
            closer = perturbation_size(x, candidates, "l2") < perturbation_size(x, adv, "l2")
            accept = fooled & closer & active
            adv[accept] = candidates[accept]
            if step % cfg.update_every:
                continue
            spherical_fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
            spherical_fooled[rows] = oracle(spherical_candidates[rows], rows)
            spherical_stats.add(spherical_fooled)
            step_stats.add(fooled)
            spherical, source = self._adapt(spherical, source, spherical_stats, step_stats)
        return adv

    def _proposals(
        self, x: Tensor, adv: Tensor, spherical: Tensor, source: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Foolbox's ``draw_proposals``: an orthogonal step of ``spherical`` times the distance, back onto
        the sphere (Pythagoras), then a step of ``source`` times the distance towards x."""
        flat_x, flat_adv = x.flatten(1), adv.flatten(1)
        towards = flat_x - flat_adv
        norms = towards.norm(dim=1, keepdim=True).clamp_min(1e-12)
        direction = towards / norms
        eta = torch.randn(flat_adv.shape, generator=generator, device=x.device, dtype=x.dtype)
        eta = eta - (eta * direction).sum(dim=1, keepdim=True) * direction
        eta = eta * (spherical.unsqueeze(1) * norms / eta.norm(dim=1, keepdim=True).clamp_min(1e-12))
        on_sphere = flat_x + (eta - towards) / (spherical.square() + 1).sqrt().unsqueeze(1)
        on_sphere = on_sphere.clamp(0.0, 1.0)
        back = flat_x - on_sphere
        back_norms = back.norm(dim=1, keepdim=True).clamp_min(1e-12)
        lengths = (source.unsqueeze(1) * norms + back_norms - norms).clamp_min(0.0) / back_norms
        candidates = (on_sphere + lengths * back).clamp(0.0, 1.0)
        return candidates.view_as(x), on_sphere.view_as(x)

    def _adapt(
        self, spherical: Tensor, source: Tensor, spherical_stats: _RecentSuccess, step_stats: _RecentSuccess
    ) -> tuple[Tensor, Tensor]:
        factor = self.config.step_adaptation
        full = spherical_stats.full()
        rate = spherical_stats.rate()
        too_linear, too_curved = full & (rate > 0.5), full & (rate < 0.2)
        scale = torch.where(too_linear, factor, torch.where(too_curved, 1 / factor, 1.0))
        spherical, source = spherical * scale, source * scale
        spherical_stats.clear(too_linear | too_curved)
        full = step_stats.full()
        rate = step_stats.rate()
        grow, shrink = full & (rate > 0.25), full & (rate < 0.1)
        source = source * torch.where(grow, factor, torch.where(shrink, 1 / factor, 1.0))
        step_stats.clear(grow | shrink)
        return spherical, source


@dataclass(frozen=True)
class BatchedHopSkipJumpConfig:
    """HopSkipJump's budget (the paper's settings): ``queries`` per image in all; each iteration t
    estimates the gradient at the boundary from ``init_eval·√t`` (at most ``max_eval``) label queries,
    then takes a geometric step and a bisection back to the boundary."""

    queries: int = 25_000
    init_size: int = 100
    init_eval: int = 100
    max_eval: int = 10_000
    gamma: float = 1.0

    def __post_init__(self) -> None:
        _check_budget(self, "queries", "init_size", "init_eval", "max_eval")
        if self.init_eval > self.max_eval:
            raise ValueError("init_eval must not exceed max_eval")
        if self.gamma <= 0:
            raise ValueError("gamma must be positive")


@register_attack("hsj")
class BatchedHopSkipJump(DecisionAttack):
    """HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020), untargeted, L2 or L∞, every image of the
    batch stepping together: the gradient direction at the boundary is estimated from the labels of
    random perturbations (many per forward pass), followed by a geometric step search and a bisection
    back to the boundary.  ART's one-image-at-a-time implementation is ``art.hsj``."""

    description = "HopSkipJump, L∞ or L2, decision-based (labels only), batched, run once and projected onto each ε"
    Config = BatchedHopSkipJumpConfig
    profile_overrides = DECISION_PROFILE_OVERRIDES

    def _start_tolerance(self, dimension: int) -> float:
        return self._tolerance(dimension)

    def _tolerance(self, dimension: int) -> float:
        """The paper's θ: γ/d^(3/2) in L2, γ/d² in L∞ (bisection precision and probe size)."""
        gamma = self.config.gamma
        return gamma / dimension**2 if self.threat_model == "linf" else gamma / dimension**1.5

    def _walk(self, oracle: LabelOracle, x: Tensor, start: Tensor, generator: torch.Generator) -> Tensor:
        cfg: BatchedHopSkipJumpConfig = self.config
        dimension = x[0].numel()
        tolerance = self._tolerance(dimension)
        adv = start.clone()
        size = perturbation_size(x, adv, self.threat_model)
        everyone = torch.arange(len(x), device=x.device)
        iteration = 0
        while True:
            iteration += 1
            evaluations = int(min(cfg.init_eval * math.sqrt(iteration), cfg.max_eval))
            if int(oracle.queries.max()) + evaluations > cfg.queries:
                break
            if iteration == 1:
                delta = torch.full_like(size, 0.1)
            else:
                delta = (dimension if self.threat_model == "linf" else math.sqrt(dimension)) * tolerance * size
            gradient = self._estimate_gradient(oracle, adv, delta, evaluations, generator)
            update = gradient.sign() if self.threat_model == "linf" else gradient
            step = size / math.sqrt(iteration)
            pending = torch.ones(len(x), dtype=torch.bool, device=x.device)
            for _ in range(30):  # halve the step until still adversarial (2⁻³⁰ of the distance: a no-op)
                rows = everyone[pending]
                if len(rows) == 0:
                    break
                proposal = (adv[rows] + _per_image(step[rows], update) * update[rows]).clamp(0.0, 1.0)
                fooled = oracle(proposal, rows)
                step[rows[~fooled]] /= 2
                pending[rows[fooled]] = False
            moved = ~pending
            stepped = (adv + _per_image(step, update) * update).clamp(0.0, 1.0)
            adv = torch.where(_per_image(moved, adv), stepped, adv)
            adv = boundary_search(oracle, x, adv, everyone, self.threat_model, tolerance)
            size = perturbation_size(x, adv, self.threat_model)
        return adv

    def _estimate_gradient(
        self, oracle: LabelOracle, adv: Tensor, delta: Tensor, evaluations: int, generator: torch.Generator
    ) -> Tensor:
        """Monte-Carlo estimate of the boundary's normal at each ``adv`` from ``evaluations`` labelled
        random perturbations of size ``delta`` (baseline-corrected, as in the paper), unit L2 norm."""
        n, pixels = len(adv), [1] * (adv.ndim - 1)
        rows = torch.arange(n, device=adv.device)
        per_pass = max(1, QUERY_CHUNK_ROWS // max(n, 1))
        scale = delta.view(1, n, *pixels)
        weighted, plain = torch.zeros_like(adv), torch.zeros_like(adv)
        signs = torch.zeros(n, device=adv.device, dtype=adv.dtype)
        for first in range(0, evaluations, per_pass):
            count = min(per_pass, evaluations - first)
            shape = (count, *adv.shape)
            if self.threat_model == "linf":
                noise = torch.rand(shape, generator=generator, device=adv.device, dtype=adv.dtype) * 2 - 1
            else:
                noise = torch.randn(shape, generator=generator, device=adv.device, dtype=adv.dtype)
            noise = noise / noise.flatten(2).norm(dim=2).clamp_min(1e-12).view(count, n, *pixels)
            perturbed = (adv.unsqueeze(0) + scale * noise).clamp(0.0, 1.0)
            noise = (perturbed - adv.unsqueeze(0)) / (scale + 1e-8)
            sign = oracle(perturbed.flatten(0, 1), rows.repeat(count)).view(count, n).to(adv.dtype) * 2 - 1
            weighted += (sign.view(count, n, *pixels) * noise).sum(dim=0)
            plain += noise.sum(dim=0)
            signs += sign.sum(dim=0)
        mean = signs / evaluations
        # The paper's baseline: subtract the mean verdict, unless every verdict agreed.
        baseline = torch.where(mean.abs() == 1, torch.zeros_like(mean), mean)
        gradient = (weighted - baseline.view(n, *pixels) * plain) / evaluations
        return gradient / _per_image(gradient.flatten(1).norm(dim=1).clamp_min(1e-12), gradient)


@dataclass(frozen=True)
class PointwiseConfig:
    """The Pointwise Attack's budget: ``queries`` per image for all its starting points together;
    ``nearest`` other-class images of the batch as starts, plus, with ``boundary_queries`` > 0, the
    result of a Boundary Attack of that many queries; ``search_steps`` bisections per pixel."""

    queries: int = 25_000
    nearest: int = 3
    boundary_queries: int = 5000
    init_size: int = 100
    search_steps: int = 10

    def __post_init__(self) -> None:
        _check_budget(self, "queries", "nearest", "init_size", "search_steps")
        if self.boundary_queries < 0:
            raise ValueError("boundary_queries must be at least 0")


@register_attack("pointwise")
class Pointwise(DecisionAttack):
    """The Pointwise Attack (Schott et al., "Towards the first adversarially robust neural network model
    on MNIST", ICLR 2019), batched: from an adversarial start, reset pixels to the original one at a
    time in random order while the label stays wrong (L0), then bisect each remaining pixel towards
    its original value (L2), until a pass changes nothing or the budget is spent.  It runs from several
    starts per image (the ``nearest`` other-class images of the batch and, optionally, the Boundary
    Attack's result), all in one batch, and keeps each point's smallest result in the threat model.
    Sparse, label-only search is what finds the few flipped pixels that defeat binarising models."""

    description = (
        "Pointwise Attack (Schott et al.), sparse, decision-based, batched, several starts; L∞, L2, L1, or L0 (its "
        "pixel-reset stage alone); projected onto ε"
    )
    Config = PointwiseConfig
    norms = frozenset({"linf", "l2", "l1", "l0"})
    profile_overrides = {
        "smoke": {"queries": 1000, "nearest": 2, "boundary_queries": 200, "init_size": 20},
        "quick": {"queries": 5000, "boundary_queries": 1000},
    }

    def _attack(self, oracle: LabelOracle, x: Tensor, generator: torch.Generator) -> Tensor:
        starts, owners = self._starts(oracle, x, generator)
        if len(starts) == 0:
            return x.clone()
        per_point = torch.bincount(owners, minlength=len(x))
        budget = (self.config.queries - oracle.queries).clamp_min(0)[owners] // per_point[owners]
        reduced = self._reduce(oracle.subset(owners, inherit=False), x[owners], starts, budget, generator)
        # Each point keeps its smallest result: sort the rows by size, then (stably) by point.
        order = perturbation_size(x[owners], reduced, self.threat_model).argsort()
        order = order[owners[order].argsort(stable=True)]
        first = torch.ones(len(order), dtype=torch.bool, device=x.device)
        first[1:] = owners[order][1:] != owners[order][:-1]
        result = x.clone()
        result[owners[order][first]] = reduced[order][first]
        return result

    def _starts(self, oracle: LabelOracle, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Every adversarial start (rows) and the point each belongs to."""
        cfg: PointwiseConfig = self.config
        index, exists = nearest_other_class(x, oracle.y, cfg.nearest, self.threat_model)
        owners = torch.arange(len(x), device=x.device).unsqueeze(1).expand_as(index)[exists]
        starts = x[index[exists]]
        if cfg.boundary_queries:
            begin, found = starting_points(oracle, x, cfg.init_size, generator, self.threat_model, nearest=cfg.nearest)
            points = found.nonzero().squeeze(1)
            boundary = Boundary(BoundaryConfig(queries=cfg.boundary_queries, init_size=cfg.init_size))
            boundary.threat_model = self.threat_model if self.threat_model in Boundary.norms else "l2"
            walked = boundary._walk(oracle.subset(points, inherit=False), x[points], begin[points], generator)
            starts, owners = torch.cat([starts, walked]), torch.cat([owners, points])
        keep = oracle(starts, owners)
        return starts[keep], owners[keep]

    def _reduce(
        self, oracle: LabelOracle, x: Tensor, adv: Tensor, budget: Tensor, generator: torch.Generator
    ) -> Tensor:
        """The two stages of the Pointwise Attack on the rows ``adv``, each within its ``budget`` of queries
        (``oracle``'s rows are those of ``adv``)."""
        flat_x, flat_adv = x.flatten(1), adv.flatten(1).clone()
        shape = (-1, *x.shape[1:])

        def ask(candidate: Tensor, rows: Tensor) -> Tensor:
            return oracle(candidate.view(shape), rows)

        # L0 counts pixels, not their size: the reset stage alone (bisection would only shrink changed pixels).
        for search in (False,) if self.threat_model == "l0" else (False, True):
            while self._pass(ask, flat_x, flat_adv, oracle.queries, budget, generator, search=search):
                pass
        return flat_adv.view_as(adv)

    def _pass(
        self,
        ask: Callable[[Tensor, Tensor], Tensor],
        flat_x: Tensor,
        flat_adv: Tensor,
        spent: Tensor,
        budget: Tensor,
        generator: torch.Generator,
        *,
        search: bool,
    ) -> bool:
        """One pass over every row's differing pixels in random order: reset each to the original; when
        that is no longer adversarial and ``search``, bisect it towards the original instead.  Whether
        any row improved and can still query."""
        differing = (flat_x - flat_adv).abs() > (1e-12 if search else 1e-8)
        counts = differing.sum(dim=1)
        keys = torch.rand(flat_adv.shape, generator=generator, device=flat_adv.device) + (~differing).to(flat_adv.dtype)
        order = keys.argsort(dim=1)
        improved = torch.zeros(len(flat_adv), dtype=torch.bool, device=flat_adv.device)
        cost = 1 + (self.config.search_steps if search else 0)
        for position in range(int(counts.max()) if len(counts) else 0):
            rows = ((counts > position) & (spent + cost <= budget)).nonzero().squeeze(1)
            if len(rows) == 0:
                break
            pixels = order[rows, position]
            old = flat_adv[rows, pixels].clone()
            original = flat_x[rows, pixels]
            flat_adv[rows, pixels] = original
            fooled = ask(flat_adv[rows], rows)
            improved[rows[fooled]] = True
            rows, pixels, start, clean = rows[~fooled], pixels[~fooled], old[~fooled], original[~fooled]
            adversarial = start
            if search:
                for _ in range(self.config.search_steps):
                    middle = (adversarial + clean) / 2
                    flat_adv[rows, pixels] = middle
                    verdict = ask(flat_adv[rows], rows)
                    adversarial = torch.where(verdict, middle, adversarial)
                    clean = torch.where(verdict, clean, middle)
                improved[rows] |= adversarial != start
            flat_adv[rows, pixels] = adversarial
        return bool(improved.any()) and bool((spent + cost <= budget).any())
