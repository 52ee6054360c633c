"""Paper 001's Parallel-GAN DQN defense: networks, DQN pieces, reward, training step and a tiny fit."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from defenses.base import DEFENSES
from defenses.pgan_dqn import (
    GeneratorSelector,
    PerturbationGenerator,
    PganClassifier,
    PganDqn,
    PganDqnConfig,
    QNetwork,
    adversarial_training_step,
    choose_action,
    exploration_rate,
    fooling_rate,
    generator_objective,
    make_optimizer,
    sample_noise,
)
from foundation.splits import Split
from tests.synthetic import TinyContext, blobs


def selector_for(**options) -> GeneratorSelector:
    torch.manual_seed(0)
    config = PganDqnConfig(**options)
    q_network = QNetwork(config.state_size, config.num_generators)
    return GeneratorSelector(q_network, config, make_optimizer(config, q_network.parameters()))


def test_classifier_is_three_conv_two_fc_weight_normed_leaky_relu():
    torch.manual_seed(0)
    model = PganClassifier()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 3 and len(linears) == 2
    assert all(parametrize.is_parametrized(m, "weight") for m in convs + linears)
    assert [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 4
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 10)


def test_generators_stay_inside_the_eps_ball_and_the_box():
    torch.manual_seed(0)
    generator = PerturbationGenerator(eps=0.3, noise_channels=2)
    with torch.no_grad():  # saturate tanh: the bound must hold by construction, not by small weights
        generator.net[-1].parametrizations.weight.original0.mul_(100.0)
    x = torch.rand(6, 1, 28, 28)
    x[0], x[1] = 0.0, 1.0
    for scale in (1.0, 100.0):
        noise = scale * torch.randn(6, 2, 28, 28)
        x_adv = generator(x, noise)
        assert x_adv.shape == x.shape
        assert (x_adv - x).abs().max() <= 0.3 + 1e-6
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert (x_adv[2:] - x[2:]).abs().max() > 0.25  # the budget is actually used
    assert not torch.equal(generator(x, torch.randn(6, 2, 28, 28)), generator(x, torch.randn(6, 2, 28, 28)))


def test_noise_is_standard_normal_maps_shaped_like_the_images():
    noise = sample_noise(torch.zeros(500, 1, 28, 28), 2, torch.Generator().manual_seed(0))
    assert noise.shape == (500, 2, 28, 28)
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 1.0) < 0.01


def test_greedy_choice_is_the_argmax_of_q():
    q_values = torch.tensor([0.1, 2.0, -1.0, 0.5])
    generator = torch.Generator().manual_seed(0)
    assert {choose_action(q_values, 0.0, generator) for _ in range(200)} == {1}
    assert choose_action(torch.tensor([[3.0, 0.0, 1.0]]), 0.0, generator) == 0


def test_full_exploration_is_uniform_and_partial_exploration_mixes():
    q_values = torch.tensor([0.1, 2.0, -1.0, 0.5])
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([choose_action(q_values, 1.0, generator) for _ in range(4000)]), minlength=4)
    assert all(880 <= int(c) <= 1120 for c in counts)  # 1000 each, ±4.4 standard deviations
    greedy = sum(choose_action(q_values, 0.5, generator) == 1 for _ in range(4000)) / 4000
    assert abs(greedy - (0.5 + 0.5 / 4)) < 0.035
    with pytest.raises(ValueError):
        choose_action(q_values, 1.5, generator)


def test_exploration_is_annealed_linearly_then_held():
    assert exploration_rate(0, 100, 1.0, 0.05, 0.5) == 1.0
    assert exploration_rate(25, 100, 1.0, 0.05, 0.5) == pytest.approx(0.525)
    assert exploration_rate(50, 100, 1.0, 0.05, 0.5) == pytest.approx(0.05)
    assert exploration_rate(99, 100, 1.0, 0.05, 0.5) == pytest.approx(0.05)
    assert exploration_rate(0, 100, 1.0, 0.05, 0.0) == 0.05


def test_reward_is_the_fooling_rate_of_initially_correct_points():
    y = torch.tensor([0, 1, 2, 0, 1])
    clean = torch.tensor([[5.0, 0, 0], [0, 5, 0], [5, 0, 0], [0, 5, 0], [0, 5, 0]])  # points 2, 3 wrong
    adv = torch.tensor([[0.0, 5, 0], [0, 5, 0], [0, 5, 0], [5, 0, 0], [0, 5, 0]])  # 0 fooled, 3 now right
    assert float(fooling_rate(clean, adv, y)) == pytest.approx(1 / 3)
    assert float(fooling_rate(clean[2:4], adv[2:4], y[2:4])) == 0.0  # none correct: no reward


def test_generator_objective_is_the_cw_margin_or_the_cross_entropy():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 4.0, 5.0]])
    y = torch.tensor([0, 2])
    assert float(generator_objective(logits, y, "cw")) == pytest.approx(((2 - 3) + (4 - 5)) / 2)
    assert float(generator_objective(logits, y, "ce")) == pytest.approx(float(F.cross_entropy(logits, y)))


def test_training_step_rewards_the_pre_update_models_and_updates_only_the_chosen_generator():
    torch.manual_seed(0)
    config = PganDqnConfig(num_generators=2)
    data = blobs(32)
    classifier, generators = PganClassifier(), nn.ModuleList(PerturbationGenerator(0.3) for _ in range(2))
    classifier_before, generators_before = copy.deepcopy(classifier), copy.deepcopy(generators)
    noise = sample_noise(data.x, 1, torch.Generator().manual_seed(1))
    result = adversarial_training_step(
        classifier,
        generators[0],
        data.x,
        data.y,
        noise,
        classifier_optimizer=make_optimizer(config, classifier.parameters()),
        generator_optimizer=torch.optim.SGD(generators.parameters(), lr=10.0, momentum=0.9),  # a visible step
        alpha=1.0,
        generator_loss="cw",
    )
    with torch.no_grad():
        x_adv = generators_before[0](data.x, noise)
        clean_logits, adv_logits = classifier_before(data.x), classifier_before(x_adv)
        expected = fooling_rate(clean_logits, adv_logits, data.y)
        generated_loss = F.cross_entropy(adv_logits, data.y)
        loss = (F.cross_entropy(clean_logits, data.y) + generated_loss) / 2
        ascended = generator_objective(classifier_before(generators[0](data.x, noise)), data.y, "cw")
    assert float(result.fooling_rate) == pytest.approx(float(expected), abs=1e-6)
    assert float(result.generated_loss) == pytest.approx(float(generated_loss), rel=1e-5)
    assert float(result.loss) == pytest.approx(float(loss), rel=1e-5)
    assert float(ascended) > float(generator_objective(adv_logits, data.y, "cw")) + 1e-3  # G climbed D's loss
    changed = [
        not torch.equal(a, b) for a, b in zip(classifier.parameters(), classifier_before.parameters(), strict=True)
    ]
    assert all(changed)
    assert all(p.requires_grad for p in classifier.parameters())  # unfrozen after the generator step
    for a, b in zip(generators[1].parameters(), generators_before[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(generators[0].parameters(), generators_before[0].parameters(), strict=True)
    )


def test_state_has_fooling_ema_staleness_loss_and_progress():
    selector = selector_for(num_generators=3, ema_decay=0.9)
    state = selector.state()
    assert state.shape == (2 * 3 + 2,) == (PganDqnConfig(num_generators=3).state_size,)
    assert torch.equal(state, torch.zeros(8))
    selector.observe(1, torch.tensor(0.5), torch.tensor(1.0), 0.25)
    state = selector.state()
    assert torch.allclose(state[:3], torch.tensor([0.0, 0.05, 0.0]))
    assert torch.allclose(state[3:6], torch.tensor([1 / 4, 0.0, 1 / 4]))  # n / (n + K)
    assert float(state[6]) == pytest.approx(0.1 / 1.1)  # loss EMA 0.1, squashed l / (1 + l)
    assert float(state[7]) == 0.25
    selector.observe(2, 1.0, 1.0, 0.5)
    state = selector.state()
    assert torch.allclose(state[:3], torch.tensor([0.0, 0.05, 0.1]))
    assert torch.allclose(state[3:6], torch.tensor([2 / 5, 1 / 4, 0.0]))
    assert float(state[6]) == pytest.approx(0.19 / 1.19)
    assert float(state[7]) == 0.5
    assert selector.counts.tolist() == [0, 1, 1]


def test_q_update_moves_q_towards_the_bootstrapped_target():
    selector = selector_for(
        num_generators=3, replay_size=1, replay_batch=4, target_sync=1000, beta=1.0, gamma=0.9, momentum=0.0
    )
    state, next_state = torch.rand(8), torch.rand(8)
    with torch.no_grad():
        target = 0.7 + 0.9 * selector.target(next_state).max()
        before = selector.q_network(state)
        expected_loss = F.smooth_l1_loss(before[1], target)
    loss = selector.update(state, 1, 0.7, next_state, torch.Generator().manual_seed(0))
    assert float(loss) == pytest.approx(float(expected_loss), rel=1e-5)
    with torch.no_grad():
        after = selector.q_network(state)
    assert abs(float(after[1] - target)) < abs(float(before[1] - target))


def test_target_network_is_synced_every_target_sync_updates():
    selector = selector_for(num_generators=2, target_sync=2)
    generator = torch.Generator().manual_seed(0)

    def synced() -> bool:
        target = selector.target.state_dict()
        return all(torch.equal(v, target[k]) for k, v in selector.q_network.state_dict().items())

    assert synced()
    selector.update(torch.rand(6), 0, 1.0, torch.rand(6), generator)
    assert not synced()
    selector.update(torch.rand(6), 1, 1.0, torch.rand(6), generator)
    assert synced()


def test_short_fit_lowers_the_classifier_loss_and_records_choices():
    torch.manual_seed(0)
    data = blobs(256)
    defense = PganDqn(PganDqnConfig(epochs=3, batch_size=64))

    def clean_loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(defense.classifier(data.x), data.y))

    before = clean_loss()
    defense.fit(data, Split(data.x[:64], data.y[:64]), TinyContext())
    assert clean_loss() < 0.5 * before
    assert sum(defense.choice_counts) == 3 * 4 and len(defense.choice_counts) == 4
    summary = defense.fit_summary()
    assert summary["epochs"] == 3.0
    assert 0.0 <= summary["val_accuracy"] <= 1.0 and 0.0 <= summary["fooling_rate"] <= 1.0
    assert sum(summary[f"chosen_g{k}"] for k in range(4)) == pytest.approx(1.0)
    assert not defense.deployed_model().training


def test_registered_with_paper_defaults_and_profile_budgets():
    assert DEFENSES.get("pgan-dqn") is PganDqn and PganDqn.description
    paper = DEFENSES.build("pgan-dqn", "paper")
    cfg = paper.config
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.beta, cfg.eps, cfg.num_generators) == (30, 256, 0.01, 0.1, 0.3, 4)
    assert DEFENSES.build("pgan-dqn", "smoke").config.epochs == 1
    assert DEFENSES.build("pgan-dqn", "quick").config.epochs == 3
    assert not paper.randomized
    with pytest.raises(ValueError):
        PganDqnConfig(eps=1.5)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    source = DEFENSES.build("pgan-dqn", "smoke")
    torch.manual_seed(1)
    target = DEFENSES.build("pgan-dqn", "smoke")
    assert {"classifier", "generators", "q_network"} <= set(source.modules())
    x = torch.rand(3, 1, 28, 28)
    assert not torch.equal(source.predict(x), target.predict(x))
    target.load_state_dict(source.state_dict())
    assert torch.equal(source.predict(x), target.predict(x))
    noise = torch.randn(3, 1, 28, 28)
    assert torch.equal(source.generators[2](x, noise), target.generators[2](x, noise))
    state = torch.rand(10)
    assert torch.equal(source.q_network(state), target.q_network(state))
    with pytest.raises(KeyError):
        target.load_state_dict({"classifier": source.classifier.state_dict()})
