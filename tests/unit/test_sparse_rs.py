"""Sparse-RS (L0): exactly k changed pixels per attacked point under the guard, seeded, the identity at ε = 0 and on
misclassified points, and far stronger than as many random k-pixel draws where a few pixels decide the class."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attacks.base import ATTACKS, changed_pixels
from attacks.criteria import RepeatedMisclassification
from attacks.sparse_rs import (
    SparseRSConfig,
    alpha,
    draw_positions,
    gather_pixels,
    pixel_view,
    random_vertices,
    scatter_pixels,
)
from foundation.errors import BenchError
from tests.conftest import accuracy

#: The pixels (of 64) that decide the class of ``key_pixel_model``.
KEY = [3, 10, 19, 28, 45, 60]


def _attack(queries: int = 100) -> nn.Module:
    return ATTACKS.build(f"sparse-rs:queries={queries}", "paper")


def _seed(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def key_pixel_model() -> nn.Module:
    """Two classes on 1×8×8 inputs: class 0 while more than 3.5 of the six ``KEY`` pixels' values remain (every
    other pixel weighs 2 % of one)."""
    weights = 0.02 * torch.randn(64, generator=_seed(0))
    weights[KEY] = 1.0
    linear = nn.Linear(64, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.stack([weights, -weights]) / 2)
        linear.bias.copy_(torch.tensor([-3.5, 3.5]) / 2)
    return nn.Sequential(nn.Flatten(), linear).eval().requires_grad_(False)


def key_pixel_images(count: int = 64) -> torch.Tensor:
    """Random images whose ``KEY`` pixels are all white: at least three of them must change to fool the model."""
    x = torch.rand(count, 1, 8, 8, generator=_seed(1))
    x.view(count, 64)[:, KEY] = 1.0
    return x


def random_draws_fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, draws: int) -> float:
    """Fraction of points fooled by any of ``draws`` independent random k-pixel sets at random vertices."""
    generator, clean = _seed(2), pixel_view(x)
    everywhere = torch.ones(clean.shape[0], clean.shape[2], dtype=torch.bool)
    fooled = torch.zeros(len(x), dtype=torch.bool)
    with torch.no_grad():
        for _ in range(draws):
            positions = draw_positions(torch.rand(everywhere.shape, generator=generator), everywhere, k)
            vertices = random_vertices(gather_pixels(clean, positions), generator)
            fooled |= model(scatter_pixels(clean, positions, vertices).view_as(x)).argmax(dim=1) != y
    return float(fooled.float().mean())


def test_sparse_rs_is_a_score_based_l0_attack():
    attack = ATTACKS.build("sparse-rs", "quick")
    assert (attack.threat_model, attack.norms, attack.requires) == ("l0", {"l0"}, {"queries"})
    assert not attack.minimization and attack.backend == "native"
    assert attack.config.queries == 1000 and ATTACKS.build("sparse-rs", "smoke").config.queries == 300
    assert ATTACKS.build("sparse-rs", "paper").config == SparseRSConfig(queries=10_000, p_init=0.3)
    with pytest.raises(BenchError, match="does not run in the linf"):
        attack.for_threat_model("linf")


@pytest.mark.parametrize("option, value", [("queries", 0), ("p_init", 0.0), ("p_init", 1.5)])
def test_config_rejects_bad_budgets(option, value):
    with pytest.raises(ValueError, match=option):
        SparseRSConfig(**{option: value})


def test_alpha_follows_the_papers_l0_schedule_rescaled_to_the_budget():
    assert alpha(0.3, 0, 10_000) == 0.3
    assert [alpha(0.4, i, 10_000) for i in (1, 50, 51, 201, 8000, 8001)] == [0.2, 0.2, 0.1, 0.08, 0.4 / 15, 0.02]
    assert alpha(0.4, 5, 1000) == alpha(0.4, 50, 10_000) and alpha(0.4, 6, 1000) == alpha(0.4, 60, 10_000)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 8, 8), (1, 28, 28), (64,)], ids=["gray", "rgb", "mnist", "flat"])
def test_every_attacked_point_changes_exactly_eps_pixel_positions(shape):
    """The guard holds at every ε, all channels of a pixel counting once; binary images check that each drawn
    vertex really changes its pixel (a vertex equal to the clean pixel would change fewer)."""
    dimension = torch.Size(shape).numel()
    model = nn.Sequential(nn.Flatten(), nn.Linear(dimension, 10)).eval().requires_grad_(False)
    x = (torch.rand(16, *shape, generator=_seed(3)) < 0.5).float()
    y = model(x).argmax(dim=1)
    pixels = dimension // 3 if shape[0] == 3 else dimension
    epsilons = [0, 1, 4, 12, pixels]
    curve = _attack(queries=30).run_curve(model, x, y, epsilons, generator=_seed(0))
    assert torch.equal(curve[0], x)
    for eps, x_adv in zip(epsilons[1:], curve[1:], strict=True):
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert (changed_pixels(x_adv - x).sum(dim=1) == eps).all(), eps


def test_same_seed_same_examples_other_seed_other_examples(linear_model, images, labels):
    attack = _attack(queries=50)
    first, again, other = (attack(linear_model, images, labels, 4, generator=_seed(s)) for s in (5, 5, 6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_misclassified_points_come_back_unchanged(linear_model, images, labels):
    wrong = torch.arange(len(images)) % 2 == 0
    y = torch.where(wrong, (labels + 1) % 10, labels)
    x_adv = _attack(queries=50)(linear_model, images, y, 12, generator=_seed(0))
    assert torch.equal(x_adv[wrong], images[wrong])
    assert (changed_pixels(x_adv[~wrong] - images[~wrong]).sum(dim=1) == 12).all()


def test_it_finds_the_few_deciding_pixels_far_better_than_random_draws():
    model, x = key_pixel_model(), key_pixel_images()
    y = torch.zeros(len(x), dtype=torch.long)
    assert accuracy(model, x, y) == 1.0
    queries, k = 200, 4
    x_adv = _attack(queries)(model, x, y, k, generator=_seed(0))
    fooled = 1 - accuracy(model, x_adv, y)
    assert fooled >= 0.9
    assert fooled >= random_draws_fooled(model, x, y, k, queries) + 0.4


class _CountingModel(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.examples = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.examples += len(x)
        return self.model(x)


@pytest.mark.parametrize("stochastic", [False, True], ids=["deterministic", "stochastic"])
def test_fooled_points_leave_the_search_unless_the_criterion_is_stochastic(linear_model, images, labels, stochastic):
    """Every point is fooled within a few queries at ε = 12; under a stochastic criterion each point still spends
    its whole budget (after the clean query)."""
    model, queries = _CountingModel(linear_model), 100
    criterion = RepeatedMisclassification(linear_model, 1, stochastic=stochastic)
    x_adv = _attack(queries)(model, images, labels, 12, generator=_seed(0), criterion=criterion)
    assert accuracy(linear_model, x_adv, labels) == 0.0
    if stochastic:
        assert model.examples == (1 + queries) * len(images)
    else:
        assert model.examples < 0.2 * (1 + queries) * len(images)
