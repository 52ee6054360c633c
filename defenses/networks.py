"""Networks shared by the defenses: the Madry MNIST CNN, C&W's small CIFAR-10 CNN, the paper-000 VAEs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foundation.errors import BenchError


class MadryCNN(nn.Module):
    """The MNIST-challenge CNN: two 5x5 SAME convs (32, 64) with 2x2 max pools, FC 1024, FC 10."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class SmallCifarCNN(nn.Module):
    """The small CIFAR-10 CNN of Carlini & Wagner (2017), common in robustness papers: 3×3 convs (64, 64),
    2×2 max pool, 3×3 convs (128, 128), 2×2 max pool, FC 256, FC 256, FC classes; ReLU throughout."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3),
            nn.ReLU(),
            nn.Conv2d(128, 128, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 5 * 5, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def classifier_for(input_shape: tuple[int, int, int], classes: int) -> nn.Module:
    """The reference classifier of a dataset's images: Madry's CNN for 1×28×28, C&W's small CNN for 3×32×32."""
    if tuple(input_shape) == (1, 28, 28):
        return MadryCNN(classes)
    if tuple(input_shape) == (3, 32, 32):
        return SmallCifarCNN(3, classes)
    raise BenchError(
        f"no reference classifier for {'×'.join(map(str, input_shape))} images; 1×28×28 and 3×32×32 have one"
    )


class VAE(nn.Module):
    """A Gaussian-latent VAE with a Bernoulli decoder; subclasses provide ``encoder`` and ``decoder``.

    ``forward`` samples z (the randomized defense) unless ``sample`` is False, in which case it
    decodes the posterior mean (the deterministic variant).
    """

    latent_dim: int
    encoder: nn.Module
    decoder: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.sample = True

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, 1, 28, 28)

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction (from a sampled z, or from mu when not sampling), mu and log-variance."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if self.sample else mu
        return self.decode(z), mu, logvar

    def forward(self, x: Tensor) -> Tensor:
        return self.reconstruct(x)[0]


class FcVAE(VAE):
    """784 -> 400 -> (mu, log sigma^2) of size 20; decoder 20 -> 400 -> 784 -> sigmoid (paper 000)."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid())


class CnnVAE(VAE):
    """Conv(1,16,k3,s2,p1) -> FC 100 -> (mu, log sigma^2); ConvTranspose decoder 1 -> 5 -> 13 -> 28 (paper 000)."""

    def __init__(self, latent_dim: int = 20) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(16 * 14 * 14, 100),
            nn.LeakyReLU(0.2),
            nn.Linear(100, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 100),
            nn.Unflatten(1, (100, 1, 1)),
            nn.ConvTranspose2d(100, 128, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 32, 5, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2),
            nn.Sigmoid(),
        )


def reconstruction_loss(recon: Tensor, target: Tensor) -> Tensor:
    """Per-image BCE summed over pixels (paper 000's measure of purification quality)."""
    return F.binary_cross_entropy(recon.flatten(1), target.flatten(1), reduction="none").sum(dim=1)


def vae_loss_per_image(recon: Tensor, target: Tensor, mu: Tensor, logvar: Tensor, kl_weight: float = 1.0) -> Tensor:
    """Per-image VAE loss: BCE summed over pixels + KL(q(z|x) || N(0, I)) summed over latents.

    (Paper 000's reference code averaged the KL over batch x latent instead, which makes the
    model a near-plain autoencoder; we keep the proper per-image ELBO.)
    """
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    return reconstruction_loss(recon, target) + kl_weight * kl


def vae_loss(recon: Tensor, target: Tensor, mu: Tensor, logvar: Tensor, kl_weight: float = 1.0) -> Tensor:
    """The per-image VAE loss averaged over the batch."""
    return vae_loss_per_image(recon, target, mu, logvar, kl_weight).mean()


class Purified(nn.Module):
    """The deployed purifier pipeline: ``classifier(purifier(x))``."""

    def __init__(self, purifier: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.purifier = purifier
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.purifier(x))
