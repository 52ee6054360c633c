"""When does an adversarial example count as fooling the model? (Foolbox's *criterion*.)

Attacks that decide per point whether to keep attacking (AutoAttack's ensemble attacks only the
points still standing) ask a criterion, not the logits they differentiate: the runner hands them
the leaderboard's own rule (the deployed path, and for randomized defenses every one of the
repeated predictions must be correct), so an attack never stops on a point the table still counts
as robust.  Called directly, an attack falls back to a single prediction of the model it attacks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

#: ``criterion(x_adv, y)`` is a boolean mask, True where ``x_adv`` fools the model.
Criterion = Callable[[Tensor, Tensor], Tensor]


class Misclassification:
    """Fooled when one prediction of ``model`` differs from the label.

    Attacks that already have ``model``'s logits of an iterate (from their gradient step) may read
    the verdict off them instead of calling the criterion: ``criterion.model is model`` tells them so.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x_adv: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model(x_adv).argmax(dim=1) != y


def misclassification(model: nn.Module) -> Criterion:
    """One prediction of ``model`` decides (the criterion of a deterministic model)."""
    return Misclassification(model)


def repeated_misclassification(predict: Callable[[Tensor], Tensor], repeats: int) -> Criterion:
    """Fooled when any of ``repeats`` predictions (logits from ``predict``) differs from the label.

    The leaderboard's rule for randomized defenses: a point is robust only if every repeat is correct.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")

    def fooled(x_adv: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            wrong = torch.zeros(len(y), dtype=torch.bool, device=y.device)
            for _ in range(repeats):
                wrong |= predict(x_adv).argmax(dim=1) != y
        return wrong

    return fooled
