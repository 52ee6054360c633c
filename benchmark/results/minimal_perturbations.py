"""Per-point minimal perturbations: the smallest adversarial ε* any minimisation attack found for a point.

Minimisation attacks (DeepFool, DDN, FMN, C&W, ``boundary``, ``hsj``, ``pointwise``) store each point's
ε* with their cell (``minimal_norms``).  The per-point minimum over them is an upper bound on the
point's true minimal perturbation; its median over the test points is what Schott et al. report per
model, and robust accuracy at any ε follows from it (the share of points with ε* > ε): a curve from
one run, not only at the listed ε.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.results.columns import EVALUATION, with_dataset
from benchmark.results.statistics import unpack_norms
from foundation.threat_models import NORMS


def minimal_perturbations(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated defense and threat model with minimisation attacks: ``EVALUATION``, ``eps_star``
    (the per-point minimum over them, an array of n), ``median_eps_star`` and ``eps_star_attacks``."""
    frame = with_dataset(frame)
    columns = [*EVALUATION, "eps_star", "median_eps_star", "eps_star_attacks"]
    if frame.empty or "minimal_norms" not in frame:
        return pd.DataFrame(columns=columns)
    cells = frame[
        (frame["status"] == "ok") & frame["threat_model"].isin(NORMS) & frame["minimal_norms"].apply(_is_text)
    ]
    rows = []
    for _, group in cells.groupby(EVALUATION, sort=False, dropna=False):
        n = int(group["n"].iloc[0])
        per_attack = group.drop_duplicates("attack")
        smallest = np.minimum.reduce([unpack_norms(text, n) for text in per_attack["minimal_norms"]])
        first = group.iloc[0]
        rows.append(
            {
                **{column: first[column] for column in EVALUATION},
                "eps_star": smallest,
                "median_eps_star": float(np.median(smallest)),
                "eps_star_attacks": ", ".join(sorted(per_attack["attack"])),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def robust_accuracy_at(eps_star: np.ndarray, eps: float) -> float:
    """Robust accuracy at ``eps`` implied by per-point minimal perturbations: the share with ε* > ε."""
    return float((eps_star > eps).mean())


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def format_eps_star(value: float) -> str:
    """A median ε* for tables: ∞ when more than half the points withstood every minimisation attack."""
    return "∞" if not np.isfinite(value) else f"{value:.2f}"
