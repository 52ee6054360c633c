"""Helpers shared by the adapters over third-party attack libraries (ART, Foolbox)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn


def derived_seed(generator: torch.Generator) -> int:
    """A seed drawn from the cell's generator, for libraries that use global RNGs."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())


@contextlib.contextmanager
def seeded_global_rngs(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global RNGs for the duration, then restore them."""
    devices = [device] if device.type == "cuda" else []
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def number_of_classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1]).shape[-1])
