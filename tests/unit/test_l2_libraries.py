"""The library attacks (Foolbox, ART, torchattacks) in the L2 threat model, on the tiny linear model.

Ball and box, strength against the exact minimal L2 robust accuracy of a linear model, the L2-only
minimisation attacks (DDN, FMN, Carlini-Wagner), and the backends cross-checking one another.
"""

import dataclasses
import inspect
import math

import foolbox
import pytest
import torch
from torch import nn

from attacks.art_backend import art_classifier
from attacks.base import ATTACKS, perturbation_size, project_l2
from attacks.blackbox import starting_points
from attacks.foolbox_backend import CarliniWagnerConfig, DDNConfig, FMNConfig
from attacks.library_backends import LIBRARY_NORMS
from foundation.errors import BenchError
from foundation.registry import Spec
from foundation.threat_models import NORMS
from tests.conftest import accuracy

L2_ONLY = ["foolbox.ddn", "foolbox.fmn", "foolbox.cw"]
BOTH_NORMS = [
    "foolbox.fgsm",
    "foolbox.pgd",
    "foolbox.deepfool",
    "art.fgsm",
    "art.pgd",
    "art.deepfool",
    "apgd",
    "autoattack",
    "square",
    "art.hsj",
]
L2_ATTACKS = BOTH_NORMS + L2_ONLY
#: The images are 1×8×8: an L2 ε of 8 = √64 (the box's diameter) clips nothing.
UNBOUNDED = 8.0


def build(name: str, profile: str = "smoke"):
    return ATTACKS.build(Spec.parse(name), profile).for_threat_model("l2")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def minimal_l2_robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """The robust accuracy of a linear model against every L2 perturbation of norm ≤ eps, box ignored.

    The distance of x to the boundary between classes y and j is ((w_y − w_j)·x + b_y − b_j) / ‖w_y − w_j‖;
    the box only restricts the attacker, so no valid attack can leave less accuracy than this.
    """
    weight, bias = model[1].weight, model[1].bias
    flat = x.flatten(1)
    margins = (flat @ weight.T + bias).gather(1, y[:, None]) - (flat @ weight.T + bias)
    distances = margins / (weight[y][:, None, :] - weight[None]).norm(dim=2).clamp_min(1e-12)
    distances[torch.arange(len(y)), y] = math.inf
    return float((distances.min(dim=1).values > eps).float().mean())


@pytest.mark.parametrize("name", L2_ATTACKS)
def test_l2_attack_stays_in_its_ball_and_the_box_and_fools_at_a_large_eps(name, linear_model, images, labels):
    epsilons = [0.0, 0.5, 3.0, UNBOUNDED]
    attack = build(name)
    curve = attack.run_curve(linear_model, images, labels, epsilons, generator=seeded())
    assert torch.equal(curve[0], images)
    for eps, x_adv in zip(epsilons, curve, strict=True):
        l2 = perturbation_size(images, x_adv, "l2")
        assert l2.max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert accuracy(linear_model, x_adv, labels) >= minimal_l2_robust_accuracy(linear_model, images, labels, eps)
        if attack.minimization:  # one run, clipped (Foolbox) or projected (ART, HSJ) to each ε
            torch.testing.assert_close(x_adv, project_l2(images, curve[-1], eps), atol=1e-6, rtol=0)
    assert accuracy(linear_model, curve[1], labels) < 1.0
    assert accuracy(linear_model, curve[2], labels) == 0.0


@pytest.mark.parametrize("name", L2_ONLY)
def test_l2_only_attacks_start_in_l2_and_refuse_linf(name):
    attack = ATTACKS.build(Spec.parse(name), "smoke")
    sparse = {"l1", "l0"} if name == "foolbox.fmn" else set()  # Foolbox's FMN has L1 and L0 twins
    assert (attack.threat_model, attack.norms, attack.minimization, attack.backend) == (
        "l2",
        {"l2", *sparse},
        True,
        "foolbox",
    )
    assert "L2" in attack.description
    assert ATTACKS.get(name).runs_in("l2") and not ATTACKS.get(name).runs_in("linf")
    with pytest.raises(BenchError, match="does not run in the linf threat model"):
        attack.for_threat_model("linf")
    assert attack.for_threat_model("l2").threat_model == "l2"


def test_library_attacks_run_in_both_norms_and_default_to_linf():
    for name in BOTH_NORMS:
        cls = ATTACKS.get(name)
        l1 = {"l1"} if name in ("apgd", "autoattack") else set()  # the native APGD-L1 and AutoAttack-L1
        assert (cls.threat_model, cls.norms) == ("linf", {"linf", "l2", *l1}), name
        assert ATTACKS.build(name, "smoke").for_threat_model("l2").threat_model == "l2"
        assert ATTACKS.build(name, "smoke").threat_model == "linf"  # setting one instance leaves the class alone


def test_every_library_spells_both_norms_and_only_norms():
    assert all({"linf", "l2"} <= set(spellings) <= set(NORMS) for spellings in LIBRARY_NORMS.values())


def test_backends_cross_check_in_l2(linear_model, images, labels):
    """The PGDs of every backend agree; AutoAttack is stronger and comes near the minimal-L2 bound.

    On a linear model the cross-entropy's ascent direction is not the nearest boundary's, so the
    untargeted CE attacks (PGD, APGD-CE) leave more points standing at mid-range ε than AutoAttack,
    whose targeted members find the nearest boundary; at ε = 1 all of them are within a few points.
    The bound ignores the box, which only hinders the attacker: AutoAttack may stay a little above it.
    """
    epsilons = [0.5, 1.0]
    pgds = ["pgd", "foolbox.pgd", "art.pgd", "apgd"]
    curves = {
        name: [
            accuracy(linear_model, x_adv, labels)
            for x_adv in build(name).run_curve(linear_model, images, labels, epsilons, generator=seeded())
        ]
        for name in [*pgds, "autoattack"]
    }
    for index, eps in enumerate(epsilons):
        pgd = [curves[name][index] for name in pgds]
        assert max(pgd) - min(pgd) <= 0.05, (eps, curves)
        exact = minimal_l2_robust_accuracy(linear_model, images, labels, eps)
        assert exact <= curves["autoattack"][index] <= min(exact + 0.1, min(pgd)), (eps, curves)
    assert max(curves[name][1] for name in pgds) - curves["autoattack"][1] <= 0.05, curves


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_library_pgds_take_the_native_pgd_step(profile, linear_model, images):
    eps = 0.5
    native = ATTACKS.build("pgd", profile).config
    for norm, foolbox_class in (("linf", foolbox.attacks.LinfPGD), ("l2", foolbox.attacks.L2PGD)):
        foolbox_pgd = ATTACKS.build("foolbox.pgd", profile).for_threat_model(norm)._foolbox_attack()
        assert type(foolbox_pgd) is foolbox_class
        assert foolbox_pgd.rel_stepsize * eps == pytest.approx(native.step_size(eps, norm))
        assert foolbox_pgd.steps == native.steps
        art_pgd = ATTACKS.build("art.pgd", profile).for_threat_model(norm)
        built = art_pgd._art_attack(art_classifier(linear_model, images), eps)
        assert (built.norm, built.eps_step, built.max_iter) == (
            LIBRARY_NORMS["art"][norm],
            native.step_size(eps, norm),
            native.steps,
        )


def test_foolbox_picks_the_class_of_the_threat_model():
    for name, method in (("foolbox.fgsm", "FastGradientAttack"), ("foolbox.deepfool", "DeepFoolAttack")):
        for norm, prefix in (("linf", "Linf"), ("l2", "L2")):
            built = ATTACKS.build(name, "smoke").for_threat_model(norm)._foolbox_attack()
            assert type(built) is getattr(foolbox.attacks, prefix + method)


def test_l2_minimisation_budgets_per_profile_and_foolbox_defaults_at_paper():
    configs = {name: [ATTACKS.build(name, p).config for p in ("smoke", "quick", "paper")] for name in L2_ONLY}
    assert configs["foolbox.ddn"] == [DDNConfig(steps=10), DDNConfig(steps=50), DDNConfig(steps=100)]
    assert configs["foolbox.fmn"] == [FMNConfig(steps=10), FMNConfig(steps=50), FMNConfig(steps=100)]
    assert configs["foolbox.cw"] == [
        CarliniWagnerConfig(binary_search_steps=5, steps=100),
        CarliniWagnerConfig(binary_search_steps=9, steps=200),
        CarliniWagnerConfig(binary_search_steps=9, steps=10_000),
    ]
    for name in L2_ONLY:
        attack = ATTACKS.build(name, "paper")
        defaults = inspect.signature(type(attack._foolbox_attack()).__init__).parameters
        for field, value in dataclasses.asdict(attack.config).items():
            assert defaults[field].default == value, (name, field)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foolbox.cw:steps=0", "steps must be at least 1"),
        ("foolbox.cw:binary_search_steps=0", "binary_search_steps must be at least 1"),
        ("foolbox.cw:confidence=-1", "confidence must not be negative"),
        ("foolbox.ddn:gamma=1.5", "gamma must lie in"),
        ("foolbox.fmn:max_stepsize=0", "max_stepsize must be positive"),
        ("foolbox.fmn:steps=0", "steps must be at least 1"),
    ],
)
def test_bad_l2_minimisation_options_are_rejected(spec, message):
    with pytest.raises(BenchError, match=message):
        ATTACKS.build(spec, "smoke")


def test_art_hsj_starts_from_the_nearest_other_class_image_in_its_norm(linear_model, images, labels):
    """Without random trials every start is the nearest image of another label, moved towards x to the boundary."""
    flat = images.flatten(1)
    nearest = {}
    for norm, p in (("linf", math.inf), ("l2", 2.0)):
        start, found = starting_points(linear_model, images, labels, 0, seeded(), norm)
        assert found.all()
        distances = torch.cdist(flat, flat, p=p)
        distances[labels[:, None] == labels[None, :]] = math.inf
        nearest[norm] = distances.argmin(dim=1)
        towards = nn.functional.cosine_similarity((start - images).flatten(1), flat[nearest[norm]] - flat, dim=1)
        assert torch.allclose(towards, torch.ones(len(images)), atol=1e-4)
    assert (nearest["linf"] != nearest["l2"]).any()  # the norm matters on these images


@pytest.mark.parametrize("name", ["square", "art.hsj", "foolbox.pgd", "art.pgd"])
def test_l2_results_are_seeded_by_the_generator(name, linear_model, images, labels):
    x, y = images[:16], labels[:16]
    first, again = (build(name)(linear_model, x, y, 0.5, generator=seeded(5)) for _ in range(2))
    assert torch.equal(first, again)
