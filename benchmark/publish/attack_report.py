"""``bench report attacks``: which attack implementation to trust, per threat model, from the store's cells.

The numbers are ``benchmark.results.attack_quality``'s: each attack's AttackBench optimality against the
per-point best of every attack run on the same defense, its mean over defenses, and the points it leaves
standing at the headline ε that another attack breaks.  Written as ``OUT/attacks.md`` (the site renders the
same tables as ``site/attacks.html``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from benchmark.results.attack_quality import WEAK, attack_quality, attack_summary
from benchmark.results.frame import load
from benchmark.results.leaderboard import TABLE_FORMAT
from benchmark.store.atomic import atomic_write_text
from foundation.threat_models import NORM_SYMBOLS

PAGE = "attacks.md"
DEFINITION = (
    "An attack's *optimality* (AttackBench, Cinà et al., AAAI 2025) compares the area under its robust-accuracy "
    "curve over [0, ε_max] with the area under the per-point best of every attack run on the same defense and "
    "test points: 1 − (area − best area) / (clean accuracy · ε_max − best area), 1 for the best, 0 for an attack "
    "that breaks nothing. Curves are read on the ε the defense was evaluated at (and 0), from the cells, or from "
    "the per-point minimal perturbations ε* where the attack records them. An attack run at only some of those ε "
    f"gets no optimality there, only its standing at the headline ε. Below {WEAK:g} an attack is marked ⚠; "
    "library backends (native, ART, Foolbox, torchattacks) are separate rows."
)


def number(value: Any, digits: int = 3) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.{digits}f}"


def passes(row: pd.Series) -> str:
    forward, backward = row["forward_passes"], row["backward_passes"]
    if pd.isna(forward) and pd.isna(backward):
        return "–"
    return f"{number(forward, 0)} / {number(backward, 0)}"


def marked(value: Any) -> str:
    text = number(value)
    return f"{text} ⚠" if not pd.isna(value) and float(value) < WEAK else text


def finding(summary: pd.DataFrame, symbol: str) -> str:
    """The threat model's finding in a sentence, from its summary rows."""
    scored = summary[summary["mean_optimality"].notna()]
    if scored.empty:
        return f"In {symbol} no attack was run at every ε of a defense, so none is scored."
    best, worst = scored.iloc[0], scored.iloc[-1]
    weak = scored[scored["weak_on"] > 0]
    sentence = (
        f"In {symbol}, `{best['attack']}` ({best['backend']}) comes closest to the per-point best "
        f"(mean optimality {best['mean_optimality']:.3f} over {int(best['defenses'])} defense(s)); "
        f"{len(weak)} of {len(scored)} scored implementations fall below {WEAK:g} on at least one defense"
    )
    if len(scored) > 1:
        sentence += f", the weakest `{worst['attack']}` ({worst['backend']}, {worst['mean_optimality']:.3f})"
    return sentence + "."


def _summary_table(summary: pd.DataFrame) -> str:
    rows = [
        {
            "attack": f"`{row['attack']}`",
            "backend": row["backend"],
            "mean optimality": marked(row["mean_optimality"]),
            "defenses scored": int(row["defenses"]),
            f"below {WEAK:g} on": int(row["weak_on"]),
            "beaten at headline ε: defenses / points": f"{int(row['beaten_on'])} / {int(row['beaten_points'])}",
            "passes per point (fwd / bwd)": passes(row),
        }
        for _, row in summary.iterrows()
    ]
    return tabulate(pd.DataFrame(rows), **TABLE_FORMAT, showindex=False)


def _defense_table(quality: pd.DataFrame) -> str:
    rows = [
        {
            "defense": row["defense"],
            "attack": f"`{row['attack']}`",
            "optimality": marked(row["optimality"]),
            "robust at ε_h": number(row["robust_at_headline"]),
            "best at ε_h": number(row["best_at_headline"]),
            "points it leaves that others break": "–" if pd.isna(row["beaten_points"]) else int(row["beaten_points"]),
            "curve from": row["curve_from"],
        }
        for _, row in quality.sort_values(["defense", "optimality"], ascending=[True, False]).iterrows()
    ]
    return tabulate(pd.DataFrame(rows), **TABLE_FORMAT, showindex=False)


def sections(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One section per (dataset, profile, threat model): its finding, summary and per-defense tables."""
    quality = attack_quality(frame)
    out = []
    for (dataset, profile, threat_model), part in quality.groupby(["dataset", "profile", "threat_model"], sort=True):
        symbol = NORM_SYMBOLS.get(str(threat_model), str(threat_model))
        summary = attack_summary(part)
        eps = sorted({float(value) for value in part["headline_eps"]})
        out.append(
            {
                "title": f"{dataset}, profile `{profile}`, {symbol}",
                "finding": finding(summary, symbol),
                "headline": ", ".join(f"{value:g}" for value in eps),
                "summary": _summary_table(summary),
                "defenses": _defense_table(part),
                "summary_rows": summary,
                "rows": part,
            }
        )
    return out


def markdown(frame: pd.DataFrame) -> str:
    parts = ["# Which attack to trust", "", DEFINITION, ""]
    found = sections(frame)
    if not found:
        parts.append("No evaluation in this store has ε-bounded cells with per-point results.")
    for section in found:
        parts += [
            f"## {section['title']}",
            "",
            section["finding"],
            "",
            f"Per attack (headline ε: {section['headline']}):",
            "",
            section["summary"],
            "",
            "Per defense:",
            "",
            section["defenses"],
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


def report_attacks(out_dir: Path, frame: pd.DataFrame | None = None) -> list[Path]:
    """Write ``out_dir/attacks.md`` for the store in ``out_dir`` (or for ``frame``, its leaderboard frame)."""
    frame = load(Path(out_dir), allow_empty=True) if frame is None else frame
    path = Path(out_dir) / PAGE
    atomic_write_text(path, markdown(frame))
    return [path]
