"""Same seed, same numbers: every random draw of an evaluation comes from a seed derived from its key.

Randomized defenses draw from torch's global generator (``torch.randn_like`` in a VAE's sampling),
and library attacks draw from torch's, NumPy's or Python's global generators.  ``seeded`` runs a
block with all of them seeded from one number and restores them afterwards, so what a cell
computes depends on its key alone: not on what ran before it, in which process, or in which order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

#: Seeds are unsigned 32-bit numbers (NumPy's global generator takes no more).
MAX_SEED = 2**32 - 1


def seed_from_key(key: str) -> int:
    """A 32-bit seed from a hex config hash (a cell's or a clean evaluation's key)."""
    return int(key[:8], 16)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's (CPU and ``device``), NumPy's and Python's global generators; restore them on exit."""
    devices = [device] if device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
