"""VAEA and LatentA: targets of another class, descent on their objective, bounds, capability errors."""

import pytest
import torch

from attacks.base import ATTACKS, find_purifier_pipeline
from attacks.vae_attacks import pick_targets
from defenses.base import DEFENSES
from foundation.errors import BenchError


def test_targets_are_of_another_class():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    for seed in range(5):
        targets = pick_targets(y, torch.Generator().manual_seed(seed))
        assert (y[targets] != y).all()


def test_targets_fall_back_to_another_point_when_all_share_a_class():
    assert pick_targets(torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0)).shape == (4,)


@pytest.fixture
def purifier():
    torch.manual_seed(0)
    return DEFENSES.build("vae:deterministic=true", "smoke")


def _latent_distance(pipeline, x, targets):
    with torch.no_grad():
        return (pipeline.purifier.encode(x)[0] - pipeline.purifier.encode(targets)[0]).pow(2).sum(dim=1).mean()


@pytest.mark.parametrize("name", ["vaea", "latenta"])
def test_targeted_attacks_stay_in_budget_and_move_towards_the_target(name, purifier):
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(32) % 10
    attack = ATTACKS.build(f"{name}:distance_weight=0", "quick")
    model = purifier.attack_model(1)
    x_adv = attack(model, x, y, 0.2, generator=torch.Generator().manual_seed(3))
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    targets = x[pick_targets(y, torch.Generator().manual_seed(3))]
    pipeline = find_purifier_pipeline(model)
    assert _latent_distance(pipeline, x_adv, targets) < _latent_distance(pipeline, x, targets)


def test_vae_attacks_declare_and_check_the_vae_capability():
    assert ATTACKS.get("vaea").requires == {"gradients", "vae"}
    assert "vae" in DEFENSES.get("vae").provides and "vae" not in DEFENSES.get("cnn").provides
    cnn = DEFENSES.build("cnn", "smoke")
    with pytest.raises(BenchError, match="needs a VAE purifier pipeline"):
        ATTACKS.build("latenta", "smoke")(cnn.attack_model(1), torch.rand(4, 1, 28, 28), torch.arange(4), 0.1)
