"""``bench report json``: RobustBench-compatible per-model JSON files from a results store.

One file per (dataset, threat model, defense): ``OUT/json/<dataset>/<Linf|L2>/<defense>.json``, laid out as
RobustBench's ``model_info/<dataset>/<threat model>/<model>.json``.  RobustBench's own fields are typed as
RobustBench writes them (``robustbench.utils.update_json`` and its ``ModelInfo`` dataclass): accuracies are
strings of percentages rounded to two decimals (``str(round(100 * acc, 2))``, e.g. ``"69.3"``), ``eps`` is a
string (``"8/255"`` for the k/255 budgets of CIFAR-10 and ImageNet, the decimal otherwise, e.g. ``"0.3"``,
as RobustBench's ``"0.5"`` and ``"0.031"``), and what is unknown is ``null`` (``ModelInfo``'s default).
Ours follow under their own keys, as JSON numbers (accuracies as fractions in [0, 1], like the store).

The headline ε of a defense is the dataset's standard budget (MNIST L∞ 0.3, CIFAR-10 L∞ 8/255, ...) when
it has a per-point worst-case row there, else the largest ε that has one; a defense without any worst-case
row (no ε-bounded L∞ cell with per-point results) gets no file.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.datasets.base import DEFAULT_DATASET
from benchmark.publish import published
from benchmark.results.columns import WORST, with_dataset
from benchmark.results.frame import load
from benchmark.results.minimal_perturbations import minimal_perturbations
from benchmark.results.worst_case import STANDARD_EPS, THREAT_MODELS, group_cells
from benchmark.store.atomic import atomic_write_text
from foundation.catalog import REGISTRIES, read_catalog

#: Records without a ``dataset`` field are MNIST (the only dataset of the store's first versions).
#: Datasets whose budgets RobustBench writes as fractions of 255 ("8/255").
PIXEL_LEVEL_EPS = {"cifar10", "cifar100", "imagenet"}
#: RobustBench's fields (``ModelInfo``, less the corruption ones), ``null`` where we know nothing.
ROBUSTBENCH_FIELDS = (
    "link",
    "name",
    "authors",
    "additional_data",
    "number_forward_passes",
    "dataset",
    "venue",
    "architecture",
    "eps",
    "clean_acc",
    "reported",
    "autoattack_acc",
    "footnote",
)
AUTOATTACK = "autoattack"


def _number(value: Any) -> float | None:
    """A float, or ``None`` for a missing or non-finite value."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _percent_text(fraction: Any) -> str | None:
    """An accuracy as RobustBench writes it: ``str(round(100 * acc, 2))``."""
    value = _number(fraction)
    return None if value is None else str(round(100 * value, 2))


def eps_text(eps: float, dataset: str, threat_model: str) -> str:
    """ε as RobustBench writes it: ``"8/255"`` for a whole number of 255ths on its L∞ image datasets, else
    the decimal (``"0.3"``, ``"0.5"``)."""
    steps = eps * 255
    if threat_model == "Linf" and dataset in PIXEL_LEVEL_EPS and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return f"{eps:g}"


def _flags(value: Any) -> list[str]:
    return [flag for flag in value.split(";") if flag] if isinstance(value, str) else []


def file_stem(defense: str) -> str:
    """A portable file name for a defense label (``adv-vae:train_attack=pgd`` -> ``adv-vae_train_attack=pgd``)."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", defense)


def paper_figures() -> dict[tuple[str, str, float, str], tuple[float, str]]:
    """(dataset, threat model, ε, defense label) -> (robust accuracy in %, where it is from): the papers' own
    figures at paper 001's ε = 0.3 on MNIST L∞, and the ABS paper's at L2 ε = 1.5 and L0 ε = 12 pixels
    (``benchmark.publish.published``), as paper 001's report quotes them.

    The ABS paper's figure (accuracy under its best L∞ attack per model) is preferred; paper 001's is
    the lower of its FGSM and DeepFool accuracies.  Paper 000 reports no accuracies.
    """
    figures = {}
    for label, (_clean, *attacks) in published.PAPER_TABLE_I.items():
        figures[published.ROWS[label]] = (
            float(min(accuracy for _f1, accuracy in attacks)),
            "paper 001, Table I: the lower of its FGSM and DeepFool accuracies",
        )
    for label, accuracy in published.ABS_PAPER_LINF.items():
        figures[published.ROWS[label]] = (float(accuracy), "Schott et al. (ABS): accuracy under their best L∞ attack")
    keyed = {(DEFAULT_DATASET, "Linf", _eps_key(published.EPS), defense): f for defense, f in figures.items()}
    for threat_model, eps, table in (
        ("L2", published.L2_EPS, published.ABS_PAPER_L2),
        ("L0", published.L0_EPS, published.ABS_PAPER_L0),
    ):
        why = f"Schott et al. (ABS): accuracy under their best {threat_model} attack"
        keyed |= {
            (DEFAULT_DATASET, threat_model, _eps_key(eps), published.ROWS[label]): (float(accuracy), why)
            for label, accuracy in table.items()
        }
    return keyed


def _eps_key(eps: float) -> float:
    return round(float(eps), 9)


def _descriptions() -> dict[str, str]:
    """Defense name -> its registered description (the static catalog: no plugin is imported)."""
    return {entry.name: entry.description for entry in read_catalog("defense", *REGISTRIES["defense"])}


def _headline(rows: pd.DataFrame, standard: float | None) -> pd.Series:
    """The worst-case row at the standard ε if there is one, else at the largest ε; of several
    (profiles, test sizes), the one on the most points, then the latest."""
    at_standard = rows[(rows["eps"] - standard).abs() < 1e-9] if standard is not None else rows.iloc[0:0]
    candidates = at_standard if not at_standard.empty else rows[rows["eps"] == rows["eps"].max()]
    return candidates.sort_values(["n", "created"], kind="stable").iloc[-1]


def _attack_entry(row: pd.Series) -> dict[str, Any]:
    return {
        "robust_acc": _number(row["robust_accuracy"]),
        "ci_low": _number(row["robust_accuracy_ci_low"]),
        "ci_high": _number(row["robust_accuracy_ci_high"]),
        "success_rate": _number(row["attack_success_rate"]),
        "flags": _flags(row["flags"]),
    }


def _median_eps_star(cells: pd.DataFrame) -> float | None:
    """The median over the points of their smallest perturbation any minimisation attack found; None when none
    recorded per-point sizes or more than half of the points withstood them all (JSON has no infinity)."""
    stars = minimal_perturbations(cells)
    if stars.empty:
        return None
    value = float(stars["median_eps_star"].min())
    return value if np.isfinite(value) else None


def model_info(
    worst: pd.Series,
    cells: pd.DataFrame,
    dataset: str,
    threat_model: str,
    descriptions: dict[str, str],
    figures: dict[tuple[str, str, float, str], tuple[float, str]],
) -> dict[str, Any]:
    """The JSON object of one defense: RobustBench's fields, then ours, for the headline worst-case row
    ``worst`` and the cells ``cells`` it was derived from."""
    defense, eps = str(worst["defense"]), float(worst["eps"])
    autoattack = cells[cells["attack"] == AUTOATTACK]
    figure = figures.get((dataset, threat_model, _eps_key(eps), defense))
    info: dict[str, Any] = dict.fromkeys(ROBUSTBENCH_FIELDS)
    info |= {
        "name": defense,
        "dataset": dataset,
        "architecture": descriptions.get(defense.split(":")[0]),
        "eps": eps_text(eps, dataset, threat_model),
        "clean_acc": _percent_text(worst["clean_accuracy"]),
        "reported": None if figure is None else str(round(figure[0], 2)),
        "autoattack_acc": None if autoattack.empty else _percent_text(autoattack.iloc[0]["robust_accuracy"]),
    }
    info |= {
        "threat_model": threat_model,  # RobustBench keeps it in the path (model_info/<dataset>/<threat model>/)
        "reported_source": None if figure is None else figure[1],
        "worst_case_acc": _number(worst["robust_accuracy"]),
        "worst_case_ci": [_number(worst["robust_accuracy_ci_low"]), _number(worst["robust_accuracy_ci_high"])],
        "worst_case_attacks": sorted(cells["attack"]),
        "median_eps_star": _median_eps_star(cells),
        "attacks": {row["attack"]: _attack_entry(row) for _, row in cells.iterrows()},
        "flags": _flags(worst["flags"]),
        "n": int(worst["n"]),
        "profile": str(worst["profile"]),
        "seed": int(worst["seed"]),
        "config_hash": str(worst["config_hash"]),
        "library_versions": None if pd.isna(worst["library_versions"]) else str(worst["library_versions"]),
        "device": None if pd.isna(worst["device"]) else str(worst["device"]),
        "created": str(worst["created"]),
    }
    return info


def model_infos(frame: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(dataset, RobustBench threat model, defense) -> its JSON object, from a leaderboard frame
    (``benchmark.results.frame.records_to_frame``)."""
    if frame.empty:
        return {}
    frame = with_dataset(frame)
    cells = frame[(frame["attack"] != WORST) & (frame["status"] == "ok") & frame["eps"].notna()]
    worst_rows = frame[(frame["attack"] == WORST) & frame["threat_model"].isin(list(THREAT_MODELS))]
    # A worst-case row carries no dataset: it takes its cells'.
    labelled = []
    for index, worst in worst_rows.iterrows():
        group = group_cells(cells, worst)
        if not group.empty:
            labelled.append((index, str(group["dataset"].iloc[0]), THREAT_MODELS[worst["threat_model"]]))
    descriptions, figures = _descriptions(), paper_figures()
    infos = {}
    keys = pd.DataFrame(labelled, columns=["index", "dataset", "threat_model"])
    for (dataset, threat_model), part in keys.groupby(["dataset", "threat_model"], sort=True):
        rows = worst_rows.loc[part["index"]]
        for defense, defense_rows in rows.groupby("defense", sort=True):
            headline = _headline(defense_rows, STANDARD_EPS.get((dataset, threat_model)))
            group = group_cells(cells, headline).sort_values("attack", kind="stable")
            infos[(dataset, threat_model, defense)] = model_info(
                headline, group, dataset, threat_model, descriptions, figures
            )
    return infos


def report_json(out_dir: Path, frame: pd.DataFrame | None = None) -> list[Path]:
    """Write ``out_dir/json/<dataset>/<Linf|L2>/<defense>.json`` for the store in ``out_dir`` (or for
    ``frame``, its leaderboard frame, when given); returns the files written, in order."""
    if frame is None:
        frame = load(Path(out_dir), allow_empty=True)
    paths, seen = [], {}
    for (dataset, threat_model, defense), info in model_infos(frame).items():
        folder = Path(out_dir) / "json" / dataset / threat_model
        stem = file_stem(defense)
        if seen.setdefault((folder, stem), defense) != defense:  # two labels, one file name
            stem = f"{stem}-{hashlib.sha256(defense.encode()).hexdigest()[:8]}"
        path = folder / f"{stem}.json"
        atomic_write_text(path, json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
