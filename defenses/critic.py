"""The loss critic of paper 000 (RB Multi Critic): it predicts the loss an attack will reach on a clean image.

During a replay step the trainer draws ``CRITIC_POOL_SIZE`` (640) entries from the replay buffer,
scores them with the critic, trains the VAE on the ``CRITIC_TOP_FRACTION`` (10 %) with the
highest predicted loss, and then fits the critic with MSE to the losses those attacks actually
reached. The paper's reference top-k ran ``argsort`` on an (N, 1) tensor, so it picked the same
sample every time. ``select_top_fraction`` uses ``torch.topk`` on a 1-D score vector instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: How many replay entries the critic scores per replay step (paper 000).
CRITIC_POOL_SIZE = 640
#: The fraction of the scored entries trained on (paper 000).
CRITIC_TOP_FRACTION = 0.1


class LossCritic(nn.Module):
    """MLP 784 -> 400 -> 20 -> 1 with LeakyReLU(0.2); optionally conditioned on the attack type.

    With ``num_attack_types > 0`` a one-hot of the attack type is concatenated to the flattened
    image, so the first layer takes ``input_size + num_attack_types`` inputs. An unconditioned
    critic (the paper's) ignores ``attack_type``, so callers may always pass it.
    """

    def __init__(
        self, num_attack_types: int = 0, input_size: int = 28 * 28, hidden: tuple[int, int] = (400, 20)
    ) -> None:
        super().__init__()
        if num_attack_types < 0:
            raise ValueError(f"num_attack_types must be non-negative, got {num_attack_types}")
        self.num_attack_types = num_attack_types
        self.input_size = input_size
        self.net = nn.Sequential(
            nn.Linear(input_size + num_attack_types, hidden[0]),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden[0], hidden[1]),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, x: Tensor, attack_type: Tensor | None = None) -> Tensor:
        """Predicted loss per image, shape (N,)."""
        features = x.flatten(1)
        if features.shape[1] != self.input_size:
            raise ValueError(f"expected {self.input_size} values per image, got {features.shape[1]}")
        if self.num_attack_types > 0:
            if attack_type is None:
                raise ValueError("this critic is conditioned on the attack type: pass attack_type")
            one_hot = F.one_hot(attack_type.long(), self.num_attack_types).to(features.dtype)
            features = torch.cat([features, one_hot], dim=1)
        return self.net(features).squeeze(1)


def critic_training_step(
    critic: LossCritic,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    attack_type: Tensor | None,
    target_losses: Tensor,
) -> float:
    """One optimiser step on the MSE between predicted and the *new* (just measured) losses; returns the MSE."""
    critic.train()
    prediction = critic(x, attack_type)
    loss = F.mse_loss(prediction, target_losses.detach().to(prediction.dtype).reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def top_count(n: int, fraction: float) -> int:
    """``ceil(fraction * n)``, robust to float error (0.07 * 100 gives 7, not 8), and at least 1 when n > 0."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if n <= 0:
        return 0
    return min(n, max(1, math.ceil(fraction * n - 1e-9)))


@torch.no_grad()
def select_top_fraction(
    critic: LossCritic, x: Tensor, attack_type: Tensor | None, fraction: float = CRITIC_TOP_FRACTION
) -> Tensor:
    """Indices of the ``ceil(fraction * N)`` entries with the highest predicted loss, highest first (distinct)."""
    k = top_count(len(x), fraction)
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    scores = critic(x, attack_type).reshape(-1)
    return torch.topk(scores, k, sorted=True).indices
