"""The adv-lib attacks (``attacks/advlib_backend.py``) on the tiny linear model of ``tests/conftest.py``.

A linear model's minimal adversarial perturbation is exact: for the boundary with class j it is the smallest
δ in the box with (w_y − w_j)·δ ≤ −margin_j, found by bisection on one multiplier (``exact_minimal_distances``).
No valid attack goes below it; a good minimum-norm attack comes close to it.
"""

import math
import sys

import pytest
import torch
from torch import Tensor, nn

from attacks.advlib_backend import ADV_LIB_INSTALL, AdvLibAPGDConfig, AdvLibAPGDTConfig, AdvLibDDNConfig, ALMAConfig
from attacks.advlib_backend import AdvLibFMNConfig as FMNConfig
from attacks.base import ATTACKS, perturbation_size, project
from foundation.errors import BenchError
from tests.conftest import accuracy

try:
    import adv_lib.attacks  # noqa: F401

    MISSING = ""
except ImportError as error:
    MISSING = str(error)
needs_adv_lib = pytest.mark.skipif(
    bool(MISSING), reason=f"adv-lib is optional ({MISSING}); install it with {ADV_LIB_INSTALL}"
)

#: (attack, norm) for every threat model each adv-lib attack runs in.
RUNS = [
    ("advlib.fmn", "linf"),
    ("advlib.fmn", "l2"),
    ("advlib.alma", "l2"),
    ("advlib.ddn", "l2"),
    ("advlib.apgd", "linf"),
    ("advlib.apgd", "l2"),
    ("advlib.apgd_t", "linf"),
    ("advlib.apgd_t", "l2"),
]
MINIMUM_NORM = [run for run in RUNS if ATTACKS.get(run[0]).minimization]
#: A large budget in each norm (the images are 1×8×8: the box's L2 diameter is 8) and a mid-range one.
LARGE = {"linf": 0.5, "l2": 3.0}
MID = {"linf": 0.05, "l2": 0.4}


def build(name: str, norm: str, profile: str = "quick"):
    return ATTACKS.build(name, profile).for_threat_model(norm)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_minimal_distances(model: nn.Module, x: Tensor, y: Tensor, norm: str, iterations: int = 100) -> Tensor:
    """Each point's exact minimal perturbation (in ``norm``, inside the [0, 1] box) to another class of the
    linear ``model``; infinity where the box admits none.

    For class j, with a = w_y − w_j and margin m = a·x + b_y − b_j: in L2 the minimiser is clamp(−λa) to the box
    for the λ ≥ 0 that gives a·δ = −m (KKT); in L∞ it is clamp(−t·sign a) for the smallest t that does.  a·δ
    falls monotonically in λ (t), so both are bisections, batched over points and classes.
    """
    weight, bias = model[1].weight, model[1].bias
    flat = x.flatten(1)[:, None, :]  # (n, 1, d)
    a = weight[y][:, None, :] - weight[None]  # (n, classes, d)
    margin = (flat * a).sum(2) + bias[y][:, None] - bias[None]
    low, high = -flat, 1 - flat

    def step(scale: Tensor) -> Tensor:
        direction = a if norm == "l2" else a.sign()
        return torch.maximum(torch.minimum(-scale[..., None] * direction, high), low)

    # L2: every coordinate saturates once λ·|a_i| ≥ 1; L∞: at t = 1.
    upper = 1 / a.abs().clamp_min(1e-12).amin(2) if norm == "l2" else torch.ones_like(margin)
    feasible = (step(upper) * a).sum(2) <= -margin
    lo, hi = torch.zeros_like(margin), upper.clone()
    for _ in range(iterations):
        mid = (lo + hi) / 2
        reaches = (step(mid) * a).sum(2) <= -margin
        lo, hi = torch.where(reaches, lo, mid), torch.where(reaches, mid, hi)
    sizes = step(hi).norm(p=2 if norm == "l2" else math.inf, dim=2)
    sizes = torch.where(feasible, sizes, torch.full_like(sizes, math.inf))
    sizes[torch.arange(len(y)), y] = math.inf
    return sizes.min(dim=1).values


def norms(x: Tensor, x_adv: Tensor, norm: str) -> Tensor:
    return perturbation_size(x, x_adv, norm)


@needs_adv_lib
@pytest.mark.parametrize(("name", "norm"), RUNS)
def test_attack_stays_in_its_ball_and_breaks_the_linear_model_at_a_large_eps(name, norm, linear_model, images, labels):
    epsilons = [0.0, MID[norm], LARGE[norm]]
    attack = build(name, norm)
    curve = attack.run_curve(linear_model, images, labels, epsilons, generator=seeded())
    assert torch.equal(curve[0], images)
    exact = exact_minimal_distances(linear_model, images, labels, norm)
    for eps, x_adv in zip(epsilons, curve, strict=True):
        assert norms(images, x_adv, norm).max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert accuracy(linear_model, x_adv, labels) >= float((exact > eps).float().mean())  # no attack beats exact
        if attack.minimization:  # one run, projected onto each ε
            torch.testing.assert_close(x_adv, project(images, curve[-1], eps, norm), atol=1e-6, rtol=0)
    if (name, norm) == ("advlib.fmn", "l2"):
        # adv-lib's L2 FMN steps exactly onto a linear boundary and stays there (see AdvLibFMN): it fools few.
        assert 0 < accuracy(linear_model, curve[-1], labels) < 1
    else:
        assert accuracy(linear_model, curve[-1], labels) <= 1 / 64  # FMN L∞ misses one point
        assert accuracy(linear_model, curve[1], labels) < 1


@needs_adv_lib
@pytest.mark.parametrize(("name", "norm"), MINIMUM_NORM)
def test_minimum_norms_are_at_least_the_exact_minimum_and_close_to_it(name, norm, linear_model, images, labels):
    """Per point, ε* ≥ the exact minimal distance; at the paper budget the median ratio is within 10 %, DDN's
    within 30 %: DDN follows the cross-entropy's gradient, not the nearest boundary's normal (Foolbox's DDN stays
    as far above the minimum, ``test_adv_lib_and_foolbox_ddn_agree``)."""
    _, unbounded = build(name, norm, "paper").run_minimal_curve(
        linear_model, images, labels, [LARGE[norm]], generator=seeded()
    )
    fooled = linear_model(unbounded).argmax(1) != labels
    assert fooled.any()
    exact = exact_minimal_distances(linear_model, images, labels, norm)
    found = norms(images, unbounded, norm)
    assert (found[fooled] >= exact[fooled] - 1e-5).all()
    ratios = found[fooled] / exact[fooled]
    assert ratios.median() <= (1.3 if name == "advlib.ddn" else 1.1), ratios


@needs_adv_lib
@pytest.mark.parametrize(("name", "norm"), RUNS)
def test_results_are_seeded_by_the_generator(name, norm, linear_model, images, labels):
    x, y = images[:16], labels[:16]
    attack = build(name, norm, "smoke")
    first, again = (attack(linear_model, x, y, MID[norm], generator=seeded(5)) for _ in range(2))
    assert torch.equal(first, again)


@needs_adv_lib
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_random_starts_come_from_the_generator(norm, linear_model, images, labels):
    attack = build("advlib.apgd", norm, "smoke")
    runs = [attack(linear_model, images, labels, MID[norm], generator=seeded(seed)) for seed in (5, 6)]
    assert not torch.equal(*runs)


@pytest.mark.parametrize("name", ["advlib.alma", "advlib.ddn"])
def test_l2_only_attacks_start_in_l2_and_refuse_linf(name):
    attack = ATTACKS.build(name, "smoke")
    assert (attack.threat_model, attack.norms, attack.minimization, attack.backend) == ("l2", {"l2"}, True, "adv_lib")
    assert "L2" in attack.description
    with pytest.raises(BenchError, match="does not run in the linf threat model"):
        attack.for_threat_model("linf")


def test_attacks_in_both_norms_default_to_linf():
    sparse = {"advlib.fmn": {"l1", "l0"}, "advlib.apgd": {"l1"}, "advlib.apgd_t": {"l1"}}
    for name, extra in sparse.items():
        cls = ATTACKS.get(name)
        assert (cls.threat_model, cls.norms, cls.backend) == ("linf", {"linf", "l2", *extra}, "adv_lib"), name


def test_budgets_per_profile_and_attackbench_settings_at_paper():
    configs = {name: [ATTACKS.build(name, p).config for p in ("smoke", "quick", "paper")] for name, _ in RUNS}
    assert configs["advlib.fmn"] == [FMNConfig(steps=10), FMNConfig(steps=50), FMNConfig(steps=1000)]
    assert configs["advlib.alma"] == [ALMAConfig(steps=10), ALMAConfig(steps=50), ALMAConfig(steps=1000)]
    assert configs["advlib.ddn"] == [AdvLibDDNConfig(steps=10), AdvLibDDNConfig(steps=50), AdvLibDDNConfig(steps=1000)]
    assert configs["advlib.apgd"] == [AdvLibAPGDConfig(steps=s) for s in (10, 50, 100)]
    assert configs["advlib.apgd_t"] == [AdvLibAPGDTConfig(steps=s) for s in (10, 50, 100)]
    paper = {name: runs[-1] for name, runs in configs.items()}
    assert (paper["advlib.fmn"].max_stepsize, paper["advlib.fmn"].gamma) == (1.0, 0.05)
    assert (paper["advlib.alma"].alpha, paper["advlib.alma"].init_lr_distance) == (0.9, 1.0)
    assert (paper["advlib.ddn"].init_epsilon, paper["advlib.ddn"].gamma, paper["advlib.ddn"].quantize) == (
        1,
        0.05,
        True,
    )
    assert (paper["advlib.apgd"].loss, paper["advlib.apgd_t"].loss, paper["advlib.apgd_t"].targets) == ("dlr", "dlr", 9)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("advlib.fmn:steps=0", "steps must be at least 1"),
        ("advlib.fmn:gamma=1", "gamma must lie in"),
        ("advlib.fmn:stpes=3", "did you mean 'steps'?"),
        ("advlib.alma:alpha=1.5", "alpha must lie in"),
        ("advlib.alma:init_lr_distance=0", "init_lr_distance must be positive"),
        ("advlib.ddn:quantize=maybe", "must be true or false"),
        ("advlib.apgd:loss=cw", "must be one of dlr, ce"),
        ("advlib.apgd:steps=-1", "steps must be at least 1"),
        ("advlib.apgd_t:targets=0", "targets must be at least 1"),
    ],
)
def test_bad_options_are_one_line_errors(spec, message):
    with pytest.raises(BenchError, match=message) as error:
        ATTACKS.build(spec, "smoke")
    assert "\n" not in str(error.value)


@needs_adv_lib
@needs_adv_lib
def test_adv_lib_and_foolbox_ddn_agree(linear_model, images, labels):
    """The same DDN budget (Foolbox's 100 steps, no rounding) leaves the same per-point norms within 2 %."""
    found = {}
    for spec in ("advlib.ddn:steps=100:quantize=false", "foolbox.ddn"):
        _, unbounded = build(spec, "l2", "paper").run_minimal_curve(
            linear_model, images, labels, [1.0], generator=seeded()
        )
        assert (linear_model(unbounded).argmax(1) != labels).all(), spec
        found[spec] = norms(images, unbounded, "l2")
    ratios = found["advlib.ddn:steps=100:quantize=false"] / found["foolbox.ddn"]
    assert (ratios - 1).abs().median() <= 0.02, ratios


@needs_adv_lib
def test_dlr_needs_three_classes_and_says_how_to_do_without(images):
    two_classes = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).eval().requires_grad_(False)
    with torch.no_grad():
        labels = two_classes(images).argmax(1)
    with pytest.raises(BenchError, match=r"needs at least 3 classes \(the model has 2\); use advlib.apgd:loss=ce"):
        build("advlib.apgd", "linf", "smoke")(two_classes, images, labels, 0.3)
    x_adv = ATTACKS.build("advlib.apgd:loss=ce", "smoke")(two_classes, images, labels, 0.3)
    assert accuracy(two_classes, x_adv, labels) < 1


def test_a_missing_adv_lib_is_one_line_that_says_how_to_install_it(monkeypatch, linear_model, images, labels):
    monkeypatch.setitem(sys.modules, "adv_lib.attacks", None)  # import adv_lib.attacks now fails
    with pytest.raises(
        BenchError, match=r"advlib\.\* attacks need adv-lib .*install it with: echo 'setuptools<81'"
    ) as error:
        build("advlib.fmn", "l2")(linear_model, images, labels, 0.5)
    assert "\n" not in str(error.value)
