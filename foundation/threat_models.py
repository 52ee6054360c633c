"""The norm-ball threat models an evaluation runs in (``--norm``), importable without torch."""

from __future__ import annotations

#: The norm balls, in the order tables show them; "semantic" attacks are bounded by parameter ranges instead.
NORMS: tuple[str, ...] = ("linf", "l2")
DEFAULT_NORM = "linf"
#: How tables and messages write a threat model.
NORM_SYMBOLS = {"linf": "L∞", "l2": "L2"}
