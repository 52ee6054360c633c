"""The threshold-aware attack and the quantiser it searches: optimal on tiny models (brute force), guarded,
seeded; quantisers found by the diagnostics where there is one, and only there."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from attacks.base import ATTACKS, check_threat_model, perturbation_size, project
from benchmark.run.quantizer_search import find_input_quantizer
from foundation.errors import BenchError
from foundation.quantizers import Quantizer

DIMENSION, CLASSES = 8, 3


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return (x >= 0.5).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


class BinarisedLinear(nn.Module):
    """A random linear classifier behind ``x ≥ 0.5``: hard (no gradient path) or straight-through."""

    def __init__(self, seed: int, straight_through: bool, dimension: int = DIMENSION, classes: int = CLASSES):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.straight_through = straight_through
        self.linear = nn.Linear(dimension, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, dimension, generator=generator))
            self.linear.bias.copy_(torch.randn(classes, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        binary = _StraightThrough.apply(x) if self.straight_through else (x >= 0.5).to(x.dtype)
        return self.linear(binary.flatten(1))


def _size(delta: torch.Tensor, norm: str) -> float:
    return float(perturbation_size(torch.zeros_like(delta), delta, norm).max())


def brute_force_minimum(model: nn.Module, x: torch.Tensor, y: int, norm: str) -> float:
    """The smallest perturbation over every subset of threshold crossings that fools the model."""
    just_below = torch.nextafter(torch.tensor(0.5), torch.tensor(0.0))
    crossing = torch.where(x[0] >= 0.5, just_below, torch.tensor(0.5))
    best = float("inf")
    for size in range(1, x.shape[1] + 1):
        for subset in itertools.combinations(range(x.shape[1]), size):
            candidate = x.clone()
            candidate[0, list(subset)] = crossing[list(subset)]
            if int(model(candidate).argmax()) != y:
                best = min(best, _size(candidate - x, norm))
    return best


def _attack(norm: str, spec: str = f"quantized:targets={CLASSES - 1}", quantizer: Quantizer | None = None):
    return ATTACKS.build(spec, "paper").for_threat_model(norm).with_quantizer(quantizer or Quantizer.binary())


@pytest.mark.parametrize("norm", ["l2", "linf", "l1", "l0"])
@pytest.mark.parametrize("straight_through", [True, False], ids=["straight-through", "hard"])
def test_the_crossing_set_costs_no_more_than_the_brute_force_minimum(norm, straight_through):
    for seed in range(20):
        model = BinarisedLinear(seed, straight_through)
        x = torch.rand(1, DIMENSION, generator=torch.Generator().manual_seed(100 + seed))
        y = model(x).argmax(dim=1)
        _, found = _attack(norm).run_minimal_curve(model, x, y, [1.0])
        minimum = brute_force_minimum(model, x, int(y), norm)
        fooled = int(model(found).argmax()) != int(y)
        assert fooled == (minimum < float("inf")), seed
        if fooled:
            assert _size(found - x, norm) <= minimum + 1e-6, seed


def test_score_queries_alone_find_what_the_gradient_finds_on_a_hard_threshold():
    model = BinarisedLinear(3, straight_through=False, dimension=64, classes=10)
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(dim=1)
    twin = BinarisedLinear(3, straight_through=True, dimension=64, classes=10)
    _, by_scores = _attack("l2", "quantized:gradients=false").run_minimal_curve(model, x, y, [1.0])
    _, by_gradient = _attack("l2", "quantized").run_minimal_curve(twin, x, y, [1.0])
    for found in (by_scores, by_gradient):
        assert (model(found).argmax(dim=1) != y).all()
    sizes = [(found - x).norm(dim=1) for found in (by_scores, by_gradient)]
    assert torch.allclose(sizes[0].median(), sizes[1].median(), rtol=0.25)


def test_every_example_passes_the_guard_and_the_same_seed_gives_the_same_result():
    model = BinarisedLinear(1, straight_through=True, dimension=64, classes=10)
    x = torch.rand(32, 64, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(dim=1)
    for norm, epsilons in (("l2", [0.3, 1.0, 3.0]), ("linf", [0.1, 0.3]), ("l1", [0.5, 2.0]), ("l0", [1, 3])):
        attack = _attack(norm, "quantized")
        runs = [
            attack.run_minimal_curve(model, x, y, epsilons, generator=torch.Generator().manual_seed(7))
            for _ in range(2)
        ]
        for bounded, eps in zip(runs[0][0], epsilons, strict=True):
            check_threat_model(x, bounded, norm, eps)
        assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
        assert torch.equal(runs[0][1], runs[1][1])


def test_multi_level_quantisers_are_crossed_level_by_level():
    """Four levels (rounding): each example realises the levels it claims, and fools the model."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 4)
    quantizer = Quantizer.uniform(4)

    def model(x: torch.Tensor) -> torch.Tensor:
        return linear(torch.round(x * 3).div(3).flatten(1))

    module = nn.Module()
    module.forward = model  # an nn.Module whose forward is the quantised linear model
    x = torch.rand(8, 16, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(dim=1)
    with torch.no_grad():
        _, found = _attack("l2", "quantized:gradients=false", quantizer).run_minimal_curve(module, x, y, [2.0])
    fooled = model(found).argmax(dim=1) != y
    assert fooled.float().mean() >= 0.75
    moved = (found - x).abs() > 0
    assert (found[moved] - 0.5).abs().min() >= 0  # realised values lie at threshold crossings
    crossings = torch.stack([quantizer.below, quantizer.above]).flatten()
    assert torch.isin(found[moved], crossings).all()


def test_a_four_level_quantiser_is_found_with_its_thresholds():
    torch.manual_seed(0)
    linear = nn.Linear(64, 10)
    x = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        found = find_input_quantizer(lambda images: linear(torch.round(images * 3).div(3).flatten(1)), x)
    assert found is not None and found.count == 3
    middles = (found.below + found.above) / 2
    assert torch.allclose(middles, torch.tensor([1 / 6, 1 / 2, 5 / 6]), atol=1e-3)
    assert "found by the diagnostics" in found.describe()


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
        nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
    ],
    ids=["linear", "relu"],
)
def test_a_model_without_a_quantiser_has_none_found(model):
    torch.manual_seed(0)
    x = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert find_input_quantizer(model, x) is None


def test_thresholds_that_differ_between_pixels_are_not_an_elementwise_quantiser():
    thresholds = torch.linspace(0.2, 0.8, 64)
    linear = nn.Linear(64, 10)
    x = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert find_input_quantizer(lambda images: linear((images.flatten(1) >= thresholds).float()), x) is None


def test_quantizer_specs_and_their_errors():
    assert Quantizer.parse("binary").describe() == "2 levels, threshold 0.5 (declared in the spec)"
    assert Quantizer.parse("levels@4").count == 3
    assert Quantizer.parse("thresholds@0.2+0.7").count == 2
    binary = Quantizer.binary(0.5)
    assert binary.levels(torch.tensor([[0.0, float(binary.below), 0.5, 1.0]])).tolist() == [[0, 0, 1, 1]]
    for bad in ("binary@1.5", "levels@1", "thresholds@", "ternary", "thresholds@0.5+0.5"):
        with pytest.raises(BenchError, match="quantizer"):
            Quantizer.parse(bad)
    round_trip = Quantizer.from_json(Quantizer.uniform(3, source="x").to_json())
    assert torch.equal(round_trip.below, Quantizer.uniform(3).below) and round_trip.source == "x"


def test_without_a_quantiser_the_attack_says_how_to_give_one():
    attack = ATTACKS.build("quantized", "paper").for_threat_model("l2")
    model = BinarisedLinear(0, True)
    x = torch.rand(2, DIMENSION)
    with pytest.raises(BenchError, match="quantizer=binary"):
        attack(model, x, model(x).argmax(dim=1), 1.0)


def test_binary_abs_declares_its_binarisation_and_abs_declares_none():
    from defenses.base import DEFENSES

    declared = DEFENSES.build("binary-abs", "smoke").input_quantizer()
    assert declared.describe() == "2 levels, threshold 0.5 (declared by binary-abs)"
    assert DEFENSES.build("abs", "smoke").input_quantizer() is None


def test_examples_inside_the_ball_keep_their_threshold_crossings_through_the_projection():
    """``x + (x_adv − x)`` is not always ``x_adv``: a white pixel moved just below the threshold came back as 0.5
    (one bit up) before the projection returned examples inside the ball as they are."""
    x = torch.ones(1, 4)
    x_adv = x.clone()
    x_adv[0, 0] = Quantizer.binary(0.5).below
    for norm in ("l2", "linf"):
        assert torch.equal(project(x, x_adv, 1.0, norm), x_adv)
    model = BinarisedLinear(1, straight_through=True, dimension=64, classes=10)
    images = torch.rand(64, 64, generator=torch.Generator().manual_seed(3))
    y = model(images).argmax(dim=1)
    bounded, unbounded = _attack("l2", "quantized").run_minimal_curve(model, images, y, [8.0])
    assert torch.equal(bounded[0], unbounded)
