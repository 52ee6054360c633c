import math

import torch
from torch import nn

from attacks.gradient import input_gradient
from foundation import adaptive
from foundation.adaptive import BPDA, ExpectationOverTransformation


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


def test_eot_in_chunks_gives_the_same_values_and_gradients_as_one_pass(images, labels, monkeypatch):
    """Many draws run in chunks (each recomputed in the backward pass with the same draws), so a large
    ``eot_samples`` costs time, not memory; the numbers are those of one pass over all draws."""
    model, x = NoisyLinear().eval(), images[:8].clone().requires_grad_(True)
    results = []
    for chunk_images in (10_000, 16):  # all 6 draws in one pass; then 2 draws (16 images) per chunk
        monkeypatch.setattr(adaptive, "EOT_CHUNK_IMAGES", chunk_images)
        torch.manual_seed(5)
        logits = ExpectationOverTransformation(model, samples=6)(x)
        (gradient,) = torch.autograd.grad(nn.functional.cross_entropy(logits, labels[:8]), x)
        results.append((logits.detach(), gradient))
    (one_pass, one_pass_gradient), (chunked, chunked_gradient) = results
    assert torch.allclose(one_pass, chunked, atol=1e-5)
    assert torch.allclose(one_pass_gradient, chunked_gradient, atol=1e-6)
    assert chunked_gradient.abs().sum() > 0
