"""Per-defense diagnostics behind the sanity flags: masked gradients and undeclared randomness.

Gradient masking shows as zero or non-finite input gradients (e.g. a quantising input layer
without BPDA); a defense whose predictions change between two identical calls but that does not
declare itself randomized would be evaluated without EOT or repeated predictions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks.gradient import input_gradient
from defenses.base import Defense
from foundation.parameters import frozen_parameters


def gradient_masking_share(defense: Defense, x: Tensor, y: Tensor, eot_samples: int, batch_size: int) -> float:
    """Share of points whose input gradient of the cross-entropy (through the attacked model) is zero or NaN."""
    model = defense.attack_model(eot_samples)
    masked = []
    with frozen_parameters(model):
        for start in range(0, len(x), batch_size):
            grad = input_gradient(model, x[start : start + batch_size], y[start : start + batch_size])
            norms = grad.flatten(1).norm(dim=1)
            masked.append(~torch.isfinite(norms) | (norms == 0))
    return float(torch.cat(masked).float().mean()) if masked else 0.0


def prediction_flip_share(defense: Defense, x: Tensor, batch_size: int) -> float:
    """Share of points whose predicted class differs between two identical calls of ``predict``."""
    first = defense.predict(x, batch_size).argmax(dim=1)
    second = defense.predict(x, batch_size).argmax(dim=1)
    return float((first != second).float().mean())


def defense_diagnostics(defense: Defense, x: Tensor, y: Tensor, eot_samples: int, batch_size: int) -> dict:
    return {
        "gradient_masking_share": gradient_masking_share(defense, x, y, eot_samples, batch_size),
        "prediction_flip_share": prediction_flip_share(defense, x, batch_size),
    }
