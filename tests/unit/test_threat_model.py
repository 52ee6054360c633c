import pytest
import torch
from torch import nn

from attacks.base import Attack, check_threat_model, project_linf
from foundation.errors import BenchError, ThreatModelViolation
from foundation.threat_models import validate_epsilon


def test_guard_accepts_examples_on_the_ball_surface(images):
    x_adv = project_linf(images, images + 0.3 * torch.randn_like(images).sign(), 0.3)
    check_threat_model(images, x_adv, "linf", 0.3)


def test_guard_rejects_an_example_outside_the_linf_ball(images):
    x_adv = images.clone()
    x_adv[3] = project_linf(images[3], images[3] + 0.5, 0.31)
    with pytest.raises(ThreatModelViolation, match="1 of 64 examples outside the L∞ ball"):
        check_threat_model(images, x_adv, "linf", 0.3)


def test_guard_rejects_values_outside_the_box(images):
    x_adv = images.clone()
    x_adv[0, 0, 0, 0] = 1.0001
    with pytest.raises(ThreatModelViolation, match="outside the \\[0, 1\\] box"):
        check_threat_model(images, x_adv, "linf", 0.3)


def test_guard_rejects_nan_and_wrong_shapes(images):
    x_adv = images.clone()
    x_adv[1, 0, 2, 2] = float("nan")
    with pytest.raises(ThreatModelViolation, match="non-finite"):
        check_threat_model(images, x_adv, "linf", 0.3)
    with pytest.raises(ThreatModelViolation, match="shape"):
        check_threat_model(images, images[:3], "linf", 0.3)


def test_guard_checks_the_l2_ball_and_only_the_box_for_semantic_attacks(images):
    x_adv = images.clone()
    x_adv[:, 0, 0, 0] = torch.where(images[:, 0, 0, 0] > 0.5, images[:, 0, 0, 0] - 0.5, images[:, 0, 0, 0] + 0.5)
    check_threat_model(images, x_adv, "semantic", 0.0)
    check_threat_model(images, x_adv, "l2", 0.5)
    with pytest.raises(ThreatModelViolation, match="L2 ball"):
        check_threat_model(images, x_adv, "l2", 0.4)


class _OverBudget(Attack):
    name = "over-budget"

    def _run(self, model, x, y, eps, generator):
        return (x + 2 * eps).clamp(0, 1)


def test_an_attack_cannot_return_examples_past_its_budget(linear_model, images, labels):
    with pytest.raises(ThreatModelViolation, match="over-budget returned"):
        _OverBudget()(linear_model, images, labels, 0.1)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), "0.3", True])
def test_bad_epsilons_are_rejected(bad):
    with pytest.raises(BenchError, match="epsilon"):
        validate_epsilon(bad)


def test_attack_inputs_are_validated(linear_model, labels):
    with pytest.raises(BenchError, match=r"\[0, 1\]"):
        _OverBudget()(linear_model, torch.full((64, 1, 8, 8), 2.0), labels, 0.1)
    with pytest.raises(BenchError, match="do not match"):
        _OverBudget()(linear_model, torch.rand(64, 1, 8, 8), labels[:5], 0.1)


def test_project_linf_stays_in_ball_and_box():
    x = torch.tensor([[0.0, 0.5, 1.0]])
    projected = project_linf(x, torch.tensor([[-1.0, 2.0, 0.0]]), 0.2)
    assert torch.allclose(projected, torch.tensor([[0.0, 0.7, 0.8]]))
    assert isinstance(nn.Identity()(projected), torch.Tensor)
