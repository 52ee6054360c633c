"""AutoAttack, APGD, Square and HopSkipJump on the tiny linear model: budgets, strength, seeding, model state."""

import numpy as np
import pytest
import torch
from torch import nn

from attacks.autoattack import APGDConfig, AutoAttackConfig
from attacks.base import ATTACKS, perturbation_size, project_linf
from attacks.blackbox import HopSkipJumpConfig, SquareConfig
from foundation.errors import BenchError
from tests.conftest import accuracy

#: Small budgets keep the file fast; the methods are the ones every profile runs.
SPECS = {
    "autoattack": "autoattack:apgd_steps=5:fab_steps=5:square_queries=20",
    "apgd": "apgd:steps=5",
    "square": "square:queries=200",
    "art.hsj": "art.hsj:max_iter=5:max_eval=100:init_eval=10:init_size=20",
    "hsj": "hsj:queries=500:init_eval=20:init_size=20",
}
#: The most accuracy each may leave on the linear model at ε = 0.3 (its clean accuracy is 1).
ACCURACY_AT_03 = {"autoattack": 0.0, "apgd": 0.0, "square": 0.1, "art.hsj": 0.25, "hsj": 0.25}
BLACK_BOX = ["square", "art.hsj", "hsj"]


def build(name: str):
    return ATTACKS.build(SPECS[name], "smoke")


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class QueriesOnly(nn.Module):
    """Answers queries but has no gradient: its outputs are computed without autograd."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)


class CountingModel(nn.Module):
    """Counts the examples it is asked to classify."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.examples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.examples += len(x)
        return self.model(x)


@pytest.mark.parametrize("name", list(SPECS))
def test_attack_respects_its_ball_and_the_box_and_fools_the_model(name, linear_model, images, labels):
    curve = build(name).run_curve(linear_model, images, labels, [0.0, 0.05, 0.3], generator=seeded())
    unchanged, small, large = curve
    assert torch.equal(unchanged, images)
    for eps, x_adv in ((0.05, small), (0.3, large)):
        linf = perturbation_size(images, x_adv, "linf")
        assert linf.max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(linear_model, large, labels) <= ACCURACY_AT_03[name]
    assert accuracy(linear_model, large, labels) <= accuracy(linear_model, small, labels) < 1.0


def test_declared_threat_model_backend_and_capabilities():
    expected = {
        "autoattack": ("torchattacks", {"gradients"}, False),
        "apgd": ("torchattacks", {"gradients"}, False),
        "square": ("torchattacks", {"queries"}, False),
        "art.hsj": ("art", {"queries"}, True),
        "hsj": ("native", {"queries"}, True),
        "boundary": ("native", {"queries"}, True),
        "pointwise": ("native", {"queries"}, True),
    }
    for name, (backend, requires, minimization) in expected.items():
        cls = ATTACKS.get(name)
        assert (cls.threat_model, cls.backend, cls.requires, cls.minimization) == (
            "linf",
            backend,
            requires,
            minimization,
        )
        assert cls.description


def test_autoattack_is_at_least_as_strong_as_apgd(linear_model, images, labels):
    """Under the same generator, AutoAttack's APGD-CE is the ``apgd`` run; its other members add to it."""
    eps = 0.05
    x_apgd = build("apgd")(linear_model, images, labels, eps, generator=seeded())
    x_aa = build("autoattack")(linear_model, images, labels, eps, generator=seeded())
    with torch.no_grad():
        fooled_apgd = linear_model(x_apgd).argmax(1) != labels
        fooled_aa = linear_model(x_aa).argmax(1) != labels
    assert 0 < fooled_apgd.sum() < len(labels)
    assert (fooled_aa | ~fooled_apgd).all()
    assert fooled_aa.sum() > fooled_apgd.sum()


def test_autoattack_runs_later_members_only_on_points_still_standing(linear_model, images, labels):
    """At ε = 0.3 APGD-CE fools every point, so APGD-T, FAB-T and Square must not query the model at all."""
    apgd_model, aa_model = CountingModel(linear_model), CountingModel(linear_model)
    x_apgd = build("apgd")(apgd_model, images, labels, 0.3, generator=seeded())
    build("autoattack")(aa_model, images, labels, 0.3, generator=seeded())
    assert accuracy(linear_model, x_apgd, labels) == 0.0
    # AutoAttack's extras: one query to count the classes and one check of APGD-CE's adversarials.
    assert aa_model.examples <= apgd_model.examples + 1 + len(images)


@pytest.mark.parametrize("name", list(SPECS))
def test_points_already_misclassified_come_back_unchanged(name, linear_model, images, labels):
    wrong = labels.clone()
    wrong[:32] = (labels[:32] + 1) % 10
    x_adv = build(name)(linear_model, images, wrong, 0.3, generator=seeded())
    assert torch.equal(x_adv[:32], images[:32])
    assert accuracy(linear_model, x_adv[32:], wrong[32:]) <= max(ACCURACY_AT_03[name], 0.25)


@pytest.mark.parametrize("name", list(SPECS))
def test_results_are_seeded_by_the_generator_and_leave_global_rngs_alone(name, linear_model, images, labels):
    x, y = images[:16], labels[:16]
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    first, again, other = (build(name)(linear_model, x, y, 0.3, generator=seeded(seed)) for seed in (5, 5, 6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


@pytest.mark.parametrize("name", BLACK_BOX)
def test_black_box_attacks_need_only_queries(name, linear_model, images, labels):
    assert ATTACKS.get(name).requires == {"queries"}
    x_adv = build(name)(QueriesOnly(linear_model), images, labels, 0.3, generator=seeded())
    assert accuracy(linear_model, x_adv, labels) <= ACCURACY_AT_03[name]


def test_art_hsj_is_one_minimisation_run_projected_onto_each_ball(linear_model, images, labels):
    epsilons = [0.02, 0.05, 0.1, 0.2, 0.3, 1.0]
    curve = build("art.hsj").run_curve(linear_model, images, labels, epsilons, generator=seeded())
    accuracies = [accuracy(linear_model, x_adv, labels) for x_adv in curve]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[0] > accuracies[-1] == 0.0
    for eps, x_adv in zip(epsilons, curve, strict=True):
        assert torch.equal(x_adv, project_linf(images, curve[-1], eps))


@pytest.mark.parametrize("name", list(SPECS))
def test_model_modes_and_parameters_are_left_as_deployed(name, linear_model, images, labels):
    """Libraries call ``model.eval()``/``train()`` and FAB calls ``backward()``; none of it may stick."""
    model = nn.Sequential(nn.Flatten(), nn.Dropout(p=0.0), nn.Linear(64, 10))
    model[2].load_state_dict(linear_model[1].state_dict())
    model.eval()
    model[1].train()  # a submodule a defense keeps in training mode on purpose (here an identity)
    modes = [module.training for module in model.modules()]
    build(name)(model, images, labels, 0.02, generator=seeded())
    assert not model.training
    assert [module.training for module in model.modules()] == modes
    assert all(parameter.requires_grad and parameter.grad is None for parameter in model.parameters())


def test_eval_models_stay_in_eval_mode(linear_model, images, labels):
    for name in SPECS:
        build(name)(linear_model, images[:8], labels[:8], 0.1, generator=seeded())
        assert not any(module.training for module in linear_model.modules()), name


def test_profiles_change_budgets_only():
    assert ATTACKS.build("autoattack", "paper").config == AutoAttackConfig(100, 100, 5000)
    assert ATTACKS.build("autoattack", "quick").config == AutoAttackConfig(50, 50, 1000)
    assert ATTACKS.build("autoattack", "smoke").config == AutoAttackConfig(10, 10, 100)
    assert [ATTACKS.build("apgd", p).config for p in ("paper", "quick", "smoke")] == [
        APGDConfig(100),
        APGDConfig(50),
        APGDConfig(10),
    ]
    assert [ATTACKS.build("square", p).config for p in ("paper", "quick", "smoke")] == [
        SquareConfig(5000),
        SquareConfig(1000),
        SquareConfig(100),
    ]
    assert ATTACKS.build("art.hsj", "paper").config == HopSkipJumpConfig(50, 10_000, 100, 100)
    smoke = ATTACKS.build("art.hsj", "smoke").config
    assert smoke.max_iter < 50 and smoke.max_eval < 10_000


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("autoattack:apgd_steps=0", "apgd_steps must be at least 1"),
        ("autoattack:square_queries=0", "square_queries must be at least 1"),
        ("apgd:steps=0", "steps must be at least 1"),
        ("square:queries=0", "queries must be at least 1"),
        ("square:p_init=1.5", "p_init must lie in"),
        ("art.hsj:init_eval=200:max_eval=100", "init_eval must not exceed max_eval"),
        ("art.hsj:max_iter=0", "max_iter must be at least 1"),
        ("hsj:init_eval=200:max_eval=100", "init_eval must not exceed max_eval"),
        ("boundary:source_step=2", "source_step must lie in"),
        ("pointwise:queries=0", "queries must be at least 1"),
    ],
)
def test_bad_options_are_rejected(spec, message):
    with pytest.raises(BenchError, match=message):
        ATTACKS.build(spec, "smoke")


def test_torchattacks_adapters_need_image_batches(linear_model, images, labels):
    flat = nn.Sequential(nn.Linear(64, 10))
    flat[0].load_state_dict(linear_model[1].state_dict())
    with pytest.raises(BenchError, match=r"\(N, C, H, W\)"):
        build("apgd")(flat, images.flatten(1), labels, 0.1)


def test_apgd_keeps_its_highest_loss_iterate_where_it_cannot_fool(linear_model, images, labels):
    """A budget too small to fool: the example returned is APGD's best iterate, not the clean input."""
    eps = 0.002
    x_adv = build("apgd")(linear_model, images, labels, eps, generator=seeded())
    with torch.no_grad():
        clean_loss = nn.functional.cross_entropy(linear_model(images), labels, reduction="none")
        adv_loss = nn.functional.cross_entropy(linear_model(x_adv), labels, reduction="none")
        standing = linear_model(x_adv).argmax(1) == labels
    assert standing.sum() > len(labels) // 2
    assert (adv_loss[standing] > clean_loss[standing]).all()
    assert perturbation_size(images, x_adv, "linf").max() <= eps + 1e-6


def test_autoattack_asks_the_criterion_which_points_are_still_standing(linear_model, images, labels):
    """The caller's rule decides: points it calls fooled are never attacked again, the others are."""
    eps, calls = 0.05, []

    def criterion(x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(len(y))
        return torch.ones(len(y), dtype=torch.bool) if len(calls) == 1 else torch.zeros(len(y), dtype=torch.bool)

    counting = CountingModel(linear_model)
    build("autoattack")(counting, images, labels, eps, generator=seeded(), criterion=criterion)
    assert calls == [len(labels)]  # everything fooled after APGD-CE: no later member ran, nothing re-checked
    never_fooled = CountingModel(linear_model)
    x_adv = build("autoattack")(
        never_fooled, images, labels, eps, generator=seeded(), criterion=lambda x, y: torch.zeros(len(y), dtype=bool)
    )
    assert never_fooled.examples > counting.examples  # every member attacked every point
    # Nothing fooled by the rule: every point keeps APGD-CE's example, the ``apgd`` attack's.
    assert torch.equal(x_adv, build("apgd")(linear_model, images, labels, eps, generator=seeded()))
