"""Training throughput of paper 000's VAEs (fc, cnn; clean and PGD-adversarial): harness vs a hand loop.

The harness contender is the defense's own training path (``VAEPurifier.train_purifier``, i.e.
``defenses.training.train_vae`` with adv-vae's PGD inputs), one epoch over a fixed subset of
``steps × batch`` training images; the hand loop trains the same architecture with Adam on the same
loss and, for the adversarial task, the same PGD written plainly.  Validation is left out of both
(an empty validation split), so the numbers are optimiser-step throughput.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.perf.measurements import Measurement, from_timings
from benchmark.perf.timing import Contender, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from defenses.adversarial_vae import AdversarialVAEConfig
from defenses.base import DEFENSES
from defenses.networks import VAE, vae_loss_per_image
from defenses.vae import VAEConfig, build_vae
from foundation.splits import Split

HARNESS, HAND_LOOP = "harness", "hand loop"
STEPS, BATCH = 20, 128
QUICK_CHECK_STEPS, QUICK_CHECK_BATCH = 2, 32
ARCHS = ("fc", "cnn")
MODES = ("clean", "pgd")


def task_name(arch: str, mode: str) -> str:
    return f"vae-{arch} {mode}"


def hand_pgd_inputs(vae: VAE, x: Tensor, config: AdversarialVAEConfig) -> Tensor:
    """adv-vae's PGD written plainly: maximise the VAE loss of reconstructing clean ``x`` from the input."""
    eps, step = config.pgd_eps, config.pgd_step
    x_adv = (x + (2 * torch.rand_like(x) - 1) * eps).clamp(0.0, 1.0)
    for _ in range(config.pgd_steps):
        x_adv.requires_grad_(True)
        recon, mu, logvar = vae.reconstruct(x_adv)
        (grad,) = torch.autograd.grad(vae_loss_per_image(recon, x, mu, logvar, config.kl_weight).sum(), x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + step * grad.sign(), x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv.detach()


def hand_training(vae: VAE, images: Tensor, batch: int, config: AdversarialVAEConfig, adversarial: bool) -> None:
    """One shuffled pass of Adam on the per-image ELBO (the target is always the clean image)."""
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.lr)
    order = torch.randperm(len(images), device=images.device)
    vae.train()
    for start in range(0, len(images), batch):
        x = images[order[start : start + batch]]
        inputs = hand_pgd_inputs(vae, x, config) if adversarial else x
        recon, mu, logvar = vae.reconstruct(inputs)
        loss = vae_loss_per_image(recon, x, mu, logvar, config.kl_weight).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def contenders(bench: Workbench, arch: str, mode: str, train: Split, batch: int) -> list[Contender]:
    name = "adv-vae" if mode == "pgd" else "vae"
    attack = ":train_attack=pgd" if mode == "pgd" else ""
    torch.manual_seed(bench.settings.seed)
    defense = DEFENSES.build(f"{name}:arch={arch}{attack}:epochs=1:batch_size={batch}", "paper").to(bench.device)
    empty = Split(train.x[:0], train.y[:0])
    ctx = bench.context()
    config = AdversarialVAEConfig()
    vae = build_vae(arch, VAEConfig().latent_dim).to(bench.device)
    return [
        Contender(HARNESS, lambda: defense.train_purifier(train, empty, ctx), f"{name}.train_purifier (train_vae)"),
        Contender(HAND_LOOP, lambda: hand_training(vae, train.x, batch, config, mode == "pgd")),
    ]


def training_rows(bench: Workbench, section: str) -> list[Measurement]:
    steps, batch = (QUICK_CHECK_STEPS, QUICK_CHECK_BATCH) if bench.settings.quick_check else (STEPS, BATCH)
    train = bench.train_images(steps * batch)
    rows: list[Measurement] = []
    for arch in ARCHS:
        for mode in MODES:
            task = task_name(arch, mode)
            log(f"{task}: {bench.settings.repeats} rounds of {steps} steps of {batch}")
            timings = time_round_robin(
                contenders(bench, arch, mode, train, batch),
                bench.settings.repeats,
                synchronize=synchronizer(bench.device),
            )
            rows += from_timings(
                section,
                task,
                timings,
                device=bench.device_name,
                batch=batch,
                images=len(train),
                reference=HAND_LOOP,
                note=f"{steps} optimiser steps per call",
            )
    return rows
