"""Networks, losses, training loops and the defense contract on tiny synthetic data."""

import pytest
import torch
from torch import nn

from defenses.base import DEFENSES
from defenses.networks import CnnVAE, FcVAE, MadryCNN, vae_loss
from defenses.training_loops import train_classifier, train_vae
from foundation.adaptive import ExpectationOverTransformation
from foundation.errors import BenchError
from tests.synthetic import TinyContext, blobs


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


def test_madry_warms_the_training_epsilon_up_then_holds_it(monkeypatch):
    """Quick and smoke training start near ε = 0 and reach ε 0.3 after the warm-up; the paper profile has none."""
    import defenses.madry as madry

    seen: list[tuple[float, float]] = []
    real_ascent = madry.pgd_ascent

    def recording_ascent(objective, x, eps, *, steps, step_size, **options):
        seen.append((eps, step_size))
        return real_ascent(objective, x, eps, steps=1, step_size=step_size, **options)

    monkeypatch.setattr(madry, "pgd_ascent", recording_ascent)
    defense = DEFENSES.build("madry:epochs=2:eps_warmup_epochs=1:batch_size=64", "smoke")
    defense.fit(blobs(256), blobs(64), TinyContext())
    epsilons = [eps for eps, _ in seen]
    assert len(epsilons) == 8  # two epochs of four batches
    assert epsilons[:4] == pytest.approx([0.075, 0.15, 0.225, 0.3]) and epsilons[4:] == [0.3] * 4
    assert all(step == pytest.approx(0.1 * eps / 0.3) for eps, step in seen)  # the step keeps its ratio to ε
    assert DEFENSES.build("madry", "paper").config.eps_at(0, 1000) == 0.3
    with pytest.raises(BenchError, match="eps_warmup_epochs"):
        DEFENSES.build("madry:epochs=2:eps_warmup_epochs=3", "quick")
