"""What the label-only attacks add to the gradient attacks on one row of a store.

Where gradients mislead (binarised inputs, L∞ adversarial training judged in L2), the decision-based
attacks break points every gradient attack left standing and find smaller perturbations (Schott et al.).
This measures that on one defense's cells at one ε: the points the label-only attacks break that the
gradient attacks left, and the median per-point minimal perturbation ε* with and without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.results.columns import WORST
from benchmark.results.minimal_perturbations import format_eps_star, minimal_perturbations
from benchmark.results.statistics import unpack_mask

#: The batched decision-based attacks: they see only the predicted label.
LABEL_ONLY = ("boundary", "hsj", "pointwise")


def is_label_only(attack: str) -> bool:
    """Whether the attack spec (``name:key=value...``) names a label-only attack."""
    return attack.split(":")[0] in LABEL_ONLY


@dataclass(frozen=True)
class LabelOnlyGain:
    """One row's gradient attacks against all its attacks: per-point robust masks and median ε*
    (``nan`` where no minimisation attack of that kind ran; ``inf`` where over half the points withstood them)."""

    gradient_robust: np.ndarray
    all_robust: np.ndarray
    median_eps_star_gradient: float
    median_eps_star_all: float

    @property
    def n(self) -> int:
        return len(self.all_robust)

    @property
    def standing(self) -> int:
        """Points every gradient attack left standing."""
        return int(self.gradient_robust.sum())

    @property
    def broken(self) -> int:
        """Of those, the points a label-only attack breaks."""
        return int((self.gradient_robust & ~self.all_robust).sum())

    def columns(self) -> dict[str, str]:
        """The gain as a table row's cells (accuracies in %)."""
        return {
            "n": str(self.n),
            "gradient attacks, worst case %": f"{100 * self.gradient_robust.mean():.1f}",
            "label-only attacks break": f"{self.broken} of {self.standing}",
            "all attacks, worst case %": f"{100 * self.all_robust.mean():.1f}",
            "median ε*, gradient": format_eps_star(self.median_eps_star_gradient),
            "median ε*, all": format_eps_star(self.median_eps_star_all),
        }


def _median_eps_star(cells: pd.DataFrame) -> float:
    found = minimal_perturbations(cells)
    return float("nan") if found.empty else float(found["median_eps_star"].iloc[0])


def label_only_gain(cells: pd.DataFrame) -> LabelOnlyGain | None:
    """``cells``: the ok cells of one defense at one ε and threat model, on the same points.  ``None``
    unless both a gradient and a label-only attack ran, each with per-point results."""
    if cells.empty or cells["robust_points"].isna().any():
        return None
    label_only = cells["attack"].map(is_label_only)
    if label_only.all() or not label_only.any():
        return None
    n = int(cells["n"].iloc[0])
    masks = [unpack_mask(text, n) for text in cells["robust_points"]]
    gradient = [mask for mask, only in zip(masks, label_only, strict=True) if not only]
    return LabelOnlyGain(
        gradient_robust=np.logical_and.reduce(gradient),
        all_robust=np.logical_and.reduce(masks),
        median_eps_star_gradient=_median_eps_star(cells[~label_only]),
        median_eps_star_all=_median_eps_star(cells),
    )


def label_only_gains(frame: pd.DataFrame, threat_model: str, eps: float) -> dict[str, LabelOnlyGain]:
    """``label_only_gain`` of every defense of ``frame`` (one profile and seed) at ``eps`` in ``threat_model``,
    for those with both kinds of attack."""
    cells = frame[
        (frame["threat_model"] == threat_model)
        & ((frame["eps"] - eps).abs() < 1e-9)
        & (frame["status"] == "ok")
        & (frame["attack"] != WORST)
    ]
    gains = {defense: label_only_gain(group) for defense, group in cells.groupby("defense", sort=False)}
    return {defense: gain for defense, gain in gains.items() if gain is not None}
