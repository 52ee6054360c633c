"""``rb``, ``rb-multi`` and ``rb-multi-critic``: paper 000's VAE adversarial training with prioritised replay.

Every batch is attacked and trained on as in ``adv-vae`` (``rb``: one adversary, PGD by
default; ``rb-multi``: the batch's attack drawn among FGSM, PGD, GNA, GTA) and its clean images
enter a prioritised replay buffer with their loss and attack type.  Every ``train_freq`` steps
after ``learning_starts``, a replay step draws entries by priority, *regenerates* their attacks
against the current VAE with the stored attack type, takes an extra optimiser step weighted by
the importance-sampling weights, and updates the priorities
p = |l_new − l_prev| + ε + w_l·l_new (see ``defenses.replay`` for the choice of w_l).

``rb-multi-critic`` scores ``critic_pool`` (640) drawn entries with a loss critic (an MLP that
predicts the loss an attack will reach, conditioned on the attack type) and replays the top
10 %; the critic is fit with MSE to the new losses of every batch and replay step.  The critic is
a training aid only: it is not part of the deployed model or its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attacks.random_mix import ATTACK_TYPES
from defenses.adversarial_vae import AdversarialVAE, AdversarialVAEConfig, TrainingAttackName, TrainingAttacks
from defenses.base import FitContext, register_defense
from defenses.critic import CRITIC_POOL_SIZE, CRITIC_TOP_FRACTION, LossCritic, critic_training_step, select_top_fraction
from defenses.networks import vae_loss_per_image
from defenses.replay import DEFAULT_LOSS_WEIGHT, PrioritizedReplayBuffer, beta_schedule
from defenses.training_loops import History
from foundation.splits import Split


@dataclass(frozen=True)
class ReplayVAEConfig(AdversarialVAEConfig):
    train_attack: TrainingAttackName = "pgd"
    buffer_capacity: int = 6400
    alpha: float = 0.6
    beta_start: float = 0.4
    beta_end: float = 0.6
    loss_weight: float = DEFAULT_LOSS_WEIGHT  # the paper's w_l
    replay_batch: int = 128
    train_freq: int = 10
    learning_starts: int = 5
    use_critic: bool = False
    critic_pool: int = CRITIC_POOL_SIZE
    critic_top_fraction: float = CRITIC_TOP_FRACTION
    critic_lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.buffer_capacity < 1 or self.replay_batch < 1 or self.train_freq < 1 or self.critic_pool < 1:
            raise ValueError("buffer_capacity, replay_batch, train_freq and critic_pool must be positive")
        if not 0 < self.critic_top_fraction <= 1 or self.loss_weight < 0:
            raise ValueError("critic_top_fraction must lie in (0, 1] and loss_weight must be non-negative")


@dataclass(frozen=True)
class ReplayMultiConfig(ReplayVAEConfig):
    train_attack: TrainingAttackName = "random"


@dataclass(frozen=True)
class ReplayCriticConfig(ReplayMultiConfig):
    use_critic: bool = True


class ReplayStep:
    """The ``after_step`` hook of ``train_vae`` that fills the buffer and takes the replay steps."""

    def __init__(self, purifier: ReplayVAE, ctx: FitContext, attacks: TrainingAttacks, total_steps: int) -> None:
        cfg: ReplayVAEConfig = purifier.config
        self.vae, self.config, self.attacks, self.total_steps = purifier.vae, cfg, attacks, total_steps
        self.generator = ctx.generator()
        self.buffer = PrioritizedReplayBuffer(
            cfg.buffer_capacity, cfg.alpha, loss_weight=cfg.loss_weight, device=ctx.device
        )
        self.batch_attack = 0
        self.replay_steps = 0
        self.critic = LossCritic(num_attack_types=len(ATTACK_TYPES)).to(ctx.device) if cfg.use_critic else None
        self.critic_optimizer = (
            torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr) if self.critic is not None else None
        )
        self.critic_losses: list[float] = []

    def training_inputs(self, x: Tensor, y: Tensor) -> Tensor:
        self.batch_attack = self.attacks.draw_type(self.config.train_attack)
        return self.attacks.run(self.batch_attack, x)

    def __call__(self, step: int, x: Tensor, losses: Tensor, optimizer: torch.optim.Optimizer) -> None:
        attack_types = torch.full((len(x),), self.batch_attack, device=x.device)
        self.buffer.add(x, losses, attack_types)
        self._fit_critic(x, attack_types, losses)
        cfg = self.config
        if step >= cfg.learning_starts and step % cfg.train_freq == 0:
            self._replay(step, optimizer)

    def _fit_critic(self, x: Tensor, attack_types: Tensor, losses: Tensor) -> None:
        if self.critic is not None:
            self.critic_losses.append(critic_training_step(self.critic, self.critic_optimizer, x, attack_types, losses))

    def _replay(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        cfg = self.config
        beta = beta_schedule(step, self.total_steps, cfg.beta_start, cfg.beta_end)
        if self.critic is None:
            sample = self.buffer.sample(cfg.replay_batch, beta, self.generator)
            indices, x, attack_types, weights = sample.indices, sample.x, sample.attack_type, sample.weights
        else:
            pool = self.buffer.sample(cfg.critic_pool, beta, self.generator)
            top = select_top_fraction(self.critic, pool.x, pool.attack_type, cfg.critic_top_fraction)
            indices, x, attack_types, weights = pool.indices[top], pool.x[top], pool.attack_type[top], pool.weights[top]
        x_adv = self.attacks.run_mixed(attack_types, x)
        self.vae.train()
        recon, mu, logvar = self.vae.reconstruct(x_adv)
        new_losses = vae_loss_per_image(recon, x, mu, logvar, cfg.kl_weight)
        optimizer.zero_grad(set_to_none=True)
        (weights.to(new_losses.dtype) * new_losses).mean().backward()
        optimizer.step()
        self.buffer.update(indices, new_losses.detach())
        self._fit_critic(x, attack_types, new_losses.detach())
        self.replay_steps += 1


class ReplayVAE(AdversarialVAE):
    """Shared by the three replay defenses; the registered subclasses differ only in their Config."""

    def train_purifier(self, train: Split, val: Split, ctx: FitContext) -> History:
        cfg: ReplayVAEConfig = self.config
        total_steps = cfg.epochs * -(-len(train) // cfg.batch_size)
        replay = ReplayStep(self, ctx, TrainingAttacks(self.vae, cfg, ctx.generator()), total_steps)
        history = self._train_vae(train, val, ctx, replay.training_inputs, replay)
        ctx.log(f"{self.name}: {replay.replay_steps} replay steps, buffer {len(replay.buffer)} entries")
        self.replay_steps = replay.replay_steps
        self.critic_losses = replay.critic_losses
        return history


@register_defense("rb")
class ReplayBuffer(ReplayVAE):
    description = "Paper-000 VAE, adversarial training with prioritised replay of one adversary (PGD)"
    Config = ReplayVAEConfig


@register_defense("rb-multi")
class ReplayBufferMulti(ReplayVAE):
    description = "Paper-000 VAE, prioritised replay over FGSM/PGD/GNA/GTA adversaries"
    Config = ReplayMultiConfig


@register_defense("rb-multi-critic")
class ReplayBufferMultiCritic(ReplayVAE):
    description = "Paper-000 VAE, prioritised replay with a loss critic choosing the top 10 % to replay"
    Config = ReplayCriticConfig
