"""Native, batched APGD in the L1 ball intersected with the [0, 1] box (l1-APGD).

Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image classifiers" (ICML 2021): the
effective threat model of an L1 attack on images is the L1 ball of radius ε *intersected with* [0, 1]^d, and
l1-APGD works on that set.  What matches AutoAttack's code (``autoattack/autopgd_base.py``, ``norm='L1'``):

- ``project_l1_box`` is the exact Euclidean projection onto the intersection (their ``L1_projection``): each
  coordinate of the perturbation is soft-thresholded by one λ per image and clipped to the room the box leaves
  it, λ being the root of a piecewise-linear function, found exactly from its sorted breakpoints (they bisect
  on the same breakpoints);
- the random start is the projection of x + N(0, I) onto that set;
- a step moves the top-k coordinates of the gradient by ±η/k each (L1 steepest ascent spread over k
  coordinates), k starting at 20 % of the values and set at every checkpoint to the number of values the best
  point so far changes, over 1.5;
- the step size η starts at ε; a checkpoint every 4 % of the iterations resets it to ε and restarts from the
  best point where that point changes at least 5 % fewer values than at the last checkpoint, and divides it by
  1.5 elsewhere (never below ε/10); like AutoAttack's L1 branch, the update takes no momentum term (the branch
  computes APGD's α = 0.75 but does not apply it: on random linear and MLP models it made the attack weaker)
  and the checkpoints take no ρ (the L∞/L2 oscillation test);
- ``use_largereps`` (``decr_eps_pgd``): three runs of the above, on radii 3ε, 2ε, ε for ⌈0.3·n⌉, ⌈0.3·n⌉ and
  the remaining iterations of n; the first starts from the projection of x + N(0, I) onto the 3ε set, each
  next from the previous run's highest-loss point projected onto its own radius, with k set from the number of
  values that start changes (over 1.5) instead of 20 %, and with its own step size (from its radius) and
  checkpoints (every 4 % of its own iterations).  Only the last run, on ε itself, decides which points are
  fooled and what comes back, so every example ends inside the ε set;
- restarts: each a fresh random start (and, with ``use_largereps``, a fresh schedule) on the points no earlier
  restart fooled, as the model predicts them;
- AutoAttack's standard L1 version (``autoattack.AutoAttack(norm='L1', version='standard')``) is APGD-CE with
  ``use_largereps`` and 5 restarts, then APGD-T with ``use_largereps``, one restart and 5 target classes:
  ``attacks.autoattack`` builds exactly that from ``apgd_l1`` and ``apgd_t_l1``;
- the losses are the cross-entropy (APGD-CE) and the targeted DLR loss (APGD-T), which attacks the most likely,
  2nd most likely, ... wrong class of the clean input one after the other on the points still standing;
- points the model already misclassifies come back unchanged.

Beyond that code: the top-k coordinates are chosen among those that can move (a value at 0 whose gradient
points down, or at 1 pointing up, is masked out, so that its share of the step is not lost to the box); a point
no iterate fooled comes back as its highest-loss iterate (over the restarts; with ``use_largereps``, of the runs
on ε) instead of the clean input (as this harness's torchattacks APGD does, for randomized defenses' fresh
draws); a fooled point as its last fooling iterate of the first restart that fooled it (AutoAttack's
``x_best_adv``); a single iteration with ``use_largereps`` is one step on 3ε followed by the projections onto
2ε and ε (AutoAttack's split needs two iterations at least).

Every random draw comes from the ``torch.Generator`` passed in; gradients are taken with respect to the input
only (parameter gradients are switched off for the call), and the model's train/eval modes are left alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation.parameters import frozen_parameters

#: The fraction of the values the first steps move (AutoAttack's initial ``topk``).
INITIAL_TOPK = 0.2
#: k at a checkpoint: the number of values the best point changes, over this.
TOPK_SHRINK = 1.5
#: The step size is divided by this at a checkpoint where the best point did not get sparser.
STEP_DECAY = 1.5
#: The step size never falls below ε over this.
MIN_STEP_FRACTION = 10.0
#: A checkpoint every this fraction of the iterations (at least every iteration).
CHECKPOINT_FRACTION = 0.04
#: The best point "got sparser" when it changes fewer values than this fraction of the last checkpoint's.
SPARSER = 0.95
#: ``use_largereps``: the radii of the runs, as multiples of ε ...
LARGE_EPS_FACTORS = (3.0, 2.0, 1.0)
#: ... and the fraction of the iterations each of the first two takes (rounded up; the last takes the rest).
LARGE_EPS_SHARE = 0.3

Loss = Literal["ce", "dlr-targeted"]
#: A per-example loss of the logits, to maximise.
Objective = Callable[[Tensor], Tensor]


def _per_example(values: Tensor, like: Tensor) -> Tensor:
    return values.view(-1, *[1] * (like.ndim - 1))


def _radii(eps: float | Tensor, x: Tensor) -> Tensor:
    """``eps`` as one radius per example of ``x``."""
    return torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(len(x)).clone()


def _l1_box_threshold(magnitude: Tensor, room: Tensor, eps: Tensor) -> Tensor:
    """Per row, the λ ≥ 0 with Σ_i min(max(magnitude_i − λ, 0), room_i) = eps (0 when λ = 0 already fits).

    The sum is piecewise linear and non-increasing in λ, with breakpoints where a coordinate leaves its box
    limit (magnitude − room) and where it reaches 0 (magnitude): it is evaluated at every sorted breakpoint
    and interpolated on the segment where it crosses eps.
    """
    start = (magnitude - room).clamp_min(0.0)
    total = (magnitude - start).sum(dim=1)
    knots, order = torch.cat((start, magnitude), dim=1).sort(dim=1)
    slopes = torch.cat((torch.ones_like(start), -torch.ones_like(magnitude)), dim=1).gather(1, order)
    shrinking = slopes.cumsum(dim=1)  # how many coordinates shrink between a knot and the next
    drops = shrinking * torch.diff(knots, dim=1, append=knots[:, -1:])
    sums = total.unsqueeze(1) - (drops.cumsum(dim=1) - drops)  # the sum at each knot
    eps = eps.unsqueeze(1)
    last = ((sums >= eps).sum(dim=1, keepdim=True) - 1).clamp_min(0)
    threshold = knots.gather(1, last) + (sums.gather(1, last) - eps) / shrinking.gather(1, last).clamp_min(1.0)
    return torch.where(total > eps.squeeze(1), threshold.squeeze(1), torch.zeros_like(total))


def project_l1_box(x: Tensor, x_adv: Tensor, eps: float | Tensor) -> Tensor:
    """The Euclidean projection of ``x_adv`` onto {z : ‖z − x‖₁ ≤ eps, z ∈ [0, 1]^d}, per example (``eps``: one
    radius, or one per example).

    Exact (computed in float64): each coordinate of ``x_adv − x`` is soft-thresholded by one λ per example and
    clipped to the room the box leaves it on its side.  Examples already inside come back as they are.
    """
    radii = _radii(eps, x)
    flat_x = x.flatten(1).double()
    delta = x_adv.flatten(1).double() - flat_x
    room = torch.where(delta > 0, 1.0 - flat_x, flat_x)
    threshold = _l1_box_threshold(delta.abs(), room, radii.double()).unsqueeze(1)
    moved = delta.sign() * torch.minimum((delta.abs() - threshold).clamp_min(0.0), room)
    projected = (flat_x + moved).clamp_(0.0, 1.0).to(x.dtype).view_as(x)
    inside = (x_adv - x).flatten(1).abs().sum(dim=1) <= radii
    inside &= ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(dim=1)
    return torch.where(_per_example(inside, x), x_adv, projected)


def l1_ascent_step(grad: Tensor, x_adv: Tensor, topk: Tensor) -> Tensor:
    """l1-APGD's direction of unit L1 norm: ±1/k on the k = ``topk``·d largest gradient coordinates that can
    still move (a value at 0 whose gradient points down, or at 1 pointing up, cannot), 0 elsewhere."""
    blocked = ((x_adv <= 0) & (grad < 0)) | ((x_adv >= 1) & (grad > 0))
    grad = grad.masked_fill(blocked, 0.0)
    magnitude = grad.abs().flatten(1)
    values = magnitude.shape[1]
    rank = ((1.0 - topk) * values).long().clamp(0, values - 1).unsqueeze(1)
    cutoff = magnitude.sort(dim=1).values.gather(1, rank)
    direction = grad.sign() * (magnitude >= cutoff).view_as(grad)
    count = direction.abs().flatten(1).sum(dim=1)
    return direction / _per_example(count.clamp_min(1.0), grad)


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Croce & Hein's targeted DLR loss per example, to maximise: −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)."""
    ordered = logits.sort(dim=1).values
    rows = torch.arange(len(y), device=logits.device)
    scale = ordered[:, -1] - 0.5 * (ordered[:, -3] + ordered[:, -4]) + 1e-12
    return -(logits[rows, y] - logits[rows, target]) / scale


def _loss_and_gradient(model: nn.Module, x_adv: Tensor, loss: Objective) -> tuple[Tensor, Tensor, Tensor]:
    """Logits, per-example loss and the loss's input gradient at ``x_adv`` (zeros where it has no gradient path;
    materialised where autograd hands back an expanded tensor, which the iterations write into)."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        values = loss(logits)
        grad = None
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), x_adv, allow_unused=True)
    return logits.detach(), values.detach(), torch.zeros_like(x_adv) if grad is None else grad.detach().contiguous()


class _Run(NamedTuple):
    """What one l1-APGD run found per point."""

    best: Tensor  # the highest-loss iterate
    loss: Tensor  # its loss
    fooled: Tensor  # whether an iterate fooled the model
    fooling: Tensor  # the last iterate that did (the start where none did)

    @property
    def examples(self) -> Tensor:
        """The last fooling iterate where one fooled the model, else the highest-loss iterate."""
        return torch.where(_per_example(self.fooled, self.best), self.fooling, self.best)


def _random_start(x: Tensor, eps: Tensor, generator: torch.Generator) -> Tensor:
    """The projection of x + N(0, I) onto the L1 ball of radius ``eps`` within the box."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return project_l1_box(x, x + noise, eps)


def _changed_values(x_adv: Tensor, x: Tensor) -> Tensor:
    return (x_adv != x).flatten(1).sum(dim=1).to(x.dtype)


@torch.no_grad()
def _single_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: Tensor,
    steps: int,
    objective: Objective,
    generator: torch.Generator,
    x_init: Tensor | None = None,
) -> _Run:
    """One l1-APGD run of ``steps`` iterations on every point of ``x`` (AutoAttack's ``attack_single_run``): from
    a random start with k at 20 % of the values, or from ``x_init`` (inside the ball) with k set from the number
    of values it changes."""
    values = x[0].numel()
    if x_init is None:
        x_adv = _random_start(x, eps, generator)
        topk = torch.full_like(eps, INITIAL_TOPK)
        changed_before = torch.full_like(eps, values)
    else:
        x_adv = x_init.clone()
        changed_before = _changed_values(x_adv, x)
        topk = changed_before / values / TOPK_SHRINK
    logits, loss_now, grad = _loss_and_gradient(model, x_adv, objective)
    fooled = logits.argmax(dim=1) != y
    x_fooling = x_adv.clone()
    x_best, loss_best, grad_best = x_adv.clone(), loss_now.clone(), grad.clone()
    step_size = eps.clone()
    checkpoint = max(int(CHECKPOINT_FRACTION * steps), 1)
    for i in range(steps):
        x_adv = project_l1_box(x, x_adv + _per_example(step_size, x) * l1_ascent_step(grad, x_adv, topk), eps)
        logits, loss_now, grad = _loss_and_gradient(model, x_adv, objective)
        fooling = logits.argmax(dim=1) != y
        x_fooling[fooling] = x_adv[fooling]
        fooled |= fooling
        better = loss_now > loss_best
        x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], loss_now[better]
        if (i + 1) % checkpoint == 0:
            changed = _changed_values(x_best, x)
            sparser = changed < SPARSER * changed_before
            topk = changed / values / TOPK_SHRINK
            step_size = torch.where(sparser, eps, step_size / STEP_DECAY)
            step_size = torch.minimum(torch.maximum(step_size, eps / MIN_STEP_FRACTION), eps)
            changed_before = changed
            x_adv[sparser], grad[sparser] = x_best[sparser], grad_best[sparser]
    return _Run(x_best, loss_best, fooled, x_fooling)


def large_eps_schedule(steps: int) -> list[tuple[float, int]]:
    """AutoAttack's ``use_largereps`` schedule for ``steps`` iterations: (radius over ε, iterations) per run,
    ⌈0.3·steps⌉ on 3ε, as many on 2ε, the rest on ε (one iteration: that one on 3ε, none on 2ε and ε)."""
    early = math.ceil(LARGE_EPS_SHARE * steps)
    second = min(early, steps - early)
    return list(zip(LARGE_EPS_FACTORS, (early, second, steps - early - second), strict=True))


def _large_eps_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: Tensor,
    steps: int,
    objective: Objective,
    generator: torch.Generator,
) -> _Run:
    """AutoAttack's ``decr_eps_pgd``: ``large_eps_schedule(steps)``'s runs, the first from a random start in the
    3ε ball, each next from the previous one's highest-loss point projected onto its radius; the last run, on ε,
    is the result."""
    x_init = _random_start(x, LARGE_EPS_FACTORS[0] * eps, generator)
    for factor, stage_steps in large_eps_schedule(steps):
        radii = factor * eps
        run = _single_run(
            model, x, y, radii, stage_steps, objective, generator, x_init=project_l1_box(x, x_init, radii)
        )
        x_init = run.best
    return run


def _objective(y: Tensor, target: Tensor | None) -> Objective:
    """The cross-entropy towards y, or the targeted DLR loss from y towards ``target``."""
    if target is None:
        return functools.partial(F.cross_entropy, target=y, reduction="none")
    return functools.partial(targeted_dlr_loss, y=y, target=target)


def _target_classes(logits: Tensor, y: Tensor, rank: int) -> Tensor:
    """The ``rank``-th most likely class other than y (1: the most likely wrong class)."""
    others = logits.scatter(1, y.unsqueeze(1), float("-inf"))
    return others.argsort(dim=1, descending=True)[:, rank - 1]


def apgd_l1(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    steps: int,
    generator: torch.Generator,
    *,
    loss: Loss = "ce",
    target_class_rank: int | None = None,
    n_restarts: int = 1,
    use_largereps: bool = False,
) -> Tensor:
    """l1-APGD, ``n_restarts`` runs of ``steps`` iterations each, in the L1 ball of radius ``eps`` around x (one
    radius, or one per example) within [0, 1]; with ``use_largereps``, each run is AutoAttack's large-ε schedule
    (``large_eps_schedule``: 3ε, 2ε, then ε).

    ``loss="ce"``: APGD-CE, untargeted.  ``loss="dlr-targeted"``: the targeted DLR loss towards each point's
    ``target_class_rank``-th most likely wrong class at x (1: the most likely; needs at least 4 classes).
    Each restart runs on the points no earlier one fooled.  Points the model misclassifies at x come back
    unchanged; the others as the last iterate that fooled the model in the first restart that did, or the
    highest-loss iterate of all restarts where none did.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if n_restarts < 1:
        raise ValueError("n_restarts must be at least 1")
    if (loss == "dlr-targeted") != (target_class_rank is not None):
        raise ValueError("target_class_rank goes with loss='dlr-targeted', and only with it")
    x, y = x.detach(), y.detach()
    radii = _radii(eps, x)
    x_adv = x.clone()
    if not (radii > 0).any():
        return x_adv
    with frozen_parameters(model):
        with torch.no_grad():
            logits = model(x)
        index = (logits.argmax(dim=1) == y).nonzero().squeeze(1)
        if not len(index):
            return x_adv
        x_run, y_run, radii_run = x[index], y[index], radii[index]
        target = None
        if target_class_rank is not None:
            classes = logits.shape[1]
            if classes < 4 or not 1 <= target_class_rank < classes:
                raise ValueError(
                    f"the targeted DLR loss needs at least 4 classes and a target rank in [1, {classes - 1}]; "
                    f"got rank {target_class_rank} of {classes} classes"
                )
            target = _target_classes(logits[index], y_run, target_class_rank)
        run_once = _large_eps_run if use_largereps else _single_run
        found, loss_found = x_run.clone(), torch.full_like(radii_run, float("-inf"))
        standing = torch.ones_like(y_run, dtype=torch.bool)
        for restart in range(n_restarts):
            at = standing.nonzero().squeeze(1)
            if not len(at):
                break
            objective = _objective(y_run[at], None if target is None else target[at])
            run = run_once(model, x_run[at], y_run[at], radii_run[at], steps, objective, generator)
            keep = run.fooled | (run.loss > loss_found[at]) | (restart == 0)  # the first restart sets every point
            found[at[keep]], loss_found[at[keep]] = run.examples[keep], run.loss[keep]
            standing[at[run.fooled]] = False
        x_adv[index] = found
    return x_adv


def apgd_t_l1(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float | Tensor,
    steps: int,
    generator: torch.Generator,
    *,
    n_target_classes: int,
    use_largereps: bool = False,
) -> Tensor:
    """APGD-T in L1: l1-APGD (one run; with ``use_largereps``, AutoAttack's large-ε schedule) on the targeted
    DLR loss towards the most likely, 2nd most likely, ..., ``n_target_classes``-th most likely wrong class,
    each run on the points no earlier run fooled (as the model predicts them).

    A point no run fools keeps the last run's highest-loss iterate; points misclassified at x come back
    unchanged.
    """
    if n_target_classes < 1:
        raise ValueError("n_target_classes must be at least 1")
    x, y = x.detach(), y.detach()
    radii = _radii(eps, x)
    x_adv = x.clone()
    standing = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for rank in range(1, n_target_classes + 1):
        index = standing.nonzero().squeeze(1)
        if not len(index):
            break
        candidates = apgd_l1(
            model,
            x[index],
            y[index],
            radii[index],
            steps,
            generator,
            loss="dlr-targeted",
            target_class_rank=rank,
            use_largereps=use_largereps,
        )
        x_adv[index] = candidates
        with torch.no_grad(), frozen_parameters(model):
            standing[index] = model(candidates).argmax(dim=1) == y[index]
    return x_adv
