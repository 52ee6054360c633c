"""``abs`` and ``binary-abs``: the analysis-by-synthesis model of Schott et al. (ICLR 2019).

**Model.** Ten class-conditional VAEs (latent 8), each trained only on images of its class, with the
reference architecture: encoder Conv(1→32,k5)→BN→ELU→Conv(32→32,k4,s2)→BN→ELU→Conv(32→64,k3,s2)→BN
→ELU→Conv(64→16,k5) (28→24→11→5→1: μ and log σ², 8 each, at 1×1); decoder ConvT(8→32,k4)→BN→ELU→
ConvT(32→16,k5,s2)→BN→ELU→ConvT(16→16,k5,s2)→BN→ELU→ConvT(16→1,k4)→Sigmoid (1→4→11→25→28).  The ten
VAEs are *one* module of grouped convolutions (``groups=10``): group c of every layer holds VAE c's
weights and BatchNorm is per channel, so statistics and affine parameters are per class as well.
Tensors carry the class in dimension 1: images (B, 10, 28, 28), channel c being what VAE c sees,
and latents (B, 10, 8).  One decoder call therefore decodes every (input, class) pair at once.

**Training** (the authors' reimplementation: Adam lr 3e-3, batch 128, 10 epochs, light augmentation).
Every step draws ``ceil(batch_size / 10)`` images (13 for 128) *of each class* and feeds class c's
images to VAE c only; that is the reference's class-balanced batch of 128 shared by the ten VAEs,
except that each VAE's BatchNorm sees only its own class (the reference ran every VAE on the whole
mixed batch and masked the loss, so its BatchNorm statistics mixed classes).  An epoch lasts until
the largest class has been seen once; smaller classes go on into a fresh permutation of their
images.  The loss is the reference's ELBO with a Gaussian decoder: per image and class,
``‖x − dec_c(z)‖² + β·KL(q_c(z|x) ‖ N(0, I))`` with z drawn by reparameterisation (sums over pixels
and latents), averaged over each class's images and summed over the classes (the VAEs share no
parameter and Adam is element-wise, so this is ten independent trainings).  Its β is the same β
as in the inference loss below (1).  Light augmentation (``augment``) is the reference's Augmentor
zoom (×0.9–1.1) and shear (±6°), each applied to an image with probability 0.1; its skew and
elastic distortion are left out.  Validation is for logging only (no early stopping or model
selection, as in the reference): the own-class ELBO and the accuracy of the cheap encoder-based
logits on the first 500 validation images.

**Inference** (robust inference of the paper).  A fixed bank of latents: the ``bank_size``
highest-density (smallest-norm) of ``bank_draws`` draws from N(0, I), drawn by a CPU generator seeded
with ``bank_seed`` (device-independent).  The bank is derived, not saved: it is rebuilt from the
seed, and its decodings are cached and recomputed whenever the decoder's weights change (parameter
identity, storage and version counters are the cache key, so training steps, ``load_state_dict``
and moving devices all invalidate it).  Per input and class the search starts from the bank entry
with the lowest ``ℓ_c(x, z) = (‖x − dec_c(z)‖² + β·½‖z‖²)/784`` and runs ``steps`` Adam steps (lr
``inference_lr``) on z, each followed by the projection ``z ← z·min(1, radius/‖z‖)`` onto the ball
of radius 5, which keeps z's direction and sign (the reference's projection dropped the sign); the
start is projected too (a no-op at radius 5, which no entry of the default bank reaches).  z*
is the iterate with the lowest ℓ_c on that path (the reference returns the last iterate, which
Adam may have overshot; keeping the best makes ℓ_c(z*) ≤ the bank start by construction).  Logits
are ``−440·ℓ_c(x, z*_c)``.  Inputs are processed in chunks of ``chunk_size``; within a chunk every
step is one batched decoder call over all inputs × all classes (``steps`` + 2 decoder calls per
chunk: one per iterate, the final one included, and one for dec_c(z*), so that only z and ℓ_c are kept
per step); the bank is decoded once, in chunks of ``chunk_size`` latents.  The search decodes with each
BatchNorm folded into its transposed convolution and ELU computed with ``exp`` (``FoldedDecoder``: the same
function up to rounding, without the BatchNorm passes and ``expm1``; ``bench perf --sections abs`` times it
against the plain decoder).  ABS is deterministic given the bank, so ``randomized`` stays False (no EOT, one
prediction).

**Gradient for attacks.**  ``differentiable_model()`` finds z* without gradients (gradients are
enabled only for the inner Adam, with respect to z) and then recomputes ℓ_c(x, z*) with dec_c(z*)
detached, so autograd yields exactly the envelope-theorem gradient ∂ℓ_c/∂x = 2(x − dec_c(z*))/784
(z* held fixed).  ``deployed_model()`` is the same computation, so both give the same logits.  The
inference module keeps the VAEs in eval mode (BatchNorm running statistics) whatever ``train()``
asks.

**Binary ABS** (``binary-abs``) binarises the input at 0.5 (``x ≥ 0.5``, as the authors' code does:
at ε = 0.3 a pixel of 51/255 can be pushed exactly onto 0.5) before everything and scales
ℓ_c per class by (1, .96, 1.001, 1.06, .98, .96, 1.03, 1, 1, 1); in ``differentiable_model()`` the
binarisation is BPDA (identity backward).  Its VAEs are trained exactly like ``abs``'s, on
grey-level images: in the paper Binary ABS is the ABS model with binarised inputs and the per-class
calibration.

**Profiles** change budgets only: ``smoke`` trains 2 epochs and infers with a 500-of-555 bank and
5 steps; ``quick`` trains 3 epochs and infers with a 2,000-of-2,222 bank and 10 steps; ``paper`` keeps
the defaults (10 epochs, 8,000 of 8,888, 50 steps).  Inference dominates the cost: ``steps`` + 2
decoder passes per image and class (the bank costs one matrix product per image), so ``quick`` is
about 5× cheaper per attack step than ``paper``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defenses.base import Defense, FitContext, register_defense
from defenses.epochs import run_epochs
from defenses.training_loops import History
from foundation.adaptive import BPDA
from foundation.quantizers import Quantizer
from foundation.splits import Split

NUM_CLASSES = 10
IMAGE_SIZE = 28
PIXELS = IMAGE_SIZE * IMAGE_SIZE
#: Logits are −440·ℓ_c (the reference's scale, which makes them usable with cross-entropy losses).
LOGIT_SCALE = 440.0
#: Binary ABS's per-class scales of ℓ_c (Schott et al.).
BINARY_CLASS_SCALES = (1.0, 0.96, 1.001, 1.06, 0.98, 0.96, 1.03, 1.0, 1.0, 1.0)
#: Validation images used for the per-epoch log (the log only; nothing is selected on it).
VALIDATION_IMAGES = 500


@dataclass(frozen=True)
class ABSConfig:
    latent_dim: int = 8
    beta: float = 1.0  # KL weight in training and prior weight β·½‖z‖² at inference
    epochs: int = 10
    lr: float = 3e-3
    batch_size: int = 128  # all classes together: ceil(batch_size / 10) images of each class per step
    augment: bool = True
    bank_size: int = 8000
    bank_draws: int = 8888
    bank_seed: int = 0
    steps: int = 50
    inference_lr: float = 0.05
    radius: float = 5.0
    chunk_size: int = 100  # inputs per inference chunk (and bank latents per decoding chunk)

    def __post_init__(self) -> None:
        for name in ("latent_dim", "lr", "batch_size", "bank_size", "inference_lr", "radius", "chunk_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}")
        for name in ("beta", "epochs", "steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative; got {getattr(self, name)}")
        if self.bank_draws < self.bank_size:
            raise ValueError(f"bank_draws ({self.bank_draws}) must be at least bank_size ({self.bank_size})")


class ClassConditionalVAEs(nn.Module):
    """``num_classes`` independent VAEs evaluated as one network of grouped convolutions.

    Images are (B, C, 28, 28) with channel c the input of VAE c; latents are (B, C, latent_dim).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, latent_dim: int = 8) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        g = num_classes

        def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
            return nn.Conv2d(g * cin, g * cout, kernel, stride=stride, groups=g)

        def deconv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(g * cin, g * cout, kernel, stride=stride, groups=g)

        def norm(channels: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(g * channels)

        self.encoder = nn.Sequential(
            conv(1, 32, 5), norm(32), nn.ELU(),
            conv(32, 32, 4, 2), norm(32), nn.ELU(),
            conv(32, 64, 3, 2), norm(64), nn.ELU(),
            conv(64, 2 * latent_dim, 5),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            deconv(latent_dim, 32, 4), norm(32), nn.ELU(),
            deconv(32, 16, 5, 2), norm(16), nn.ELU(),
            deconv(16, 16, 5, 2), norm(16), nn.ELU(),
            deconv(16, 1, 4), nn.Sigmoid(),
        )  # fmt: skip

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, 28, 28) -> μ and log σ², each (B, C, latent_dim)."""
        h = self.encoder(x).view(len(x), self.num_classes, 2 * self.latent_dim)
        mu, logvar = h.chunk(2, dim=2)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """(B, C, latent_dim) -> (B, C, 28, 28): dec_c(z[:, c]) in channel c."""
        return self.decoder(z.reshape(len(z), self.num_classes * self.latent_dim, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction from the posterior mean."""
        return self.decode(self.encode(x)[0])


def abs_loss(x: Tensor, reconstruction: Tensor, z: Tensor, beta: float) -> Tensor:
    """ℓ_c = (‖x − dec_c(z)‖² + β·½‖z‖²)/784 over the last dimension (flattened images and latents)."""
    return ((x - reconstruction).square().sum(-1) + 0.5 * beta * z.square().sum(-1)) / PIXELS


def latent_bank(size: int, draws: int, latent_dim: int, seed: int) -> Tensor:
    """The ``size`` highest-density of ``draws`` N(0, I) latents (the smallest norms), by increasing norm."""
    z = torch.randn(draws, latent_dim, generator=torch.Generator().manual_seed(seed))
    return z[z.square().sum(1).argsort(stable=True)[:size]]


def project_to_ball(z: Tensor, radius: float) -> Tensor:
    """``z·min(1, radius/‖z‖)`` over the last dimension: the norm is capped, the direction kept."""
    return z * (radius / z.norm(dim=-1, keepdim=True)).clamp(max=1.0)


def binarize(x: Tensor) -> Tensor:
    return (x >= 0.5).to(x.dtype)


class Binarize(nn.Module):
    """Binary ABS's deployed input step (its true gradient is zero almost everywhere)."""

    def forward(self, x: Tensor) -> Tensor:
        return binarize(x)


def _weights_key(module: nn.Module) -> Hashable:
    tensors = itertools.chain(module.parameters(), module.buffers())
    return tuple((id(t), t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)


class LatentBank:
    """Fixed latents and their per-class decodings, decoded again whenever the decoder changes."""

    def __init__(self, latents: Tensor) -> None:
        self.latents = latents
        self._key: Hashable = None
        self._decoded: tuple[Tensor, Tensor] | None = None

    def decoded(self, vaes: ClassConditionalVAEs, chunk_size: int) -> tuple[Tensor, Tensor]:
        """Latents (K, d) on the decoder's device and their decodings (C, K, 784)."""
        key = _weights_key(vaes.decoder)
        if self._decoded is None or key != self._key:
            with torch.inference_mode(False), torch.no_grad():
                device = next(vaes.parameters()).device
                latents = self.latents.to(device)
                per_class = latents.unsqueeze(1).expand(-1, vaes.num_classes, -1)
                decoded = torch.cat([vaes.decode(part) for part in per_class.split(chunk_size)])
                self._decoded = latents, decoded.flatten(2).transpose(0, 1).contiguous()
            self._key = key
        return self._decoded


class SearchResult(NamedTuple):
    """The optimised latents z* (N, C, d), their decodings (N, C, 784) and ℓ_c(x, z*) (N, C)."""

    z: Tensor
    reconstruction: Tensor
    loss: Tensor


class ABSInference(nn.Module):
    """ABS's robust inference: [0, 1] images -> logits −440·s_c·ℓ_c(x, z*_c).

    Autograd through ``forward`` gives the envelope gradient (z* fixed); ``preprocess`` is applied
    first (binarisation, or its BPDA).
    """

    def __init__(
        self,
        vaes: ClassConditionalVAEs,
        bank: LatentBank,
        config: ABSConfig,
        class_scales: tuple[float, ...] | None = None,
        preprocess: nn.Module | None = None,
        folded: FoldedDecoder | None = None,
    ) -> None:
        super().__init__()
        self.vaes = vaes
        self.bank = bank
        self.config = config
        self.class_scales = class_scales or (1.0,) * vaes.num_classes
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.folded = folded if folded is not None else FoldedDecoder()
        self.eval()

    def train(self, mode: bool = True) -> ABSInference:
        """Always eval: inference uses BatchNorm's running statistics."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.preprocess(x)
        found = self.search(x)
        return self.logits_at(x, found.z, found.reconstruction)

    def logits_at(self, x: Tensor, z: Tensor, reconstruction: Tensor) -> Tensor:
        """−440·s_c·ℓ_c(x, z) with dec_c(z) given and detached: its x-gradient is −440·s_c·2(x − dec_c(z))/784."""
        loss = abs_loss(x.flatten(1).unsqueeze(1), reconstruction.detach(), z.detach(), self.config.beta)
        scales = torch.tensor(self.class_scales, dtype=loss.dtype, device=loss.device)
        return -LOGIT_SCALE * scales * loss

    def search(self, x: Tensor) -> SearchResult:
        """z*_c per input and class: best bank entry, then projected Adam steps; without gradients."""
        if self.vaes.training:
            raise RuntimeError("ABS inference needs the VAEs in eval mode (BatchNorm running statistics)")
        cfg = self.config
        with torch.inference_mode(False), torch.no_grad():
            images = x.detach().clone().flatten(1)
            latents, decoded = self.bank.decoded(self.vaes, cfg.chunk_size)
            parts = [self._search_chunk(chunk, latents, decoded) for chunk in images.split(cfg.chunk_size)]
        return SearchResult(*(torch.cat(column) for column in zip(*parts, strict=True)))

    def _search_chunk(self, x: Tensor, latents: Tensor, decoded: Tensor) -> SearchResult:
        cfg = self.config
        decode = self.folded.refreshed(self.vaes)
        prior = 0.5 * cfg.beta * latents.square().sum(1)
        bank_loss = (
            x.square().sum(1) + (decoded.square().sum(2) + prior).unsqueeze(2) - 2 * decoded @ x.T
        )  # (C, K, n), up to the common factor 1/784
        start = project_to_ball(latents[bank_loss.argmin(dim=1)].transpose(0, 1), cfg.radius)  # (n, C, d)
        target = x.unsqueeze(1)
        z = start.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=cfg.inference_lr)
        best_z, best_loss = start, torch.full(start.shape[:2], math.inf, dtype=x.dtype, device=x.device)
        for step in range(cfg.steps + 1):
            with torch.enable_grad():
                loss = abs_loss(target, decode(z), z, cfg.beta)
                total = loss.sum()
            better = loss.detach() < best_loss
            best_z = torch.where(better.unsqueeze(-1), z.detach(), best_z)
            best_loss = torch.where(better, loss.detach(), best_loss)
            if step == cfg.steps:
                break
            (z.grad,) = torch.autograd.grad(total, z)
            optimizer.step()
            z.copy_(project_to_ball(z, cfg.radius))
        return SearchResult(best_z, decode(best_z), best_loss)


class FoldedDecoder(nn.Module):
    """The decoder as ABS inference runs it: each eval-mode BatchNorm folded into the transposed convolution
    before it (W·s, (b − μ)·s + β with s = γ/√(σ² + ε)), held as plain tensors that autograd does not track
    and that no state dict saves.  (B, C, latent_dim) -> (B, C, 784).

    The same function as ``vaes.decode`` in eval mode, up to float rounding (``bench perf --sections abs``
    times it against the unfolded decoder and counts identical predictions).  ``refreshed`` folds again
    whenever the decoder's weights or statistics changed (the bank's key).
    """

    def __init__(self) -> None:
        super().__init__()
        self._key: Hashable = None
        self._layers: list[Callable[[Tensor], Tensor]] = []

    def refreshed(self, vaes: ClassConditionalVAEs) -> FoldedDecoder:
        key = _weights_key(vaes.decoder)
        if key != self._key:
            self._layers, self._key = _folded_layers(vaes.decoder), key
        return self

    def forward(self, z: Tensor) -> Tensor:
        h = z.reshape(len(z), -1, 1, 1)
        for layer in self._layers:
            h = layer(h)
        return h.flatten(2)


class ExpELU(torch.autograd.Function):
    """ELU (α = 1) computed with ``exp``: max(h, exp(min(h, 0)) − 1), the gradient from the output (1 where it is
    positive, output + 1 = exp(h) elsewhere).  ``F.elu`` calls ``expm1``, which this CPU build does not
    vectorise: ten times ``exp``'s cost, a quarter of the search's time.  The two differ by float rounding."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, h: Tensor) -> Tensor:
        out = torch.maximum(h.clamp(max=0).exp_().sub_(1), h)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        return grad * (out.clamp(max=0) + 1)


def _folded_layers(decoder: nn.Sequential) -> list[Callable[[Tensor], Tensor]]:
    """The decoder's layers as functions of plain tensors, each BatchNorm folded into the convolution before it."""
    layers: list[Callable[[Tensor], Tensor]] = []
    modules = list(decoder)
    for i, module in enumerate(modules):
        if isinstance(module, nn.ConvTranspose2d):
            groups = module.groups
            weight, bias = module.weight.detach(), module.bias.detach()
            following = modules[i + 1] if i + 1 < len(modules) else None
            if isinstance(following, nn.BatchNorm2d):
                scale = following.weight.detach() / torch.sqrt(following.running_var + following.eps)
                grouped = weight.view(groups, -1, weight.shape[1], *weight.shape[2:])
                weight = (grouped * scale.view(groups, 1, -1, 1, 1)).view_as(weight)
                bias = (bias - following.running_mean) * scale + following.bias.detach()
            layers.append(
                functools.partial(
                    F.conv_transpose2d,
                    weight=weight.contiguous(),
                    bias=bias.contiguous(),
                    stride=module.stride,
                    groups=groups,
                )
            )
        elif isinstance(module, nn.ELU):
            layers.append(ExpELU.apply)
        elif isinstance(module, nn.Sigmoid):
            layers.append(torch.sigmoid)
        elif not isinstance(module, nn.BatchNorm2d):
            raise TypeError(f"the ABS decoder has no folded form of {type(module).__name__}")
    return layers


def light_augmentation(x: Tensor, generator: torch.Generator, probability: float = 0.1) -> Tensor:
    """Random zoom (×0.9–1.1) and shear (±6°), each applied to an image with ``probability``."""
    images = x.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    u = torch.rand(len(images), 4, generator=generator, device=generator.device).to(x.device, x.dtype)
    zoom = torch.where(u[:, 0] < probability, 0.9 + 0.2 * u[:, 1], torch.ones_like(u[:, 1]))
    shear = torch.where(u[:, 2] < probability, math.tan(math.radians(6)) * (2 * u[:, 3] - 1), torch.zeros_like(u[:, 3]))
    theta = torch.zeros(len(images), 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 1] = shear
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, align_corners=False)
    changed = (zoom != 1) | (shear != 0)
    return torch.where(changed.view(-1, 1, 1, 1), moved, images).view_as(x)


def _class_order(y: Tensor, num_classes: int, length: int, generator: torch.Generator) -> Tensor:
    """(num_classes, length) training indices: each class's images in shuffled passes, reshuffled after each."""
    rows = []
    for c in range(num_classes):
        members = (y == c).nonzero().squeeze(1)
        passes = -(-length // len(members))
        keys = torch.rand(passes, len(members), generator=generator, device=generator.device)
        rows.append(members[keys.argsort(dim=1).flatten()[:length].to(members.device)])
    return torch.stack(rows)


def elbo_terms(vaes: ClassConditionalVAEs, x: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per image and class: ‖x − dec_c(z)‖² and KL(q_c(z|x) ‖ N(0, I)), each (B, C); z = μ + σ·noise (μ if None)."""
    mu, logvar = vaes.encode(x)
    z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
    squared_error = (vaes.decode(z) - x).square().flatten(2).sum(2)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(2)
    return squared_error, kl


@torch.no_grad()
def validate(vaes: ClassConditionalVAEs, val: Split, beta: float) -> tuple[float, float]:
    """Own-class ELBO (decoding μ) and accuracy of the encoder-based logits −ℓ_c on the first validation images."""
    x, y = val.x[:VALIDATION_IMAGES], val.y[:VALIDATION_IMAGES]
    if len(y) == 0:
        return float("nan"), float("nan")
    vaes.eval()
    terms = [elbo_terms(vaes, chunk.expand(-1, vaes.num_classes, -1, -1), None) for chunk in x.split(100)]
    loss = torch.cat([squared_error + beta * kl for squared_error, kl in terms])  # (N, C)
    own = loss.gather(1, y.unsqueeze(1))
    return float(own.mean()), float((loss.argmin(dim=1) == y).float().mean())


@dataclass(frozen=True)
class ClassBalancedBatches:
    """Per step ``per_class`` images of every class, (per_class, C, 28, 28), channel c from class c.

    Each epoch draws a new order (``_class_order``) and lasts ``steps`` steps.
    """

    data: Split
    num_classes: int
    per_class: int
    steps: int
    generator: torch.Generator

    def __iter__(self) -> Iterator[Tensor]:
        length = self.steps * self.per_class
        order = _class_order(self.data.y, self.num_classes, length, self.generator)
        order = order.view(self.num_classes, self.steps, self.per_class)
        for step in range(self.steps):
            yield self.data.x[order[:, step]].squeeze(2).transpose(0, 1)

    def __len__(self) -> int:
        return self.steps


def train_abs(
    vaes: ClassConditionalVAEs, train: Split, val: Split, ctx: FitContext, config: ABSConfig, *, desc: str
) -> History:
    """Adam on each VAE's ELBO over its own class's images, all classes in one batched step."""
    num_classes = vaes.num_classes
    counts = torch.bincount(train.y, minlength=num_classes)[:num_classes]
    if bool((counts == 0).any()):
        missing = [c for c in range(num_classes) if counts[c] == 0]
        raise ValueError(f"ABS trains one VAE per class; no training images of class {missing}")
    per_class = -(-config.batch_size // num_classes)
    generator = ctx.generator()
    batches = ClassBalancedBatches(train, num_classes, per_class, -(-int(counts.max()) // per_class), generator)
    optimizer = torch.optim.Adam(vaes.parameters(), lr=config.lr)
    history = History()

    def train_step(x: Tensor) -> Tensor:
        vaes.train()
        if config.augment:
            x = light_augmentation(x, generator)
        noise = torch.randn(len(x), num_classes, vaes.latent_dim, generator=generator, device=generator.device)
        squared_error, kl = elbo_terms(vaes, x, noise.to(x.device, x.dtype))
        loss = (squared_error + config.beta * kl).mean(0)  # per class
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
        return loss.detach().mean()

    def validate_epoch(epoch: int, loss_sum: Tensor) -> float:
        history.train_loss.append(float(loss_sum) / max(len(batches), 1))
        val_loss, val_accuracy = validate(vaes, val, config.beta)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        ctx.log(
            f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.2f}, val loss {val_loss:.2f}, "
            f"val accuracy (encoder inference) {val_accuracy:.4f}"
        )
        return val_loss

    run = run_epochs(ctx, batches, train_step, validate_epoch, epochs=config.epochs, desc=desc)
    history.best_epoch = run.best_epoch
    vaes.eval()
    return history


@register_defense("abs")
class AnalysisBySynthesis(Defense):
    description = "ABS (Schott et al.): ten class-conditional VAEs, logits from per-class latent optimisation"
    datasets = frozenset({"mnist"})  # the paper's networks are built for 1×28×28 MNIST
    Config = ABSConfig
    profile_overrides = {
        "smoke": {"epochs": 2, "bank_size": 500, "bank_draws": 555, "steps": 5},
        "quick": {"epochs": 3, "bank_size": 2000, "bank_draws": 2222, "steps": 10},
    }
    #: About 1,000 decoder passes per image and inference: the test slice is capped below the paper profile.
    test_points = {"smoke": 20, "quick": 200}
    #: Binarise the input at 0.5 first (BPDA in ``differentiable_model``).
    binarize: ClassVar[bool] = False
    #: The envelope gradient and BPDA change the backward pass only: attacks read the verdict off their logits.
    differentiable_forward_is_deployed = True
    #: Per-class factors of ℓ_c.
    class_scales: ClassVar[tuple[float, ...]] = (1.0,) * NUM_CLASSES

    def __init__(self, config: ABSConfig | None = None) -> None:
        super().__init__(config)
        cfg: ABSConfig = self.config
        self.vaes = ClassConditionalVAEs(NUM_CLASSES, cfg.latent_dim).eval()
        self.bank = LatentBank(latent_bank(cfg.bank_size, cfg.bank_draws, cfg.latent_dim, cfg.bank_seed))
        self.folded = FoldedDecoder()
        self.history = History()

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        self.history = train_abs(self.vaes, train, val, ctx, self.config, desc=self.name or "abs")

    def _inference(self, preprocess: nn.Module | None) -> ABSInference:
        return ABSInference(self.vaes, self.bank, self.config, self.class_scales, preprocess, self.folded)

    def deployed_model(self) -> nn.Module:
        return self._inference(Binarize() if self.binarize else None)

    def differentiable_model(self) -> nn.Module:
        return self._inference(BPDA(binarize) if self.binarize else None)

    def input_quantizer(self) -> Quantizer | None:
        return Quantizer.binary(0.5, source=f"declared by {self.name}") if self.binarize else None

    def modules(self) -> dict[str, nn.Module]:
        return {"vaes": self.vaes}


@register_defense("binary-abs")
class BinaryAnalysisBySynthesis(AnalysisBySynthesis):
    description = "Binary ABS: ABS on inputs binarised at 0.5 (BPDA for attacks), per-class calibrated losses"
    binarize = True
    class_scales = BINARY_CLASS_SCALES
    revision = 1  # 1: binarise at x ≥ 0.5 (was x > 0.5)
