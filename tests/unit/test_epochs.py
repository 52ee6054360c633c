"""The shared epoch loop: steps and totals, early stopping, best-weights restore, shuffling."""

from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor, nn

from defenses.epochs import Shuffled, run_epochs
from foundation.splits import Split
from tests.synthetic import TinyContext


@dataclass
class RecordingContext(TinyContext):
    bars: list[tuple[str, int | None]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def progress(self, iterable, *, desc, total=None):
        self.bars.append((desc, total))
        return iterable

    def log(self, message: str) -> None:
        self.lines.append(message)


def scripted(values: list[float], module: nn.Linear):
    """A step that writes the epoch number into ``module`` and a validation that returns ``values`` in turn."""
    seen: list[tuple[int, float]] = []

    def step(batch: Tensor) -> Tensor:
        with torch.no_grad():
            module.weight.fill_(len(seen))
        return batch.sum()

    def validate(epoch: int, totals: Tensor) -> float:
        seen.append((epoch, float(totals)))
        return values[epoch]

    return step, validate, seen


def test_every_epoch_runs_every_step_and_hands_its_totals_to_validation():
    ctx, module = RecordingContext(), nn.Linear(1, 1)
    step, validate, seen = scripted([5.0, 4.0, 6.0], module)
    run = run_epochs(ctx, [torch.tensor(1.0), torch.tensor(2.0)], step, validate, epochs=3, desc="t")
    assert seen == [(0, 3.0), (1, 3.0), (2, 3.0)]  # totals restart at zero every epoch
    assert (run.epochs, run.best_epoch, run.best) == (3, 2, 6.0)  # without a mode the last epoch is kept
    assert ctx.bars == [("t 1/3", 2), ("t 2/3", 2), ("t 3/3", 2)]
    assert module.weight.item() == 2.0


def test_early_stopping_after_patience_epochs_restores_the_best_weights():
    ctx, module = RecordingContext(), nn.Linear(1, 1)
    step, validate, seen = scripted([3.0, 1.0, 2.0, 1.0, 0.5, 0.1], module)
    run = run_epochs(
        ctx, [torch.tensor(0.0)], step, validate, epochs=6, desc="t", mode="min", patience=2, keep_best=[module]
    )
    assert len(seen) == run.epochs == 4  # epochs 2 and 3 do not improve (a tie is no improvement)
    assert (run.best_epoch, run.best) == (1, 1.0)
    assert module.weight.item() == 1.0  # written by epoch 1, overwritten by epochs 2 and 3
    assert ctx.lines == ["t: early stop after epoch 4 (best 2)"]


def test_max_mode_keeps_the_highest_value_and_runs_on_without_patience():
    module = nn.Linear(1, 1)
    step, validate, _ = scripted([0.2, 0.9, 0.5, 0.1], module)
    run = run_epochs(
        TinyContext(), [torch.tensor(0.0)], step, validate, epochs=4, desc="t", mode="max", keep_best=[module]
    )
    assert (run.epochs, run.best_epoch, run.best) == (4, 1, 0.9)
    assert module.weight.item() == 1.0


def test_selecting_needs_a_mode():
    step, validate, _ = scripted([0.0], nn.Linear(1, 1))
    with pytest.raises(ValueError, match="mode"):
        run_epochs(TinyContext(), [], step, validate, epochs=1, desc="t", patience=1)


def test_shuffled_draws_a_new_order_per_epoch_from_its_generator_only():
    data = Split(torch.arange(10.0).view(10, 1), torch.arange(10))
    batches = Shuffled(data, 4, torch.Generator().manual_seed(3))
    global_state = torch.get_rng_state()
    labels: list[Tensor] = []

    def step(batch: tuple[Tensor, Tensor]) -> Tensor:
        labels.append(batch[1])
        return torch.zeros(())

    run_epochs(TinyContext(), batches, step, lambda epoch, totals: 0.0, epochs=2, desc="t")
    assert len(batches) == 3 and [len(y) for y in labels] == [4, 4, 2] * 2
    reference = torch.Generator().manual_seed(3)
    first, second = torch.cat(labels[:3]), torch.cat(labels[3:])
    assert torch.equal(first, torch.randperm(10, generator=reference))
    assert torch.equal(second, torch.randperm(10, generator=reference))
    assert not torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global stream is left alone
