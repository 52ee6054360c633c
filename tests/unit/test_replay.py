"""Prioritised replay: segment trees, proportional sampling, IS weights, priorities and wrap-around."""

import pytest
import torch

from defenses.replay import (
    MinSegmentTree,
    PrioritizedReplayBuffer,
    SumSegmentTree,
    beta_schedule,
)


def _buffer(capacity: int, losses, **options) -> PrioritizedReplayBuffer:
    """A buffer on 1x2x2 images holding one entry per loss; entry j's image is filled with j."""
    buffer = PrioritizedReplayBuffer(capacity=capacity, image_shape=(1, 2, 2), **options)
    losses = torch.as_tensor(losses, dtype=torch.float32)
    ids = torch.arange(len(losses), dtype=torch.float32)
    buffer.add(ids.view(-1, 1, 1, 1).expand(-1, 1, 2, 2), losses, torch.zeros(len(losses), dtype=torch.long))
    return buffer


def _set_priorities(buffer: PrioritizedReplayBuffer, priorities) -> None:
    """With loss_weight 0 and stored losses 0, an update to loss l sets the priority to l + eps."""
    priorities = torch.as_tensor(priorities, dtype=torch.float32)
    buffer.update(torch.arange(len(priorities)), priorities - buffer.priority_eps)


def test_segment_trees_match_brute_force_after_batched_updates():
    capacity = 13  # not a power of two: padding leaves must stay neutral
    generator = torch.Generator().manual_seed(0)
    sums, mins = SumSegmentTree(capacity), MinSegmentTree(capacity)
    leaves_sum = torch.zeros(capacity, dtype=torch.float64)
    leaves_min = torch.full((capacity,), float("inf"), dtype=torch.float64)
    assert sums.total().item() == 0.0 and mins.min().item() == float("inf")
    for _ in range(20):
        indices = torch.randint(0, capacity, (6,), generator=generator)  # repeats included
        values = torch.rand(6, generator=generator, dtype=torch.float64) * 10
        sums.update(indices, values)
        mins.update(indices, values)
        for i, v in zip(indices.tolist(), values.tolist(), strict=True):  # sequential: the last write wins
            leaves_sum[i] = v
            leaves_min[i] = v
        assert sums.total().item() == pytest.approx(leaves_sum.sum().item(), rel=1e-12)
        assert mins.min().item() == leaves_min.min().item()
        assert torch.equal(sums[torch.arange(capacity)], leaves_sum)
        prefix = torch.rand(50, generator=generator, dtype=torch.float64) * leaves_sum.sum()
        expected = torch.searchsorted(leaves_sum.cumsum(0), prefix, right=True)
        assert torch.equal(sums.find_prefix_sum(prefix), expected)


def test_segment_tree_repeated_index_takes_the_last_value():
    sums = SumSegmentTree(4)
    sums.update(torch.tensor([2, 1, 2]), torch.tensor([1.0, 3.0, 5.0]))
    assert sums[torch.tensor([1, 2])].tolist() == [3.0, 5.0]
    assert sums.total().item() == 8.0


def test_prefix_sum_search_skips_zero_leaves():
    sums = SumSegmentTree(8)
    sums.update(torch.tensor([1, 5]), torch.tensor([2.0, 1.0]))
    found = sums.find_prefix_sum(torch.tensor([0.0, 1.999, 2.0, 2.5]))
    assert found.tolist() == [1, 1, 5, 5]


def test_sampling_frequencies_are_proportional_to_priority_to_the_alpha():
    priorities = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0])
    alpha = 0.6
    buffer = _buffer(5, torch.zeros(5), alpha=alpha, loss_weight=0.0)
    _set_priorities(buffer, priorities)
    generator = torch.Generator().manual_seed(1)
    counts = torch.zeros(5)
    for _ in range(40):
        counts += torch.bincount(buffer.sample(500, beta=0.4, generator=generator).indices, minlength=5)
    expected = priorities**alpha / (priorities**alpha).sum()
    frequencies = counts / counts.sum()
    assert (frequencies / expected - 1).abs().max().item() < 0.03
    assert torch.allclose(buffer.probabilities(torch.arange(5)).float(), expected, rtol=1e-5)


def test_sampled_entries_match_their_indices():
    buffer = _buffer(6, torch.arange(6) * 10.0)
    sample = buffer.sample(64, beta=0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(sample.x[:, 0, 0, 0], sample.indices.float())
    assert torch.equal(sample.loss, sample.indices.float() * 10)
    assert len(sample) == 64 and sample.weights.dtype == torch.float32


def test_importance_weights_are_normalised_by_the_buffer_wide_maximum():
    priorities = torch.tensor([1e-5, 1.0, 3.0, 9.0], dtype=torch.float64)
    alpha, beta = 0.6, 0.5
    buffer = _buffer(4, torch.zeros(4), alpha=alpha, loss_weight=0.0)
    _set_priorities(buffer, priorities)
    sample = buffer.sample(32, beta=beta, generator=torch.Generator().manual_seed(3))
    probabilities = priorities**alpha / (priorities**alpha).sum()
    raw = (4 * probabilities) ** -beta
    expected = raw[sample.indices] / raw.max()  # the max is entry 0's, whether or not it was drawn
    assert torch.allclose(sample.weights.double(), expected, rtol=1e-5)
    assert 0 not in sample.indices.tolist()  # its P is ~1.5e-4: the max must come from the min tree
    assert sample.weights.max().item() < 1.0


def test_priority_update_includes_the_loss_term_and_stores_the_new_loss():
    eps, loss_weight, alpha = 1e-6, 0.5, 0.6
    buffer = _buffer(4, [10.0, 20.0, 30.0, 40.0], priority_eps=eps, loss_weight=loss_weight, alpha=alpha)
    buffer.update(torch.tensor([0, 2]), torch.tensor([12.0, 25.0]))
    p0 = 2.0 + eps + 0.5 * 12.0
    p2 = 5.0 + eps + 0.5 * 25.0
    assert buffer.priorities(torch.tensor([0, 1, 2, 3])).tolist() == pytest.approx([p0, 1.0, p2, 1.0], rel=1e-12)
    assert buffer.max_priority == pytest.approx(p2, rel=1e-12)
    powered = torch.tensor([p0, 1.0, p2, 1.0], dtype=torch.float64) ** alpha
    assert torch.allclose(buffer.probabilities(torch.arange(4)), powered / powered.sum(), rtol=1e-12)
    # 12 is now l_prev for entry 0: an unchanged loss leaves only eps + w_l * l
    buffer.update(torch.tensor([0]), torch.tensor([12.0]))
    assert buffer.priorities(torch.tensor([0])).item() == pytest.approx(eps + 6.0, rel=1e-12)


def test_repeated_index_in_update_uses_the_last_loss():
    buffer = _buffer(3, [10.0, 10.0, 10.0], loss_weight=0.0)
    buffer.update(torch.tensor([1, 1]), torch.tensor([30.0, 14.0]))
    assert buffer.priorities(torch.tensor([1])).item() == pytest.approx(4.0 + 1e-6)
    buffer.update(torch.tensor([1]), torch.tensor([14.0]))
    assert buffer.priorities(torch.tensor([1])).item() == pytest.approx(1e-6)


def test_new_entries_get_the_running_max_priority():
    buffer = _buffer(8, [0.0, 0.0], loss_weight=0.0)
    assert buffer.priorities(torch.tensor([0, 1])).tolist() == [1.0, 1.0]
    buffer.update(torch.tensor([0]), torch.tensor([9.0]))
    buffer.update(torch.tensor([1]), torch.tensor([2.0]))  # a lower priority keeps the running max
    assert buffer.max_priority == pytest.approx(9.0 + 1e-6)
    indices = buffer.add(torch.zeros(2, 1, 2, 2), torch.zeros(2), torch.zeros(2, dtype=torch.long))
    assert indices.tolist() == [2, 3]
    assert buffer.priorities(indices).tolist() == pytest.approx([9.0 + 1e-6] * 2)


def test_capacity_wrap_around_overwrites_the_oldest_entries():
    buffer = PrioritizedReplayBuffer(capacity=5, image_shape=(1, 2, 2))

    def add(ids):
        ids = torch.tensor(ids, dtype=torch.float32)
        types = ids.long() % 3
        return buffer.add(ids.view(-1, 1, 1, 1).expand(-1, 1, 2, 2), ids * 10, types)

    assert add([0, 1, 2]).tolist() == [0, 1, 2] and len(buffer) == 3
    assert add([3, 4, 5, 6]).tolist() == [3, 4, 0, 1] and len(buffer) == 5
    sample = buffer.sample(200, beta=0.4, generator=torch.Generator().manual_seed(4))
    stored = dict(zip(sample.indices.tolist(), sample.x[:, 0, 0, 0].tolist(), strict=True))
    assert stored == {0: 5.0, 1: 6.0, 2: 2.0, 3: 3.0, 4: 4.0}
    assert torch.equal(sample.loss, sample.x[:, 0, 0, 0] * 10)
    assert torch.equal(sample.attack_type, sample.x[:, 0, 0, 0].long() % 3)
    # a batch larger than the capacity keeps its last entries, in order, continuing after slot 1
    assert add(list(range(10, 17))).tolist() == [4, 0, 1, 2, 3] and len(buffer) == 5
    sample = buffer.sample(200, beta=0.4, generator=torch.Generator().manual_seed(5))
    stored = dict(zip(sample.indices.tolist(), sample.x[:, 0, 0, 0].tolist(), strict=True))
    assert stored == {4: 12.0, 0: 13.0, 1: 14.0, 2: 15.0, 3: 16.0}
    assert add([20]).tolist() == [4]


def test_sample_only_draws_filled_entries():
    buffer = _buffer(64, [1.0, 2.0, 3.0])
    sample = buffer.sample(300, beta=1.0, generator=torch.Generator().manual_seed(6))
    assert set(sample.indices.tolist()) == {0, 1, 2}
    assert torch.allclose(sample.weights, torch.ones(300))  # equal priorities: uniform, weights 1


def test_invalid_inputs_are_rejected():
    buffer = PrioritizedReplayBuffer(capacity=4, image_shape=(1, 2, 2))
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(2, beta=0.4)
    with pytest.raises(ValueError, match="shape"):
        buffer.add(torch.zeros(2, 1, 3, 3), torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        buffer.add(torch.zeros(2, 1, 2, 2), torch.zeros(3), torch.zeros(2, dtype=torch.long))
    buffer.add(torch.zeros(2, 1, 2, 2), torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(IndexError):
        buffer.update(torch.tensor([2]), torch.tensor([1.0]))  # slot 2 is not filled yet


def test_beta_schedule_anneals_linearly_and_holds_the_end():
    assert beta_schedule(0, 100) == pytest.approx(0.4)
    assert beta_schedule(50, 100) == pytest.approx(0.5)
    assert beta_schedule(100, 100) == pytest.approx(0.6)
    assert beta_schedule(250, 100) == pytest.approx(0.6)
    assert beta_schedule(25, 100, start=0.4, end=1.0) == pytest.approx(0.55)
