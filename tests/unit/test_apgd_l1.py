"""Native l1-APGD (``attacks.apgd_l1``) and the ``apgd``/``autoattack`` attacks in L1: the exact L1-box projection,
AutoAttack's large-ε schedule and restarts, its standard L1 members, the threat-model guard, seeding, and strength
against the closed-form minimal L1 perturbation of linear models."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attacks.apgd_l1 as apgd_l1_module
from attacks.apgd_l1 import apgd_l1, apgd_t_l1, l1_ascent_step, large_eps_schedule, project_l1_box
from attacks.base import ATTACKS, perturbation_size
from tests.conftest import accuracy

SPECS = {"apgd": "apgd:steps=20", "autoattack": "autoattack:apgd_steps=20"}
#: The guard's slack for L1: a float32 rounding per value.
SLACK = 1e-6


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: one intra-op thread runs them fastest (on a shared CPU several threads spin against
    each other, ten times slower); the setting is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(name: str):
    return ATTACKS.build(SPECS[name], "smoke").for_threat_model("l1")


def linear(inputs: int, classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, classes)).eval().requires_grad_(False)


def in_ball_and_box(x: torch.Tensor, x_adv: torch.Tensor, eps) -> bool:
    sizes = perturbation_size(x, x_adv, "l1")
    return bool((sizes <= torch.as_tensor(eps) + SLACK * x[0].numel()).all() and x_adv.min() >= 0 and x_adv.max() <= 1)


def bisection_projection(x: torch.Tensor, point: torch.Tensor, eps: float) -> torch.Tensor:
    """Reference: the projection onto {‖z − x‖₁ ≤ eps} ∩ [0, 1]^d is soft-thresholding of z − x by the λ ≥ 0
    that spends exactly eps, each coordinate clipped to the box: λ found by bisection, in float64."""
    x, delta = x.double(), point.double() - x.double()
    room = torch.where(delta > 0, 1 - x, x)

    def moved(threshold: float) -> torch.Tensor:
        return delta.sign() * torch.minimum((delta.abs() - threshold).clamp_min(0), room)

    if moved(0.0).abs().sum() <= eps:
        return x + moved(0.0)
    low, high = 0.0, float(delta.abs().max())
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if moved(middle).abs().sum() > eps else (low, middle)
    return x + moved(high)


def minimal_l1(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The smallest L1 perturbation within [0, 1] that misclassifies each point under a linear model: against
    each other class j, move the coordinates with the largest |w_y − w_j| as far as the box allows, in turn,
    until the margin is spent (a fractional knapsack, so greedy is exact); the cheapest class wins."""
    weight, bias = model[1].weight.double(), model[1].bias.double()
    flat = x.flatten(1).double()
    logits = flat @ weight.T + bias
    best = torch.full((len(x),), float("inf"), dtype=torch.float64)
    for j in range(weight.shape[0]):
        gain = weight[y] - weight[j]
        margin = logits.gather(1, y[:, None]).squeeze(1) - logits[:, j]
        rates, order = gain.abs().sort(dim=1, descending=True)
        room = torch.where(gain > 0, flat, 1 - flat).gather(1, order)
        spent = (rates * room).cumsum(dim=1)
        before = spent - rates * room
        last = (spent < margin[:, None]).sum(dim=1, keepdim=True)
        feasible = (last.squeeze(1) < flat.shape[1]) & (y != j)
        last = last.clamp(max=flat.shape[1] - 1)
        cost = (room.cumsum(dim=1) - room).gather(1, last) + (margin[:, None] - before.gather(1, last)) / rates.gather(
            1, last
        )
        best = torch.where(feasible, torch.minimum(best, cost.squeeze(1)), best)
    return best


def fooled(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(dim=1) != y


class Recording(nn.Module):
    """Wraps a model and records every input it sees, and whether it was a gradient call (an attack iteration)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls: list[tuple[torch.Tensor, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), x.requires_grad))
        return self.model(x)

    def gradient_calls(self) -> list[torch.Tensor]:
        return [x for x, gradient in self.calls if gradient]

    def gradient_runs(self) -> list[int]:
        """The lengths of the runs of consecutive gradient calls (an attack's iterations between its other calls)."""
        runs = [0]
        for _, gradient in self.calls:
            if gradient:
                runs[-1] += 1
            elif runs[-1]:
                runs.append(0)
        return [run for run in runs if run]


class Unfoolable(nn.Module):
    """Fixed logits (class 0 first) that no input changes, with a gradient path of zeros: nothing is ever fooled."""

    def __init__(self, classes: int):
        super().__init__()
        self.logits = torch.linspace(1.0, 0.0, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)


# --- the projection ---------------------------------------------------------------------------------------------


def random_problem(generator: torch.Generator, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in [0, 1] (a third of the values on the box's faces) and far-off targets around them."""
    x = torch.rand(n, d, generator=generator)
    x[:, : d // 3] = torch.randint(0, 2, (n, d // 3), generator=generator).float()
    return x, x + 2 * torch.randn(n, d, generator=generator)


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0, 10.0, 200.0])
def test_projection_lands_in_the_ball_and_the_box(eps):
    x, point = random_problem(seeded(1), 32, 3 * 8 * 8)
    x, point = x.view(32, 3, 8, 8), point.view(32, 3, 8, 8)
    projected = project_l1_box(x, point, eps)
    assert in_ball_and_box(x, projected, eps)
    if eps < 50:  # far-off targets: the ball binds, and the projection spends all of it
        assert torch.allclose(perturbation_size(x, projected, "l1"), torch.full((32,), eps), atol=1e-4)


def test_projection_takes_one_radius_per_example():
    x, point = random_problem(seeded(2), 4, 16)
    radii = torch.tensor([0.0, 0.5, 2.0, 5.0])
    projected = project_l1_box(x, point, radii)
    for i, eps in enumerate(radii.tolist()):
        assert torch.equal(projected[i : i + 1], project_l1_box(x[i : i + 1], point[i : i + 1], eps))
    assert torch.equal(projected[0], x[0])


def test_projection_leaves_points_already_inside_unchanged():
    x, point = random_problem(seeded(3), 16, 64)
    inside = project_l1_box(x, point, 1.5)
    assert torch.equal(project_l1_box(x, inside, 1.5), inside)
    assert torch.equal(project_l1_box(x, inside, 3.0), inside)
    assert torch.equal(project_l1_box(x, x, 0.0), x)


def test_projection_matches_a_bisection_reference_on_small_vectors():
    generator = seeded(4)
    for _ in range(100):
        d = int(torch.randint(1, 13, (1,), generator=generator))
        x, point = random_problem(generator, 1, d)
        point = x + (point - x) * float(torch.rand(1, generator=generator))
        eps = float(torch.rand(1, generator=generator)) * d / 3
        expected = bisection_projection(x[0], point[0], eps)
        assert torch.allclose(project_l1_box(x, point, eps)[0].double(), expected, atol=1e-5), (x, point, eps)


def test_the_step_skips_values_the_box_holds_and_has_unit_l1_norm():
    x_adv = torch.tensor([[0.0, 1.0, 0.5, 0.0, 1.0, 0.3]])
    grad = torch.tensor([[-9.0, 8.0, 1.0, 3.0, -2.0, 0.5]])  # the two largest push out of the box
    step = l1_ascent_step(grad, x_adv, torch.tensor([0.5]))
    assert torch.allclose(step, torch.tensor([[0.0, 0.0, 1 / 3, 1 / 3, -1 / 3, 0.0]]))


# --- the attacks in L1: guard, seeding, inputs ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_examples_stay_in_the_l1_ball_and_the_box_at_every_epsilon(name, linear_model, images, labels):
    epsilons = [0.0, 0.1, 1.0, 4.0, 32.0]
    curve = build(name).run_curve(linear_model, images, labels, epsilons, generator=seeded())
    assert torch.equal(curve[0], images)
    for eps, x_adv in zip(epsilons, curve, strict=True):
        assert in_ball_and_box(images, x_adv, eps)
    rates = [accuracy(linear_model, x_adv, labels) for x_adv in curve]
    assert rates == sorted(rates, reverse=True) and rates[-1] == 0.0


@pytest.mark.parametrize("name", list(SPECS))
def test_three_channel_images_stay_in_the_l1_ball_and_the_box(name):
    model = linear(3 * 6 * 6, 10)
    x = torch.rand(16, 3, 6, 6, generator=seeded(5))
    x[:, 0, :2] = 1.0  # values on the box's faces
    x[:, 1, :2] = 0.0
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    for eps in (0.05, 0.7, 3.0, 54.0):
        x_adv = build(name)(model, x, y, eps, generator=seeded())
        assert in_ball_and_box(x, x_adv, eps)


@pytest.mark.parametrize("name", list(SPECS))
def test_l1_results_are_seeded_by_the_generator_and_leave_global_rngs_alone(name, linear_model, images, labels):
    x, y = images[:16], labels[:16]
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    first, again, other = (build(name)(linear_model, x, y, 0.5, generator=seeded(seed)) for seed in (5, 5, 6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


def test_eps_zero_returns_the_inputs(linear_model, images, labels):
    assert torch.equal(apgd_l1(linear_model, images, labels, 0.0, 5, seeded()), images)
    assert torch.equal(apgd_t_l1(linear_model, images, labels, 0.0, 5, seeded(), n_target_classes=3), images)
    for name in SPECS:
        assert torch.equal(build(name)(linear_model, images, labels, 0.0, generator=seeded()), images)


@pytest.mark.parametrize("name", list(SPECS))
def test_points_already_misclassified_come_back_unchanged(name, linear_model, images, labels):
    wrong = labels.clone()
    wrong[:32] = (labels[:32] + 1) % 10
    x_adv = build(name)(linear_model, images, wrong, 8.0, generator=seeded())
    assert torch.equal(x_adv[:32], images[:32])
    assert accuracy(linear_model, x_adv[32:], wrong[32:]) == 0.0


def test_l1_autoattack_is_apgd_then_targeted_apgd(linear_model, images, labels):
    """Same generator: the first restart of AutoAttack's first member is the ``apgd`` run, later restarts and APGD-T
    only add; where the criterion calls nothing fooled, every point keeps APGD-CE's example, which is ``apgd``'s
    wherever that one fooled the model."""
    eps = 1.0
    x_apgd = build("apgd")(linear_model, images, labels, eps, generator=seeded())
    x_aa = build("autoattack")(linear_model, images, labels, eps, generator=seeded())
    fooled_apgd, fooled_aa = fooled(linear_model, x_apgd, labels), fooled(linear_model, x_aa, labels)
    assert 0 < fooled_apgd.sum() < fooled_aa.sum() < len(labels)
    assert (fooled_aa | ~fooled_apgd).all()
    never = build("autoattack")(
        linear_model, images, labels, eps, generator=seeded(), criterion=lambda x, y: torch.zeros(len(y), dtype=bool)
    )
    assert torch.equal(never[fooled_apgd], x_apgd[fooled_apgd])
    assert fooled(linear_model, never, labels).sum() > fooled_apgd.sum()  # the 4 later restarts fool more


@pytest.mark.parametrize(("classes", "targets"), [(10, 5), (5, 4)])
def test_l1_autoattack_runs_5_restarts_of_apgd_ce_then_5_targets_of_apgd_t(classes, targets):
    """AutoAttack's standard L1 version, seen from the model: APGD-CE's 5 restarts back to back (each a large-ε
    schedule of ``apgd_steps`` iterations, so steps + 3 gradient calls with the three runs' starts), then APGD-T's
    target classes, one restart each, capped by the classes − 1; ``apgd`` is one such restart."""
    steps, x = 20, torch.rand(8, 1, 4, 4, generator=seeded(7))
    y = torch.zeros(8, dtype=torch.long)
    for name, runs in (("autoattack", [5 * (steps + 3)] + [steps + 3] * targets), ("apgd", [steps + 3])):
        model = Recording(Unfoolable(classes))
        build(name)(model, x, y, 0.5, generator=seeded())
        assert model.gradient_runs() == runs
        assert all(len(call) == len(x) for call in model.gradient_calls())


def test_the_large_eps_schedule_is_autoattacks_split_of_the_iterations():
    """``use_largereps``: ⌈0.3 n⌉ iterations on 3ε, as many on 2ε, the rest on ε (AutoAttack's ``iters``)."""
    assert large_eps_schedule(100) == [(3.0, 30), (2.0, 30), (1.0, 40)]
    assert large_eps_schedule(10) == [(3.0, 3), (2.0, 3), (1.0, 4)]
    assert large_eps_schedule(1) == [(3.0, 1), (2.0, 0), (1.0, 0)]
    for steps in range(2, 120):
        early = math.ceil(0.3 * steps)
        assert large_eps_schedule(steps) == [(3.0, early), (2.0, early), (1.0, steps - 2 * early)]


def test_the_large_eps_runs_shrink_the_ball_and_end_inside_epsilon(linear_model, images, labels):
    """Three runs on 3ε, 2ε, ε: each starts on its radius's sphere (the random start, then the previous run's
    best point projected) and iterates inside it; the examples end inside ε."""
    eps, steps = 1.0, 10
    model = Recording(linear_model)
    x_adv = apgd_l1(model, images, labels, eps, steps, seeded(), use_largereps=True)
    assert in_ball_and_box(images, x_adv, eps)
    calls = model.gradient_calls()
    assert len(calls) == steps + 3
    first = 0
    for factor, stage_steps in large_eps_schedule(steps):
        sizes = torch.stack([perturbation_size(images, x, "l1") for x in calls[first : first + stage_steps + 1]])
        assert torch.allclose(sizes[0], torch.full((len(images),), factor * eps), atol=1e-4)
        assert (sizes <= factor * eps + 1e-4).all()
        first += stage_steps + 1
    assert (sizes[1:].amax(dim=0) > 0.99 * eps).all()  # the last run's iterates use the ball, not a smaller one


def test_each_large_eps_run_sets_k_from_the_values_its_start_changes(monkeypatch, linear_model, images, labels):
    """AutoAttack's ``x_init`` branch: a run handed its start (every run of the schedule, the first included) takes
    k as the share of values that start changes, over 1.5; a run from its own random start takes 20 %."""
    shares = []

    def recording_step(grad: torch.Tensor, x_adv: torch.Tensor, topk: torch.Tensor) -> torch.Tensor:
        shares.append(topk.clone())
        return l1_ascent_step(grad, x_adv, topk)

    monkeypatch.setattr(apgd_l1_module, "l1_ascent_step", recording_step)
    model = Recording(linear_model)
    apgd_l1(model, images, labels, 1.0, 10, seeded(), use_largereps=True)
    calls, call, step = model.gradient_calls(), 0, 0
    for _, stage_steps in large_eps_schedule(10):
        changed = (calls[call] != images).flatten(1).sum(dim=1)
        assert torch.allclose(shares[step], changed / images[0].numel() / 1.5)
        call, step = call + stage_steps + 1, step + stage_steps
    assert len(shares) == 10 and (shares[0] < 0.2).all()
    apgd_l1(linear_model, images, labels, 1.0, 10, seeded())
    assert torch.equal(shares[10], torch.full((len(images),), 0.2))


def test_restarts_run_only_on_the_points_still_standing(linear_model, images, labels):
    """Half the points get a radius that fools them in the first restart, half one that fools none (half their
    minimal perturbation): the later restarts run on the second half alone, each from a fresh random start; the
    first restart is the one-restart run, and a point nothing fools keeps the highest-loss example of all
    restarts."""
    even = torch.arange(len(images)) % 2 == 0
    radii = torch.where(even, 32.0, 0.5 * minimal_l1(linear_model, images, labels).float())
    model = Recording(linear_model)
    x_adv = apgd_l1(model, images, labels, radii, 6, seeded(), n_restarts=3, use_largereps=True)
    once = apgd_l1(linear_model, images, labels, radii, 6, seeded(), use_largereps=True)
    assert torch.equal(fooled(linear_model, once, labels), even)
    assert torch.equal(x_adv[even], once[even])
    calls = model.gradient_calls()
    assert [len(x) for x in calls] == [len(images)] * 9 + [len(images) // 2] * 18
    assert all(in_ball_and_box(images[~even], x, 3 * radii[~even]) for x in calls[9:])  # 3ε: the schedule's first run
    starts = [calls[0][~even], calls[9], calls[18]]
    assert not torch.equal(starts[0], starts[1]) and not torch.equal(starts[1], starts[2])  # fresh random starts
    with torch.no_grad():
        losses = [F.cross_entropy(linear_model(x[~even]), labels[~even], reduction="none") for x in (x_adv, once)]
    assert (losses[0] >= losses[1]).all() and (losses[0] > losses[1]).any()


def test_l1_runs_are_native_and_leave_the_model_as_deployed(linear_model, images, labels):
    model = nn.Sequential(nn.Flatten(), nn.Dropout(p=0.0), nn.Linear(64, 10))
    model[2].load_state_dict(linear_model[1].state_dict())
    model.eval()
    model[1].train()
    modes = [module.training for module in model.modules()]
    for name in SPECS:
        attack = build(name)
        assert attack.backend == "native" and attack.for_threat_model("linf").backend == "torchattacks"
        attack(model, images, labels, 0.5, generator=seeded())
        assert [module.training for module in model.modules()] == modes
        assert all(parameter.requires_grad and parameter.grad is None for parameter in model.parameters())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss": "dlr-targeted"}, "target_class_rank goes with"),
        ({"target_class_rank": 1}, "target_class_rank goes with"),
        ({"loss": "dlr-targeted", "target_class_rank": 10}, r"target rank in \[1, 9\]"),
    ],
)
def test_bad_arguments_are_rejected(options, message, linear_model, images, labels):
    with pytest.raises(ValueError, match=message):
        apgd_l1(linear_model, images, labels, 1.0, 5, seeded(), **options)


# --- strength against the closed-form minimum ------------------------------------------------------------------


def test_the_closed_form_minimum_is_tight():
    """The reference itself: its perturbation, built coordinate by coordinate, stays in the box and brings a
    binary linear model exactly onto its decision boundary."""
    model = linear(64, 2)
    x = torch.rand(1, 64, generator=seeded(6))
    y = model(x).argmax(dim=1)
    gain = (model[1].weight[y] - model[1].weight[1 - y]).squeeze(0).double()
    offset = float(model[1].bias[y] - model[1].bias[1 - y])
    flat = x[0].double()
    margin = float(gain @ flat) + offset
    delta = torch.zeros(64, dtype=torch.float64)
    for i in gain.abs().argsort(descending=True).tolist():
        room = float(flat[i] if gain[i] > 0 else 1 - flat[i])
        delta[i] = -gain[i].sign() * min(room, margin / float(gain[i].abs()))
        margin -= float(delta[i].abs() * gain[i].abs())
        if margin <= 1e-12:
            break
    assert delta.abs().sum().item() == pytest.approx(float(minimal_l1(model, x, y)[0]), rel=1e-9)
    assert float(gain @ (flat + delta)) + offset == pytest.approx(0, abs=1e-9)
    assert ((flat + delta) >= 0).all() and ((flat + delta) <= 1).all()


def test_apgd_ce_nears_the_minimal_l1_perturbation_of_a_binary_linear_model(images):
    """On a binary linear model the cross-entropy falls with the margin, so APGD-CE maximises the right thing.
    l1-APGD moves its top-k coordinates by equal amounts, and on a linear model it can settle on an equal split
    between the best two coordinates (k never falls below 2 while two values change): one run with the large-ε
    schedule (``apgd``, and AutoAttack's first restart), a few percent above the minimum, fools about two thirds
    of the points (about half without the schedule), a quarter above every point."""
    model = linear(64, 2)
    y = model(images).argmax(dim=1)
    minimum = minimal_l1(model, images, y).float()
    assert torch.isfinite(minimum).all()
    rates = {
        factor: fooled(model, apgd_l1(model, images, y, minimum * factor, 50, seeded(), use_largereps=True), y)
        .float()
        .mean()
        .item()
        for factor in (0.97, 1.03, 1.1, 1.25)
    }
    assert rates[0.97] == 0.0
    assert 0.6 <= rates[1.03] <= rates[1.1] <= rates[1.25] == 1.0
    assert rates[1.1] >= 0.8


def test_apgd_t_nears_the_minimal_l1_perturbation_of_a_multiclass_linear_model(linear_model, images, labels):
    """Targeted DLR over the 5 most likely other classes with the large-ε schedule (AutoAttack's L1 APGD-T) finds
    each point's cheapest class: 3 % above the minimum it fools (nearly) every point, where the same runs without
    the schedule leave about one in six standing."""

    def rate(factor: float, use_largereps: bool = True) -> float:
        x_adv = apgd_t_l1(
            linear_model,
            images,
            labels,
            minimum * factor,
            50,
            seeded(),
            n_target_classes=5,
            use_largereps=use_largereps,
        )
        return fooled(linear_model, x_adv, labels).float().mean().item()

    minimum = minimal_l1(linear_model, images, labels).float()
    assert rate(0.97) == 0.0
    assert rate(1.03) >= 0.95 > rate(1.03, use_largereps=False)
    assert rate(1.25) == 1.0


def test_l1_autoattack_fools_the_points_whose_minimum_is_well_inside_the_ball(linear_model, images, labels):
    """One ε for the batch: no point whose minimal L1 perturbation exceeds ε is fooled, every point whose minimum
    lies 3 % below it is."""
    minimum = minimal_l1(linear_model, images, labels).float()
    eps = float(minimum.median())
    x_adv = build("autoattack")(linear_model, images, labels, eps, generator=seeded())
    was_fooled = fooled(linear_model, x_adv, labels)
    assert not was_fooled[minimum > eps * (1 + 1e-4)].any()
    assert was_fooled[minimum * 1.03 <= eps].all()
