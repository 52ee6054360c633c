"""The sparse threat models L0 and L1: the guard counts what the papers count, budgets are checked, the
projections keep what a minimal adversarial found, the datasets' default budgets, and ``pointwise`` in both."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from attacks.base import ATTACKS, changed_pixels, check_threat_model, perturbation_size, project
from benchmark.datasets.base import DATASETS
from benchmark.run.adaptive import first_stage, label_only_in
from benchmark.select import run_config
from defenses.base import DEFENSES
from foundation.errors import BenchError, ThreatModelViolation
from foundation.threat_models import ball_dimension, validate_epsilon


def _changed(x: torch.Tensor, pixels: int, size: float) -> torch.Tensor:
    """``x`` with its first ``pixels`` pixel positions moved by ``size`` (towards the middle of the box)."""
    x_adv = x.clone()
    flat = x_adv.view(len(x), x.shape[1], -1)
    step = torch.where(flat[:, :, :pixels] > 0.5, -size, size)
    flat[:, :, :pixels] += step
    return x_adv


@pytest.mark.parametrize("size", [1e-3, 0.5])
def test_the_l0_guard_refuses_a_thirteenth_changed_pixel_whatever_its_size(images, size):
    check_threat_model(images, _changed(images, 12, size), "l0", 12)
    with pytest.raises(ThreatModelViolation, match=r"outside the L0 ball of radius 12 .*changed pixels 13"):
        check_threat_model(images, _changed(images, 13, size), "l0", 12)


def test_the_l0_guard_counts_the_channels_of_a_pixel_once():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    x_adv = _changed(x, 12, 0.2)
    assert changed_pixels(x_adv - x).sum(dim=1).tolist() == [12] * 4
    assert perturbation_size(x, x_adv, "l0").tolist() == [12.0] * 4
    check_threat_model(x, x_adv, "l0", 12)
    one_channel = x.clone()
    one_channel[:, 1, 0, :5] += 0.1
    assert perturbation_size(x, one_channel, "l0").tolist() == [5.0] * 4


def test_the_l1_guard_sums_the_absolute_changes(images):
    x_adv = _changed(images, 20, 0.5)
    assert torch.allclose(perturbation_size(images, x_adv, "l1"), torch.full((len(images),), 10.0))
    check_threat_model(images, x_adv, "l1", 10.0)
    with pytest.raises(ThreatModelViolation, match=r"L1 ball of radius 9\.9"):
        check_threat_model(images, x_adv, "l1", 9.9)


def test_sparse_budgets_are_checked_against_what_they_count():
    assert ball_dimension((1, 28, 28), "l0") == 784 and ball_dimension((3, 32, 32), "l0") == 1024
    assert ball_dimension((3, 32, 32), "l1") == 3072
    assert validate_epsilon(12, "l0", 784) == 12.0
    for bad, message in ((12.5, "whole number"), (785, r"\[0, 784\]"), (-1, r"\[0, 784\]")):
        with pytest.raises(BenchError, match=message):
            validate_epsilon(bad, "l0", 784)
    assert validate_epsilon(10.0, "l1", 784) == 10.0
    with pytest.raises(BenchError, match=r"L1 epsilon .* \[0, 784\]"):
        validate_epsilon(800.0, "l1", 784)
    with pytest.raises(BenchError, match="whole number"):
        run_config(defenses="cnn", attacks="pointwise", epsilons="12.5", norm="l0")
    with pytest.raises(BenchError, match=r"unknown --norm 'l3'.*valid: linf, l2, l1, l0"):
        run_config(defenses="cnn", attacks="pointwise", norm="l3")


def test_the_datasets_default_sparse_budgets_hold_the_papers_headlines():
    mnist = DATASETS.build("mnist", "quick")
    profile = run_config(defenses="cnn", attacks="pointwise", norm="l0").profile
    assert 12.0 in mnist.default_epsilons(profile, "l0")
    assert 10.0 in mnist.default_epsilons(profile, "l1")
    assert run_config(defenses="cnn", attacks="pointwise", norm="l0").epsilons == (4.0, 8.0, 12.0, 24.0)
    cifar = DATASETS.build("cifar10", "quick")
    assert 12.0 in cifar.default_epsilons(profile, "l1") and 24.0 in cifar.default_epsilons(profile, "l0")


def test_the_l0_projection_keeps_the_most_changed_pixels_and_the_l1_projection_scales_into_the_ball():
    x = torch.zeros(2, 3, 4, 4)
    x_adv = x.clone()
    sizes = torch.arange(1, 17, dtype=torch.float32) / 16
    x_adv[:, 2] = sizes.view(4, 4)  # one channel changed per pixel, by 1/16 ... 1
    kept = project(x, x_adv, 5, "l0")
    assert perturbation_size(x, kept, "l0").tolist() == [5.0, 5.0]
    assert torch.equal(kept[:, 2].flatten(1)[:, -5:], x_adv[:, 2].flatten(1)[:, -5:])
    assert torch.equal(project(x, x_adv, 16, "l0"), x_adv)
    scaled = project(x, x_adv, 2.0, "l1")
    assert (perturbation_size(x, scaled, "l1") <= 2.0).all()
    assert torch.allclose(perturbation_size(x, scaled, "l1"), torch.full((2,), 2.0), atol=1e-4)
    assert torch.equal(project(x, x_adv, 100.0, "l1"), x_adv)


class FewPixels(nn.Module):
    """A linear classifier on an 8-value input whose weights are large on a few values: every
    minimal L0 adversarial is found by trying every subset (brute force)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.linear = nn.Linear(8, 3)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(3, 8, generator=generator) * torch.tensor([4, 3, 0.2] + [0.1] * 5))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _fewest_pixels(model: nn.Module, x: torch.Tensor, y: int) -> float:
    """The fewest values whose change fools the model: every subset set to every corner of the box."""
    for size in range(1, x.shape[1] + 1):
        for subset in itertools.combinations(range(x.shape[1]), size):
            for corner in itertools.product((0.0, 1.0), repeat=size):
                candidate = x.clone()
                candidate[0, list(subset)] = torch.tensor(corner)
                if int(model(candidate).argmax()) != y:
                    return float(size)
    return float("inf")


@pytest.mark.parametrize("norm", ["l0", "l1"])
def test_pointwise_runs_in_the_sparse_norms_guarded_and_seeded(norm):
    model = FewPixels()
    x = torch.rand(24, 8, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(dim=1)
    attack = ATTACKS.build("pointwise:queries=400:nearest=3:boundary_queries=0", "quick").for_threat_model(norm)
    epsilons = [1, 2, 4] if norm == "l0" else [0.5, 1.0, 2.0]
    runs = [
        attack.run_minimal_curve(model, x, y, epsilons, generator=torch.Generator().manual_seed(5)) for _ in range(2)
    ]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))
    bounded, unbounded = runs[0]
    for eps, x_adv in zip(epsilons, bounded, strict=True):
        check_threat_model(x, x_adv, norm, eps)
    fooled = model(unbounded).argmax(dim=1) != y
    assert fooled.float().mean() > 0.8
    if norm == "l0":  # reset-only in L0: no value is bisected, each kept value is a start's value
        sizes = perturbation_size(x, unbounded, "l0")[fooled]
        minimal = torch.tensor([_fewest_pixels(model, x[i : i + 1], int(y[i])) for i in fooled.nonzero().squeeze(1)])
        assert (sizes >= minimal).all()  # nothing beats the brute-force minimum
        assert sizes.median() <= minimal.median() + 2


@pytest.mark.parametrize(
    ("norm", "expected"),
    [
        ("l0", ["sparse-rs", "foolbox.fmn", "pointwise:queries=1000:nearest=1:boundary_queries=0"]),
        ("l1", ["autoattack", "foolbox.fmn", "pointwise:queries=1000:nearest=1:boundary_queries=0"]),
    ],
)
def test_the_adaptive_protocol_picks_the_attacks_of_the_norm(norm, expected):
    defense = DEFENSES.build("cnn", "quick")
    chosen = first_stage(defense, norm, "quick")
    assert [choice.spec.label for choice in chosen] == expected
    assert label_only_in(norm) == ("pointwise",)
    assert all(ATTACKS.get(choice.spec.name).runs_in(norm) for choice in chosen)
    assert "L1 version" in chosen[0].reason if norm == "l1" else "Sparse-RS" in chosen[0].reason


def test_sparse_rs_finds_an_l0_adversarial_of_exactly_the_minimal_number_of_pixels():
    """On an 8-value input every point's fewest changed values are known by brute force (every subset set to every
    corner of the box): Sparse-RS at ε = that number fools the point, and nothing can at one value fewer."""
    model = FewPixels()
    x = torch.rand(16, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(dim=1)
    fewest = torch.tensor([_fewest_pixels(model, x[i : i + 1], int(y[i])) for i in range(len(x))])
    attack = ATTACKS.build("sparse-rs:queries=300", "quick")
    for count in fewest.unique().tolist():
        points = (fewest == count).nonzero().squeeze(1)
        x_adv = attack(model, x[points], y[points], count, generator=torch.Generator().manual_seed(0))
        assert (model(x_adv).argmax(dim=1) != y[points]).all(), count
        assert (perturbation_size(x[points], x_adv, "l0") == count).all()


def test_the_masked_warning_names_the_label_only_attacks_of_its_threat_model():
    import pandas as pd

    from benchmark.cli import _masked_warnings

    frame = pd.DataFrame(
        {
            "defense": ["hard", "hard", "hard"],
            "threat_model": ["l0", "l2", "semantic"],
            "flags": ["masked", "masked;quantized", "masked"],
            "gradient_masking_share": [1.0, 1.0, 1.0],
        }
    )
    l0, l2 = _masked_warnings(frame, adaptive=True)
    assert l0.endswith("the adaptive protocol added pointwise at full budget")
    assert l2.endswith("the adaptive protocol added boundary, hsj, pointwise at full budget")
    assert "run --attacks adaptive (adds pointwise)" in _masked_warnings(frame, adaptive=False)[0]
