"""ABS and binary ABS on tiny configurations (random weights, a few training steps on synthetic data).

The finite-difference check of the envelope gradient holds z* fixed (the optimum found for x): that
is the function whose x-gradient the envelope theorem says the attack gradient equals at an optimum,
and with only a few inner steps z* is not converged, so re-optimising z* would add a dz*/dx term.
"""

import math

import pytest
import torch
from torch import nn

from defenses.abs import (
    BINARY_CLASS_SCALES,
    LOGIT_SCALE,
    PIXELS,
    ABSConfig,
    AnalysisBySynthesis,
    BinaryAnalysisBySynthesis,
    ClassConditionalVAEs,
    ExpELU,
    _class_order,
    abs_loss,
    binarize,
    latent_bank,
    light_augmentation,
    project_to_ball,
    validate,
)
from defenses.base import DEFENSES
from foundation.splits import Split
from tests.synthetic import TinyContext

TINY = ABSConfig(bank_size=20, bank_draws=24, steps=3, chunk_size=4)


def make_abs(config: ABSConfig = TINY, cls: type[AnalysisBySynthesis] = AnalysisBySynthesis) -> AnalysisBySynthesis:
    torch.manual_seed(0)
    return cls(config)


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def digits(per_class: int = 8) -> Split:
    """Ten easy classes: class c is a bright horizontal bar at rows 2c..2c+5, plus noise."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat_interleave(per_class)
    x = torch.rand(len(y), 1, 28, 28, generator=generator) * 0.2
    for c in range(10):
        x[y == c, :, 2 * c + 2 : 2 * c + 8] += 0.7
    return Split(x.clamp(0, 1), y)


def reference_vae(latent_dim: int = 8) -> nn.Module:
    """One class's VAE exactly as REFERENCE.md describes it (ungrouped), for parameter counts."""
    return nn.ModuleList(
        [
            nn.Sequential(
                nn.Conv2d(1, 32, 5), nn.BatchNorm2d(32), nn.ELU(),
                nn.Conv2d(32, 32, 4, stride=2), nn.BatchNorm2d(32), nn.ELU(),
                nn.Conv2d(32, 64, 3, stride=2), nn.BatchNorm2d(64), nn.ELU(),
                nn.Conv2d(64, 2 * latent_dim, 5),
            ),
            nn.Sequential(
                nn.ConvTranspose2d(latent_dim, 32, 4), nn.BatchNorm2d(32), nn.ELU(),
                nn.ConvTranspose2d(32, 16, 5, stride=2), nn.BatchNorm2d(16), nn.ELU(),
                nn.ConvTranspose2d(16, 16, 5, stride=2), nn.BatchNorm2d(16), nn.ELU(),
                nn.ConvTranspose2d(16, 1, 4), nn.Sigmoid(),
            ),
        ]
    )  # fmt: skip


def spatial_sizes(layers: nn.Sequential, x: torch.Tensor) -> list[int]:
    sizes = []
    for layer in layers:
        x = layer(x)
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            sizes.append(x.shape[-1])
    return sizes


def test_architecture_shapes_and_size():
    vaes = ClassConditionalVAEs().eval()
    x = torch.rand(3, 10, 28, 28)
    with torch.no_grad():
        assert spatial_sizes(vaes.encoder, x) == [24, 11, 5, 1]
        assert vaes.encoder(x).shape == (3, 10 * 16, 1, 1)
        mu, logvar = vaes.encode(x)
        assert mu.shape == logvar.shape == (3, 10, 8)
        assert spatial_sizes(vaes.decoder, mu.reshape(3, 80, 1, 1)) == [4, 11, 25, 28]
        reconstruction = vaes.decode(mu)
    assert reconstruction.shape == (3, 10, 28, 28)
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert all(layer.groups == 10 for layer in vaes.modules() if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d))
    count = sum(p.numel() for p in vaes.parameters())
    assert count == 10 * sum(p.numel() for p in reference_vae().parameters())


def test_the_ten_vaes_are_independent():
    vaes = ClassConditionalVAEs().eval()
    x = torch.rand(2, 10, 28, 28)
    changed = x.clone()
    changed[:, 3] = torch.rand(2, 28, 28)
    with torch.no_grad():
        before, after = vaes(x), vaes(changed)
    others = [c for c in range(10) if c != 3]
    assert torch.equal(before[:, others], after[:, others])
    assert not torch.allclose(before[:, 3], after[:, 3])


def test_latent_bank_keeps_the_smallest_norms_and_is_seeded():
    bank = latent_bank(80, 100, 8, seed=3)
    draws = torch.randn(100, 8, generator=torch.Generator().manual_seed(3))
    norms = draws.norm(dim=1)
    assert bank.shape == (80, 8)
    kept = torch.isin(norms, bank.norm(dim=1))
    assert int(kept.sum()) == 80
    assert norms[kept].max() <= norms[~kept].min()
    assert torch.all(bank.norm(dim=1).diff() >= 0)
    assert torch.equal(bank, latent_bank(80, 100, 8, seed=3))
    assert not torch.equal(bank, latent_bank(80, 100, 8, seed=4))


def test_projection_caps_the_norm_and_keeps_direction_and_sign():
    z = torch.tensor([[3.0, -4.0, 12.0], [-1.0, 0.5, -2.0], [0.0, 0.0, 0.0], [-6.0, -8.0, 0.0]])
    projected = project_to_ball(z, 5.0)
    assert projected.norm(dim=1).tolist() == pytest.approx([5.0, math.sqrt(5.25), 0.0, 5.0])
    assert torch.equal(projected[1], z[1]) and torch.equal(projected[2], z[2])
    assert torch.equal(torch.sign(projected), torch.sign(z))
    big = z.norm(dim=1) > 5
    cosine = torch.nn.functional.cosine_similarity(projected[big], z[big], dim=1)
    assert torch.allclose(cosine, torch.ones_like(cosine))


def count_decoder_calls(defense: AnalysisBySynthesis) -> list[torch.Tensor]:
    """The inputs of every later decoder call of the search (a forward hook on its folded decoder)."""
    inputs: list[torch.Tensor] = []
    defense.folded.register_forward_hook(lambda module, args, output: inputs.append(args[0].detach().clone()))
    return inputs


def count_bank_decodings(defense: AnalysisBySynthesis) -> list[int]:
    """One entry per later call of the unfolded decoder (the bank's decoding)."""
    calls: list[int] = []
    defense.vaes.decoder.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_inference_is_batched_over_inputs_and_classes_and_the_bank_is_cached():
    defense = make_abs()
    calls = count_decoder_calls(defense)
    bank_calls = count_bank_decodings(defense)
    defense.predict(images(1))
    assert len(bank_calls) == math.ceil(TINY.bank_size / TINY.chunk_size)  # the bank is decoded once, on first use
    assert len(calls) == TINY.steps + 2
    for n in (1, TINY.chunk_size):
        calls.clear()
        defense.predict(images(n))
        assert [tuple(z.shape) for z in calls] == [(n, 10, 8)] * (TINY.steps + 2)  # all inputs x classes per step
    calls.clear()
    defense.predict(images(2 * TINY.chunk_size))
    assert len(calls) == 2 * (TINY.steps + 2)
    with torch.no_grad():
        next(defense.vaes.decoder.parameters()).mul_(1.01)  # new weights: the bank is decoded again
    bank_calls.clear()
    defense.predict(images(1))
    assert len(bank_calls) == math.ceil(TINY.bank_size / TINY.chunk_size)


@pytest.mark.parametrize("inference_lr", [0.05, 20.0])
def test_optimised_loss_is_at_most_the_best_bank_entry(inference_lr):
    """At lr 0.05 the steps improve on the bank start; at lr 20 Adam overshoots and the best iterate is kept."""
    defense = make_abs(ABSConfig(bank_size=20, bank_draws=24, steps=5, chunk_size=4, inference_lr=inference_lr))
    x = images(6)
    found = defense.deployed_model().search(x)
    latents = latent_bank(20, 24, 8, seed=0)
    with torch.no_grad():
        decoded = defense.vaes.decode(latents.unsqueeze(1).expand(-1, 10, -1)).flatten(2)  # (K, C, 784)
        bank = abs_loss(x.flatten(1)[:, None, None], decoded, latents[:, None], 1.0)  # (N, K, C)
        again = abs_loss(x.flatten(1)[:, None], defense.vaes.decode(found.z).flatten(2), found.z, 1.0)
    best_bank = bank.min(dim=1).values
    assert torch.all(found.loss <= best_bank + 1e-6)
    if inference_lr == 0.05:
        assert float((found.loss < best_bank - 1e-5).float().mean()) > 0.9  # the Adam steps do improve on it
    assert torch.allclose(found.loss, again, atol=1e-6)
    assert torch.allclose(defense.predict(x), -LOGIT_SCALE * found.loss, atol=1e-4)


def test_every_iterate_of_the_search_stays_in_the_ball():
    config = ABSConfig(bank_size=20, bank_draws=24, steps=5, chunk_size=4, radius=0.5, beta=0.0, inference_lr=0.5)
    defense = make_abs(config)
    assert latent_bank(20, 24, 8, seed=0).norm(dim=1).min() > 0.5  # every bank start is outside the ball
    model = defense.deployed_model()
    model.search(images(1))  # decodes the bank
    calls = count_decoder_calls(defense)
    found = model.search(images(4))
    iterates = torch.stack([z.view(4, 10, 8) for z in calls])
    assert len(calls) == 7 and torch.all(iterates.norm(dim=-1) <= 0.5 + 1e-5)
    assert torch.all(found.z.norm(dim=-1) <= 0.5 + 1e-5)


def test_inference_is_per_image_in_eval_mode_and_deterministic():
    defense = make_abs()
    x = images(6)
    logits = defense.predict(x)
    assert torch.allclose(defense.predict(x[2:3]), logits[2:3], atol=1e-5)  # no batch statistics, no coupling
    whole = AnalysisBySynthesis(ABSConfig(bank_size=20, bank_draws=24, steps=3, chunk_size=100))
    whole.load_state_dict(defense.state_dict())
    assert torch.allclose(whole.predict(x), logits, atol=1e-5)  # chunking changes nothing
    assert torch.equal(defense.predict(x), logits)
    assert not defense.randomized
    model = defense.attack_model()
    model.train()
    assert not model.training and not defense.vaes.training
    defense.vaes.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        model(x)


def test_envelope_gradient_matches_closed_form_and_finite_differences():
    defense = make_abs()
    model = defense.differentiable_model()
    x = images(3).requires_grad_(True)
    logits = model(x)
    assert torch.allclose(logits.detach(), defense.predict(x.detach()))
    found = model.search(x)
    for c in (0, 7):
        (grad,) = torch.autograd.grad(logits[:, c].sum(), x, retain_graph=True)
        closed = -LOGIT_SCALE * 2 * (x.detach().flatten(1) - found.reconstruction[:, c]) / PIXELS
        assert torch.allclose(grad.flatten(1), closed, rtol=1e-5, atol=1e-7)
        z64, rec64 = found.z.double(), found.reconstruction.double()
        for pixel in (0, 300, 407, 783):
            step = torch.zeros(3, 784, dtype=torch.float64)
            step[:, pixel] = 1e-3
            base = x.detach().double().flatten(1)
            plus = model.logits_at(base + step, z64, rec64)[:, c]
            minus = model.logits_at(base - step, z64, rec64)[:, c]
            finite = (plus - minus) / 2e-3
            assert torch.allclose(grad.flatten(1)[:, pixel].double(), finite, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in defense.vaes.parameters())  # z* and dec(z*) are held fixed


def test_binary_abs_binarises_uses_bpda_and_scales_the_classes():
    plain, binary = make_abs(), make_abs(cls=BinaryAnalysisBySynthesis)
    binary.load_state_dict(plain.state_dict())
    x = images(3)
    scales = torch.tensor(BINARY_CLASS_SCALES)
    logits = binary.predict(x)
    assert torch.allclose(logits, binary.predict(binarize(x)))
    assert torch.allclose(logits, plain.predict(binarize(x)) * scales, atol=1e-5)
    assert not torch.allclose(logits, plain.predict(binarize(x)), atol=1e-3)
    deployed = binary.deployed_model()(x.clone().requires_grad_(True))
    assert not deployed.requires_grad  # the deployed binarisation has no gradient
    model = binary.differentiable_model()
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    assert torch.allclose(out.detach(), logits)
    (grad,) = torch.autograd.grad(out[:, 3].sum(), xg)
    found = model.search(binarize(x))
    closed = -LOGIT_SCALE * scales[3] * 2 * (binarize(x).flatten(1) - found.reconstruction[:, 3]) / PIXELS
    assert torch.allclose(grad.flatten(1), closed, rtol=1e-5, atol=1e-7)


def test_class_order_draws_each_class_from_its_own_images():
    split = digits(per_class=3)
    order = _class_order(split.y, 10, 7, torch.Generator().manual_seed(0))
    assert order.shape == (10, 7)
    assert torch.equal(split.y[order], torch.arange(10).unsqueeze(1).expand(10, 7))
    for c in range(10):
        assert set(order[c, :3].tolist()) == set((split.y == c).nonzero().squeeze(1).tolist())  # a full first pass


def test_light_augmentation_keeps_shape_range_and_untouched_images():
    x = digits(per_class=2).x.view(2, 10, 28, 28)
    assert torch.equal(light_augmentation(x, torch.Generator().manual_seed(0), probability=0.0), x)
    moved = light_augmentation(x, torch.Generator().manual_seed(0), probability=1.0)
    assert moved.shape == x.shape and moved.min() >= 0 and moved.max() <= 1
    assert not torch.allclose(moved, x, atol=1e-3)


def test_training_lowers_the_loss_and_changes_the_deployed_model():
    data = digits()
    config = ABSConfig(epochs=3, batch_size=40, lr=3e-3, bank_size=20, bank_draws=24, steps=2, chunk_size=10)
    defense = make_abs(config)
    before = defense.predict(data.x[:2])
    val_loss_before, _ = validate(defense.vaes, data, 1.0)
    defense.fit(data, data, TinyContext())
    history = defense.history
    assert len(history.train_loss) == len(history.val_loss) == len(history.val_accuracy) == 3
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert history.val_loss[-1] < 0.95 * val_loss_before
    assert not defense.vaes.training
    assert not torch.allclose(defense.predict(data.x[:2]), before)


def test_training_needs_every_class():
    data = digits()
    keep = data.y != 4
    with pytest.raises(ValueError, match="class"):
        make_abs(ABSConfig(epochs=1, batch_size=40)).fit(Split(data.x[keep], data.y[keep]), data, TinyContext())


def test_registration_profiles_and_checkpoint_round_trip():
    smoke = DEFENSES.build("abs", "smoke")
    assert isinstance(smoke, AnalysisBySynthesis) and not isinstance(smoke, BinaryAnalysisBySynthesis)
    assert (smoke.config.bank_size, smoke.config.bank_draws, smoke.config.steps) == (500, 555, 5)
    paper = DEFENSES.build("binary-abs", "paper")
    assert isinstance(paper, BinaryAnalysisBySynthesis)
    assert (paper.config.bank_size, paper.config.bank_draws, paper.config.steps) == (8000, 8888, 50)
    cfg = paper.config
    assert (cfg.inference_lr, cfg.radius, cfg.beta) == (0.05, 5.0, 1.0)
    assert (cfg.lr, cfg.batch_size, cfg.epochs) == (3e-3, 128, 10)
    assert AnalysisBySynthesis.description and BinaryAnalysisBySynthesis.description
    with pytest.raises(ValueError):
        ABSConfig(bank_size=10, bank_draws=5)
    defense = make_abs()
    assert set(defense.modules()) == {"vaes"}
    torch.manual_seed(5)
    restored = AnalysisBySynthesis(TINY)
    restored.load_state_dict(defense.state_dict())
    x = images(2)
    assert torch.equal(restored.predict(x), defense.predict(x))


def test_binarisation_is_at_half_or_above_as_the_authors_code():
    """At ε = 0.3 a pixel of 51/255 pushed up by 0.3 lands exactly on 0.5: it must turn white."""
    pixel = torch.tensor([0.2 + 0.3, 0.5 - 1e-6, 0.5, 0.7])
    assert binarize(pixel).tolist() == [1.0, 0.0, 1.0, 1.0]
    assert BinaryAnalysisBySynthesis.revision == 1  # stored rows of the x > 0.5 binarisation are stale


@pytest.mark.parametrize("cls", [AnalysisBySynthesis, BinaryAnalysisBySynthesis])
def test_pgd_reads_the_verdict_off_the_attacked_models_logits(cls):
    """The attacked module computes the deployed logits, so it judges: half the decoder calls of judging
    through ``deployed_model()`` (a second latent search per step), with the same adversarial examples."""
    from attacks.base import ATTACKS
    from attacks.criteria import Misclassification
    from benchmark.run.evaluation import criterion
    from foundation.registry import Spec

    defense = make_abs(cls=cls)
    x = images(4)
    y = defense.predict(x).argmax(dim=1)  # every point starts correct, so PGD steps (this decodes the bank too)
    attack = ATTACKS.build(Spec.parse("pgd:steps=3"), "quick")
    model = defense.attack_model()
    calls = []
    defense.folded.register_forward_hook(lambda *_: calls.append(1))

    def run(judge):
        calls.clear()
        x_adv = attack(model, x, y, 0.3, generator=torch.Generator().manual_seed(0), criterion=judge)
        return x_adv, len(calls)

    own, own_calls = run(criterion(defense, attack, model, repeats=1, batch_size=500))
    deployed, deployed_calls = run(Misclassification(defense.deployed_model()))
    assert defense.attack_logits_are_deployed()
    assert torch.equal(own, deployed)
    assert own_calls == 4 * (TINY.steps + 2)  # 3 steps and the last iterate's verdict: one search each
    assert deployed_calls == 2 * own_calls


def test_the_folded_decoder_is_the_eval_decoder_and_follows_its_weights():
    """BatchNorm folded into the transposed convolutions: the same decodings (to rounding), refolded when the
    decoder's weights or running statistics change; autograd reaches z only."""
    torch.manual_seed(0)
    defense = make_abs()
    for norm in (m for m in defense.vaes.decoder if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.2, 0.2)
    z = torch.randn(3, 10, 8, requires_grad=True)
    folded = defense.folded.refreshed(defense.vaes)
    decoded = folded(z)
    assert torch.allclose(decoded, defense.vaes.decode(z).flatten(2), atol=1e-6)
    (gradient,) = torch.autograd.grad(decoded.sum(), z)
    assert torch.allclose(gradient, torch.autograd.grad(defense.vaes.decode(z).sum(), z)[0], atol=1e-5)
    with torch.no_grad():
        defense.vaes.decoder[1].running_mean.add_(0.3)  # new statistics: folded again
    assert torch.allclose(folded.refreshed(defense.vaes)(z), defense.vaes.decode(z).flatten(2), atol=1e-6)
    assert not any(name.startswith("folded") for name in defense.deployed_model().state_dict())


def test_exp_elu_is_elu_with_its_gradient():
    """ELU through exp: F.elu's values to float rounding, and an exact gradient (1 above 0, exp(h) below)."""
    h = torch.linspace(-12, 6, 2001, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ExpELU.apply, (h[::40].detach().clone().requires_grad_(True),))
    out = ExpELU.apply(h)
    assert torch.allclose(out, torch.nn.functional.elu(h), atol=1e-12)
    (gradient,) = torch.autograd.grad(out.sum(), h)
    assert torch.allclose(gradient, torch.where(h > 0, torch.ones_like(h), h.exp()), atol=1e-12)
    x = torch.randn(10_000) * 4
    assert (ExpELU.apply(x) - torch.nn.functional.elu(x)).abs().max() <= 1e-6
