"""The statistics tables read, without torch: Wilson intervals and the per-point codecs of a record
(the robust-points mask and the minimal perturbation sizes, as compact hex)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

#: The two-sided 95 % normal quantile exactly as SciPy's ``ndtri(0.975)`` gives it (the stdlib's differs in the
#: last bit), so the intervals are the ones ``scipy.stats.binomtest(...).proportion_ci(method="wilson")`` gives.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (nan, nan for n = 0), without continuity correction:
    SciPy's formula (Newcombe 1998) written out, so that reading a table needs no ``scipy.stats`` (half a second
    of imports)."""
    if n == 0:
        return math.nan, math.nan
    k, n = int(successes), int(n)
    z = Z_95 if confidence == 0.95 else NormalDist().inv_cdf(0.5 + 0.5 * confidence)
    p = k / n
    denom = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z**2)
    return (0.0 if k == 0 else center - delta), (1.0 if k == n else center + delta)


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
