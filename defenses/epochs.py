"""The one epoch loop every defense trains with: batches, steps, validation, early stopping, best weights."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import torch
from torch import Tensor, nn

from defenses.base import FitContext
from foundation.splits import Split

B = TypeVar("B")
B_co = TypeVar("B_co", covariant=True)


class Batches(Protocol[B_co]):
    """An epoch's batches: every ``iter`` starts a new epoch (drawing its own order); ``len`` counts its steps."""

    def __iter__(self) -> Iterator[B_co]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Shuffled:
    """Mini-batches of ``data`` in a new order, drawn from ``generator``, every epoch."""

    data: Split
    batch_size: int
    generator: torch.Generator

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.data.batches(self.batch_size, self.generator)

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)


@dataclass(frozen=True)
class EpochsRun:
    """Epochs run, and the best epoch (0-based; -1 if none) with its validation value.

    Without a ``mode`` the last epoch counts as the best: its weights are the ones kept.
    """

    epochs: int
    best_epoch: int
    best: float | None


def run_epochs(
    ctx: FitContext,
    batches: Batches[B],
    step: Callable[[B], Tensor],
    validate: Callable[[int, Tensor], float],
    *,
    epochs: int,
    desc: str,
    mode: Literal["min", "max"] | None = None,
    patience: int | None = None,
    keep_best: Sequence[nn.Module] = (),
) -> EpochsRun:
    """Train for up to ``epochs`` passes over ``batches``, one progress bar per epoch.

    ``step(batch)`` trains on one batch and returns its share of the epoch's totals, which are
    summed on the device (no host sync per step) and handed to ``validate(epoch, totals)``; that
    records and logs the epoch and returns its validation value.  With ``mode`` the value is
    minimised or maximised: training stops after ``patience`` epochs in a row without a strict
    improvement, and the ``keep_best`` modules get their weights of the best epoch back.
    """
    if mode is None and (patience is not None or keep_best):
        raise ValueError("patience and keep_best select epochs on the validation value: give a mode")
    best_score, best, best_epoch, best_states, stale, epochs_run = math.inf, None, -1, [], 0, 0
    for epoch in range(epochs):
        totals = torch.zeros((), device=ctx.device)
        for batch in ctx.progress(iter(batches), desc=f"{desc} {epoch + 1}/{epochs}", total=len(batches)):
            totals = totals + step(batch)
        value = validate(epoch, totals)
        epochs_run = epoch + 1
        score = -value if mode == "max" else value
        if mode is None or score < best_score:  # NaN never improves
            best_score, best, best_epoch, stale = score, value, epoch, 0
            best_states = [copy.deepcopy(module.state_dict()) for module in keep_best]
        else:
            stale += 1
            if patience is not None and stale >= patience:
                ctx.log(f"{desc}: early stop after epoch {epoch + 1} (best {best_epoch + 1})")
                break
    if best_states:
        for module, state in zip(keep_best, best_states, strict=True):
            module.load_state_dict(state)
    return EpochsRun(epochs_run, best_epoch, best)
