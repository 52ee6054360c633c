"""Robustness curves: robust accuracy against ε, one line per defense, one figure per attack."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from benchmark.datasets.base import DEFAULT_DATASET
from benchmark.results.columns import with_dataset
from benchmark.store.atomic import atomic_write, atomic_write_text
from foundation.threat_models import DEFAULT_NORM, NORM_SYMBOLS

CURVE_COLUMNS = [
    "dataset",
    "profile",
    "threat_model",
    "attack",
    "defense",
    "eps",
    "robust_accuracy",
    "robust_accuracy_ci_low",
    "robust_accuracy_ci_high",
    "n",
]


def curve_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok, ε-bounded rows of attacks evaluated at two or more epsilons."""
    frame = with_dataset(frame)
    rows = frame[(frame["status"] == "ok") & frame["eps"].notna()]
    curve = ["dataset", "profile", "threat_model", "attack"]
    counts = rows.groupby(curve)["eps"].transform("nunique")
    return rows.loc[counts >= 2, CURVE_COLUMNS].sort_values([*curve, "defense", "eps"])


def _plot(curves: pd.DataFrame, title: str, threat_model: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for defense, line in curves.groupby("defense", sort=False):
        axes.plot(line["eps"], 100 * line["robust_accuracy"], marker="o", label=defense)
        axes.fill_between(
            line["eps"], 100 * line["robust_accuracy_ci_low"], 100 * line["robust_accuracy_ci_high"], alpha=0.15
        )
    axes.set(
        xlabel=f"ε ({NORM_SYMBOLS.get(threat_model, threat_model)})",
        ylabel="robust accuracy, %",
        ylim=(0, 100),
        title=title,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def write_curves(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``curves.csv`` and ``curves/[<dataset>-]<profile>-<attack>.png``; returns the files written."""
    table = curve_table(frame)
    written = []
    if table.empty:
        return written
    csv_path = out_dir / "curves.csv"
    atomic_write_text(csv_path, table.to_csv(index=False))
    written.append(csv_path)
    groups = table.groupby(["dataset", "profile", "threat_model", "attack"], sort=False)
    for (dataset, profile, threat_model, attack), curves in groups:
        # MNIST's L∞ files keep the names they had before datasets and threat models were registered.
        prefix = "" if dataset == DEFAULT_DATASET else f"{dataset}-"
        suffix = "" if threat_model == DEFAULT_NORM else f"-{threat_model}"
        name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{prefix}{profile}-{attack}{suffix}")
        symbol = NORM_SYMBOLS.get(threat_model, threat_model)
        png = _plot(curves, f"{attack}, {symbol} ({dataset}, {profile} profile)", threat_model)
        path = out_dir / "curves" / f"{name}.png"
        atomic_write(path, lambda handle, data=png: handle.write(data))
        written.append(path)
    return written
