"""The native attacks (fgsm, pgd, deepfool) in the L2 threat model, PGD's restarts, and unchanged L∞ results."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attacks.base import ATTACKS, Attack, perturbation_size, project_linf
from attacks.criteria import RepeatedMisclassification
from attacks.deepfool import _closest_boundary_step, deepfool
from attacks.gradient import cross_entropy_objective, input_gradient, pgd_ascent
from foundation.errors import BenchError
from foundation.registry import Spec
from tests.conftest import accuracy

NATIVE = ["fgsm", "pgd", "deepfool"]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(spec: str, norm: str = "l2", profile: str = "quick") -> Attack:
    return ATTACKS.build(Spec.parse(spec), profile).for_threat_model(norm)


def l2_norms(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return perturbation_size(x, x_adv, "l2")


@pytest.mark.parametrize("name", NATIVE)
def test_l2_attack_stays_in_the_ball_and_the_box_and_fools_the_model(name, linear_model, images, labels):
    epsilons = [0.0, 0.5, 2.0]
    curve = build(name).run_curve(linear_model, images, labels, epsilons, generator=seeded())
    assert torch.equal(curve[0], images)
    for eps, x_adv in zip(epsilons, curve, strict=True):
        assert l2_norms(images, x_adv).max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(linear_model, curve[2], labels) < 0.1 < accuracy(linear_model, curve[1], labels)


@pytest.mark.parametrize("name", NATIVE)
def test_native_attacks_support_both_norms(name):
    attack = ATTACKS.build(name, "quick")
    assert attack.norms == {"linf", "l2"}
    assert attack.threat_model == "linf"
    assert attack.for_threat_model("l2").threat_model == "l2"


def test_an_attack_without_l2_refuses_the_l2_threat_model():
    class LinfOnly(Attack):
        name = "test.linf-only"

        def _run(self, model, x, y, eps, generator):
            return x.clone()

    with pytest.raises(BenchError, match="does not run in the l2 threat model"):
        LinfOnly().for_threat_model("l2")


def test_l2_fgsm_is_the_fast_gradient_method(linear_model, images, labels):
    gradient = input_gradient(linear_model, images, labels)
    unit = gradient / gradient.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    expected = (images + 0.7 * unit).clamp(0, 1)
    assert torch.allclose(build("fgsm")(linear_model, images, labels, 0.7), expected, atol=1e-6)


def test_pgd_l2_at_eps_zero_returns_the_inputs(linear_model, images, labels):
    assert torch.equal(build("pgd")(linear_model, images, labels, 0.0, generator=seeded()), images)
    objective = cross_entropy_objective(linear_model, labels)
    x_adv = pgd_ascent(objective, images, 0.0, steps=3, step_size=0.1, generator=seeded(), threat_model="l2")
    assert torch.equal(x_adv, images)
    assert accuracy(linear_model, x_adv, labels) == accuracy(linear_model, images, labels) == 1.0


@pytest.mark.parametrize("spec", ["pgd", "pgd:early_stop=false", "pgd:restarts=3"])
def test_pgd_l2_accuracy_does_not_rise_with_eps(spec, linear_model, images, labels):
    curve = build(spec).run_curve(linear_model, images, labels, [0.0, 0.5, 1.0, 2.0], generator=seeded())
    accuracies = [accuracy(linear_model, x_adv, labels) for x_adv in curve]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[0] == 1.0 and accuracies[-1] == 0.0


def test_pgd_l2_step_is_l2_step_scale_eps_over_steps(linear_model, images, labels):
    """One step from x without a random start is the fast gradient method with step l2_step_scale·ε/steps."""
    one_step = build("pgd:steps=1:random_start=false:early_stop=false:l2_step_scale=0.5")
    x_adv = one_step(linear_model, images, labels, 0.8)
    assert torch.allclose(x_adv, build("fgsm")(linear_model, images, labels, 0.4), atol=1e-6)
    # Madry et al.'s 2.5·ε/steps by default, from which the smoke profile's 10 steps take 0.25 ε; L∞ unchanged.
    assert build("pgd").config.step_size(0.8, "l2") == pytest.approx(2.5 * 0.8 / 40)
    assert build("pgd", profile="smoke").config.step_size(0.8, "l2") == pytest.approx(0.25 * 0.8)
    assert build("pgd", norm="linf").config.step_size(0.3, "linf") == pytest.approx(0.01)


def test_native_l2_deepfool_matches_foolbox(linear_model, images, labels):
    import foolbox

    native = deepfool(linear_model, images, labels, steps=50, candidates=10, overshoot=0.02, threat_model="l2")
    reference = foolbox.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02, loss="logits")
    raw, _, _ = reference(foolbox.PyTorchModel(linear_model, bounds=(0, 1)), images, labels, epsilons=None)
    assert torch.allclose(native, raw, atol=1e-5)
    assert accuracy(linear_model, native, labels) == 0.0
    # The L2 run is a different, smaller perturbation in L2 than the L∞ one.
    linf_run = deepfool(linear_model, images, labels, steps=50, candidates=10, overshoot=0.02)
    assert l2_norms(images, native).mean() < l2_norms(images, linf_run).mean()


def test_deepfool_l2_curve_is_one_run_projected(linear_model, images, labels):
    attack = build("deepfool")
    epsilons = [0.25, 0.5, 8.0]
    curve = attack.run_curve(linear_model, images, labels, epsilons)
    unbounded = deepfool(linear_model, images, labels, steps=50, candidates=10, overshoot=0.02, threat_model="l2")
    assert torch.equal(curve[-1], unbounded)  # no point needs more than the largest budget
    for eps, x_adv in zip(epsilons, curve, strict=True):
        delta = unbounded - images
        scale = (eps / l2_norms(images, unbounded).clamp_min(1e-12)).clamp(max=1).view(-1, 1, 1, 1)
        assert torch.allclose(x_adv, (images + scale * delta).clamp(0, 1), atol=1e-6)


# ---- PGD restarts ----------------------------------------------------------------------------------------------


class _RecordingModel(nn.Module):
    """Records the batch size of every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return self.model(x)


def _fooled(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(dim=1) != y


@pytest.mark.parametrize("norm, eps", [("l2", 0.5), ("linf", 0.05)])
def test_pgd_restarts_fool_more_points_and_attack_only_those_still_standing(norm, eps, linear_model, images, labels):
    model = _RecordingModel(linear_model)
    once = build("pgd:steps=1", norm)(model, images, labels, eps, generator=seeded())
    sizes_once, model.sizes = model.sizes, []
    thrice = build("pgd:steps=1:restarts=3", norm)(model, images, labels, eps, generator=seeded())
    fooled_once, fooled_thrice = _fooled(linear_model, once, labels), _fooled(linear_model, thrice, labels)
    # The first restart is the single run (same draws); later ones only add points, some of them here.
    assert torch.equal(thrice[fooled_once], once[fooled_once])
    assert bool((fooled_thrice >= fooled_once).all()) and fooled_thrice.sum() > fooled_once.sum()
    # Forward passes: the single run, one pass judging it, then only the points it left standing.
    standing = int((~fooled_once).sum())
    assert 0 < standing < len(images)
    assert model.sizes[: len(sizes_once) + 1] == [*sizes_once, len(images)]
    assert model.sizes[len(sizes_once) + 1] == standing
    assert max(model.sizes[len(sizes_once) + 1 :]) <= standing
    assert perturbation_size(images, thrice, norm).max() <= eps + 1e-6


def test_pgd_restarts_keep_the_highest_loss_example_of_points_never_fooled(linear_model, images, labels):
    attack = build("pgd:steps=1:restarts=4")
    x_adv = attack(linear_model, images, labels, 0.1, generator=seeded())
    generator, runs = seeded(), []
    standing = torch.ones(len(images), dtype=torch.bool)
    for _ in range(4):  # the same draws, restart by restart, on the points still standing
        index = standing.nonzero().squeeze(1)
        run = build("pgd:steps=1")(linear_model, images[index], labels[index], 0.1, generator=generator)
        full = images.clone()
        full[index] = run
        runs.append((standing.clone(), full))
        standing &= ~_fooled(linear_model, full, labels)
    assert standing.any()
    losses = torch.stack(
        [torch.where(ran, F.cross_entropy(linear_model(x), labels, reduction="none"), -torch.inf) for ran, x in runs]
    )
    best = torch.stack([x for _, x in runs])[losses.argmax(dim=0), torch.arange(len(images))]
    assert torch.equal(x_adv[standing], best[standing])


def test_pgd_restarts_under_a_stochastic_criterion_run_on_every_point_and_keep_the_highest_loss(
    linear_model, images, labels
):
    noisy_verdict = RepeatedMisclassification(lambda x: linear_model(x), 3, stochastic=True)
    model = _RecordingModel(linear_model)
    once = build("pgd:steps=2")(model, images, labels, 0.5, generator=seeded(), criterion=noisy_verdict)
    model.sizes = []
    thrice = build("pgd:steps=2:restarts=3")(model, images, labels, 0.5, generator=seeded(), criterion=noisy_verdict)
    assert set(model.sizes) == {len(images)}  # nobody leaves: every step and restart on every point
    loss = lambda x: F.cross_entropy(linear_model(x), labels, reduction="none")  # noqa: E731
    assert bool((loss(thrice) >= loss(once)).all()) and bool((loss(thrice) > loss(once)).any())


def test_pgd_restarts_must_be_positive():
    with pytest.raises(BenchError, match="restarts must be at least 1"):
        ATTACKS.build("pgd:restarts=0", "quick")
    with pytest.raises(BenchError, match="l2_step_scale must be positive"):
        ATTACKS.build("pgd:l2_step_scale=0", "quick")


def test_new_pgd_options_leave_stored_keys_alone():
    plain = ATTACKS.build("pgd", "quick").options()
    assert plain == {"steps": 40, "rel_stepsize": 0.01 / 0.3, "random_start": True, "early_stop": True}
    assert ATTACKS.build("pgd:restarts=1:l2_step_scale=2.5", "quick").options() == plain
    assert ATTACKS.build("pgd:restarts=3", "quick").options() == {**plain, "restarts": 3}
    assert ATTACKS.build("pgd:l2_step_scale=1", "quick").options() == {**plain, "l2_step_scale": 1.0}
    smoke = {"steps": 10, "rel_stepsize": 0.25, "random_start": True, "early_stop": True}
    assert ATTACKS.build("pgd", "smoke").options() == ATTACKS.build("art.pgd", "smoke").options() == smoke
    with pytest.raises(BenchError, match="has no option 'restarts'"):  # the library PGDs cannot restart this way
        ATTACKS.build("foolbox.pgd:restarts=3", "quick")
    random = ATTACKS.build("random", "quick")  # its options are its PGD member's: its keys are unchanged too
    assert random.options() == plain and random.members[1].config.restarts == 1
    assert ATTACKS.build("random:restarts=2", "quick").members[1].config.restarts == 2


# ---- L∞ unchanged ----------------------------------------------------------------------------------------------


def test_linf_fgsm_is_unchanged(linear_model, images, labels):
    expected = (images + 0.1 * input_gradient(linear_model, images, labels).sign()).clamp(0, 1)
    assert torch.equal(build("fgsm", "linf")(linear_model, images, labels, 0.1), expected)


def test_linf_pgd_is_unchanged(linear_model, images, labels):
    """The last iterate of the old code: uniform start, signed steps of rel_stepsize·ε, L∞ projection."""
    eps, steps, generator = 0.05, 5, seeded(4)
    noise = torch.rand(images.shape, generator=generator, dtype=images.dtype)
    expected = (images + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        gradient = input_gradient(linear_model, expected, labels)
        expected = project_linf(images, expected + 0.1 * eps * gradient.sign(), eps)
    attack = build(f"pgd:steps={steps}:rel_stepsize=0.1:early_stop=false", "linf")
    assert torch.equal(attack(linear_model, images, labels, eps, generator=seeded(4)), expected)


def test_linf_deepfool_step_is_unchanged():
    differences = torch.randn(5, 3, generator=seeded(1))
    gradients = torch.randn(5, 3, 2, 4, generator=seeded(2))
    distances = differences.abs() / (gradients.flatten(2).abs().sum(dim=2) + 1e-8)
    best = distances.argmin(dim=1)
    rows = torch.arange(5)
    expected = (distances[rows, best] + 1e-4).view(-1, 1, 1) * gradients[rows, best].sign()
    assert torch.equal(_closest_boundary_step(differences, gradients, "linf"), expected)
