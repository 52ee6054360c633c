"""CI regression check of robustness numbers against a committed baseline leaderboard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KEY = ["profile", "defense", "attack", "eps"]


@dataclass(frozen=True)
class RegressionReport:
    regressions: pd.DataFrame
    missing: pd.DataFrame
    compared: int

    @property
    def ok(self) -> bool:
        return self.regressions.empty and self.missing.empty


def _half_width(frame: pd.DataFrame, suffix: str) -> pd.Series:
    return (frame[f"robust_accuracy_ci_high{suffix}"] - frame[f"robust_accuracy_ci_low{suffix}"]) / 2


def compare(baseline: pd.DataFrame, run: pd.DataFrame, floor: float = 0.02) -> RegressionReport:
    """Cells whose robust accuracy fell below the baseline by more than the tolerance.

    The tolerance of a cell is ``max(floor, sqrt(h_base^2 + h_run^2))`` with h the half-widths of
    the two 95 % Wilson intervals: a drop larger than the combined sampling noise is a regression.
    """
    baseline = baseline[baseline["status"] == "ok"] if "status" in baseline else baseline
    run = run[run["status"] == "ok"] if "status" in run else run
    baseline = baseline.assign(eps=baseline["eps"].astype(float).round(10))
    run = run.assign(eps=run["eps"].astype(float).round(10))
    merged = baseline.merge(run, on=KEY, how="left", suffixes=("_baseline", "_run"), indicator=True)
    missing = merged.loc[merged["_merge"] == "left_only", KEY].reset_index(drop=True)
    both = merged[merged["_merge"] == "both"].copy()
    both["tolerance"] = np.maximum(floor, np.hypot(_half_width(both, "_baseline"), _half_width(both, "_run")))
    both["drop"] = both["robust_accuracy_baseline"] - both["robust_accuracy_run"]
    regressions = both.loc[
        both["drop"] > both["tolerance"], [*KEY, "robust_accuracy_baseline", "robust_accuracy_run", "drop", "tolerance"]
    ]
    return RegressionReport(regressions.reset_index(drop=True), missing, len(both))
