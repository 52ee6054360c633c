"""Plain, fast training loops on device-resident tensors (no DataLoader, no per-sample work)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defenses.base import FitContext, Split
from defenses.networks import VAE, vae_loss, vae_loss_per_image

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
    generator = ctx.generator()
    history = History()
    steps_per_epoch = -(-len(train) // batch_size)
    for epoch in range(epochs):
        running = torch.zeros((), device=ctx.device)
        batches = ctx.progress(
            train.batches(batch_size, generator), desc=f"{desc} {epoch + 1}/{epochs}", total=steps_per_epoch
        )
        for x, y in batches:
            inputs = make_inputs(x, y) if make_inputs is not None else x
            model.train()
            loss = F.cross_entropy(model(inputs), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * len(y)
        history.train_loss.append(float(running) / len(train))
        history.val_accuracy.append(classifier_accuracy(model, val))
        ctx.log(
            f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.4f}, "
            f"val accuracy {history.val_accuracy[-1]:.4f}"
        )
    history.best_epoch = epochs - 1
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
    generator = ctx.generator()
    history = History()
    best_loss, best_state, epochs_without_gain = float("inf"), None, 0
    sampling = vae.sample
    vae.sample = True
    step = 0
    steps_per_epoch = -(-len(train) // batch_size)
    for epoch in range(epochs):
        running = torch.zeros((), device=ctx.device)
        batches = ctx.progress(
            train.batches(batch_size, generator), desc=f"{desc} {epoch + 1}/{epochs}", total=steps_per_epoch
        )
        for x, y in batches:
            inputs = make_inputs(x, y) if make_inputs is not None else x
            vae.train()
            recon, mu, logvar = vae.reconstruct(inputs)
            losses = vae_loss_per_image(recon, x, mu, logvar, kl_weight)
            optimizer.zero_grad(set_to_none=True)
            losses.mean().backward()
            optimizer.step()
            running += losses.detach().sum()
            if after_step is not None:
                after_step(step, x, losses.detach(), optimizer)
            step += 1
        history.train_loss.append(float(running) / len(train))
        history.val_loss.append(vae_validation_loss(vae, val, kl_weight))
        ctx.log(
            f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.2f}, val loss {history.val_loss[-1]:.2f}"
        )
        if history.val_loss[-1] < best_loss:
            best_loss, best_state, epochs_without_gain = history.val_loss[-1], copy.deepcopy(vae.state_dict()), 0
            history.best_epoch = epoch
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= patience:
                ctx.log(f"{desc}: early stop after epoch {epoch + 1} (best {history.best_epoch + 1})")
                break
    if best_state is not None:
        vae.load_state_dict(best_state)
    vae.sample = sampling
    vae.eval()
    return history
