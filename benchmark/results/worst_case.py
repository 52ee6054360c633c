"""Per-sample worst case: a point counts as robust at ε only if it survived *every* attack run on the
defense at that ε (AutoAttack's rule).  Derived from the per-point masks stored with each cell."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.config.run_config import config_hash
from benchmark.results.columns import GROUP, WORST, with_dataset
from benchmark.results.statistics import unpack_mask, wilson_interval
from foundation.threat_models import NORMS

#: The store's threat models -> RobustBench's folder names (``ThreatModel`` values; RobustBench lists no sparse
#: threat model, so L1 and L0 are written in its spelling of the others); others get no file.
THREAT_MODELS = {"linf": "Linf", "l2": "L2", "l1": "L1", "l0": "L0"}
#: The order in which a dataset's threat models are presented: its headline first (RobustBench's
#: leaderboards, and MNIST's since Madry et al., lead with L∞, then L2), then any other alphabetically.
HEADLINE_THREAT_MODELS = {"mnist": NORMS, "cifar10": NORMS}
DEFAULT_HEADLINE_THREAT_MODELS = NORMS


def threat_model_rank(dataset: str, threat_model: str) -> tuple[int, str]:
    """A sort key presenting ``dataset``'s headline threat model first."""
    order = HEADLINE_THREAT_MODELS.get(dataset, DEFAULT_HEADLINE_THREAT_MODELS)
    return (order.index(threat_model) if threat_model in order else len(order), threat_model)


#: The standard budgets of RobustBench's leaderboards, MNIST's L∞ 0.3, L2 1.5 and L0 12 pixels (Madry et al.;
#: Schott et al.), and AutoAttack-L1's MNIST 10 and CIFAR-10 12 (Croce & Hein, "Mind the box").
STANDARD_EPS = {
    ("mnist", "Linf"): 0.3,
    ("mnist", "L2"): 1.5,
    ("mnist", "L1"): 10.0,
    ("mnist", "L0"): 12.0,
    ("cifar10", "L1"): 12.0,
    ("cifar10", "L0"): 24.0,
    ("cifar10", "Linf"): 8 / 255,
    ("cifar10", "L2"): 0.5,
    ("cifar100", "Linf"): 8 / 255,
    ("cifar100", "L2"): 0.5,
    ("imagenet", "Linf"): 4 / 255,
}


def headline_eps(dataset: str, threat_model: str, eps: pd.Series) -> float | None:
    """The standard budget (MNIST L∞ 0.3, ...) when ``eps`` holds it, else the largest of ``eps``."""
    eps = eps.dropna()
    if eps.empty:
        return None
    standard = STANDARD_EPS.get((dataset, THREAT_MODELS.get(threat_model, threat_model)))
    if standard is not None and ((eps - standard).abs() < 1e-9).any():
        return float(standard)
    return float(eps.max())


def group_cells(cells: pd.DataFrame, worst: pd.Series) -> pd.DataFrame:
    """The cells a worst-case row was derived from: its ``GROUP`` and its threat model."""
    mask = cells["threat_model"] == worst["threat_model"]
    for column in GROUP:
        value = worst[column]
        mask &= cells[column].isna() if pd.isna(value) else cells[column] == value
    return cells[mask]


def worst_case_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One ``attack = worst`` row per group of ok, ε-bounded cells of one norm-ball threat model (L∞, L2).

    A group with a cell lacking per-point results (recorded by an older version) gets no row: a worst
    case over only some of the attacks would overstate robustness.  The row is consistent with its members:
    its robust points are those every member counts as robust (each member's mask agrees with its recorded
    robust accuracy: ``benchmark.store.records``), so it never exceeds any of them, and its clean accuracy is the
    lowest of theirs, so it never exceeds that either.
    """
    frame = with_dataset(frame)
    if frame.empty or "robust_points" not in frame:
        return frame.iloc[0:0]
    cells = frame[
        (frame["status"] == "ok")
        & frame["threat_model"].isin(NORMS)
        & frame["eps"].notna()
        & (frame["attack"] != WORST)
    ]
    rows = []
    for _, group in cells.groupby(GROUP, sort=False, dropna=False):
        if group["robust_points"].isna().any():
            continue
        n = int(group["n"].iloc[0])
        robust = np.logical_and.reduce([unpack_mask(text, n) for text in group["robust_points"]])
        first = group.iloc[0]
        low, high = wilson_interval(int(robust.sum()), n)
        clean = float(group["clean_accuracy"].min())
        rows.append(
            {
                **{column: first[column] for column in GROUP},
                "attack": WORST,
                "backend": "all",
                "access": "all",
                "budget": f"ε={first['eps']:g}",
                "status": "ok",
                "clean_accuracy": clean,
                "robust_accuracy": float(robust.mean()),
                "robust_points": np.packbits(robust).tobytes().hex(),
                "robust_accuracy_ci_low": low,
                "robust_accuracy_ci_high": high,
                "attack_success_rate": (clean - robust.mean()) / clean if clean else np.nan,
                "train_seconds": first["train_seconds"],
                "attack_seconds": float(group["attack_seconds"].sum()),
                "randomized": first["randomized"],
                "device": first["device"],
                "library_versions": first["library_versions"],
                "created": group["created"].max(),
                "cell_key": config_hash(sorted(group["cell_key"])),
                "note": "per-point worst case over " + ", ".join(sorted(group["attack"])),
            }
        )
    return pd.DataFrame(rows)
