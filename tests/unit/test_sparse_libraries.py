"""The libraries' sparse attacks (L1 and L0) on the tiny linear model of ``tests/conftest.py``.

A linear model's minimal sparse perturbations are exact (``exact_minimal_sizes``): no valid attack goes below
them, and a minimisation attack should come close.  Foolbox's Brendel-Bethge needs numba and adv-lib is an
optional extra: their tests skip without them.  Brendel-Bethge's tests are tiny: numba compiles its solver on
the first call in a process, about 35 s per norm on a loaded two-core machine.
"""

import dataclasses
import math
import sys

import foolbox
import pytest
import torch
from torch import Tensor, nn

from attacks.advlib_backend import ADV_LIB_INSTALL, SigmaZeroConfig
from attacks.art_backend import ElasticNetConfig
from attacks.base import ATTACKS, changed_pixels, perturbation_size, project
from attacks.foolbox_backend import BrendelBethgeConfig, FMNConfig, SLIDEConfig
from attacks.library_backends import LIBRARY_NORMS, within_ball
from foundation.errors import BenchError
from tests.conftest import accuracy

try:
    import adv_lib.attacks  # noqa: F401

    NO_ADV_LIB = ""
except ImportError as error:
    NO_ADV_LIB = str(error)
try:
    import numba  # noqa: F401

    NO_NUMBA = ""
except ImportError as error:
    NO_NUMBA = str(error)


needs_adv_lib = pytest.mark.skipif(bool(NO_ADV_LIB), reason=f"adv-lib is optional; install it with {ADV_LIB_INSTALL}")
needs_numba = pytest.mark.skipif(bool(NO_NUMBA), reason=f"Brendel-Bethge needs numba ({NO_NUMBA})")


def marks(name: str) -> list:
    """The skip marks of an attack whose optional library may be missing."""
    return [needs_adv_lib] if name.startswith("advlib.") else [needs_numba] if name == "foolbox.bb" else []


def runs(*pairs: tuple[str, str]) -> list:
    return [pytest.param(name, norm, marks=marks(name)) for name, norm in pairs]


RUNS = runs(
    ("foolbox.fmn", "l1"),
    ("foolbox.fmn", "l0"),
    ("foolbox.slide", "l1"),
    ("foolbox.bb", "l1"),
    ("foolbox.bb", "l0"),
    ("advlib.fmn", "l1"),
    ("advlib.fmn", "l0"),
    ("advlib.sigma_zero", "l0"),
    ("advlib.apgd", "l1"),
    ("advlib.apgd_t", "l1"),
    ("art.ead", "l1"),
)
#: A mid-range and a generous budget per norm (pixels for L0): the 1×8×8 images' exact minimal L1 is 1.7 at the
#: median, 4.4 at most; their exact minimal L0 3 pixels at the median.
EPSILONS = {"l1": [5.0, 10.0], "l0": [4.0, 12.0]}


def build(name: str, norm: str, profile: str = "smoke"):
    return ATTACKS.build(name, profile).for_threat_model(norm)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_minimal_sizes(model: nn.Module, x: Tensor, y: Tensor, norm: str) -> Tensor:
    """Each point's exact minimal L1 or L0 perturbation inside the [0, 1] box to another class of the linear
    ``model``; infinity where the box admits none.

    For class j, with a = w_y − w_j and margin m = a·x + b_y − b_j, a perturbation must lower a·δ by m.  Moving
    coordinate i against the sign of a_i lowers it by |a_i| per unit, up to the box's room r_i: a fractional
    knapsack.  L1 spends whole coordinates in order of |a_i| and a fraction of the next; L0 counts the fewest
    coordinates whose largest drops |a_i|·r_i add up to m.
    """
    weight, bias = model[1].weight, model[1].bias
    flat = x.flatten(1)[:, None, :]  # (n, 1, d)
    a = weight[y][:, None, :] - weight[None]  # (n, classes, d)
    margin = (flat * a).sum(2) + bias[y][:, None] - bias[None]
    room = torch.where(a > 0, flat, 1 - flat)
    gain = a.abs()
    if norm == "l0":
        drops = (gain * room).sort(dim=2, descending=True).values.cumsum(2)
        sizes = (drops < margin[..., None]).sum(2).float() + 1
    else:
        order = gain.argsort(dim=2, descending=True)
        gain, room = gain.gather(2, order), room.gather(2, order)
        # The drop and the cost of spending the first k coordinates whole, k = 0 … d.
        drops = nn.functional.pad((gain * room).cumsum(2), (1, 0))
        costs = nn.functional.pad(room.cumsum(2), (1, 0))
        whole = (drops[..., 1:] < margin[..., None]).sum(2, keepdim=True).clamp(max=a.shape[2] - 1)
        sizes = (costs.gather(2, whole) + (margin[..., None] - drops.gather(2, whole)) / gain.gather(2, whole))[..., 0]
    feasible = (gain * room).sum(2) >= margin
    sizes = torch.where(feasible, sizes, torch.full_like(sizes, math.inf))
    sizes[torch.arange(len(y)), y] = math.inf
    return sizes.min(dim=1).values


def test_exact_minimal_sizes_match_a_linear_program_and_a_one_pixel_check(linear_model, images, labels):
    """L1: the knapsack agrees with scipy's LP min Σ(u + v) s.t. a·(u − v) ≤ −m, 0 ≤ u ≤ 1 − x, 0 ≤ v ≤ x.
    L0: a point needs one pixel exactly where one coordinate's largest drop covers a margin."""
    from scipy.optimize import linprog

    x, y = images[:8], labels[:8]
    weight, bias = linear_model[1].weight.double(), linear_model[1].bias.double()
    exact = exact_minimal_sizes(linear_model, x, y, "l1")
    for flat, label, size in zip(x.flatten(1).double(), y, exact, strict=True):
        best = math.inf
        for other in range(len(bias)):
            if other != label:
                a = (weight[label] - weight[other]).numpy()
                margin = float(a @ flat.numpy() + bias[label] - bias[other])
                bounds = [(0, 1 - v) for v in flat.tolist()] + [(0, v) for v in flat.tolist()]
                lp = linprog([1.0] * 2 * len(a), A_ub=[[*a, *-a]], b_ub=[-margin], bounds=bounds)
                best = min(best, lp.fun if lp.status == 0 else math.inf)
        assert float(size) == pytest.approx(best, rel=1e-4)
    logits = linear_model(images)
    margin = logits.gather(1, labels[:, None]) - logits
    a = linear_model[1].weight[labels][:, None, :] - linear_model[1].weight[None]
    flat = images.flatten(1)[:, None, :]
    one = ((a.abs() * torch.where(a > 0, flat, 1 - flat)).amax(2) >= margin).scatter(1, labels[:, None], False).any(1)
    assert torch.equal(one, exact_minimal_sizes(linear_model, images, labels, "l0") == 1)


def sizes(x: Tensor, x_adv: Tensor, norm: str) -> Tensor:
    """L1 sums, L0 counts changed pixel positions (``changed_pixels``)."""
    return changed_pixels(x_adv - x).sum(1).float() if norm == "l0" else perturbation_size(x, x_adv, "l1")


@pytest.mark.parametrize(("name", "norm"), RUNS)
def test_attack_stays_in_its_ball_and_breaks_the_linear_model(name, norm, linear_model, images, labels):
    x, y = images, labels  # all 64: Foolbox's Brendel-Bethge scales its trust region by the batch's size
    epsilons = [0.0, *EPSILONS[norm]]
    attack = build(name, norm)
    assert attack.minimization == (name not in ("foolbox.slide", "advlib.apgd", "advlib.apgd_t"))
    if attack.minimization:
        curve, unbounded = attack.run_minimal_curve(linear_model, x, y, epsilons, generator=seeded())
    else:
        curve = attack.run_curve(linear_model, x, y, epsilons, generator=seeded())
    assert torch.equal(curve[0], x)
    exact = exact_minimal_sizes(linear_model, x, y, norm)
    for eps, x_adv in zip(epsilons, curve, strict=True):
        assert sizes(x, x_adv, norm).max() <= eps + (1e-4 if norm == "l1" else 0)
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert accuracy(linear_model, x_adv, y) >= float((exact > eps).float().mean())  # no attack beats exact
        if attack.minimization:  # one run, projected onto each ε
            torch.testing.assert_close(x_adv, project(x, unbounded, eps, norm), atol=1e-6, rtol=0)
    if attack.minimization:
        fooled = linear_model(unbounded).argmax(1) != y
        assert (sizes(x, unbounded, norm)[fooled] >= exact[fooled] - 1e-4).all()
    # Both FMNs' L1 versions stall on a third of the points (see AdvLibFMN): they leave 41 % at any budget.
    assert accuracy(linear_model, curve[-1], y) <= (0.45 if name.endswith("fmn") and norm == "l1" else 0.2)
    assert accuracy(linear_model, curve[1], y) < 1


@pytest.mark.parametrize(("name", "norm"), RUNS)
def test_results_are_seeded_by_the_generator(name, norm, linear_model, images, labels):
    x, y = images[:8], labels[:8]
    attack = build(name, norm)
    eps = EPSILONS[norm][0]
    first, again = (attack(linear_model, x, y, eps, generator=seeded(5)) for _ in range(2))
    assert torch.equal(first, again)


@pytest.mark.parametrize(
    ("name", "ratio"),
    [
        pytest.param("foolbox.fmn", 1.1),
        pytest.param("advlib.fmn", 1.1, marks=marks("advlib.fmn")),
        pytest.param("foolbox.bb", 1.1, marks=marks("foolbox.bb")),
        # EAD's objective is mostly L2 (β = 10⁻³); its L1 rule keeps the least-L1 iterate: 9 % above at the median.
        pytest.param("art.ead", 1.12),
    ],
)
def test_l1_minimisation_comes_within_ten_percent_of_the_exact_minimum(name, ratio, linear_model, images, labels):
    x, y = images, labels
    _, unbounded = build(name, "l1", "quick").run_minimal_curve(linear_model, x, y, [10.0], generator=seeded())
    fooled = linear_model(unbounded).argmax(1) != y
    assert fooled.sum() >= len(y) // 2
    ratios = perturbation_size(x, unbounded, "l1")[fooled] / exact_minimal_sizes(linear_model, x, y, "l1")[fooled]
    assert ratios.min() >= 1 - 1e-5
    assert ratios.median() <= ratio, ratios


def test_norms_defaults_and_descriptions():
    expected = {
        "foolbox.fmn": ("l2", {"l2", "l1", "l0"}),
        "foolbox.slide": ("l1", {"l1"}),
        "foolbox.bb": ("l1", {"l1", "l0"}),
        "advlib.fmn": ("linf", {"linf", "l2", "l1", "l0"}),
        "advlib.sigma_zero": ("l0", {"l0"}),
        "advlib.apgd": ("linf", {"linf", "l2", "l1"}),
        "advlib.apgd_t": ("linf", {"linf", "l2", "l1"}),
        "art.ead": ("l1", {"l1"}),
    }
    for name, (default, norms) in expected.items():
        cls = ATTACKS.get(name)
        assert (cls.threat_model, cls.norms) == (default, norms), name
        assert all(symbol in cls.description for symbol in ("L1", "L0") if symbol.lower() in norms), name
        for norm in {"linf", "l2", "l1", "l0"} - norms:
            with pytest.raises(BenchError, match=f"does not run in the {norm} threat model"):
                ATTACKS.build(name, "smoke").for_threat_model(norm)
    assert not ATTACKS.get("foolbox.bb").selected_by_all  # numba is not a dependency


def test_foolbox_picks_the_class_of_the_threat_model():
    for norm, cls in (
        ("l2", foolbox.attacks.L2FMNAttack),
        ("l1", foolbox.attacks.L1FMNAttack),
        ("l0", foolbox.attacks.L0FMNAttack),
    ):
        built = build("foolbox.fmn", norm, "paper")._foolbox_attack()
        assert type(built) is cls and built.steps == 100
    assert type(build("foolbox.slide", "l1")._foolbox_attack()) is foolbox.attacks.SparseL1DescentAttack
    if not NO_NUMBA:
        for norm, cls in (("l1", foolbox.attacks.L1BrendelBethgeAttack), ("l0", foolbox.attacks.L0BrendelBethgeAttack)):
            assert type(build("foolbox.bb", norm)._foolbox_attack()) is cls


def test_budgets_per_profile():
    configs = {
        name: [ATTACKS.build(name, p).config for p in ("smoke", "quick", "paper")]
        for name in ("foolbox.slide", "foolbox.bb", "advlib.sigma_zero", "art.ead")
    }
    assert configs["foolbox.slide"] == [SLIDEConfig(steps=10), SLIDEConfig(steps=50), SLIDEConfig(steps=100)]
    assert configs["foolbox.bb"] == [BrendelBethgeConfig(steps=s) for s in (20, 100, 1000)]
    assert configs["advlib.sigma_zero"] == [SigmaZeroConfig(steps=s) for s in (50, 200, 1000)]
    assert configs["art.ead"] == [
        ElasticNetConfig(binary_search_steps=5, max_iter=50),
        ElasticNetConfig(binary_search_steps=9, max_iter=100),
        ElasticNetConfig(binary_search_steps=9, max_iter=1000),
    ]
    assert [ATTACKS.build("foolbox.fmn", p).config for p in ("smoke", "quick")] == [
        FMNConfig(steps=10),
        FMNConfig(steps=50),
    ]
    # Foolbox's own defaults for everything but the budgets.
    slide = foolbox.attacks.SparseL1DescentAttack()
    assert (slide.quantile, slide.rel_stepsize) == (SLIDEConfig().quantile, SLIDEConfig().rel_stepsize)
    if not NO_NUMBA:
        bb = foolbox.attacks.L1BrendelBethgeAttack()
        for field, value in dataclasses.asdict(BrendelBethgeConfig()).items():
            assert getattr(bb, field) == value, field


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foolbox.slide:quantile=1", "quantile must lie in"),
        ("foolbox.slide:steps=0", "steps must be at least 1"),
        ("foolbox.bb:momentum=1", "momentum must lie in"),
        ("foolbox.bb:lr=0", "lr must be positive"),
        ("advlib.sigma_zero:threshold=0", "threshold must lie in"),
        ("advlib.sigma_zero:sigma=0", "sigma must be positive"),
        ("art.ead:max_iter=0", "max_iter must be at least 1"),
        ("art.ead:confidence=-1", "confidence must not be negative"),
    ],
)
def test_bad_options_are_one_line_errors(spec, message):
    with pytest.raises(BenchError, match=message) as error:
        ATTACKS.build(spec, "smoke")
    assert "\n" not in str(error.value)


def test_missing_numba_is_one_line_that_says_how_to_install_it(monkeypatch, linear_model, images, labels):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now fails
    with pytest.raises(BenchError, match=r"foolbox\.bb needs numba .*pip install numba") as error:
        build("foolbox.bb", "l0")(linear_model, images[:4], labels[:4], 4.0)
    assert "\n" not in str(error.value)


def test_within_ball_projects_every_norm_but_linf(images):
    x = images[:4]
    outside = (x + 0.3 * torch.rand(x.shape, generator=seeded())).clamp(0, 1)
    assert within_ball(ATTACKS.build("foolbox.pgd", "smoke"), x, outside, 0.01) is outside  # L∞: as returned
    for norm, eps in (("l2", 0.5), ("l1", 2.0), ("l0", 5.0)):
        attack = build("foolbox.fmn", norm)
        inside = within_ball(attack, x, outside, eps)
        assert perturbation_size(x, inside, norm).max() <= eps
        assert torch.equal(within_ball(attack, x, inside, eps), inside)  # an example inside keeps its values


def test_libraries_spell_the_sparse_norms():
    assert {norm: LIBRARY_NORMS["foolbox"][norm] for norm in ("l1", "l0")} == {"l1": "L1", "l0": "L0"}
    assert (LIBRARY_NORMS["adv_lib"]["l1"], LIBRARY_NORMS["adv_lib"]["l0"]) == (1, 0)
    assert (LIBRARY_NORMS["torch"]["l1"], LIBRARY_NORMS["torch"]["l0"], LIBRARY_NORMS["art"]["l1"]) == (1, 0, 1)
    assert "l0" not in LIBRARY_NORMS["art"] and "l1" not in LIBRARY_NORMS["torchattacks"]
