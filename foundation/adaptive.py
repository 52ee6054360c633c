"""Adaptive-attack wrappers: EOT for randomized models, BPDA for non-differentiable steps.

They wrap a model so that *any* gradient attack (native, ART, Foolbox) sees the right
gradients, following Athalye et al., "Obfuscated Gradients Give a False Sense of Security".
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

#: Images per forward pass of EOT draws: beyond it draws run in chunks, so more draws cost time, not memory.
EOT_CHUNK_IMAGES = 8192


class ExpectationOverTransformation(nn.Module):
    """Expectation of a randomized model's predictive distribution over ``samples`` draws.

    The batch is repeated ``samples`` times and evaluated in batched forward passes of at most
    ``EOT_CHUNK_IMAGES`` images; the output is ``log mean_k softmax(model(x))``, used as logits.
    Cross-entropy on it is the loss of the expected classifier, and its gradient averages the draws'
    gradients (weighted by their probabilities), which is what EOT asks of a white-box attack.  When
    the draws take several chunks, each chunk's forward pass is recomputed during the backward pass
    (activation checkpointing, with the same random draws) instead of being kept in memory.
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
        per_chunk = max(1, EOT_CHUNK_IMAGES // max(1, len(x)))
        if per_chunk >= self.samples:
            log_probs = self._draws(x, self.samples)
        else:
            chunks = []
            for first in range(0, self.samples, per_chunk):
                count = min(per_chunk, self.samples - first)
                if torch.is_grad_enabled():
                    chunks.append(checkpoint(self._draws, x, count, use_reentrant=False))
                else:
                    chunks.append(self._draws(x, count))
            log_probs = torch.cat(chunks)
        return torch.logsumexp(log_probs, dim=0) - math.log(self.samples)

    def _draws(self, x: Tensor, count: int) -> Tensor:
        """Log-probabilities of ``count`` draws of the model on ``x``, shape (count, N, classes)."""
        repeated = x.unsqueeze(0).expand(count, *x.shape).reshape(-1, *x.shape[1:])
        return torch.log_softmax(self.model(repeated), dim=-1).view(count, len(x), -1)


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
