"""GNA, GTA and RANDOM (paper 000): per-image parameters in range, conventions, reproducibility, guarded calls."""

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attacks.base import ATTACKS, Attack, perturbation_size
from attacks.random_mix import ATTACK_TYPES, RandomMix, attack_inputs
from attacks.semantic import (
    GeometricParams,
    affine_transform,
    gaussian_noise,
    gaussian_noise_with_params,
    geometric_transform,
    geometric_transform_with_params,
)
from foundation.errors import BenchError, ThreatModelViolation

N = 32


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(N, 1, 28, 28, generator=seeded(123))


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval().requires_grad_(False)


@pytest.fixture
def y(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def in_box(t: torch.Tensor) -> bool:
    return bool(t.min() >= 0 and t.max() <= 1)


# --- GNA ---------------------------------------------------------------------------------------


def test_gna_draws_its_parameters_per_image_within_range_and_applies_them_per_image():
    flat = torch.full((N, 1, 28, 28), 0.5)  # mid-grey: the noise is (almost) never clamped
    x_adv, params = gaussian_noise_with_params(flat, seeded(), mean_range=0.1, std_max=0.1)
    assert params.mean.shape == params.std.shape == (N,)
    assert params.mean.abs().max() <= 0.1 and params.std.min() >= 0 and params.std.max() <= 0.1
    assert params.mean.unique().numel() == N and params.std.unique().numel() == N
    assert params.mean.min() < -0.05 and params.mean.max() > 0.05  # spans the range, not a constant
    delta = (x_adv - flat).flatten(1)
    assert torch.allclose(delta.mean(1), params.mean, atol=0.015)
    assert torch.allclose(delta.std(1), params.std, atol=0.015)
    assert in_box(x_adv)


def test_gna_with_zero_ranges_is_the_identity(x):
    assert torch.equal(gaussian_noise(x, seeded(), mean_range=0.0, std_max=0.0), x)


def test_gna_clamps_to_the_box(x):
    x_adv = gaussian_noise(x, seeded(), mean_range=0.5, std_max=0.5)
    assert in_box(x_adv)
    assert (x_adv == 0).any() and (x_adv == 1).any()


def test_gna_rejects_negative_ranges(x):
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_noise(x, seeded(), mean_range=-0.1)


# --- GTA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "atol"), [("bilinear", 1e-5), ("nearest", 0.0)])
def test_gta_without_rotation_scaling_or_shift_is_the_identity(x, mode, atol):
    out = geometric_transform(x, seeded(), max_rotation_deg=0.0, scale_range=(1.0, 1.0), max_translation=0.0, mode=mode)
    assert torch.allclose(out, x, atol=atol, rtol=0)


def test_positive_angle_rotates_counter_clockwise_like_rot90(x):
    params = GeometricParams(torch.tensor([90.0, -90.0]), torch.ones(2), torch.zeros(2, 2))
    out = affine_transform(x[:2], params, mode="nearest")
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(-2, -1)))
    assert torch.equal(out[1], torch.rot90(x[1], -1, dims=(-2, -1)))
    assert not torch.equal(out[0], out[1])


def test_rotation_is_rigid_on_non_square_images():
    bar = torch.zeros(1, 1, 20, 40)
    bar[..., 9:11, 12:28] = 1.0  # a horizontal 2x16 bar centred in the image
    standing = torch.zeros_like(bar)
    standing[..., 2:18, 19:21] = 1.0
    params = GeometricParams(torch.tensor([90.0]), torch.ones(1), torch.zeros(1, 2))
    assert torch.equal(affine_transform(bar, params, mode="nearest"), standing)


def test_positive_translation_moves_content_right_and_down_filling_zeros(x):
    one_pixel = 1 / 28
    params = GeometricParams(torch.zeros(2), torch.ones(2), torch.tensor([[one_pixel, 0.0], [0.0, one_pixel]]))
    out = affine_transform(x[:2], params, mode="nearest")
    right = F.pad(x[0], (1, 0, 0, 0))[..., :, :-1]
    down = F.pad(x[1], (0, 0, 1, 0))[..., :-1, :]
    assert torch.equal(out[0], right) and torch.equal(out[1], down)


def test_scale_above_one_enlarges_the_content():
    square = torch.zeros(2, 1, 28, 28)
    square[..., 10:18, 10:18] = 1.0
    params = GeometricParams(torch.zeros(2), torch.tensor([2.0, 0.5]), torch.zeros(2, 2))
    area = affine_transform(square, params, mode="nearest").sum(dim=(1, 2, 3))
    assert area[0] == 4 * 64 and area[1] == 64 / 4


def test_gta_draws_its_parameters_per_image_within_range(x):
    x_adv, params = geometric_transform_with_params(x, seeded())
    assert params.angle_deg.shape == params.scale.shape == (N,) and params.translation.shape == (N, 2)
    assert params.angle_deg.abs().max() <= 30 and params.angle_deg.unique().numel() == N
    assert params.angle_deg.min() < -15 and params.angle_deg.max() > 15
    assert params.scale.min() >= 0.8 and params.scale.max() <= 1.2 and params.scale.unique().numel() == N
    assert params.translation.abs().max() <= 0.01 and params.translation.unique().numel() == 2 * N
    assert in_box(x_adv)
    recomputed = affine_transform(x, params)
    assert torch.equal(x_adv, recomputed)  # the returned parameters are the ones applied
    per_image_change = (x_adv - x).abs().flatten(1).amax(1)
    assert (per_image_change > 0.1).all()


def test_gta_rejects_bad_ranges(x):
    with pytest.raises(ValueError, match="scale"):
        geometric_transform(x, seeded(), scale_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="non-negative"):
        geometric_transform(x, seeded(), max_translation=-0.01)
    with pytest.raises(ValueError, match="mode"):
        geometric_transform(x, seeded(), mode="bicubic")


@pytest.mark.parametrize("fn", [gaussian_noise, geometric_transform])
def test_semantic_attacks_are_reproducible_with_a_seeded_generator(x, fn):
    assert torch.equal(fn(x, seeded(5)), fn(x, seeded(5)))
    assert not torch.equal(fn(x, seeded(5)), fn(x, seeded(6)))


# --- registered attacks ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fragments"), [("gna", ["0.1", "σ", "μ"]), ("gta", ["30°", "0.8", "1.2", "1 %"])])
def test_semantic_attacks_pass_the_guard_ignore_epsilon_and_state_their_budget(model, x, y, name, fragments):
    attack = ATTACKS.build(name, "quick")
    assert attack.threat_model == "semantic" and attack.requires == frozenset() and attack.uses_epsilon is False
    x_adv = attack(model, x, y, 0.3, generator=seeded(1))
    assert x_adv.shape == x.shape and in_box(x_adv) and not torch.equal(x_adv, x)
    at_zero, at_large = attack.run_curve(model, x, y, [0.0, 0.3], generator=seeded(1))
    assert torch.equal(at_zero, x_adv) and torch.equal(at_large, x_adv)
    budget = attack.budget()
    assert all(fragment in budget for fragment in fragments), budget


def test_semantic_attack_options_are_validated_and_applied(model, x, y):
    with pytest.raises(BenchError, match="non-negative"):
        ATTACKS.build("gna:std_max=-1", "quick")
    with pytest.raises(BenchError, match="scale"):
        ATTACKS.build("gta:scale_min=0", "quick")
    identity = ATTACKS.build("gta:max_rotation_deg=0:scale_min=1:scale_max=1:max_translation=0:mode=nearest", "quick")
    assert torch.equal(identity(model, x, y, 0.3), x)
    assert "rot ±0°" in identity.budget()


# --- RANDOM ------------------------------------------------------------------------------------


class Spy(Attack):
    """Records which member ran and what it returned, delegating to the real member's guarded call."""

    def __init__(self, index: int, inner: Attack, log: list[tuple[int, torch.Tensor]]) -> None:
        super().__init__()
        self.index, self.inner, self.log = index, inner, log
        self.threat_model = inner.threat_model

    def _run(self, model, x, y, eps, generator):
        x_adv = self.inner(model, x, y, eps, generator=generator)
        self.log.append((self.index, x_adv))
        return x_adv


def spied(attack: RandomMix) -> list[tuple[int, torch.Tensor]]:
    log: list[tuple[int, torch.Tensor]] = []
    attack.members = tuple(Spy(i, member, log) for i, member in enumerate(attack.members))
    return log


def test_random_members_follow_the_fixed_attack_type_order():
    attack = ATTACKS.build("random", "quick")
    assert ATTACK_TYPES == ("fgsm", "pgd", "gna", "gta")
    assert tuple(member.name for member in attack.members) == ATTACK_TYPES
    assert attack.threat_model == "semantic" and attack.uses_epsilon and attack.requires == {"gradients"}
    assert "ε" in attack.budget() and "σ" in attack.budget() and "30°" in attack.budget()


def test_random_picks_each_member_about_equally_often(model, x, y):
    attack = ATTACKS.build("random", "smoke")
    log = spied(attack)
    generator = seeded(3)
    for _ in range(200):
        attack(model, x[:2], y[:2], 0.1, generator=generator)
    counts = Counter(index for index, _ in log)
    assert set(counts) == {0, 1, 2, 3}
    assert all(30 <= counts[i] <= 70 for i in range(4)), counts


def test_random_outputs_respect_the_chosen_members_bound(model, x, y):
    eps = 0.05
    attack = ATTACKS.build("random", "smoke")
    log = spied(attack)
    generator = seeded(4)
    for _ in range(24):
        x_adv = attack(model, x[:4], y[:4], eps, generator=generator)
        index, member_out = log[-1]
        assert torch.equal(x_adv, member_out) and in_box(x_adv)
        linf = perturbation_size(x[:4], x_adv, "linf")
        if ATTACK_TYPES[index] in ("fgsm", "pgd"):
            assert linf.max() <= eps + 1e-6
    assert {index for index, _ in log} == {0, 1, 2, 3}


def test_attack_inputs_regenerates_a_given_type_and_rejects_unknown_ones(x):
    def unused(batch):
        raise AssertionError("a gradient member ran for a semantic type")

    assert torch.equal(attack_inputs(2, x, seeded(2), unused, unused), gaussian_noise(x, seeded(2)))
    assert torch.equal(attack_inputs(3, x, seeded(2), unused, unused), geometric_transform(x, seeded(2)))
    with pytest.raises(ValueError, match="attack type"):
        attack_inputs(4, x, seeded(2), unused, unused)


def test_random_runs_members_through_their_own_guard(model, x, y):
    class Overshoot(Attack):
        def _run(self, model, x, y, eps, generator):
            return (x + 2 * eps).clamp(0, 1)

    attack = ATTACKS.build("random", "smoke")
    attack.members = (Overshoot(),) * len(ATTACK_TYPES)
    with pytest.raises(ThreatModelViolation, match="L∞ ball"):
        attack(model, x, y, 0.1)
