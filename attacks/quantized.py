"""``quantized``: the threshold-aware attack on models that quantise their input before the network.

A model ``f(q(x))`` whose elementwise quantiser ``q`` binarises (or rounds to a few levels) sees only
which side of each threshold every pixel lies on.  A pixel at 0.05 must move by 0.45 before the model
sees anything, an edge pixel at 0.47 flips for 0.03: the smallest adversarial is a small set of cheap
threshold crossings, and gradient attacks that spread their budget over every pixel, or label-only
attacks that walk through a space flat almost everywhere, do not find it.  This attack searches that set:

1. **Greedy crossings.**  Each step prices every pixel's next crossing (one level up or down, away from
   its clean level) at its cost in the threat model (L2: the increase of the squared distance; L1: of the
   distance; L0: one for a pixel's first crossing, nothing for a further one; L∞: the increase of the largest
   distance), ranks them by the first-order change of the margin per unit cost
   (the input gradient of the network after ``q``, through the model's BPDA or envelope gradient, times
   the change of level; a decrease counts only up to the margin left, as in the greedy for covering
   knapsacks), measures the ``candidates`` best with the model itself and takes the best measured one.
   Where the model has no input gradient (a hard threshold), the ranking is the measured change of every
   single crossing (score queries), swept again every ``sweep_every`` steps.
2. **Cheapest completion.**  Every measured crossing that would fool the model completes a solution; the
   cheapest one seen is kept, and a point stops once its greedy set costs more than it (costs only grow).
3. **Pruning.**  The kept set's crossings are undone one at a time, the costliest first, wherever the
   example stays adversarial.

It is a minimisation attack (each point's ε* from one run), batched over images, deterministic (the
seed does not enter it), and every example is realised in pixel space and judged by the table's rule.
The quantiser comes from the defense's declaration or the diagnostics' finding (``foundation.quantizers``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attacks.base import Attack, register_attack
from foundation.errors import BenchError
from foundation.quantizers import Quantizer

#: Images per forward pass when a step measures many candidate crossings.
CHUNK_ROWS = 4096
#: Cost floor of a crossing in the ratio (a crossing inside the current L∞ budget is free).
FREE = 1e-12
#: A crossing's margin decrease counts up to the margin left plus this (what completes the point).
NEEDED_SLACK = 1e-3


@dataclass(frozen=True)
class QuantizedConfig:
    #: Crossings measured with the model per image and step: the best by the first-order estimate.
    candidates: int = 16
    #: Crossings per point before the search gives up on it (the point then stays robust).
    max_crossings: int = 300
    #: Rank crossings by the model's input gradient (BPDA / envelope) where it has one; false: score queries.
    gradients: bool = True
    #: Score-query ranking (no input gradient): every single crossing is measured at the clean point; then
    #: every ``sweep_every`` steps the ``sweep_candidates`` best by their last measurement are measured again.
    sweep_every: int = 4
    sweep_candidates: int = 128
    #: Searches against a fixed class besides the untargeted one: the classes the clean logits rank next
    #: (on the quick binarised ``cnn``, two of them took the points left from 14 % to 8 % on 50 points).
    targets: int = 2

    def __post_init__(self) -> None:
        for name in ("candidates", "max_crossings", "sweep_every", "sweep_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.targets < 0:
            raise ValueError("targets must be at least 0")


def margins(logits: Tensor, y: Tensor) -> Tensor:
    """``logit_y − max_{j≠y} logit_j``: negative exactly where the prediction is wrong."""
    own = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, y.unsqueeze(1), float("-inf")).amax(dim=1)
    return own - others


@register_attack("quantized")
class QuantizedInputs(Attack):
    description = (
        "threshold-aware: greedy, pruned threshold crossings of a quantised input (declared or found); minimisation"
    )
    Config = QuantizedConfig
    norms = frozenset({"linf", "l2", "l1", "l0"})
    minimization = True
    profile_overrides = {
        "smoke": {"candidates": 8, "max_crossings": 100, "targets": 0},
        "quick": {"max_crossings": 200},
    }
    uses_quantizer = True
    #: With ``gradients=false`` an instance needs queries only (set in ``__init__``).
    requires = frozenset({"gradients", "queries"})
    #: The model's input quantiser, handed over by the runner (declared by the defense or found by the diagnostics).
    quantizer: Quantizer | None = None

    def __init__(self, config: QuantizedConfig | None = None) -> None:
        super().__init__(config)
        self.requires = frozenset({"gradients", "queries"} if self.config.gradients else {"queries"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        if self.quantizer is None:
            raise BenchError(
                f"{self.name} needs the model's input quantiser: a defense declares it (input_quantizer), a model "
                "spec gives it (quantizer=binary), or the diagnostics find it"
            )
        search = CrossingSearch(model, x.detach(), y, self.quantizer, self.threat_model, self.config)
        result = search.run(self.config.targets)
        fooled = self.fooled(result, y)
        return torch.where(fooled.view(-1, *[1] * (x.ndim - 1)), result, x)


class CrossingSearch:
    """The greedy, completion-tracking, pruned search of one batch (see the module docstring)."""

    def __init__(
        self, model: nn.Module, x: Tensor, y: Tensor, quantizer: Quantizer, norm: str, config: QuantizedConfig
    ) -> None:
        self.model, self.y, self.norm, self.config, self.quantizer = model, y, norm, config, quantizer
        self.shape = x.shape
        self.clean = x.flatten(1)
        count, dimension = self.clean.shape
        self.below, self.above = quantizer.per_pixel(dimension, self.clean)
        self.representatives = quantizer.representatives(dimension, self.clean)
        self.top = quantizer.count
        self.clean_level = quantizer.levels(self.clean)
        self.current = self.clean.clone()
        self.best = self.clean.clone()
        self.best_cost = torch.full((count,), float("inf"), device=x.device)
        #: The class each point's margin is measured against (``None``: the closest other class).
        self.target: Tensor | None = None
        #: Score-query ranking: the measured margin decrease of each (point, direction, pixel) crossing.
        self.estimate = torch.zeros(count, 2, dimension, device=x.device)
        #: Points ranked by score queries (no input gradient).
        self.on_scores = torch.zeros(count, dtype=torch.bool, device=x.device)

    # Costs and moves ---------------------------------------------------------------------------------

    def sizes(self, flat: Tensor, rows: Tensor) -> Tensor:
        """Per-pixel distances to the clean points of ``rows`` (flat (n, D), or (n, m, D) per candidate)."""
        clean = self.clean[rows]
        return (flat - (clean.unsqueeze(1) if flat.ndim == 3 else clean)).abs()

    def objective(self, sizes: Tensor) -> Tensor:
        """What the threat model minimises, per row of per-pixel distances: Σd² (L2), Σd (L1), the number of
        changed values (L0: each channel of a colour pixel counts, an upper bound of the changed pixel positions
        the guard counts) or max d (L∞)."""
        if self.norm == "l2":
            return sizes.square().sum(dim=-1)
        if self.norm == "l1":
            return sizes.sum(dim=-1)
        if self.norm == "l0":
            return (sizes > 0).sum(dim=-1).to(sizes.dtype)
        return sizes.amax(dim=-1)

    def moves(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per row, direction (up, down) and pixel: whether the next crossing away from the clean level exists,
        the value that realises it, its cost increment and the change of the level's representative value."""
        level = self.quantizer.levels(self.current[rows])
        offset = level - self.clean_level[rows]
        up = (offset >= 0) & (level < self.top)
        down = (offset <= 0) & (level > 0)

        def pick(table: Tensor, index: Tensor) -> Tensor:
            return table.unsqueeze(0).expand(len(rows), -1, -1).gather(2, index.unsqueeze(2)).squeeze(2)

        values = torch.stack(
            [pick(self.above, level.clamp(max=self.top - 1)), pick(self.below, (level - 1).clamp(min=0))], dim=1
        )
        here = pick(self.representatives, level)
        change = torch.stack(
            [
                pick(self.representatives, (level + 1).clamp(max=self.top)) - here,
                pick(self.representatives, (level - 1).clamp(min=0)) - here,
            ],
            dim=1,
        )
        now, new = self.sizes(self.current[rows], rows), self.sizes(values, rows)
        if self.norm == "l2":
            increment = new.square() - now.square().unsqueeze(1)
        elif self.norm == "l1":
            increment = new - now.unsqueeze(1)
        elif self.norm == "l0":  # the first crossing of a pixel costs one, any further crossing nothing
            increment = ((now == 0).unsqueeze(1) & (new > 0)).to(new.dtype)
        else:
            increment = (new - now.amax(dim=1).view(-1, 1, 1)).clamp_min(0.0)
        return torch.stack([up, down], dim=1), values, increment, change

    # Model access ------------------------------------------------------------------------------------

    def _margins(self, logits: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The margin the search descends (against the target class, if any) and the one that says fooled."""
        untargeted = margins(logits, self.y[rows])
        if self.target is None:
            return untargeted, untargeted
        y, target = self.y[rows].unsqueeze(1), self.target[rows].unsqueeze(1)
        return (logits.gather(1, y) - logits.gather(1, target)).squeeze(1), untargeted

    @torch.no_grad()
    def logits(self, flat: Tensor) -> Tensor:
        """The model's logits of flattened examples, in chunks of ``CHUNK_ROWS``."""
        shape = (-1, *self.shape[1:])
        chunks = [self.model(flat[start : start + CHUNK_ROWS].view(shape)) for start in range(0, len(flat), CHUNK_ROWS)]
        return torch.cat(chunks) if chunks else flat.new_zeros(0, 1)

    def measure(self, flat: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Both margins of flattened examples (row i belongs to point ``rows[i]``)."""
        if not len(flat):
            empty = flat.new_zeros(0)
            return empty, empty
        return self._margins(self.logits(flat), rows)

    def gradient(self, rows: Tensor) -> tuple[Tensor, Tensor | None]:
        """The guiding margin at the current examples of ``rows`` and, ranking by gradients, its input gradient
        (zero where the model has none)."""
        if not self.config.gradients:
            return self.measure(self.current[rows], rows)[0], None
        with torch.enable_grad():
            x = self.current[rows].view(-1, *self.shape[1:]).clone().requires_grad_(True)
            margin, _ = self._margins(self.model(x), rows)
            if not margin.requires_grad:  # no gradient path at all (a hard threshold)
                return margin.detach(), torch.zeros_like(self.current[rows])
            (grad,) = torch.autograd.grad(margin.sum(), x, allow_unused=True)
        grad = torch.zeros_like(x) if grad is None else torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        return margin.detach(), grad.flatten(1)

    def with_crossings(self, rows: Tensor, pixel: Tensor, values: Tensor) -> Tensor:
        """The current examples of ``rows`` with one crossing each applied (flattened)."""
        flat = self.current[rows].clone()
        flat[torch.arange(len(rows), device=flat.device), pixel] = values
        return flat

    def sweep(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The logits of every possible single crossing of ``rows`` (score queries): the row (local), direction
        and pixel of each crossing and its logits."""
        valid, values, _, _ = self.moves(rows)
        local, direction, pixel = valid.nonzero(as_tuple=True)
        flat = self.with_crossings(rows[local], pixel, values[local, direction, pixel])
        return local, direction, pixel, self.logits(flat)

    # The search --------------------------------------------------------------------------------------

    def run(self, targets: int) -> Tensor:
        """Each point's cheapest adversarial found (the clean point where none was): the untargeted search,
        then one search against each of the ``targets`` classes the clean logits rank next."""
        everyone = torch.arange(len(self.clean), device=self.clean.device)
        with torch.no_grad():
            logits = self.model(self.clean.view(self.shape))
        rows = everyone[margins(logits, self.y) >= 0]
        _, grad = self.gradient(rows)
        # Points without an input gradient are ranked by score queries: every single crossing from the clean
        # point is measured once, for all the searches.
        self.on_scores[rows] = True if grad is None else grad.abs().amax(dim=1) == 0
        scored = rows[self.on_scores[rows]]
        swept = self.sweep(scored) if len(scored) else None
        ranked = logits.scatter(1, self.y.unsqueeze(1), float("-inf")).argsort(dim=1, descending=True)
        for target in [None, *ranked[:, : min(targets, logits.shape[1] - 1)].T]:
            self.target = target
            self._greedy(rows, scored, swept)
        self.target = None
        self._prune()
        self._refine()
        self._prune()
        return self.best.view(self.shape)

    def _greedy(self, rows: Tensor, scored: Tensor, swept: tuple[Tensor, Tensor, Tensor, Tensor] | None) -> None:
        """Add the best measured crossing per point until the point is fooled or costs more than its best."""
        self.current = self.clean.clone()
        self.estimate.zero_()
        if swept is not None:
            local, direction, pixel, logits = swept
            owners = scored[local]
            guide_after = self._margins(logits, owners)[0]
            with torch.no_grad():
                guide_clean = self._margins(self.model(self.clean[scored].view(-1, *self.shape[1:])), scored)[0]
            self.estimate[owners, direction, pixel] = guide_clean[local] - guide_after
        active = torch.zeros(len(self.clean), dtype=torch.bool, device=self.clean.device)
        active[rows] = True
        for step in range(self.config.max_crossings):
            rows = active.nonzero().squeeze(1)
            if not len(rows):
                break
            margin, grad = self.gradient(rows)
            scores = self.on_scores[rows]
            if step and step % self.config.sweep_every == 0 and scores.any():  # refresh the likeliest estimates
                self._expand(rows[scores], margin[scores], None, self.config.sweep_candidates)
            gain, added, usable, _, candidate = self._expand(rows, margin, grad, self.config.candidates)
            pick = self._choose(gain.minimum(margin.unsqueeze(1) + NEEDED_SLACK), added, usable)
            moving = usable.any(dim=1)
            chosen = torch.arange(len(rows), device=rows.device)[moving]
            self.current[rows[moving]] = candidate[chosen, pick[moving]]
            cost = self.objective(self.sizes(self.current[rows], rows))
            active[rows[~moving | (cost >= self.best_cost[rows])]] = False

    def _expand(
        self, rows: Tensor, margin: Tensor, grad: Tensor | None, candidates: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Measure the ``candidates`` best single crossings of each row by the first-order estimate, keep any
        cheaper completion; returns their margin decreases, cost increments, usability, pixels and examples."""
        dimension = self.clean.shape[1]
        valid, values, increment, change = self.moves(rows)
        first_order = self.estimate[rows]
        if grad is not None:
            first_order = torch.where(self.on_scores[rows].view(-1, 1, 1), first_order, -grad.unsqueeze(1) * change)
        needed = margin.view(-1, 1, 1) + NEEDED_SLACK  # a decrease beyond the margin buys nothing more
        ratio = torch.where(valid, first_order.minimum(needed) / increment.clamp_min(FREE), float("-inf")).flatten(1)
        k = min(candidates, ratio.shape[1])
        top = ratio.topk(k, dim=1).indices
        usable = valid.flatten(1).gather(1, top)
        direction, pixel = (top // dimension).flatten(), (top % dimension).flatten()
        local = torch.arange(len(rows), device=rows.device).repeat_interleave(k)
        owners = rows[local]
        candidate = self.with_crossings(owners, pixel, values[local, direction, pixel])
        guide, fooling = self.measure(candidate, owners)
        gain = (margin[local] - guide).view(len(rows), k)
        self.estimate[owners, direction, pixel] = gain.flatten()
        added = increment[local, direction, pixel].view(len(rows), k)
        total = self.objective(self.sizes(self.current[rows], rows)).unsqueeze(1) + added
        candidate = candidate.view(len(rows), k, dimension)
        self._keep_completions(rows, candidate, fooling.view(len(rows), k) < 0, total, usable)
        return gain, added, usable, pixel.view(len(rows), k), candidate

    def _choose(self, gain: Tensor, added: Tensor, usable: Tensor) -> Tensor:
        """Per row, the measured crossing with the best margin decrease per unit cost (the least harmful
        one where none decreases it)."""
        positive = usable & (gain > 0)
        ratio = torch.where(positive, gain / added.clamp_min(FREE), float("-inf"))
        fallback = torch.where(usable, gain, float("-inf")).argmax(dim=1)
        return torch.where(positive.any(dim=1), ratio.argmax(dim=1), fallback)

    def _keep_completions(self, rows: Tensor, candidate: Tensor, fools: Tensor, total: Tensor, usable: Tensor) -> None:
        """Keep, per row, the cheapest measured candidate that fools the model, where it beats the kept one."""
        cost = torch.where(usable & fools, total, float("inf"))
        cheapest, index = cost.min(dim=1)
        better = cheapest < self.best_cost[rows]
        self.best_cost[rows[better]] = cheapest[better]
        self.best[rows[better]] = candidate[better, index[better]]

    def _crossings_by_size(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The pixels each kept solution of ``rows`` changes, costliest first, and how many there are."""
        sizes = self.sizes(self.best[rows], rows)
        changed = sizes > 0
        order = torch.where(changed, sizes, -1.0).argsort(dim=1, descending=True)
        return order, changed.sum(dim=1)

    def _prune(self) -> None:
        """Undo every crossing of the kept solutions that is not needed, the costliest first."""
        found = self.best_cost.isfinite().nonzero().squeeze(1)
        if not len(found):
            return
        order, counts = self._crossings_by_size(found)
        for position in range(int(counts.max())):
            local = (counts > position).nonzero().squeeze(1)
            rows, pixel = found[local], order[local, position]
            trial = self.best[rows].clone()
            trial[torch.arange(len(rows), device=trial.device), pixel] = self.clean[rows, pixel]
            still = self.measure(trial, rows)[1] < 0
            self.best[rows[still]] = trial[still]
        self.best_cost[found] = self.objective(self.sizes(self.best[found], found))

    def _refine(self) -> None:
        """Swaps: undo one crossing of a kept solution (the costliest first) and measure the best single
        crossings from there; any cheaper completion replaces the solution."""
        found = self.best_cost.isfinite().nonzero().squeeze(1)
        if not len(found):
            return
        order, counts = self._crossings_by_size(found)
        kept = self.best[found].clone()
        for position in range(int(counts.max())):
            local = (counts > position).nonzero().squeeze(1)
            rows, pixel = found[local], order[local, position]
            self.current[rows] = kept[local]
            self.current[rows, pixel] = self.clean[rows, pixel]
            margin, grad = self.gradient(rows)
            self._expand(rows, margin, grad, self.config.candidates)
