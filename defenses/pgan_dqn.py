"""``pgan-dqn``: paper 001's robust classifier trained against Parallel GANs chosen by a Deep-Q network.

The paper (Zhang & Chang, "Robustness against adversary models on MNIST by Deep-Q Reinforcement
Learning based Parallel-GANs") trains a classifier D against several generators G_i that perturb
clean images, with a DQN selecting among the generators, and deploys D. It publishes no code and
leaves the generator architecture, the DQN's state, action and reward, and most hyperparameters
open. What it does say, and how it enters here:

- **Deployed model**: D, the "discriminator", which the paper uses as the classifier itself ("a
  clean model", "the robust evaluation target f"): three convolution layers and two fully connected
  layers, LeakyReLU with slope 0.2, weight normalisation on all layers (``PganClassifier``). Widths
  are ours: conv 3×3 (1→32), conv 3×3 stride 2 (32→64), conv 3×3 stride 2 (64→128), FC 6272→256,
  FC 256→10; stride-2 convolutions instead of pooling, as in GAN discriminators. Deterministic:
  the paper's image quantisation of D ("the discriminator is simplified by quantizing the images")
  is not specified and is left out, so attacks see D unchanged.
- **Generators** (``PerturbationGenerator``, K = ``num_generators`` = 4, independent, "image to
  image"): input the clean image (auxiliary feature) concatenated with ``noise_channels`` maps of
  white noise N(0, 1) (the "main feature", eq. 8), an encoder-decoder of two stride-2 convolutions
  and two stride-2 transposed convolutions (LeakyReLU 0.2, weight norm), output h; the perturbation
  is δ = ε·tanh(h) and the example x_adv = clamp(x + δ, 0, 1) with ε = ``eps`` = 0.3 (the paper's
  L∞ distance), so every generated example lies in the L∞ ball and the [0, 1] box by construction.
- **Generator objective** (``generator_objective``): maximise D's loss on x_adv with D frozen.
  Default ``generator_loss=cw``: the Carlini-Wagner margin max_{j≠y} z_j − z_y (uncapped), our
  reading of "it chooses the second-likely loss from original clean prediction"; ``ce`` maximises
  the cross-entropy instead.
- **Losses** (eq. 5, L = α·L_GAN + L_D + β·L_RL) are realised as alternating updates, not one
  summed backward pass. L_D (eq. 2) is D's cross-entropy on generated examples. The clean half of
  L_GAN (eq. 1, E log f(x)) becomes D's cross-entropy on the clean images, its generated half the
  generators' objective. D minimises (α·CE_clean + CE_generated)/(1 + α); ``alpha`` = 1 (the paper
  gives no value) is an equal clean/generated mix, our reading of the "50 %" balance of G and D
  (Fig. 14). The generator step maximises the objective unscaled (α would only rescale its step).
  β = ``beta`` = 0.1 (the paper's value) multiplies the Q-network's TD loss (L_RL); Q has its own
  parameters, so β scales its step size under SGD (and is nearly a no-op under Adam).
- **Order per batch** (Algorithm 1: each side is updated against the other's previous state): the
  chosen generator G_a makes x_adv; G_a takes one ascent step against D^{t-1}; D takes one descent
  step on the clean batch and that x_adv (made by G_a^{t-1}). The reward is read from that D step's
  forward pass, i.e. from D^{t-1} on G_a^{t-1}'s examples.
- **DQN** (``GeneratorSelector``): the paper cites dueling networks (Wang et al.) for its DQN, so
  ``QNetwork`` is a dueling MLP: state → 64 → 64 (LeakyReLU 0.2, weight norm like every layer)
  → Q = V(s) + A(s, a) − mean_a A(s, a). Its "hierarchical" Q function (Fig. 6) is not specified.
  - *State* (2K + 2 numbers): per generator the EMA (decay ``ema_decay`` = 0.9, start 0) of its
    fooling rate, updated when it is chosen; per generator its staleness n / (n + K), n = batches
    since it was last chosen (0 right after a choice, 1/2 after K batches, → 1); D's recent loss,
    the EMA of L_D squashed to l / (1 + l); and training progress, steps done / total steps.
  - *Action*: the index of the generator that makes this batch's examples.
  - *Reward*: the chosen generator's fooling rate on the batch: among the points D^{t-1} classifies
    correctly, the fraction it misclassifies after the perturbation (0 when none is correct).
  - *Policy*: ε-greedy (the paper's), exploration annealed linearly from ``explore_start`` = 1 to
    ``explore_end`` = 0.05 over the first ``explore_fraction`` = 1/2 of the steps, then constant.
  - *Learning*: one Q update per batch on ``replay_batch`` = 32 transitions drawn uniformly (with
    replacement) from a replay buffer of the last ``replay_size`` = 512; Huber loss between Q(s, a)
    and r + γ·max_a' Q_target(s'), γ = ``gamma`` = 0.9; a target network copied from Q every
    ``target_sync`` = 50 updates (``target_sync=0``: bootstrap from Q itself). Training is treated
    as a continuing task (no terminal state; progress is part of the state).
- **Optimisers**: the paper gives batch 256 and learning rate 0.01 but no optimiser. lr 0.01 is
  the conventional SGD rate (Adam's is 1e-3), so D, the generators (one optimiser; only the chosen
  generator has gradients) and Q each use SGD with momentum ``momentum`` = 0.9 (ours) at ``lr``;
  ``optimizer=adam`` is available. 30 epochs at the paper profile ("after 30 epochs the proposed
  can achieve close to 98 %"); the final weights are kept, validation is only reported.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from defenses.base import Defense, FitContext, register_defense
from defenses.epochs import Shuffled, run_epochs
from defenses.training_loops import History, classifier_accuracy
from foundation.splits import Split

GeneratorLoss = Literal["cw", "ce"]
OptimizerName = Literal["sgd", "adam"]

#: LeakyReLU slope everywhere (the paper's δ = 0.2).
LEAKY_SLOPE = 0.2


@dataclass(frozen=True)
class PganDqnConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.01
    optimizer: OptimizerName = "sgd"
    momentum: float = 0.9
    eps: float = 0.3
    num_generators: int = 4
    noise_channels: int = 1
    generator_loss: GeneratorLoss = "cw"
    alpha: float = 1.0
    beta: float = 0.1
    gamma: float = 0.9
    explore_start: float = 1.0
    explore_end: float = 0.05
    explore_fraction: float = 0.5
    ema_decay: float = 0.9
    replay_size: int = 512
    replay_batch: int = 32
    target_sync: int = 50

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.num_generators, self.noise_channels) < 1:
            raise ValueError("epochs, batch_size, num_generators and noise_channels must be at least 1")
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError("lr must be positive and momentum in [0, 1)")
        if not 0 <= self.eps <= 1:
            raise ValueError("eps must lie in [0, 1]")
        if self.alpha < 0 or self.beta < 0 or not 0 <= self.gamma < 1 or not 0 <= self.ema_decay < 1:
            raise ValueError("alpha and beta must be non-negative, gamma and ema_decay in [0, 1)")
        if not 0 <= self.explore_end <= self.explore_start <= 1 or not 0 <= self.explore_fraction <= 1:
            raise ValueError("need 0 <= explore_end <= explore_start <= 1 and explore_fraction in [0, 1]")
        if self.replay_size < 1 or self.replay_batch < 1 or self.target_sync < 0:
            raise ValueError("replay_size and replay_batch must be at least 1, target_sync non-negative")

    @property
    def state_size(self) -> int:
        """Length of the DQN state: fooling EMA and staleness per generator, D's loss, progress."""
        return 2 * self.num_generators + 2


class PganClassifier(nn.Module):
    """D: three conv + two FC layers, LeakyReLU(0.2), weight norm on every layer; [0, 1] images -> logits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            weight_norm(nn.Conv2d(1, 32, 3, padding=1)),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.Conv2d(32, 64, 3, stride=2, padding=1)),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.Conv2d(64, 128, 3, stride=2, padding=1)),
            nn.LeakyReLU(LEAKY_SLOPE),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            weight_norm(nn.Linear(128 * 7 * 7, 256)),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.Linear(256, num_classes)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class PerturbationGenerator(nn.Module):
    """G(x, z): an image-to-image encoder-decoder whose output is bounded, x_adv = clamp(x + ε·tanh(h), 0, 1)."""

    def __init__(self, eps: float, noise_channels: int = 1) -> None:
        super().__init__()
        self.eps = eps
        self.noise_channels = noise_channels
        self.net = nn.Sequential(
            weight_norm(nn.Conv2d(1 + noise_channels, 32, 4, stride=2, padding=1)),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.Conv2d(32, 64, 4, stride=2, padding=1)),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), dim=1),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), dim=1),
        )

    def perturbation(self, x: Tensor, noise: Tensor) -> Tensor:
        """δ = ε·tanh(h(x, z)), so ‖δ‖∞ ≤ ε."""
        return self.eps * torch.tanh(self.net(torch.cat([x, noise], dim=1)))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return (x + self.perturbation(x, noise)).clamp(0.0, 1.0)


def sample_noise(x: Tensor, channels: int, generator: torch.Generator) -> Tensor:
    """White noise N(0, 1) maps shaped like ``x`` with ``channels`` channels (the paper's eq. 8)."""
    shape = (x.shape[0], channels, *x.shape[2:])
    return torch.randn(shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


class QNetwork(nn.Module):
    """Dueling MLP: Q(s, ·) = V(s) + A(s, ·) − mean A(s, ·), for a state vector or a batch of them."""

    def __init__(self, state_size: int, num_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            weight_norm(nn.Linear(state_size, hidden)),
            nn.LeakyReLU(LEAKY_SLOPE),
            weight_norm(nn.Linear(hidden, hidden)),
            nn.LeakyReLU(LEAKY_SLOPE),
        )
        self.value = weight_norm(nn.Linear(hidden, 1))
        self.advantage = weight_norm(nn.Linear(hidden, num_actions))

    def forward(self, state: Tensor) -> Tensor:
        features = self.trunk(state)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)


def make_optimizer(config: PganDqnConfig, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum)


def exploration_rate(step: int, total_steps: int, start: float, end: float, fraction: float) -> float:
    """ε-greedy rate: linear from ``start`` at step 0 to ``end`` at ``fraction·total_steps``, then ``end``."""
    horizon = fraction * total_steps
    if horizon <= 0:
        return end
    return start + (end - start) * min(step / horizon, 1.0)


def choose_action(q_values: Tensor, exploration: float, generator: torch.Generator) -> int:
    """ε-greedy: a uniformly random action with probability ``exploration``, else argmax Q.

    Both draws are made every call, so the random stream does not depend on the outcome.
    """
    if not 0.0 <= exploration <= 1.0:
        raise ValueError(f"exploration must lie in [0, 1], got {exploration}")
    q_values = q_values.reshape(-1)
    device = generator.device
    explore = torch.rand((), generator=generator, device=device) < exploration
    random_action = torch.randint(len(q_values), (), generator=generator, device=device)
    return int(torch.where(explore, random_action, q_values.argmax().to(device)))


def fooling_rate(logits_clean: Tensor, logits_adv: Tensor, y: Tensor) -> Tensor:
    """Among points classified correctly on clean inputs, the fraction misclassified adversarially (0 if none)."""
    correct = logits_clean.argmax(dim=1) == y
    fooled = correct & (logits_adv.argmax(dim=1) != y)
    return fooled.sum().to(logits_adv.dtype) / correct.sum().clamp_min(1).to(logits_adv.dtype)


def generator_objective(logits: Tensor, y: Tensor, kind: GeneratorLoss) -> Tensor:
    """What the generators maximise, averaged over the batch: the CW margin or the cross-entropy."""
    if kind == "ce":
        return F.cross_entropy(logits, y)
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    best_other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return (best_other - true_logit).mean()


@dataclass(frozen=True)
class StepResult:
    """One batch's numbers, as tensors (no host sync)."""

    loss: Tensor  # D's training loss, (α·CE_clean + CE_generated) / (1 + α)
    generated_loss: Tensor  # D's cross-entropy on the generated examples (L_D, eq. 2)
    fooling_rate: Tensor  # the reward


def adversarial_training_step(
    classifier: nn.Module,
    perturber: PerturbationGenerator,
    x: Tensor,
    y: Tensor,
    noise: Tensor,
    *,
    classifier_optimizer: torch.optim.Optimizer,
    generator_optimizer: torch.optim.Optimizer,
    alpha: float,
    generator_loss: GeneratorLoss,
) -> StepResult:
    """One alternating update: the generator ascends against frozen D, then D descends on clean + generated."""
    classifier.train()
    perturber.train()
    x_adv = perturber(x, noise)
    classifier.requires_grad_(False)
    try:
        objective = generator_objective(classifier(x_adv), y, generator_loss)
    finally:
        classifier.requires_grad_(True)
    generator_optimizer.zero_grad(set_to_none=True)
    (-objective).backward()
    generator_optimizer.step()

    clean_logits, adv_logits = classifier(torch.cat([x, x_adv.detach()])).split(len(x))
    generated_loss = F.cross_entropy(adv_logits, y)
    loss = (alpha * F.cross_entropy(clean_logits, y) + generated_loss) / (1.0 + alpha)
    classifier_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    classifier_optimizer.step()
    return StepResult(
        loss.detach(), generated_loss.detach(), fooling_rate(clean_logits.detach(), adv_logits.detach(), y)
    )


class GeneratorSelector:
    """The DQN that picks a generator per batch: its state statistics, replay buffer, target network and update."""

    def __init__(self, q_network: QNetwork, config: PganDqnConfig, optimizer: torch.optim.Optimizer) -> None:
        self.q_network, self.config, self.optimizer = q_network, config, optimizer
        device = next(q_network.parameters()).device
        k, size = config.num_generators, config.state_size
        self.fooling_ema = torch.zeros(k, device=device)
        self.since_chosen = torch.zeros(k, device=device)
        self.loss_ema = torch.zeros((), device=device)
        self.progress = torch.zeros((), device=device)
        self.counts = torch.zeros(k, dtype=torch.long, device=device)
        self.replay_states = torch.zeros(config.replay_size, size, device=device)
        self.replay_actions = torch.zeros(config.replay_size, dtype=torch.long, device=device)
        self.replay_rewards = torch.zeros(config.replay_size, device=device)
        self.replay_next = torch.zeros(config.replay_size, size, device=device)
        self.replay_filled = 0
        self.replay_position = 0
        self.updates = 0
        self.target: QNetwork | None = None
        if config.target_sync > 0:
            self.target = QNetwork(size, k).to(device)
            self.target.load_state_dict(q_network.state_dict())
            self.target.requires_grad_(False)

    def state(self) -> Tensor:
        """[fooling EMA (K), staleness n/(n+K) (K), D's loss EMA l/(1+l), progress]."""
        k = self.config.num_generators
        staleness = self.since_chosen / (self.since_chosen + k)
        return torch.cat(
            [self.fooling_ema, staleness, (self.loss_ema / (1 + self.loss_ema))[None], self.progress[None]]
        )

    @torch.no_grad()
    def act(self, exploration: float, generator: torch.Generator) -> int:
        return choose_action(self.q_network(self.state()), exploration, generator)

    def observe(self, action: int, reward: Tensor | float, generated_loss: Tensor | float, progress: float) -> None:
        """Fold the batch's outcome into the state statistics (only the chosen generator's EMA moves)."""
        decay = self.config.ema_decay
        self.since_chosen += 1
        self.since_chosen[action] = 0
        self.fooling_ema[action] = decay * self.fooling_ema[action] + (1 - decay) * reward
        self.loss_ema = decay * self.loss_ema + (1 - decay) * torch.as_tensor(
            generated_loss, device=self.loss_ema.device
        )
        self.progress.fill_(progress)
        self.counts[action] += 1

    def q_loss(self, states: Tensor, actions: Tensor, rewards: Tensor, next_states: Tensor) -> Tensor:
        """β · Huber(Q(s, a), r + γ·max_a' Q_target(s')); the target carries no gradient."""
        with torch.no_grad():
            network = self.target if self.target is not None else self.q_network
            bootstrap = network(next_states).amax(dim=1)
            targets = rewards + self.config.gamma * bootstrap
        chosen = self.q_network(states).gather(1, actions[:, None]).squeeze(1)
        return self.config.beta * F.smooth_l1_loss(chosen, targets)

    def update(
        self, state: Tensor, action: int, reward: Tensor | float, next_state: Tensor, generator: torch.Generator
    ) -> Tensor:
        """Store the transition, take one Q step on a replay minibatch, sync the target network; returns the loss."""
        slot = self.replay_position
        self.replay_states[slot] = state
        self.replay_actions[slot] = action
        self.replay_rewards[slot] = torch.as_tensor(reward, device=self.replay_rewards.device)
        self.replay_next[slot] = next_state
        self.replay_position = (slot + 1) % self.config.replay_size
        self.replay_filled = min(self.replay_filled + 1, self.config.replay_size)
        index = torch.randint(
            self.replay_filled, (self.config.replay_batch,), generator=generator, device=generator.device
        ).to(self.replay_rewards.device)
        self.q_network.train()
        loss = self.q_loss(
            self.replay_states[index], self.replay_actions[index], self.replay_rewards[index], self.replay_next[index]
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        if self.target is not None and self.updates % self.config.target_sync == 0:
            self.target.load_state_dict(self.q_network.state_dict())
        return loss.detach()


@register_defense("pgan-dqn")
class PganDqn(Defense):
    description = "Paper 001: classifier trained against K noise-driven ε-bounded generators chosen by a DQN"
    datasets = frozenset({"mnist"})  # the paper's networks are built for 1×28×28 MNIST
    Config = PganDqnConfig
    profile_overrides = {"smoke": {"epochs": 1}, "quick": {"epochs": 3}}

    def __init__(self, config: PganDqnConfig | None = None) -> None:
        super().__init__(config)
        cfg: PganDqnConfig = self.config
        self.classifier = PganClassifier()
        self.generators = nn.ModuleList(
            PerturbationGenerator(cfg.eps, cfg.noise_channels) for _ in range(cfg.num_generators)
        )
        self.q_network = QNetwork(cfg.state_size, cfg.num_generators)
        self.history = History()
        self.choice_counts: list[int] = []
        self.epoch_fooling_rate: list[float] = []

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        cfg: PganDqnConfig = self.config
        self.to(ctx.device)
        generator = ctx.generator()
        classifier_optimizer = make_optimizer(cfg, self.classifier.parameters())
        generator_optimizer = make_optimizer(cfg, self.generators.parameters())
        selector = GeneratorSelector(self.q_network, cfg, make_optimizer(cfg, self.q_network.parameters()))
        batches = Shuffled(train, cfg.batch_size, generator)
        total_steps = cfg.epochs * len(batches)
        self.history, self.epoch_fooling_rate = History(), []
        steps = itertools.count()

        def train_step(batch: tuple[Tensor, Tensor]) -> Tensor:
            x, y = batch
            step = next(steps)
            state = selector.state()
            exploration = exploration_rate(step, total_steps, cfg.explore_start, cfg.explore_end, cfg.explore_fraction)
            action = selector.act(exploration, generator)
            result = adversarial_training_step(
                self.classifier,
                self.generators[action],
                x,
                y,
                sample_noise(x, cfg.noise_channels, generator),
                classifier_optimizer=classifier_optimizer,
                generator_optimizer=generator_optimizer,
                alpha=cfg.alpha,
                generator_loss=cfg.generator_loss,
            )
            selector.observe(action, result.fooling_rate, result.generated_loss, (step + 1) / total_steps)
            selector.update(state, action, result.fooling_rate, selector.state(), generator)
            return torch.stack((result.loss * len(y), result.fooling_rate))

        def validate_epoch(epoch: int, totals: Tensor) -> float:
            loss_sum, reward_sum = totals.tolist()
            self.history.train_loss.append(loss_sum / len(train))
            self.history.val_accuracy.append(classifier_accuracy(self.classifier, val))
            self.epoch_fooling_rate.append(reward_sum / len(batches))
            ctx.log(
                f"pgan-dqn epoch {epoch + 1}: train loss {self.history.train_loss[-1]:.4f}, "
                f"fooling rate {self.epoch_fooling_rate[-1]:.3f}, val accuracy {self.history.val_accuracy[-1]:.4f}"
            )
            return self.history.val_accuracy[-1]

        run = run_epochs(ctx, batches, train_step, validate_epoch, epochs=cfg.epochs, desc="pgan-dqn")
        self.history.best_epoch = run.best_epoch
        self.choice_counts = selector.counts.tolist()
        self.classifier.eval()
        self.generators.eval()
        self.q_network.eval()

    def fit_summary(self) -> dict[str, float]:
        if not self.history.train_loss:
            return {}
        total = max(sum(self.choice_counts), 1)
        return {
            "epochs": float(len(self.history.train_loss)),
            "val_accuracy": self.history.val_accuracy[-1],
            "fooling_rate": self.epoch_fooling_rate[-1],
            **{f"chosen_g{k}": count / total for k, count in enumerate(self.choice_counts)},
        }

    def deployed_model(self) -> nn.Module:
        return self.classifier.eval()

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.classifier, "generators": self.generators, "q_network": self.q_network}
