"""The batched decision-based attacks (``boundary``, ``hsj``, ``pointwise``) on tiny synthetic models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attacks.base import ATTACKS
from attacks.decision import LabelOracle, nearest_other_class, starting_points

DECISION = ("boundary", "hsj", "pointwise")


class Linear(nn.Module):
    """Two classes split by a hyperplane through the grey image: the exact minimal L2 distance of x is
    |w·(x − ½)| (‖w‖₂ = 1) and the L∞ one |w·(x − ½)| / ‖w‖₁, while the box does not bind."""

    def __init__(self, dimension: int = 64) -> None:
        super().__init__()
        weights = torch.randn(dimension, generator=torch.Generator().manual_seed(0))
        self.w = weights / weights.norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = (x.flatten(1) - 0.5) @ self.w
        return torch.stack([margin, -margin], dim=1)


class Constant(nn.Module):
    """Predicts class 2 for every input: a point labelled 2 has no adversarial anywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 3)
        logits[:, 2] = 1
        return logits


class Brightness(nn.Module):
    """Class 1 for images brighter than 0.7 on average, else class 0: uniform noise is class 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x.flatten(1).mean(dim=1) > 0.7).float()
        return torch.stack([1 - bright, bright], dim=1)


@pytest.fixture
def linear_points():
    model = Linear()
    x = (0.5 + 0.2 * torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))).clamp(0.05, 0.95)
    margin = (x.flatten(1) - 0.5) @ model.w
    y = (margin < 0).long()
    return model, x, y, margin.abs()


def _sizes(x, x_adv, norm):
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


@pytest.mark.parametrize(
    ("spec", "norm", "tolerance"), [("boundary", "l2", 0.05), ("hsj", "l2", 0.05), ("hsj", "linf", 0.12)]
)
def test_on_a_linear_model_the_minimal_perturbation_is_found_within_a_few_percent(linear_points, spec, norm, tolerance):
    model, x, y, margin = linear_points
    exact = margin if norm == "l2" else margin / model.w.abs().sum()
    attack = ATTACKS.build(spec, "quick").for_threat_model(norm)
    _, unbounded = attack.run_minimal_curve(model, x, y, [0.1])
    with torch.no_grad():
        assert (model(unbounded).argmax(dim=1) != y).all()  # every point broken
    ratio = _sizes(x, unbounded, norm) / exact
    assert ratio.min() >= 1 - 1e-3  # never below the exact minimum (that would be a bug in the check)
    assert ratio.median() <= 1 + tolerance


@pytest.mark.parametrize("name", DECISION)
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_examples_pass_the_guard_and_are_seeded(linear_points, name, norm):
    model, x, y, _ = linear_points
    attack = ATTACKS.build(name, "smoke").for_threat_model(norm)
    epsilons = [0.0, 0.05, 0.5]

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return attack.run_minimal_curve(model, x, y, epsilons, generator=generator)

    curve, unbounded = run(3)
    for eps, x_adv in zip(epsilons, curve, strict=True):
        assert (_sizes(x, x_adv, norm) <= eps + 1e-6).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    again, unbounded_again = run(3)
    assert torch.equal(unbounded, unbounded_again) and all(map(torch.equal, curve, again))
    assert not torch.equal(unbounded, run(4)[1])  # the cell's generator draws the random steps


@pytest.mark.parametrize("name", DECISION)
def test_a_point_without_a_starting_adversarial_stays_robust_and_the_batch_goes_on(name):
    """Constant: the points labelled 2 cannot be fooled at all; the others are misclassified clean."""
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([2, 0, 2, 1, 2, 0])
    _, unbounded = ATTACKS.build(name, "smoke").for_threat_model("l2").run_minimal_curve(Constant(), x, y, [1.0])
    assert torch.equal(unbounded, x)


@pytest.mark.parametrize("name", DECISION)
def test_points_whose_class_no_noise_or_batch_image_escapes_come_back_unchanged(name):
    """All points are dark class-0 images: noise is class 0 too, and the batch has no other class."""
    x = 0.3 * torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(5, dtype=torch.long)
    _, unbounded = ATTACKS.build(name, "smoke").for_threat_model("l2").run_minimal_curve(Brightness(), x, y, [1.0])
    assert torch.equal(unbounded, x)


def test_starting_points_are_adversarial_on_the_boundary_and_the_closest_candidate():
    model = Brightness()
    dark = 0.3 * torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    bright = 0.8 + 0.2 * torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    x, y = torch.cat([dark, bright]), torch.tensor([0] * 4 + [1] * 4)
    oracle = LabelOracle(lambda images, labels: model(images).argmax(dim=1) != labels, y)
    start, found = starting_points(oracle, x, 10, torch.Generator().manual_seed(0), "l2", nearest=2)
    assert found.all()
    assert (model(start).argmax(dim=1) != y).all()
    # On the boundary: moving 1 % of the way back towards x is no longer adversarial.
    back = torch.lerp(start, x, 0.01 * torch.ones(len(x), 1, 1, 1))
    assert (model(back).argmax(dim=1) == y).all()
    assert int(oracle.queries.min()) > 0  # every query is counted for its point


def test_nearest_other_class_skips_the_points_own_class():
    x = torch.tensor([[0.0], [0.1], [0.2], [1.0]]).view(4, 1, 1, 1)
    y = torch.tensor([0, 0, 1, 1])
    index, exists = nearest_other_class(x, y, 2, "l2")
    assert index[0].tolist() == [2, 3] and index[2].tolist() == [1, 0] and exists.all()


def test_pointwise_resets_pixels_to_make_the_perturbation_sparse():
    """On a model that reads only the first four pixels, Pointwise keeps at most those four changed."""

    class FirstPixels(nn.Module):
        def forward(self, x):
            score = x.flatten(1)[:, :4].sum(dim=1) - 2
            return torch.stack([score, -score], dim=1)

    model = FirstPixels()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1, 8, 8, generator=generator)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    attack = ATTACKS.build("pointwise:boundary_queries=0", "smoke").for_threat_model("l2")
    _, unbounded = attack.run_minimal_curve(model, x, y, [1.0], generator=torch.Generator().manual_seed(1))
    fooled = model(unbounded).argmax(dim=1) != y
    assert fooled.float().mean() > 0.5
    changed = ((unbounded - x).abs().flatten(1) > 0).sum(dim=1)
    assert (changed[fooled] <= 4).all()
