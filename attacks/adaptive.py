"""Adaptive-attack wrappers: EOT for randomized models, BPDA for non-differentiable steps.

They wrap a model so that *any* gradient attack (native, ART, Foolbox) sees the right
gradients, following Athalye et al., "Obfuscated Gradients Give a False Sense of Security".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


class ExpectationOverTransformation(nn.Module):
    """Expectation of a randomized model's predictive distribution over ``samples`` draws.

    The batch is repeated ``samples`` times and evaluated in one batched forward pass; the
    output is ``log mean_k softmax(model(x))``, used as logits.  Cross-entropy on it is the
    loss of the expected classifier, and its gradient averages the draws' gradients (weighted
    by their probabilities), which is what EOT asks of a white-box attack.
    """

    def __init__(self, model: nn.Module, samples: int) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError("EOT needs at least one sample")
        self.model = model
        self.samples = samples

    def forward(self, x: Tensor) -> Tensor:
        if self.samples == 1:
            return self.model(x)
        repeated = x.unsqueeze(0).expand(self.samples, *x.shape).reshape(-1, *x.shape[1:])
        log_probs = torch.log_softmax(self.model(repeated), dim=-1).view(self.samples, len(x), -1)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.samples)


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:  # type: ignore[override]
        with torch.no_grad():
            return transform(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad_output, None


class BPDA(nn.Module):
    """Backward-pass differentiable approximation: apply ``transform`` forward, identity backward.

    For steps such as binarisation or quantisation whose true gradient is zero almost
    everywhere, so that attacks get a useful gradient instead of a masked one.
    """

    def __init__(self, transform: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor) -> Tensor:
        return _StraightThrough.apply(x, self.transform)
