"""Prioritised experience replay (Schaul et al., PER) for adversarial training of a VAE (paper 000).

Each entry holds a clean image ``x``, the loss ``l_prev`` its attack last reached, and the attack
type (an index into the trainer's list of attacks). Entries are drawn with probability
``P(i) = p_i^alpha / sum_k p_k^alpha`` and carry importance-sampling weights
``w_i = (N * P(i))^-beta / max_j w_j``. After a replay step the trainer regenerates the attacks,
computes the new losses and calls ``update``, which sets the paper's priority

    p_i = |l_new - l_prev| + priority_eps + loss_weight * l_new

and stores ``l_new`` as the entry's ``l_prev``.

``loss_weight`` (the paper's ``w_l``) is a hyperparameter that the paper leaves open and that its
reference code never implemented. Our default is ``DEFAULT_LOSS_WEIGHT = 0.01``. The losses are
per-image BCE sums, about 70 to 140 per image on MNIST, so ``0.01 * l_new`` is about 1: the same
order as a typical change in an image's loss between two visits. Neither term swamps the other.
A nonzero ``w_l`` also fixes a PER quirk on this task. With ``w_l = 0`` a revisited image whose
loss has settled falls to priority ``priority_eps`` (1e-6), while entries that were never
revisited keep the running maximum, so in practice a settled image is never drawn again. With
``w_l = 0.01`` its priority stays close to ``0.01 * l``, so harder images (e.g. GTA, ~140) are
still replayed about twice as often as easy ones (~70). That is the paper's reason for adding the
term. Pass ``loss_weight=0.0`` to get plain PER.

The trees and storage are torch tensors on the buffer's device. Every operation is vectorised
over the batch; only the segment trees loop, and they loop over tree levels (log2 of the capacity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

#: The paper's ``w_l`` default: 0.01 puts ``w_l * l`` near 1 on the BCE-sum scale (see the module docstring).
DEFAULT_LOSS_WEIGHT = 0.01
#: Importance-sampling exponent schedule: the paper anneals beta from 0.4 to 0.6 (Schaul et al. go to 1.0).
BETA_START = 0.4
BETA_END = 0.6


def last_occurrence(indices: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct values of ``indices`` and, for each one, the position of its last occurrence.

    Batched writes with repeated indices then behave like a sequential loop (the last write wins),
    which plain ``tensor[indices] = values`` does not guarantee on every device.
    """
    unique, inverse = torch.unique(indices, return_inverse=True)
    positions = torch.arange(len(indices), device=indices.device)
    last = torch.full((len(unique),), -1, dtype=torch.long, device=indices.device)
    return unique, last.scatter_reduce_(0, inverse, positions, reduce="amax")


class _SegmentTree:
    """A binary tree over ``capacity`` leaves where each node holds ``op`` of its two children.

    The tree is stored as an array: node 1 is the root, node ``n`` has children ``2n`` and ``2n + 1``,
    and the leaves sit at ``size .. 2 * size - 1``, where ``size`` is the capacity rounded up to a
    power of two. Unused leaves hold ``neutral``.
    """

    def __init__(
        self,
        capacity: int,
        op: Callable[[Tensor, Tensor], Tensor],
        neutral: float,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.size = 1 << (capacity - 1).bit_length()
        self.depth = self.size.bit_length() - 1
        self._op = op
        self.tree = torch.full((2 * self.size,), neutral, dtype=dtype, device=device)

    def update(self, indices: Tensor, values: Tensor) -> None:
        """Set the leaves ``indices`` to ``values`` (the last value wins for repeated indices)."""
        indices = indices.to(device=self.tree.device, dtype=torch.long).reshape(-1)
        values = values.to(device=self.tree.device, dtype=self.tree.dtype).reshape(-1)
        if len(indices) != len(values):
            raise ValueError(f"got {len(indices)} indices but {len(values)} values")
        if len(indices) == 0:
            return
        if int(indices.min()) < 0 or int(indices.max()) >= self.capacity:
            raise IndexError(f"leaf index out of range [0, {self.capacity})")
        unique, last = last_occurrence(indices)
        nodes = unique + self.size
        self.tree[nodes] = values[last]
        for _ in range(self.depth):
            nodes = torch.unique(nodes // 2)
            self.tree[nodes] = self._op(self.tree[2 * nodes], self.tree[2 * nodes + 1])

    def __getitem__(self, indices: Tensor) -> Tensor:
        """The leaf values at ``indices``."""
        return self.tree[indices.to(self.tree.device, torch.long) + self.size]

    @property
    def root(self) -> Tensor:
        """``op`` over all leaves, a 0-d tensor (stays on the device: no host synchronisation)."""
        return self.tree[1]


class SumSegmentTree(_SegmentTree):
    """Sums over the leaves, with a batched prefix-sum search (proportional sampling)."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        super().__init__(capacity, torch.add, 0.0, device, dtype)

    def total(self) -> Tensor:
        """The sum of all leaves (a 0-d tensor)."""
        return self.root

    def find_prefix_sum(self, prefix: Tensor) -> Tensor:
        """For each query s, the smallest leaf index i with ``sum(leaves[: i + 1]) > s``.

        Descends from the root one level at a time for all queries at once: go left when the
        left child's sum exceeds the remaining prefix, otherwise subtract it and go right. Queries
        should lie in ``[0, total())``; one at or above the total ends at the last leaf.
        """
        remaining = prefix.to(device=self.tree.device, dtype=self.tree.dtype).reshape(-1).clone()
        nodes = torch.ones(len(remaining), dtype=torch.long, device=self.tree.device)
        for _ in range(self.depth):
            left = 2 * nodes
            left_sum = self.tree[left]
            go_right = remaining >= left_sum
            remaining = torch.where(go_right, remaining - left_sum, remaining)
            nodes = left + go_right.long()
        return nodes - self.size


class MinSegmentTree(_SegmentTree):
    """Minima over the leaves; unused leaves are +inf."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        super().__init__(capacity, torch.minimum, float("inf"), device, dtype)

    def min(self) -> Tensor:
        """The minimum over all leaves (a 0-d tensor; +inf while the tree is empty)."""
        return self.root


@dataclass(frozen=True)
class ReplaySample:
    """A batch drawn from the buffer: buffer indices, entries and importance-sampling weights."""

    indices: Tensor
    x: Tensor
    loss: Tensor
    attack_type: Tensor
    weights: Tensor

    def __len__(self) -> int:
        return len(self.indices)


class PrioritizedReplayBuffer:
    """A circular buffer of (clean image, previous loss, attack type) with proportional prioritisation.

    Defaults follow paper 000: capacity 6,400, alpha 0.6, priority_eps 1e-6. The sum tree and the
    min tree hold ``p_i^alpha``; the raw priorities are kept alongside for inspection.
    """

    def __init__(
        self,
        capacity: int = 6400,
        alpha: float = 0.6,
        priority_eps: float = 1e-6,
        loss_weight: float = DEFAULT_LOSS_WEIGHT,
        image_shape: Sequence[int] = (1, 28, 28),
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        if priority_eps <= 0:
            raise ValueError(f"priority_eps must be positive, got {priority_eps}")
        if loss_weight < 0:
            raise ValueError(f"loss_weight must be non-negative, got {loss_weight}")
        self.capacity = capacity
        self.alpha = alpha
        self.priority_eps = priority_eps
        self.loss_weight = loss_weight
        self.image_shape = tuple(image_shape)
        self.device = torch.device(device)
        self._x = torch.zeros((capacity, *self.image_shape), device=self.device)
        self._loss = torch.zeros(capacity, device=self.device)
        self._attack_type = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self._priority = torch.zeros(capacity, dtype=torch.float64, device=self.device)
        self._sum_tree = SumSegmentTree(capacity, self.device)
        self._min_tree = MinSegmentTree(capacity, self.device)
        self._max_priority = torch.tensor(1.0, dtype=torch.float64, device=self.device)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def max_priority(self) -> float:
        """The running maximum priority (1.0 until an update exceeds it); new entries get it."""
        return float(self._max_priority)

    def add(self, x: Tensor, loss: Tensor, attack_type: Tensor) -> Tensor:
        """Append a batch, overwriting the oldest entries when full; returns the buffer indices written.

        New entries get the running maximum priority, so each is likely to be replayed at least once.
        """
        batch = len(x)
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"images must have shape (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}"
            )
        if loss.shape != (batch,) or attack_type.shape != (batch,):
            raise ValueError(
                f"loss and attack_type must have shape ({batch},), "
                f"got {tuple(loss.shape)} and {tuple(attack_type.shape)}"
            )
        if batch > self.capacity:  # the earlier ones would be overwritten within this call anyway
            x, loss, attack_type = x[-self.capacity :], loss[-self.capacity :], attack_type[-self.capacity :]
            self._next = (self._next + batch - self.capacity) % self.capacity
            batch = self.capacity
        indices = (self._next + torch.arange(batch, device=self.device)) % self.capacity
        self._x[indices] = x.detach().to(self.device, self._x.dtype)
        self._loss[indices] = loss.detach().to(self.device, self._loss.dtype)
        self._attack_type[indices] = attack_type.detach().to(self.device, torch.long)
        self._set_priorities(indices, self._max_priority.expand(batch))
        self._next = (self._next + batch) % self.capacity
        self._size = min(self._size + batch, self.capacity)
        return indices

    def sample(self, batch_size: int, beta: float, generator: torch.Generator | None = None) -> ReplaySample:
        """Draw ``batch_size`` entries (with replacement) with probability ``p_i^alpha / sum_k p_k^alpha``.

        Stratified as in Schaul et al.: the total mass is cut into ``batch_size`` equal ranges and one
        prefix sum is drawn uniformly in each. Weights are ``(N * P(i))^-beta`` divided by the largest
        weight in the whole buffer, which belongs to the minimum priority (read off the min tree).
        """
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        total = self._sum_tree.total()
        uniform = torch.rand(
            batch_size,
            generator=generator,
            dtype=torch.float64,
            device=generator.device if generator is not None else self.device,
        ).to(self.device)
        strata = torch.arange(batch_size, dtype=torch.float64, device=self.device)
        prefix = (strata + uniform) / batch_size * total
        indices = self._sum_tree.find_prefix_sum(prefix).clamp_(max=self._size - 1)
        probabilities = self._sum_tree[indices] / total
        min_probability = self._min_tree.min() / total
        weights = (probabilities / min_probability).pow(-beta)
        return ReplaySample(
            indices=indices,
            x=self._x[indices],
            loss=self._loss[indices],
            attack_type=self._attack_type[indices],
            weights=weights.to(torch.float32),
        )

    def update(self, indices: Tensor, new_losses: Tensor) -> Tensor:
        """Reprioritise entries after their attacks were regenerated; returns the new priorities.

        ``p_i = |l_new - l_prev| + priority_eps + loss_weight * l_new``, then ``l_new`` becomes the
        stored ``l_prev``. For an index repeated in the batch the last loss wins, in both places.
        """
        indices = indices.to(self.device, torch.long).reshape(-1)
        new_losses = new_losses.detach().to(self.device, self._loss.dtype).reshape(-1)
        if len(indices) != len(new_losses):
            raise ValueError(f"got {len(indices)} indices but {len(new_losses)} losses")
        if len(indices) == 0:
            return new_losses.new_zeros(0, dtype=torch.float64)
        if int(indices.min()) < 0 or int(indices.max()) >= self._size:
            raise IndexError(f"replay index out of range [0, {self._size})")
        unique, last = last_occurrence(indices)
        indices, new_losses = unique, new_losses[last]
        new = new_losses.double()
        priorities = (new - self._loss[indices].double()).abs() + self.priority_eps + self.loss_weight * new
        self._loss[indices] = new_losses
        self._set_priorities(indices, priorities)
        self._max_priority = torch.maximum(self._max_priority, priorities.max())
        return priorities

    def priorities(self, indices: Tensor) -> Tensor:
        """The raw priorities ``p_i`` (float64) of the given entries."""
        return self._priority[indices.to(self.device, torch.long)]

    def probabilities(self, indices: Tensor) -> Tensor:
        """The sampling probabilities ``P(i) = p_i^alpha / sum_k p_k^alpha`` of the given entries."""
        return self._sum_tree[indices] / self._sum_tree.total()

    def _set_priorities(self, indices: Tensor, priorities: Tensor) -> None:
        self._priority[indices] = priorities
        scaled = priorities.pow(self.alpha)
        self._sum_tree.update(indices, scaled)
        self._min_tree.update(indices, scaled)


def beta_schedule(step: int, total_steps: int, start: float = BETA_START, end: float = BETA_END) -> float:
    """Linear annealing of the importance-sampling exponent from ``start`` (step 0) to ``end`` (``total_steps``).

    Held at ``end`` afterwards. The paper anneals 0.4 to 0.6; pass ``end=1.0`` for Schaul et al.'s
    fully corrected updates at the end of training.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    fraction = min(max(step, 0), total_steps) / total_steps
    return start + fraction * (end - start)
