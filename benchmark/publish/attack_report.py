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


#: Column key -> its header, for the per-attack and the per-defense tables (the site uses the keys).
SUMMARY_HEADERS = {
    "attack": "attack",
    "backend": "backend",
    "optimality": "mean optimality",
    "defenses": "defenses scored",
    "weak_on": f"below {WEAK:g} on",
    "beaten": "beaten at headline ε: defenses / points",
    "passes": "passes per point (fwd / bwd)",
}
DEFENSE_HEADERS = {
    "defense": "defense",
    "attack": "attack",
    "optimality": "optimality",
    "robust": "robust at ε_h",
    "best": "best at ε_h",
    "beaten": "points it leaves that others break",
    "curve_from": "curve from",
}


def summary_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The per-attack table's rows, as shown (``SUMMARY_HEADERS``' keys)."""
    return [
        {
            "attack": row["attack"],
            "backend": row["backend"],
            "optimality": marked(row["mean_optimality"]),
            "defenses": int(row["defenses"]),
            "weak_on": int(row["weak_on"]),
            "beaten": f"{int(row['beaten_on'])} / {int(row['beaten_points'])}",
            "passes": passes(row),
        }
        for _, row in summary.iterrows()
    ]


def defense_rows(quality: pd.DataFrame) -> list[dict[str, Any]]:
    """The per-defense table's rows, as shown (``DEFENSE_HEADERS``' keys), best attack first per defense."""
    return [
        {
            "defense": row["defense"],
            "attack": row["attack"],
            "optimality": marked(row["optimality"]),
            "robust": number(row["robust_at_headline"]),
            "best": number(row["best_at_headline"]),
            "beaten": "–" if pd.isna(row["beaten_points"]) else int(row["beaten_points"]),
            "curve_from": row["curve_from"],
        }
        for _, row in quality.sort_values(["defense", "optimality"], ascending=[True, False]).iterrows()
    ]


def _table(rows: list[dict[str, Any]], headers: dict[str, str]) -> str:
    shown = [{headers[key]: f"`{value}`" if key == "attack" else value for key, value in row.items()} for row in rows]
    return tabulate(pd.DataFrame(shown, columns=list(headers.values())), **TABLE_FORMAT, showindex=False)


def sections(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One section per (dataset, profile, threat model): its finding and its two tables' rows."""
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
                "summary_rows": summary_rows(summary),
                "defense_rows": defense_rows(part),
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
            _table(section["summary_rows"], SUMMARY_HEADERS),
            "",
            "Per defense:",
            "",
            _table(section["defense_rows"], DEFENSE_HEADERS),
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


def report_attacks(out_dir: Path, frame: pd.DataFrame | None = None) -> list[Path]:
    """Write ``out_dir/attacks.md`` for the store in ``out_dir`` (or for ``frame``, its leaderboard frame)."""
    frame = load(Path(out_dir), allow_empty=True) if frame is None else frame
    path = Path(out_dir) / PAGE
    atomic_write_text(path, markdown(frame))
    return [path]
