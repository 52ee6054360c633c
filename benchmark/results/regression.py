"""CI regression check of robustness numbers against a committed baseline leaderboard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.results.columns import BASELINE_KEY, STATUSES

#: Cells are matched within a dataset; a CSV without the column (written before datasets) is MNIST's.
DATASET = "dataset"
#: What a leaderboard CSV must hold for the check; the three shares must be numbers in [0, 1] in ok rows.
SHARES = ["robust_accuracy", "robust_accuracy_ci_low", "robust_accuracy_ci_high"]
REQUIRED = [*BASELINE_KEY, *SHARES]


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


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """ε rounded for matching, and the dataset column (MNIST where the CSV predates it)."""
    dataset = frame[DATASET].fillna("mnist") if DATASET in frame else "mnist"
    return frame.assign(eps=frame["eps"].astype(float).round(10), **{DATASET: dataset})


def regressions(baseline: pd.DataFrame, run: pd.DataFrame, floor: float = 0.02) -> RegressionReport:
    """Cells whose robust accuracy fell below the baseline by more than the tolerance.

    The tolerance of a cell is ``max(floor, sqrt(h_base^2 + h_run^2))`` with h the half-widths of
    the two 95 % Wilson intervals: a drop larger than the combined sampling noise is a regression.
    """
    baseline = baseline[baseline["status"] == "ok"] if "status" in baseline else baseline
    run = run[run["status"] == "ok"] if "status" in run else run
    baseline, run = (_keyed(frame) for frame in (baseline, run))
    key = [DATASET, *BASELINE_KEY]
    merged = baseline.merge(run, on=key, how="left", suffixes=("_baseline", "_run"), indicator=True)
    missing = merged.loc[merged["_merge"] == "left_only", key].reset_index(drop=True)
    both = merged[merged["_merge"] == "both"].copy()
    both["tolerance"] = np.maximum(floor, np.hypot(_half_width(both, "_baseline"), _half_width(both, "_run")))
    both["drop"] = both["robust_accuracy_baseline"] - both["robust_accuracy_run"]
    regressions = both.loc[
        both["drop"] > both["tolerance"], [*key, "robust_accuracy_baseline", "robust_accuracy_run", "drop", "tolerance"]
    ]
    return RegressionReport(regressions.reset_index(drop=True), missing, len(both))


def table_problem(text: pd.DataFrame) -> tuple[int, str, str] | None:
    """The first bad value of a leaderboard read as text (``dtype=str, keep_default_na=False``), or ``None``.

    Returns (row index, column, what is wrong).  ``profile``, ``defense`` and ``attack`` must not be
    blank, ``eps`` is a number of 0 or more or blank, ``status`` (when present) is ok or skipped, and in ok rows
    (all rows without a ``status`` column) the three shares are numbers in [0, 1]; skipped rows may
    leave them blank.  One vectorised pass per column.
    """
    if text.empty:
        return None
    blank = {column: text[column].str.strip() == "" for column in text.columns}

    def numbers(column: str) -> pd.Series:
        values = pd.to_numeric(text[column].str.strip().where(~blank[column]), errors="coerce")
        return values.where(np.isfinite(values))

    checks: list[tuple[str, pd.Series, str]] = [
        (column, blank[column], "must not be blank") for column in ("profile", "defense", "attack")
    ]
    ok = pd.Series(True, index=text.index)
    if "status" in text:
        checks.append(("status", ~text["status"].isin(STATUSES), f"is not {' or '.join(STATUSES)}"))
        ok = text["status"] == "ok"
    eps = numbers("eps")
    checks.append(("eps", ~blank["eps"] & eps.isna(), "is not a number (nor blank)"))
    checks.append(("eps", eps < 0, "is negative, but ε is a budget of 0 or more (or blank)"))
    for column in SHARES:
        share = numbers(column)
        checks.append((column, ok & blank[column], "is blank, but an ok row needs a number in [0, 1]"))
        checks.append((column, ok & ~blank[column] & ~share.between(0, 1), "is not a number in [0, 1]"))
    first: tuple[int, str, str] | None = None
    for column, bad, what in checks:
        bad = bad.to_numpy()
        if bad.any():
            row = int(bad.argmax())
            if first is None or row < first[0]:
                first = (row, column, f"{text[column].iloc[row]!r} {what}")
    return first
