"""Plain, fast training loops on device-resident tensors (no DataLoader, no per-sample work)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defenses.base import FitContext
from defenses.epochs import Shuffled, run_epochs
from defenses.networks import VAE, vae_loss, vae_loss_per_image
from foundation.splits import Split

#: ``after_step(step, clean_batch, per_image_losses, optimizer)``
AfterStep = Callable[[int, Tensor, Tensor, torch.optim.Optimizer], None]


@dataclass
class History:
    """Per-epoch training and validation losses (and accuracies for classifiers)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = -1


@torch.inference_mode()
def classifier_accuracy(model: nn.Module, data: Split, batch_size: int = 1000) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(dim=1) == y).sum()) for x, y in data.batches(batch_size))
    return correct / max(len(data), 1)


def train_classifier(
    model: nn.Module,
    train: Split,
    val: Split,
    ctx: FitContext,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    desc: str,
    make_inputs: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> History:
    """Adam on the cross-entropy; ``make_inputs(x, y)`` may replace the clean batch (adversarial training)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History()

    def train_step(batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        inputs = make_inputs(x, y) if make_inputs is not None else x
        model.train()
        loss = F.cross_entropy(model(inputs), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach() * len(y)

    def validate_epoch(epoch: int, loss_sum: Tensor) -> float:
        history.train_loss.append(float(loss_sum) / len(train))
        history.val_accuracy.append(classifier_accuracy(model, val))
        ctx.log(
            f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.4f}, "
            f"val accuracy {history.val_accuracy[-1]:.4f}"
        )
        return history.val_accuracy[-1]

    run = run_epochs(
        ctx, Shuffled(train, batch_size, ctx.generator()), train_step, validate_epoch, epochs=epochs, desc=desc
    )
    history.best_epoch = run.best_epoch
    model.eval()
    return history


@torch.no_grad()
def vae_validation_loss(vae: VAE, val: Split, kl_weight: float, batch_size: int = 1000) -> float:
    vae.eval()
    total = 0.0
    for x, _ in val.batches(batch_size):
        recon, mu, logvar = vae.reconstruct(x)
        total += float(vae_loss(recon, x, mu, logvar, kl_weight)) * len(x)
    return total / max(len(val), 1)


def train_vae(
    vae: VAE,
    train: Split,
    val: Split,
    ctx: FitContext,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    patience: int,
    kl_weight: float,
    desc: str,
    make_inputs: Callable[[Tensor, Tensor], Tensor] | None = None,
    after_step: AfterStep | None = None,
) -> History:
    """Adam on the per-image ELBO with early stopping on the validation loss (best weights restored).

    ``make_inputs(x, y)`` may replace the encoder's input (adversarial training reconstructs the
    clean image from the attacked one); the target is always the clean image.  ``after_step`` is
    called after every optimiser step with the step number, the clean batch, its per-image losses
    and the optimiser (prioritised replay takes its extra steps there).
    """
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    history = History()
    steps = itertools.count()

    def train_step(batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        inputs = make_inputs(x, y) if make_inputs is not None else x
        vae.train()
        recon, mu, logvar = vae.reconstruct(inputs)
        losses = vae_loss_per_image(recon, x, mu, logvar, kl_weight)
        optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        optimizer.step()
        loss_sum = losses.detach().sum()
        if after_step is not None:
            after_step(next(steps), x, losses.detach(), optimizer)
        return loss_sum

    def validate_epoch(epoch: int, loss_sum: Tensor) -> float:
        history.train_loss.append(float(loss_sum) / len(train))
        history.val_loss.append(vae_validation_loss(vae, val, kl_weight))
        ctx.log(
            f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.2f}, val loss {history.val_loss[-1]:.2f}"
        )
        return history.val_loss[-1]

    sampling, vae.sample = vae.sample, True
    run = run_epochs(
        ctx,
        Shuffled(train, batch_size, ctx.generator()),
        train_step,
        validate_epoch,
        epochs=epochs,
        desc=desc,
        mode="min",
        patience=patience,
        keep_best=[vae],
    )
    history.best_epoch = run.best_epoch
    vae.sample = sampling
    vae.eval()
    return history
