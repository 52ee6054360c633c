"""Paired comparison of two defenses attacked on the same test points: an exact McNemar test.

Both rows of a comparison store which points survived (``robust_points``), so the question "does A
survive more than B beyond chance?" is answered by the points only one of them survives: under the
null hypothesis each such point is equally likely to favour either, and the exact two-sided McNemar
p-value is the binomial test of the split.  Defenses with costly inference (ABS) evaluate the first
points of the same seeded test slice, so two rows share their first ``min(n)`` points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from benchmark.results.columns import SAME_POINTS
from benchmark.results.statistics import unpack_mask
from foundation.errors import BenchError, did_you_mean

#: What two rows must share to have been evaluated on the same points (their first min(n) of them).
SIGNIFICANCE = 0.05


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return float(binomtest(min(only_a, only_b), discordant, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    attack: str
    eps: float
    n: int
    robust_a: int
    robust_b: int
    only_a: int
    only_b: int
    p_value: float

    @property
    def verdict(self) -> str:
        if self.p_value >= SIGNIFICANCE:
            return f"no significant difference (exact McNemar p = {self.p_value:.3g} ≥ {SIGNIFICANCE:g})"
        better = self.a if self.only_a > self.only_b else self.b
        return f"{better} is more robust (exact McNemar p = {self.p_value:.3g} < {SIGNIFICANCE:g})"

    def lines(self) -> list[str]:
        return [
            f"{self.attack} at ε = {self.eps:g} on the same {self.n} test points:",
            f"  {self.a}: {self.robust_a}/{self.n} robust ({100 * self.robust_a / self.n:.1f} %)",
            f"  {self.b}: {self.robust_b}/{self.n} robust ({100 * self.robust_b / self.n:.1f} %)",
            f"  only {self.a} survives {self.only_a} points; only {self.b} survives {self.only_b}",
            f"  {self.verdict}",
        ]


def _known(label: str, what: str, stored: pd.Series) -> None:
    names = sorted(stored.dropna().astype(str).unique())
    if label not in names:
        raise BenchError(
            f"unknown {what} {label!r} in this store; {did_you_mean(label, names)}stored: {', '.join(names) or 'none'}"
        )


def check_labels(frame: pd.DataFrame, a: str, b: str, attack: str) -> None:
    """Refuse a comparison of a defense with itself, or of a defense or an attack the store does not hold."""
    if a == b:
        raise BenchError(f"both defenses are {a!r}; a paired comparison needs two different defenses")
    for defense in (a, b):
        _known(defense, "defense", frame["defense"])
    _known(attack, "attack", frame["attack"])


def _row(frame: pd.DataFrame, defense: str, attack: str, eps: float) -> pd.Series:
    rows = frame[(frame["defense"] == defense) & (frame["attack"] == attack) & (frame["status"] == "ok")]
    at = rows[(rows["eps"] - eps).abs() < 1e-9]
    if at.empty:
        stored = ", ".join(f"{value:g}" for value in sorted(rows["eps"].dropna().unique()))
        raise BenchError(
            f"no {attack} row for {defense!r} at ε = {eps:g}; "
            + (f"its stored ε: {stored}; pass one of them with --eps" if stored else f"{defense!r} has no {attack} row")
        )
    rows = at
    if len(rows) > 1:
        raise BenchError(
            f"{defense!r} has {len(rows)} {attack} rows at ε = {eps:g} (several datasets, profiles or threat "
            "models); pass --dataset, --profile and --norm"
        )
    row = rows.iloc[0]
    if not isinstance(row.get("robust_points"), str):
        raise BenchError(f"the {attack} row of {defense!r} at ε = {eps:g} has no per-point results; rerun its cells")
    return row


def compare(frame: pd.DataFrame, a: str, b: str, eps: float, attack: str = "worst") -> Comparison:
    """The paired comparison of defenses ``a`` and ``b`` under ``attack`` at ``eps``."""
    check_labels(frame, a, b, attack)
    first, second = _row(frame, a, attack, eps), _row(frame, b, attack, eps)
    for column in SAME_POINTS:
        if first.get(column) != second.get(column):
            raise BenchError(
                f"{a!r} and {b!r} were not evaluated on the same points: {column} {first.get(column)} vs "
                f"{second.get(column)}; a paired test needs one test slice"
            )
    n = int(min(first["n"], second["n"]))
    mask_a, mask_b = (unpack_mask(row["robust_points"], int(row["n"]))[:n] for row in (first, second))
    only_a, only_b = int(np.sum(mask_a & ~mask_b)), int(np.sum(mask_b & ~mask_a))
    return Comparison(
        a, b, attack, eps, n, int(mask_a.sum()), int(mask_b.sum()), only_a, only_b, mcnemar_exact(only_a, only_b)
    )
