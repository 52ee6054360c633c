"""The norm-ball threat models an evaluation runs in (``--norm``) and their budgets, importable without torch.

The one home of the norm's and ε's checks: the CLI, the API, the run configuration and the attacks all
call ``check_norm`` and ``validate_epsilon``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from foundation.errors import BenchError, did_you_mean

#: The norm balls, in the order tables show them; "semantic" attacks are bounded by parameter ranges instead.
#: L0 counts changed pixel positions (all channels of a pixel together, as Schott et al. and Croce & Hein count
#: them); L1 sums the absolute changes of every value.
NORMS: tuple[str, ...] = ("linf", "l2", "l1", "l0")
DEFAULT_NORM = "linf"
#: How tables and messages write a threat model.
NORM_SYMBOLS = {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0"}
#: The sparse threat models, whose budgets are counts or sums over pixels rather than a per-pixel bound.
SPARSE_NORMS = frozenset({"l1", "l0"})


def check_norm(norm: object, what: str = "--norm") -> str:
    """``norm`` if it is a threat model (``linf``, ``l2``, ``l1``, ``l0``), else a ``BenchError`` naming the valid
    ones."""
    if norm not in NORMS:
        raise BenchError(f"unknown {what} {norm!r}; {did_you_mean(str(norm), NORMS)}valid: {', '.join(NORMS)}")
    return str(norm)


def ball_dimension(input_shape: Sequence[int], threat_model: str) -> int:
    """How many coordinates the ``threat_model`` norm counts on one input of ``input_shape``: pixel positions for
    L0 (height × width of a (channels, height, width) image; every value of any other shape), values otherwise."""
    values = math.prod(input_shape)
    if threat_model == "l0" and len(input_shape) == 3:
        return values // input_shape[0]
    return values


def validate_epsilon(eps: float, threat_model: str = DEFAULT_NORM, dimension: int | None = None) -> float:
    """An attack budget: a finite number in [0, 1] for L∞ (inputs live in [0, 1]); for L2 in [0, √d], the diameter
    of the d-value box; for L1 in [0, d]; for L0 a whole number of pixels in [0, d] (``dimension`` as
    ``ball_dimension`` counts it; unknown: any finite non-negative number)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise BenchError(f"epsilon must be a finite non-negative number; got {eps!r}")
    if threat_model in SPARSE_NORMS:
        largest = dimension if dimension else math.inf
        unit = "changed pixels" if threat_model == "l0" else "the sum of absolute changes"
        if not 0.0 <= eps <= largest:
            symbol = NORM_SYMBOLS[threat_model]
            raise BenchError(f"an {symbol} epsilon ({unit}) must lie in [0, {largest:g}]; got {eps:g}")
        if threat_model == "l0" and eps != math.floor(eps):
            raise BenchError(f"an L0 epsilon counts changed pixels: a whole number; got {eps:g}")
    elif threat_model == "l2":
        largest = math.sqrt(dimension) if dimension else math.inf
        if not 0.0 <= eps <= largest:
            raise BenchError(
                f"an L2 epsilon must lie in [0, {largest:g}] (the diameter of the [0, 1] box); got {eps:g}"
            )
    elif not 0.0 <= eps <= 1.0:
        raise BenchError(f"epsilon must lie in [0, 1] (inputs are in [0, 1]); got {eps:g}")
    return float(eps)
