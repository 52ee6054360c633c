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

    stochastic = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, x_adv: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model(x_adv).argmax(dim=1) != y


class RepeatedMisclassification:
    """Fooled when any of ``repeats`` predictions (logits from ``predict``) differs from the label.

    The leaderboard's rule for randomized defenses: a point is robust only if every repeat is correct.
    ``stochastic`` says the verdict is itself drawn (a randomized ``predict``): a point it calls fooled
    may pass the table's fresh draws, so attacks must not stop on it (see ``Attack.can_stop_early``).
    """

    def __init__(self, predict: Callable[[Tensor], Tensor], repeats: int, *, stochastic: bool = True) -> None:
        if repeats < 1:
            raise ValueError("repeats must be at least 1")
        self.predict, self.repeats, self.stochastic = predict, repeats, stochastic

    def __call__(self, x_adv: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            wrong = torch.zeros(len(y), dtype=torch.bool, device=y.device)
            for _ in range(self.repeats):
                wrong |= self.predict(x_adv).argmax(dim=1) != y
        return wrong
