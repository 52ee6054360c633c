"""The norm-ball threat models an evaluation runs in (``--norm``) and their budgets, importable without torch.

The one home of the norm's and ε's checks: the CLI, the API, the run configuration and the attacks all
call ``check_norm`` and ``validate_epsilon``.
"""

from __future__ import annotations

import math

from foundation.errors import BenchError, did_you_mean

#: The norm balls, in the order tables show them; "semantic" attacks are bounded by parameter ranges instead.
NORMS: tuple[str, ...] = ("linf", "l2")
DEFAULT_NORM = "linf"
#: How tables and messages write a threat model.
NORM_SYMBOLS = {"linf": "L∞", "l2": "L2"}


def check_norm(norm: object, what: str = "--norm") -> str:
    """``norm`` if it is a threat model (``linf``, ``l2``), else a ``BenchError`` naming the valid ones."""
    if norm not in NORMS:
        raise BenchError(f"unknown {what} {norm!r}; {did_you_mean(str(norm), NORMS)}valid: {', '.join(NORMS)}")
    return str(norm)


def validate_epsilon(eps: float, threat_model: str = DEFAULT_NORM, dimension: int | None = None) -> float:
    """An attack budget: a finite number in [0, 1] for L∞ (inputs live in [0, 1]); for L2 in [0, √d],
    the diameter of the d-pixel box (``dimension`` unknown: any finite non-negative number)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps):
        raise BenchError(f"epsilon must be a finite non-negative number; got {eps!r}")
    if threat_model == "l2":
        largest = math.sqrt(dimension) if dimension else math.inf
        if not 0.0 <= eps <= largest:
            raise BenchError(
                f"an L2 epsilon must lie in [0, {largest:g}] (the diameter of the [0, 1] box); got {eps:g}"
            )
    elif not 0.0 <= eps <= 1.0:
        raise BenchError(f"epsilon must lie in [0, 1] (inputs are in [0, 1]); got {eps:g}")
    return float(eps)
