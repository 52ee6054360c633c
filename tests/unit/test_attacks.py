"""Every registered attack on a tiny linear model: bounds hold, ε = 0 is the identity, accuracy falls."""

import pytest
import torch
import torch.nn.functional as F

from attacks.base import ATTACKS, perturbation_size, random_start
from attacks.deepfool import deepfool
from attacks.gradient import cross_entropy_objective, fgsm, input_gradient, pgd_ascent
from tests.conftest import accuracy

GRADIENT_ATTACKS = [
    "fgsm",
    "pgd",
    "deepfool",
    "art.fgsm",
    "art.pgd",
    "art.deepfool",
    "foolbox.fgsm",
    "foolbox.pgd",
    "foolbox.deepfool",
    "cascade",
]


@pytest.mark.parametrize("name", GRADIENT_ATTACKS)
def test_attack_respects_its_budget_and_fools_the_model(name, linear_model, images, labels):
    attack = ATTACKS.build(name, "quick")
    generator = torch.Generator().manual_seed(0)
    unchanged, small, large = attack.run_curve(linear_model, images, labels, [0.0, 0.02, 0.3], generator=generator)
    assert torch.equal(unchanged, images)
    for eps, x_adv in ((0.02, small), (0.3, large)):
        linf = perturbation_size(images, x_adv, "linf")
        assert linf.max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(linear_model, large, labels) < 0.2
    assert accuracy(linear_model, large, labels) <= accuracy(linear_model, small, labels)


def test_every_registered_gradient_attack_is_covered():
    """L∞ attacks that need only gradients (not mixtures, not VAE-specific ones) are all tested here (the
    L2-only ones in test_l2_libraries.py)."""
    native_and_libraries = {
        name
        for name, cls in ATTACKS.items()
        if cls.requires == {"gradients"}
        and cls.threat_model != "semantic"
        and "linf" in cls.norms
        and cls.backend != "torchattacks"  # covered by test_strong_attacks.py
        and cls.backend != "adv_lib"  # covered by test_advlib.py
        and not name.startswith("test.")
    }
    assert native_and_libraries <= set(GRADIENT_ATTACKS)


def test_input_gradient_matches_autograd_of_the_summed_loss(linear_model, images, labels):
    weight = linear_model[1].weight
    probabilities = F.softmax(linear_model(images), dim=1)
    expected = ((probabilities - F.one_hot(labels, 10)) @ weight).view_as(images)
    assert torch.allclose(input_gradient(linear_model, images, labels), expected, atol=1e-5)


def test_pgd_is_at_least_as_strong_as_fgsm_on_the_loss(linear_model, images, labels):
    x_fgsm = fgsm(linear_model, images, labels, 0.05)
    x_pgd = pgd_ascent(
        cross_entropy_objective(linear_model, labels), images, 0.05, steps=20, step_size=0.01, random_start=False
    )
    loss = lambda x: F.cross_entropy(linear_model(x), labels).item()  # noqa: E731
    assert loss(x_pgd) >= loss(x_fgsm) - 1e-4 > loss(images)


def test_pgd_is_reproducible_with_a_seeded_generator(linear_model, images, labels):
    runs = [
        pgd_ascent(
            cross_entropy_objective(linear_model, labels),
            images,
            0.1,
            steps=3,
            step_size=0.03,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]
    assert torch.equal(*runs)


def test_native_deepfool_matches_foolbox(linear_model, images, labels):
    import foolbox

    native = deepfool(linear_model, images, labels, steps=50, candidates=10, overshoot=0.02)
    reference = foolbox.attacks.LinfDeepFoolAttack(steps=50, candidates=10, overshoot=0.02, loss="logits")
    raw, _, _ = reference(foolbox.PyTorchModel(linear_model, bounds=(0, 1)), images, labels, epsilons=None)
    assert torch.allclose(native, raw, atol=1e-5)
    assert accuracy(linear_model, native, labels) == 0.0


def test_deepfool_leaves_misclassified_points_alone(linear_model, images, labels):
    wrong = (labels + 1) % 10
    assert torch.equal(deepfool(linear_model, images, wrong, steps=5, candidates=10, overshoot=0.02), images)


def test_minimisation_attack_curve_is_one_run_clipped(linear_model, images, labels):
    attack = ATTACKS.build("deepfool", "quick")
    curve = attack.run_curve(linear_model, images, labels, [0.05, 0.1, 1.0])
    accuracies = [accuracy(linear_model, x_adv, labels) for x_adv in curve]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[-1] == 0.0


class _CountingModel(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.examples = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.examples += len(x)
        return self.model(x)


def _pgd_keeping_every_fooling_iterate(model, x, y, eps, steps, step_size, generator):
    """Reference: full-batch PGD for every step, keeping per point the first iterate that fooled the model."""
    x_adv = (x + (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1) * eps).clamp(0, 1)
    kept, fooled = x_adv.clone(), torch.zeros(len(x), dtype=torch.bool)
    for step in range(steps + 1):
        with torch.no_grad():
            now = (model(x_adv).argmax(1) != y) & ~fooled
        kept[now], fooled = x_adv[now], fooled | now
        if step < steps:
            gradient = input_gradient(model, x_adv, y)
            x_adv = torch.min(torch.max(x_adv + step_size * gradient.sign(), x - eps), x + eps).clamp(0, 1)
    return torch.where(fooled.view(-1, 1, 1, 1), kept, x_adv)


@pytest.mark.parametrize("eps", [0.03, 0.06])
def test_early_stopping_pgd_equals_pgd_keeping_every_fooling_iterate(linear_model, images, labels, eps):
    """Points leave the batch once fooled: the same robust accuracy and examples, fewer model evaluations."""
    model = _CountingModel(linear_model.double())
    x, steps = images.double(), 10
    early = ATTACKS.build(f"pgd:steps={steps}:rel_stepsize=0.1", "paper")
    x_early = early(model, x, labels, eps, generator=torch.Generator().manual_seed(3))
    evaluated_early, model.examples = model.examples, 0
    x_full = _pgd_keeping_every_fooling_iterate(
        model, x, labels, eps, steps, 0.1 * eps, torch.Generator().manual_seed(3)
    )
    robust = lambda x_adv: (linear_model(x_adv).argmax(1) == labels).float().mean().item()  # noqa: E731
    assert 0.0 < robust(x_early) == robust(x_full) < 1.0
    assert torch.equal(x_early, x_full)
    assert evaluated_early < len(x) * (steps + 1)  # fooled points stopped costing a forward pass per step
    plain = ATTACKS.build(f"pgd:steps={steps}:rel_stepsize=0.1:early_stop=false", "paper")
    x_plain = plain(linear_model, x, labels, eps, generator=torch.Generator().manual_seed(3))
    assert robust(x_early) <= robust(x_plain)


def test_early_stopping_pgd_asks_a_given_criterion(linear_model, images, labels):
    """A criterion other than the model's own prediction (e.g. the table's repeated rule) decides who stops."""
    calls = []

    def everything_fooled(x_adv, y):
        calls.append(len(y))
        return torch.ones(len(y), dtype=torch.bool)

    attack = ATTACKS.build("pgd:steps=10", "paper")
    x_adv = attack(linear_model, images, labels, 0.1, generator=seeded(0), criterion=everything_fooled)
    assert calls == [len(labels)]  # judged once, at the random start, then nothing left to attack
    assert torch.equal(x_adv, random_start(images, 0.1, "linf", seeded(0)))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pgd_does_not_stop_on_a_stochastic_verdict(linear_model, images, labels):
    """A randomized defense's verdict is drawn: PGD then runs every step, as without early stopping."""
    from attacks.criteria import RepeatedMisclassification

    noisy_verdict = RepeatedMisclassification(lambda x: linear_model(x), 3, stochastic=True)
    x_adv = ATTACKS.build("pgd:steps=10", "paper")(
        linear_model, images, labels, 0.05, generator=seeded(1), criterion=noisy_verdict
    )
    plain = ATTACKS.build("pgd:steps=10:early_stop=false", "paper")
    assert torch.equal(x_adv, plain(linear_model, images, labels, 0.05, generator=seeded(1)))
