"""Leaderboards: the store's records as a tidy DataFrame, written as CSV and markdown pivots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmark.datasets.base import DEFAULT_DATASET
from benchmark.results.columns import WORST
from benchmark.results.curves import write_curves
from benchmark.results.minimal_perturbations import format_eps_star, minimal_perturbations
from benchmark.results.worst_case import headline_eps
from benchmark.store.atomic import atomic_write_text
from foundation.threat_models import NORM_SYMBOLS, NORMS

TABLE_FORMAT = {"headers": "keys", "tablefmt": "github", "disable_numparse": True}


ROBUSTNESS_RULE = (
    "Robust accuracy counts a test point only if it is classified correctly both clean and "
    "under attack. Randomized defenses (e.g. `vae` with sampled z) are attacked with EOT "
    "(`eot_samples` draws per gradient) and a point counts as correct only if *all* "
    "`prediction_repeats` repeated predictions are correct; F1 uses the first wrong prediction "
    "of a point, if any. Brackets give the 95 % Wilson interval. Every adversarial example was "
    "checked against its threat model (the L∞ or L2 ball of radius ε, and the [0, 1] box) before it counted."
)


WORST_CASE_RULE = (
    "The headline `worst` row counts a point as robust at ε only if it survived *every* ε-bounded attack of "
    "its threat model (L∞ or L2) run on that defense at that ε (AutoAttack's per-sample rule); its note lists "
    "the attacks. Defenses are ranked by it at the headline ε (MNIST: L∞ 0.3, L2 1.5)."
)
MEDIAN_EPS_STAR = "median ε*"
MINIMAL_RULE = (
    "`median ε*` is the median over the test points of each point's smallest adversarial perturbation found by "
    "any minimisation attack run on the defense (DeepFool, DDN, FMN, C&W, `boundary`, `hsj`, `pointwise`), in the "
    "threat model's norm (0 for points misclassified clean, ∞ for points none of them broke), as Schott et al. "
    "report it; – where no minimisation attack recorded per-point sizes."
)
FLAG_LEGEND = (
    "Flags (⚑): `eps0` ε = 0 differs from clean accuracy; `rises` accuracy rises with ε; `unbroken` L∞ ε ≥ 1 leaves "
    "over 10 %; `blackbox` a transfer or query attack beats every white-box attack; `masked` over 10 % of points "
    "have zero or NaN input gradients; `random` predictions change between identical calls of a defense not "
    "declared randomized; `quantized` the diagnostics found an input quantiser the defense does not declare "
    "(logits piecewise constant along pixel axes; the threshold-aware attack quantized searches its crossings); "
    "`stale` the cell's weights (sha256) or clean accuracy differ from the latest cell of the "
    "same defense key (other weights or clean draws: delete the record and rerun). A flagged number should not be "
    "trusted as it stands; `bench check --strict` fails on any."
)


def _percent(value: float) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * value:.1f}"


def _robust_cell(row: pd.Series) -> str:
    if row["status"] != "ok":
        return "skipped"
    flags = row.get("flags")
    marker = f" ⚑{flags}" if isinstance(flags, str) and flags else ""
    return (
        f"{_percent(row['robust_accuracy'])} [{_percent(row['robust_accuracy_ci_low'])}, "
        f"{_percent(row['robust_accuracy_ci_high'])}]{marker}"
    )


def _column_label(row: pd.Series) -> str:
    if pd.isna(row["eps"]):
        return f"{row['attack']} ({row['budget']})"
    return f"{row['attack']} @ {row['eps']:g}"


def _pivot(frame: pd.DataFrame, values: pd.Series, columns: pd.Series, order: list[str]) -> pd.DataFrame:
    """Defense × ``columns`` of ``values``; rows in ``order`` (the ranking), columns as they first appear."""
    table = frame.assign(cell=values, column=columns)
    pivot = table.pivot_table(index="defense", columns="column", values="cell", aggfunc="first", sort=False)
    rows = [defense for defense in order if defense in pivot.index]
    return pivot.reindex(index=rows, columns=list(dict.fromkeys(columns))).fillna("–")  # – : not run


def _f1_cell(row: pd.Series) -> str:
    return "skipped" if row["status"] != "ok" else f"{row['f1_macro']:.3f}"


def _ranking(worst: pd.DataFrame, frame: pd.DataFrame, eps: float | None) -> list[str]:
    """Defenses by worst-case robust accuracy at the headline ε (highest first), then the others by name."""
    at = worst[(worst["eps"] - eps).abs() < 1e-9] if eps is not None else worst.iloc[0:0]
    ranked = at.sort_values(["robust_accuracy", "defense"], ascending=[False, True], kind="stable")["defense"]
    return list(dict.fromkeys([*ranked, *sorted(frame["defense"].unique())]))


def threat_model_tables(frame: pd.DataFrame, dataset: str, threat_model: str) -> list[tuple[str, str]]:
    """(heading, table) pairs of one norm-ball threat model: the per-sample worst case (one column per ε,
    defenses ranked at the headline ε), then per ε the robust accuracy and macro-F1 of each attack."""
    worst = frame[frame["attack"] == WORST]
    cells = frame[frame["attack"] != WORST].sort_values(["attack"], kind="stable")
    eps = headline_eps(dataset, threat_model, worst["eps"] if not worst.empty else cells["eps"])
    order = _ranking(worst, cells, eps)
    symbol = NORM_SYMBOLS.get(threat_model, threat_model)
    tables = []
    if not worst.empty:
        worst = worst.sort_values("eps", kind="stable")
        headline = _pivot(worst, worst.apply(_robust_cell, axis=1), worst["eps"].map(lambda e: f"ε = {e:g}"), order)
        stars = minimal_perturbations(cells)
        if not stars.empty:
            medians = stars.drop_duplicates("defense", keep="last").set_index("defense")["median_eps_star"]
            headline[MEDIAN_EPS_STAR] = [
                format_eps_star(medians[defense]) if defense in medians.index else "–" for defense in headline.index
            ]
        tables.append(
            (
                f"{symbol} headline: per-sample worst case over all attacks, % [95 % Wilson interval] "
                f"(ranked at ε = {eps:g})",
                tabulate(headline, **TABLE_FORMAT),
            )
        )
    for value, part in cells.groupby("eps", sort=True):
        robust = _pivot(part, part.apply(_robust_cell, axis=1), part["attack"], order)
        f1 = _pivot(part, part.apply(_f1_cell, axis=1), part["attack"], order)
        tables.append((f"{symbol}, ε = {value:g}: robust accuracy per attack, %", tabulate(robust, **TABLE_FORMAT)))
        tables.append((f"{symbol}, ε = {value:g}: macro-F1 under attack", tabulate(f1, **TABLE_FORMAT)))
    return tables


def profile_tables(frame: pd.DataFrame) -> dict[str, str]:
    """Markdown tables for one profile: per threat model the worst case and per-ε tables (``sections``,
    a list of (heading, table)), the semantic attacks' tables, and clean accuracy and training time."""
    dataset = str(frame["dataset"].iloc[0]) if "dataset" in frame and not frame.empty else DEFAULT_DATASET
    sections: list[tuple[str, str]] = []
    bounded = frame[frame["threat_model"].isin(NORMS) & frame["eps"].notna()]
    for threat_model in [norm for norm in NORMS if norm in set(bounded["threat_model"])]:
        sections += threat_model_tables(bounded[bounded["threat_model"] == threat_model], dataset, threat_model)
    semantic = frame[frame["eps"].isna() & (frame["attack"] != WORST)]
    if not semantic.empty:
        order = sorted(semantic["defense"].unique())
        columns = semantic.apply(_column_label, axis=1)
        sections.append(
            (
                "Attacks bounded by parameter ranges: robust accuracy, %",
                tabulate(_pivot(semantic, semantic.apply(_robust_cell, axis=1), columns, order), **TABLE_FORMAT),
            )
        )
        sections.append(
            (
                "Attacks bounded by parameter ranges: macro-F1",
                tabulate(_pivot(semantic, semantic.apply(_f1_cell, axis=1), columns, order), **TABLE_FORMAT),
            )
        )
    ok = frame[(frame["status"] == "ok") & (frame["attack"] != WORST)]
    per_defense = ok.groupby("defense", sort=True).agg(
        clean_accuracy=("clean_accuracy", "first"),
        n=("n", "max"),
        train_seconds=("train_seconds", "first"),
        trained=("trained", "first"),
        randomized=("randomized", "first"),
        config_hash=("config_hash", "first"),
    )
    per_defense["clean_accuracy"] = per_defense["clean_accuracy"].map(_percent)
    per_defense["n"] = per_defense["n"].map(lambda n: "–" if pd.isna(n) else f"{int(n)}")
    per_defense["train_seconds"] = [
        "not trained" if trained is False else "–" if pd.isna(s) else f"{s:.1f}"
        for s, trained in zip(per_defense["train_seconds"], per_defense.pop("trained"), strict=True)
    ]
    return {"sections": sections, "defenses": tabulate(per_defense, **TABLE_FORMAT)}


def markdown(frame: pd.DataFrame) -> str:
    lines = ["# Leaderboard", "", "Generated by `bench run` from the records in `cells/`; do not edit by hand.", ""]
    if frame.empty:
        return "\n".join([*lines, "No results yet."]) + "\n"
    for (dataset, profile), part in frame.groupby(["dataset", "profile"], sort=False):
        tables = profile_tables(part)
        first, n = part.iloc[0], int(part["n"].dropna().max()) if part["n"].notna().any() else 0
        section = f"Profile `{profile}`" if dataset == DEFAULT_DATASET else f"{dataset}, profile `{profile}`"
        lines += [f"## {section} (n = {n} unless the defenses table says fewer, seed {first['seed']})", ""]
        if not (part["attack"] == WORST).any():
            lines += ["No ε-bounded cell with per-point results yet.", ""]
        for heading, table in tables["sections"]:
            lines += [f"### {heading}", "", table, ""]
        lines += ["### Defenses: clean accuracy (%), test points and training time (s)", "", tables["defenses"], ""]
        flagged = part[part["flags"].fillna("") != ""]
        if not flagged.empty:
            lines += ["Sanity flags (see below):", ""] + [
                f"- {r.defense} × {r.attack} ({r.threat_model}, {r.budget}): {r.flags}" for r in flagged.itertuples()
            ]
            lines.append("")
        notes = part.loc[part["status"] != "ok", ["defense", "attack", "note"]].drop_duplicates()
        if not notes.empty:
            lines += ["Skipped cells:", ""] + [f"- {r.defense} × {r.attack}: {r.note}" for r in notes.itertuples()]
            lines.append("")
    lines += [
        "## How to read these numbers",
        "",
        ROBUSTNESS_RULE,
        "",
        WORST_CASE_RULE,
        "",
        MINIMAL_RULE,
        "",
        FLAG_LEGEND,
        "",
        f"Library versions: `{frame['library_versions'].dropna().iloc[-1]}`"
        if frame["library_versions"].notna().any()
        else "",
        "",
    ]
    return "\n".join(lines)


def write_leaderboard(frame: pd.DataFrame, out_dir: Path, curves: bool = True) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` and ``leaderboard.md`` and, with ``curves``, the ε-curve plots (the costly
    part, left out of the partial rewrites while a distributed run goes on)."""
    csv_path, md_path = out_dir / "leaderboard.csv", out_dir / "leaderboard.md"
    per_point = ["robust_points", "minimal_norms"]
    atomic_write_text(csv_path, frame.drop(columns=per_point, errors="ignore").to_csv(index=False))
    atomic_write_text(md_path, markdown(frame))
    if curves:
        write_curves(frame, out_dir)
    return csv_path, md_path
