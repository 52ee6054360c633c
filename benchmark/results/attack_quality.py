"""Which attack to trust: each attack's robust-accuracy curve against the per-point best of all attacks run.

For every evaluation of a defense in a norm-ball threat model (``EVALUATION``: one dataset, profile, seed,
checkpoint, test slice and randomization budget), every attack's robust accuracy is read on the
evaluation's ε grid (the union of the ε its cells were run at, and 0, where robust accuracy is the clean
accuracy): from the cell at that ε, or, for a minimisation attack, from its per-point minimal perturbations
(a point is robust at ε when its ε* exceeds ε), which also fill the ε where it has no cell.  The lower
envelope is the per-point best over all attacks scored: a point is robust at ε only if every attack left it
standing there (the worst case's rule).  With ``area`` the trapezoid integral of a curve over [0, ε_max]
(ε_max the largest ε evaluated), an attack's **optimality** is AttackBench's (Cinà et al., AAAI 2025):

    1 - (area - best area) / (clean accuracy · ε_max - best area)

1 for the envelope itself, 0 for an attack that breaks nothing the clean model gets right.  An attack
missing an ε of the grid that it cannot fill from minimal perturbations still enters the envelope where it
ran, but gets no optimality on that evaluation (its curve would be another integral): only its standing at
the headline ε, when it ran there.  Forward and backward passes per point are the
records' ``forward_passes`` / ``backward_passes`` (counted by the evaluation, where recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.results.columns import EVALUATION, WORST, with_dataset
from benchmark.results.statistics import unpack_mask, unpack_norms
from benchmark.results.worst_case import headline_eps
from foundation.threat_models import NORMS

#: Optimality below this marks an attack as weak on a defense (AttackBench's threshold).
WEAK = 0.9
#: Columns of ``attack_quality``'s rows.
QUALITY_COLUMNS = [
    *EVALUATION,
    "attack",
    "backend",
    "access",
    "optimality",
    "area",
    "best_area",
    "eps_max",
    "headline_eps",
    "robust_at_headline",
    "best_at_headline",
    "beaten_points",
    "curve_from",
    "forward_passes",
    "backward_passes",
]


@dataclass(frozen=True)
class Curve:
    """One attack on one evaluation: per-point robustness at each grid ε (grid × n), where it came from, and
    which grid ε it has (an ε it lacks is all-robust: it constrains nothing there)."""

    attack: str
    robust: np.ndarray
    source: str
    present: np.ndarray


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _accuracies(robust: np.ndarray, clean_accuracy: float) -> np.ndarray:
    """Robust accuracy at each grid ε; at ε = 0 the clean accuracy (cells hold no per-point clean verdicts)."""
    accuracy = robust.mean(axis=1)
    accuracy[0] = clean_accuracy
    return accuracy


def _area(grid: np.ndarray, accuracy: np.ndarray) -> float:
    return float(np.sum((accuracy[1:] + accuracy[:-1]) / 2 * np.diff(grid)))


def _curve(rows: pd.DataFrame, grid: np.ndarray, n: int) -> Curve:
    """The attack's per-point robustness on ``grid`` (row 0, ε = 0, unused: robust accuracy there is the clean one);
    a grid ε it was not run at and cannot fill from minimal perturbations is marked in ``present``."""
    masks = {round(float(row["eps"]), 10): unpack_mask(row["robust_points"], n) for _, row in rows.iterrows()}
    norms = next((unpack_norms(text, n) for text in rows.get("minimal_norms", []) if _text(text)), None)
    robust, present, filled = np.ones((len(grid), n), dtype=bool), np.ones(len(grid), dtype=bool), False
    for k, eps in enumerate(grid[1:], start=1):
        mask = masks.get(round(float(eps), 10))
        if mask is None and norms is not None:
            mask, filled = norms > eps, True
        if mask is None:
            present[k] = False
        else:
            robust[k] = mask
    source = "ε* and cells" if filled else "ε*" if norms is not None else "cells"
    if not present.all():
        source = f"cells at {int(present[1:].sum())} of {len(grid) - 1} ε"
    return Curve(str(rows["attack"].iloc[0]), robust, source, present)


def _passes(rows: pd.DataFrame, column: str) -> float:
    values = pd.to_numeric(rows[column], errors="coerce").dropna() if column in rows else pd.Series(dtype=float)
    return float(values.mean()) if not values.empty else float("nan")


def attack_quality(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (evaluation, attack): optimality and its parts (``QUALITY_COLUMNS``).  Every attack's cells enter the
    envelope; an attack not run at every ε of the evaluation (and without ε* to fill the gaps) gets no
    optimality, only its standing at the headline ε when it was run there."""
    frame = with_dataset(frame)
    if frame.empty or "robust_points" not in frame:
        return pd.DataFrame(columns=QUALITY_COLUMNS)
    cells = frame[
        (frame["status"] == "ok")
        & (frame["attack"] != WORST)
        & frame["threat_model"].isin(NORMS)
        & frame["eps"].notna()
        & frame["robust_points"].apply(_text)
    ]
    rows = []
    for key, group in cells.groupby(EVALUATION, sort=True, dropna=False):
        identity = dict(zip(EVALUATION, key, strict=True))
        n = int(group["n"].iloc[0])
        grid = np.array([0.0, *sorted({round(float(eps), 10) for eps in group["eps"] if eps > 0})])
        if len(grid) < 2:
            continue
        clean_accuracy = float(group["clean_accuracy"].iloc[0])
        curves = [(_curve(attack_rows, grid, n), attack_rows) for _, attack_rows in group.groupby("attack", sort=True)]
        best = np.logical_and.reduce([curve.robust for curve, _ in curves])
        best_area, eps_max = _area(grid, _accuracies(best, clean_accuracy)), float(grid[-1])
        headline = headline_eps(str(identity["dataset"]), str(identity["threat_model"]), pd.Series(grid[1:]))
        at = int(np.argmin(np.abs(grid - headline)))
        span = clean_accuracy * eps_max - best_area
        for curve, attack_rows in curves:
            area = _area(grid, _accuracies(curve.robust, clean_accuracy)) if curve.present.all() else float("nan")
            optimality = float("nan") if np.isnan(area) else 1.0 if span <= 1e-12 else 1 - (area - best_area) / span
            first, here = attack_rows.iloc[0], bool(curve.present[at])
            rows.append(
                {
                    **identity,
                    "attack": curve.attack,
                    "backend": first.get("backend"),
                    "access": first.get("access"),
                    "optimality": float(optimality),
                    "area": area,
                    "best_area": best_area,
                    "eps_max": eps_max,
                    "headline_eps": float(grid[at]),
                    "robust_at_headline": float(curve.robust[at].mean()) if here else float("nan"),
                    "best_at_headline": float(best[at].mean()),
                    "beaten_points": int((curve.robust[at] & ~best[at]).sum()) if here else pd.NA,
                    "curve_from": curve.source,
                    "forward_passes": _passes(attack_rows, "forward_passes"),
                    "backward_passes": _passes(attack_rows, "backward_passes"),
                }
            )
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)


def attack_summary(quality: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, threat model, attack): mean optimality over the defenses it was scored on, how many of
    them it falls below ``WEAK`` on and how many points it leaves standing that another attack breaks."""
    columns = ["dataset", "threat_model", "attack", "backend", "mean_optimality", "defenses", "weak_on"]
    columns += ["beaten_on", "beaten_points", "forward_passes", "backward_passes"]
    if quality.empty:
        return pd.DataFrame(columns=columns)
    summary = (
        quality.groupby(["dataset", "threat_model", "attack"], sort=True)
        .agg(
            backend=("backend", "first"),
            mean_optimality=("optimality", "mean"),
            defenses=("optimality", lambda values: int(values.notna().sum())),
            weak_on=("optimality", lambda values: int((values < WEAK).sum())),
            beaten_on=("beaten_points", lambda values: int((pd.to_numeric(values) > 0).sum())),
            beaten_points=("beaten_points", lambda values: int(pd.to_numeric(values).fillna(0).sum())),
            forward_passes=("forward_passes", "mean"),
            backward_passes=("backward_passes", "mean"),
        )
        .reset_index()
    )
    return summary.sort_values(["dataset", "threat_model", "mean_optimality"], ascending=[True, True, False])[
        columns
    ].reset_index(drop=True)
