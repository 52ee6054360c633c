"""The statistics tables read, without torch: Wilson intervals and the per-point codecs of a record
(the robust-points mask and the minimal perturbation sizes, as compact hex)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (nan, nan for n = 0)."""
    if n == 0:
        return math.nan, math.nan
    interval = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def pack_mask(mask: ArrayLike) -> str:
    """A boolean per-point mask (an array, or a CPU tensor) as compact hex (stored with a cell for per-point
    worst cases)."""
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def unpack_mask(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)


def pack_norms(norms: ArrayLike) -> str:
    """Per-point perturbation sizes (an array, or a CPU tensor) as compact hex: float16, rounded up (never below
    the size found), so a stored ε* never claims a smaller perturbation than the attack's; infinity marks points
    not broken."""
    values = np.asarray(norms, dtype=np.float32)
    half = values.astype(np.float16)
    below = half.astype(np.float32) < values
    half[below] = np.nextafter(half[below], np.float16(np.inf))
    return half.astype(">f2").tobytes().hex()


def unpack_norms(text: str, n: int) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(text), dtype=">f2")[:n].astype(np.float64)
