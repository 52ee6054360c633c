"""Networks, losses, training loops and the defense contract on tiny synthetic data."""

from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from attacks.adaptive import ExpectationOverTransformation
from defenses.base import DEFENSES, Split
from defenses.networks import CnnVAE, FcVAE, MadryCNN, vae_loss
from defenses.training import train_classifier, train_vae


@dataclass
class TinyContext:
    """A FitContext for tests; the dependency returns a given trained defense."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    provided: object = None

    def generator(self):
        return torch.Generator().manual_seed(self.seed)

    def dependency(self, name):
        return self.provided

    def progress(self, iterable, *, desc, total=None):
        return iterable

    def log(self, message):
        pass


def blobs(n: int = 256) -> Split:
    """Two easy classes of 28x28 images: a bright top half or a bright bottom half, plus noise."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 28, 28, generator=generator) * 0.3
    x[y == 0, :, :14] += 0.6
    x[y == 1, :, 14:] += 0.6
    return Split(x.clamp(0, 1), y)


def test_network_shapes():
    x = torch.rand(3, 1, 28, 28)
    assert MadryCNN()(x).shape == (3, 10)
    for vae in (FcVAE(), CnnVAE()):
        recon, mu, logvar = vae.reconstruct(x)
        assert recon.shape == x.shape and mu.shape == logvar.shape == (3, 20)
        assert recon.min() >= 0 and recon.max() <= 1


def test_vae_samples_unless_deterministic():
    vae, x = FcVAE().eval(), torch.rand(2, 1, 28, 28)
    assert not torch.equal(vae(x), vae(x))
    vae.sample = False
    assert torch.equal(vae(x), vae(x))


def test_vae_loss_is_per_image_bce_plus_kl():
    x = torch.full((2, 1, 28, 28), 0.5)
    zeros = torch.zeros(2, 20)
    # Recon = target = 0.5 gives BCE ln 2 per pixel; a standard-normal posterior has zero KL.
    assert vae_loss(x, x, zeros, zeros).item() == pytest.approx(784 * 0.6931, rel=1e-3)
    assert vae_loss(x, x, torch.ones(2, 20), zeros).item() == pytest.approx(784 * 0.6931 + 10, rel=1e-3)


def test_classifier_training_loss_falls():
    data, model = blobs(), MadryCNN()
    history = train_classifier(model, data, data, TinyContext(), epochs=2, lr=1e-3, batch_size=64, desc="t")
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_accuracy[-1] > 0.95


def test_vae_training_loss_falls_and_restores_the_best_epoch():
    data, vae = blobs(), FcVAE()
    history = train_vae(
        vae, data, data, TinyContext(), epochs=4, lr=1e-3, batch_size=64, patience=3, kl_weight=1.0, desc="t"
    )
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_loss[history.best_epoch] == min(history.val_loss)
    assert vae.sample and not vae.training


def test_vae_defense_uses_the_shared_classifier_and_eot():
    cnn = DEFENSES.build("cnn", "smoke")
    cnn.fit(blobs(), blobs(), TinyContext())
    vae = DEFENSES.build("vae:epochs=1", "smoke")
    vae.fit(blobs(), blobs(), TinyContext(provided=cnn))
    assert all(
        torch.equal(a, b)
        for a, b in zip(vae.classifier.state_dict().values(), cnn.model.state_dict().values(), strict=True)
    )
    assert vae.randomized
    assert isinstance(vae.attack_model(eot_samples=4), ExpectationOverTransformation)
    assert not isinstance(vae.attack_model(eot_samples=1), ExpectationOverTransformation)
    deterministic = DEFENSES.build("vae:deterministic=true", "smoke")
    assert not deterministic.randomized
    assert isinstance(deterministic.attack_model(eot_samples=4), nn.Module)
    assert not isinstance(deterministic.attack_model(eot_samples=4), ExpectationOverTransformation)


def test_state_dict_round_trip_and_mismatch():
    source, target = DEFENSES.build("vae", "smoke"), DEFENSES.build("vae", "smoke")
    target.load_state_dict(source.state_dict())
    x = torch.rand(2, 1, 28, 28)
    source.vae.sample = target.vae.sample = False
    assert torch.equal(source.predict(x), target.predict(x))
    with pytest.raises(KeyError):
        target.load_state_dict({"classifier": source.classifier.state_dict()})
