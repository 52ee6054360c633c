"""Draws inside ``seeded`` depend on the seed alone, and the global generators are restored after it."""

import random

import numpy as np
import torch

from foundation.seeding import seed_from_key, seeded

CPU = torch.device("cpu")


def draws() -> tuple[float, float, float]:
    return float(torch.randn(())), float(np.random.rand()), random.random()


def test_the_same_seed_gives_the_same_draws_whatever_ran_before():
    with seeded(7, CPU):
        first = draws()
    draws()  # the global generators move on outside
    with seeded(7, CPU):
        assert draws() == first
    with seeded(8, CPU):
        assert draws() != first


def test_the_global_generators_continue_as_if_nothing_ran():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    expected = draws()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    with seeded(7, CPU):
        draws()
    assert draws() == expected


def test_seeds_come_from_a_key():
    assert seed_from_key("ffffffff00000000") == 2**32 - 1 and seed_from_key("0000000a12345678") == 10
