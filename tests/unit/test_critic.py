"""The loss critic: architecture, conditioning, top-fraction selection and training."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from defenses.critic import LossCritic, critic_training_step, select_top_fraction, top_count


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_output_is_one_score_per_image():
    torch.manual_seed(0)
    critic = LossCritic()
    assert critic(_images(5)).shape == (5,)
    assert critic(_images(5), torch.zeros(5, dtype=torch.long)).shape == (5,)  # ignored when unconditioned


def test_architecture_is_784_400_20_1_with_leaky_relu():
    critic = LossCritic()
    linears = [m for m in critic.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 400), (400, 20), (20, 1)]
    slopes = [m.negative_slope for m in critic.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2, 0.2]


def test_conditioning_on_the_attack_type_widens_the_input():
    torch.manual_seed(0)
    critic = LossCritic(num_attack_types=4)
    first = next(m for m in critic.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 784 + 4
    x = _images(1).expand(4, -1, -1, -1)
    scores = critic(x, torch.arange(4))
    assert scores.shape == (4,)
    assert len(set(scores.tolist())) == 4  # same image, different attack types: different predictions
    with pytest.raises(ValueError, match="attack_type"):
        critic(x)


@pytest.mark.parametrize(("n", "fraction"), [(640, 0.1), (37, 0.1), (100, 0.07), (5, 0.5), (7, 1.0), (3, 0.01)])
def test_select_top_fraction_returns_exactly_the_highest_predicted(n, fraction):
    torch.manual_seed(1)
    critic = LossCritic(num_attack_types=3)
    x, attack_type = _images(n, seed=n), torch.arange(n) % 3
    selected = select_top_fraction(critic, x, attack_type, fraction)
    expected_count = math.ceil(round(fraction * n, 9))
    assert len(selected) == expected_count == top_count(n, fraction)
    assert len(set(selected.tolist())) == len(selected)
    with torch.no_grad():
        scores = critic(x, attack_type)
    brute = sorted(range(n), key=lambda i: -scores[i].item())[:expected_count]
    assert selected.tolist() == brute  # the highest predicted, highest first


def test_top_count_rounding_and_bounds():
    assert top_count(640, 0.1) == 64
    assert top_count(100, 0.07) == 7  # 0.07 * 100 is 7.000000000000001 in floating point
    assert top_count(30, 0.1) == 3
    assert top_count(31, 0.1) == 4
    assert top_count(0, 0.1) == 0
    with pytest.raises(ValueError):
        top_count(10, 0.0)


def test_training_steps_reduce_the_mse_on_a_learnable_target():
    torch.manual_seed(2)
    critic = LossCritic(num_attack_types=2)
    x, attack_type = _images(16, seed=3), torch.arange(16) % 2
    target = 4 * x.flatten(1).mean(dim=1) + 2 * attack_type  # a simple function of image and attack type
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3)
    with torch.no_grad():
        initial = F.mse_loss(critic(x, attack_type), target).item()
    reported = critic_training_step(critic, optimizer, x, attack_type, target)
    assert reported == pytest.approx(initial, rel=1e-5)  # the MSE before the step
    for _ in range(10):
        critic_training_step(critic, optimizer, x, attack_type, target)
    with torch.no_grad():
        final = F.mse_loss(critic(x, attack_type), target).item()
    assert final < 0.2 * initial
