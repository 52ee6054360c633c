"""Adversarially trained VAEs (adv-vae) and the replay family (rb, rb-multi, rb-multi-critic)."""

import pytest
import torch

from attacks.random_mix import ATTACK_TYPES
from defenses.adversarial_vae import AdversarialVAEConfig, TrainingAttacks, reconstruction_objective
from defenses.base import DEFENSES
from defenses.networks import FcVAE
from tests.synthetic import TinyContext, blobs


@pytest.fixture(scope="module")
def classifier():
    cnn = DEFENSES.build("cnn:epochs=1", "smoke")
    cnn.fit(blobs(128), blobs(64), TinyContext())
    return cnn


def test_training_attacks_maximise_the_reconstruction_loss_through_the_vae():
    torch.manual_seed(0)
    vae, x = FcVAE(), blobs(32).x
    vae.sample = False
    attacks = TrainingAttacks(vae, AdversarialVAEConfig(), torch.Generator().manual_seed(0))
    objective = reconstruction_objective(vae, x, 1.0)
    for name, eps in (("fgsm", 0.15), ("pgd", 0.08)):
        x_adv = attacks.run(ATTACK_TYPES.index(name), x)
        assert (x_adv - x).abs().max() <= eps + 1e-6
        assert objective(x_adv) > objective(x)


def test_mixed_attack_types_run_each_entry_with_its_own_attack():
    torch.manual_seed(0)
    vae, x = FcVAE(), blobs(16).x
    attacks = TrainingAttacks(vae, AdversarialVAEConfig(), torch.Generator().manual_seed(0))
    types = torch.tensor([0, 1] * 8)
    x_adv = attacks.run_mixed(types, x)
    linf = (x_adv - x).flatten(1).abs().amax(dim=1)
    assert torch.all(linf[types == 0] <= 0.15 + 1e-6) and torch.all(linf[types == 1] <= 0.08 + 1e-6)
    assert torch.allclose(linf[types == 0], torch.full((8,), 0.15), atol=0.02)


def test_random_training_draws_every_attack():
    attacks = TrainingAttacks(FcVAE(), AdversarialVAEConfig(), torch.Generator().manual_seed(0))
    drawn = {attacks.draw_type("random") for _ in range(64)}
    assert drawn == set(range(len(ATTACK_TYPES)))
    assert attacks.draw_type("gta") == ATTACK_TYPES.index("gta")


@pytest.mark.parametrize(
    "spec",
    [
        "adv-vae:train_attack=pgd",
        "adv-vae:train_attack=random",
        "rb:train_freq=2:replay_batch=32",
        "rb-multi:train_freq=2:replay_batch=32",
        "rb-multi-critic:train_freq=2:critic_pool=64",
    ],
)
def test_training_loss_falls_and_replay_steps_happen(spec, classifier):
    torch.manual_seed(0)
    defense = DEFENSES.build(f"{spec}:epochs=2:batch_size=32", "smoke")
    defense.fit(blobs(256), blobs(64), TinyContext(provided=classifier))
    assert defense.history.train_loss[-1] < defense.history.train_loss[0]
    assert defense.fit_summary()["epochs"] == 2
    if spec.startswith("rb"):
        # 16 optimiser steps (numbered 0-15); replay at every 2nd step from learning_starts = 5: 6, 8, 10, 12, 14
        assert defense.replay_steps == 5
    if "critic" in spec:
        assert defense.critic_losses[-1] < defense.critic_losses[0]


def test_replay_defenses_have_their_own_names_and_defaults():
    assert [DEFENSES.get(n).name for n in ("adv-vae", "rb", "rb-multi", "rb-multi-critic")] == [
        "adv-vae",
        "rb",
        "rb-multi",
        "rb-multi-critic",
    ]
    assert DEFENSES.build("rb", "quick").config.train_attack == "pgd"
    assert DEFENSES.build("rb-multi", "quick").config.train_attack == "random"
    assert DEFENSES.build("rb-multi-critic", "quick").config.use_critic
    assert DEFENSES.build("rb-multi", "quick").config.loss_weight == pytest.approx(0.01)
