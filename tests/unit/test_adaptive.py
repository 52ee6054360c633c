import math

import torch
from torch import nn

from attacks.adaptive import BPDA, ExpectationOverTransformation
from attacks.gradient import input_gradient


class NoisyLinear(nn.Module):
    """A randomized model: logits of a linear map on inputs plus fresh Gaussian noise."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.linear(x + 0.5 * torch.randn_like(x))


def test_eot_is_the_log_of_the_mean_predictive_distribution(images):
    model = NoisyLinear().eval()
    torch.manual_seed(3)
    eot = ExpectationOverTransformation(model, samples=5)(images[:4])
    torch.manual_seed(3)
    draws = model(images[:4].repeat(5, 1, 1, 1)).log_softmax(dim=1).view(5, 4, 10)
    assert torch.allclose(eot, draws.logsumexp(dim=0) - math.log(5), atol=1e-5)
    assert torch.allclose(eot.exp().sum(dim=1), torch.ones(4), atol=1e-5)


def test_eot_gradient_is_less_noisy_than_a_single_draw(images, labels):
    model = NoisyLinear().eval()
    single = torch.stack([input_gradient(model, images, labels) for _ in range(8)])
    averaged = torch.stack([input_gradient(ExpectationOverTransformation(model, 32), images, labels) for _ in range(8)])
    assert averaged.var(dim=0).mean() < 0.25 * single.var(dim=0).mean()


def test_eot_with_one_sample_is_the_model_itself(linear_model, images):
    assert torch.equal(ExpectationOverTransformation(linear_model, 1)(images), linear_model(images))


def test_bpda_applies_the_transform_forward_and_identity_backward(images):
    binarise = BPDA(lambda x: (x > 0.5).float())
    x = images.clone().requires_grad_(True)
    out = binarise(x)
    assert torch.equal(out, (images > 0.5).float())
    (out * torch.arange(64.0).view(1, 1, 8, 8)).sum().backward()
    assert torch.equal(x.grad, torch.arange(64.0).view(1, 1, 8, 8).expand_as(images))
