"""``bench report html``: a self-contained static site from a results store.

``OUT/site/index.html`` ranks the defenses of each (dataset, threat model) by their per-point worst-case
robust accuracy at the headline ε (MNIST L∞ 0.3 where there is a worst-case row at it, else the largest ε
with one), with the paired comparison of each defense and the next in the ranking.  Sections lead with
the dataset's headline threat model (MNIST: L∞, then L2), the first one with a plot of the ranked
defenses' worst case against ε, and every table fits a 1,280 px window (training, randomization, profile
and the flags' explanations are on the defense pages).  ``OUT/site/<slug>.html`` shows one defense: its
standing on the leaderboard, ε-curves per attack as inline SVG, its cells, their provenance and, for
paper 001's models, the papers' own figures.  No file is fetched from anywhere: styles, script and plots
are inline.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from benchmark.datasets.base import DEFAULT_DATASET
from benchmark.publish import attack_report, published
from benchmark.publish.robustbench_json import file_stem
from benchmark.results.columns import WORST, with_dataset
from benchmark.results.frame import load
from benchmark.results.leaderboard import FLAG_LEGEND, MINIMAL_RULE, ROBUSTNESS_RULE, WORST_CASE_RULE
from benchmark.results.minimal_perturbations import format_eps_star, minimal_perturbations, robust_accuracy_at
from benchmark.results.paired import compare
from benchmark.results.statistics import wilson_interval
from benchmark.results.worst_case import THREAT_MODELS, group_cells, headline_eps, threat_model_rank
from benchmark.store.atomic import atomic_write_text
from benchmark.store.result_store import ResultStore
from foundation.errors import BenchError
from foundation.threat_models import NORM_SYMBOLS

SITE = "site"
INDEX = "index.html"
#: The stem of the attack-quality page (``bench report attacks``'s tables).
ATTACKS_PAGE = "attacks"
#: Colours of the ε-curves (Okabe-Ito, then a few more that stay apart); the worst case is drawn in black.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8B4513", "#7F3C8D", "#808000", "#999"]
WORST_COLOUR = "#000"


# --- formatting -----------------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return value is None
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def percent(value: Any) -> str:
    """A fraction as a percentage with one decimal, ``–`` when missing."""
    return "–" if _missing(value) else f"{100 * float(value):.1f}"


def interval(row: pd.Series) -> str:
    """``12.5 [8.1, 18.9]``: robust accuracy with its 95 % interval, in %."""
    return (
        f"{percent(row['robust_accuracy'])} "
        f"[{percent(row['robust_accuracy_ci_low'])}, {percent(row['robust_accuracy_ci_high'])}]"
    )


def _number(value: Any, digits: int = 3) -> str:
    return "–" if _missing(value) else f"{float(value):.{digits}g}"


def _sort_key(value: Any) -> str:
    """A ``data-sort`` value: the number, or -1 for a missing one (sorts below every measured value)."""
    return "-1" if _missing(value) else repr(float(value))


def flag_explanations() -> dict[str, str]:
    """Flag code -> its explanation, parsed from ``leaderboard.FLAG_LEGEND`` (the single source)."""
    body = FLAG_LEGEND.split(":", 1)[1].split(". A flagged", 1)[0]
    return {code: text.strip() for code, text in re.findall(r"`(\w+)`\s*([^;]+)", body)}


def _flags(*values: Any) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if isinstance(value, str):
            seen |= dict.fromkeys(flag for flag in value.split(";") if flag)
    return list(seen)


def _flag_items(codes: list[str], legend: dict[str, str]) -> list[dict[str, str]]:
    return [{"code": code, "text": legend.get(code, "see the leaderboard's flag legend")} for code in codes]


def slugs(defenses: list[str]) -> dict[str, str]:
    """Defense label -> its page's file stem: portable, unique, and never a page of the site's own."""
    taken, result = {"index", ATTACKS_PAGE}, {}
    for defense in sorted(defenses):
        stem = file_stem(defense)
        if stem in taken:
            stem = f"{stem}-{hashlib.sha256(defense.encode()).hexdigest()[:8]}"
        taken.add(stem)
        result[defense] = stem
    return result


# --- the index ------------------------------------------------------------------------------------------


def _at(rows: pd.DataFrame, eps: float | None) -> pd.DataFrame:
    return rows[rows["eps"].isna()] if eps is None else rows[(rows["eps"] - eps).abs() < 1e-9]


def _pick(rows: pd.DataFrame) -> pd.Series:
    """Of several rows for one defense (profiles, test sizes): the one on the most points, then the latest."""
    return rows.sort_values(["n", "created"], kind="stable").iloc[-1]


def _training(row: pd.Series) -> tuple[str, str]:
    if row.get("trained") is False:
        return "not trained", "-1"
    seconds = row.get("train_seconds")
    return ("–", "-1") if _missing(seconds) else (f"{float(seconds):.1f} s", _sort_key(seconds))


def _randomized(row: pd.Series) -> str:
    if row.get("randomized") is not True:
        return "no"
    eot, repeats = row.get("eot_samples"), row.get("prediction_repeats")
    eot_text = "–" if _missing(eot) else f"{int(eot)}"
    repeats_text = "–" if _missing(repeats) else f"{int(repeats)}"
    return f"yes (EOT {eot_text} / {repeats_text} repeats)"


def presentation_order(dataset: str, threat_model: str) -> tuple[bool, str, tuple[int, str]]:
    """Sections and blocks in reading order: the default dataset first, each dataset's headline threat model
    first (MNIST: L∞, then L2)."""
    return (dataset != DEFAULT_DATASET, dataset, threat_model_rank(dataset, threat_model))


def _curve(worst: pd.DataFrame, headline: pd.Series) -> pd.DataFrame:
    """A defense's worst case at every ε of the evaluation its headline row belongs to (same slice, rules)."""
    same = worst["defense"] == headline["defense"]
    for column in ("profile", "seed", "n", "config_hash"):
        same &= worst[column] == headline[column]
    return worst[same].assign(line=str(headline["defense"]))


def _section(dataset: str, threat_model: str, part: pd.DataFrame, pages: dict[str, str], legend: dict[str, str]):
    """One ranked table: the defenses of ``part`` (the ok rows of one dataset and threat model)."""
    cells = part[part["attack"] != WORST]
    worst = part[(part["attack"] == WORST) & part["eps"].notna()]
    has_worst = not worst.empty
    # A norm-bounded threat model is ranked at its headline ε; another (semantic) over all its cells.
    bounded = threat_model in THREAT_MODELS
    eps = headline_eps(dataset, threat_model, (worst if has_worst else cells)["eps"]) if bounded else None
    rows, missing, curves = [], [], []
    for defense in sorted(part["defense"].unique()):
        if has_worst:
            candidates = _at(worst[worst["defense"] == defense], eps)
            if candidates.empty:
                missing.append(defense)
                continue
            headline = _pick(candidates)
            group = group_cells(cells, headline)
            curves.append(_curve(worst, headline))
        else:
            candidates = cells[cells["defense"] == defense]
            candidates = _at(candidates, eps) if bounded else candidates
            if candidates.empty:
                missing.append(defense)
                continue
            top = _pick(candidates)
            group = candidates[(candidates["n"] == top["n"]) & (candidates["profile"] == top["profile"])]
            headline = group.loc[group["robust_accuracy"].idxmin()]
        breaker = group.loc[group["robust_accuracy"].idxmin()] if not group.empty else None
        training, training_key = _training(group.iloc[0] if not group.empty else headline)
        rows.append(
            {
                "defense": defense,
                "page": f"{pages[defense]}.html",
                "index": headline.name,
                "value": headline["robust_accuracy"],
                "low": headline["robust_accuracy_ci_low"],
                "robust": percent(headline["robust_accuracy"]),
                "interval": f"[{percent(headline['robust_accuracy_ci_low'])}, "
                f"{percent(headline['robust_accuracy_ci_high'])}]",
                "clean": percent(headline["clean_accuracy"]),
                "clean_key": _sort_key(headline["clean_accuracy"]),
                "breaker": "–" if breaker is None else str(breaker["attack"]),
                "breaker_robust": "" if breaker is None else percent(breaker["robust_accuracy"]),
                "training": training,
                "training_key": training_key,
                "randomized": _randomized(headline if has_worst else group.iloc[0]),
                "flags": _flag_items(_flags(headline["flags"], *group["flags"]), legend),
                "section": f"{dataset}, {threat_model}",
                "profile": str(headline["profile"]),
                "n": int(headline["n"]),
            }
        )
    rows.sort(key=lambda r: (-float(r["value"]), -float(r["low"]) if not _missing(r["low"]) else 0, r["defense"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    comparisons = []
    for better, worse in itertools.pairwise(rows):
        entry = {"a": better["defense"], "b": worse["defense"], "lines": [], "note": ""}
        if not has_worst:
            entry["note"] = "no per-point worst case for this threat model; no paired test"
        else:
            try:
                pair = part.loc[[better["index"], worse["index"]]]
                entry["lines"] = compare(pair, better["defense"], worse["defense"], eps).lines()
            except BenchError as error:
                entry["note"] = f"not compared: {error}"
        comparisons.append(entry)
    return {
        "dataset": dataset,
        "threat_model": threat_model,
        "eps": "–" if eps is None else f"{eps:g}",
        "has_worst": has_worst,
        "rows": rows,
        "missing": [{"defense": d, "page": f"{pages[d]}.html"} for d in missing],
        "comparisons": comparisons,
        "curves": pd.concat(curves) if curves else None,
    }


def index_plot(section: dict[str, Any]) -> Markup:
    """The worst case against ε of a section's ranked defenses, one line each."""
    title = f"Worst-case robust accuracy on {section['dataset']}, {section['threat_model']}"
    return svg_plot(section["curves"], title, x_label=budget_label(section["threat_model"]), kind="defense")


def index_context(frame: pd.DataFrame, pages: dict[str, str], attacks_page: bool = False) -> dict[str, Any]:
    legend = flag_explanations()
    ok = frame[frame["status"] == "ok"]
    parts = sorted(ok.groupby(["dataset", "threat_model"]), key=lambda item: presentation_order(*map(str, item[0])))
    sections = [_section(str(dataset), str(model), part, pages, legend) for (dataset, model), part in parts]
    plotted = next((section for section in sections if section["curves"] is not None), None)
    listed = {row["defense"] for section in sections for row in section["rows"]}
    listed |= {row["defense"] for section in sections for row in section["missing"]}
    others = [{"defense": d, "page": f"{pages[d]}.html"} for d in sorted(set(pages) - listed)]
    return {
        "sections": sections,
        "attacks_page": f"{ATTACKS_PAGE}.html" if attacks_page else None,
        "plot": None if plotted is None else {"section": plotted, "svg": index_plot(plotted)},
        "others": others,
        "rules": [ROBUSTNESS_RULE, WORST_CASE_RULE, FLAG_LEGEND],
        "legend": legend,
    }


# --- the defense pages ----------------------------------------------------------------------------------


def budget_label(threat_model: str) -> str:
    """The x axis of a plot: ``ε (L∞ budget)``, ``ε (L2 budget)``, ``ε (L0 budget, pixels)``."""
    unit = ", pixels" if threat_model == "l0" else ""
    return f"ε ({NORM_SYMBOLS.get(threat_model, threat_model)} budget{unit})"


def _ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at most ``high``."""
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 10) for i in range(int(high / step + 1e-9) + 1)]


def svg_plot(cells: pd.DataFrame, title: str, x_label: str = "ε (L∞ budget)", kind: str = "attack") -> Markup:
    """Robust accuracy against ε, one polyline per ``line`` (an attack, or a defense: ``kind``) with its 95 %
    interval as a translucent band."""
    width, height, left, right, top, bottom = 640, 360, 56, 16, 16, 52
    x_high = float(cells["eps"].max()) * 1.1 or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(eps: float) -> float:
        return left + plot_w * eps / x_high

    def y(fraction: float) -> float:
        return top + plot_h * (1 - fraction)

    lines = sorted(cells["line"].unique(), key=lambda line: (line == WORST, line))
    colours = {line: WORST_COLOUR if line == WORST else PALETTE[i % len(PALETTE)] for i, line in enumerate(lines)}
    summary = "; ".join(
        f"{line}: "
        + ", ".join(
            f"{percent(r['robust_accuracy'])} % at ε = {r['eps']:g}"
            for _, r in cells[cells["line"] == line].sort_values("eps").iterrows()
        )
        for line in lines
    )
    label = f"{title}. Robust accuracy (%) against ε per {kind}, with 95 % intervals. {summary}."
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" class="plot">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(label)}</desc>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>',
    ]
    for tick in range(0, 101, 20):
        ty = y(tick / 100)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick}</text>')
    for tick in _ticks(x_high):
        tx = x(tick)
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 5}" class="axis"/>')
        parts.append(f'<text x="{tx:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{tick:g}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" class="label">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" class="label">'
        "robust accuracy (%)</text>"
    )
    for line in lines:
        rows = cells[cells["line"] == line].sort_values("eps")
        colour = colours[line]
        points = [(x(r["eps"]), y(r["robust_accuracy"])) for _, r in rows.iterrows()]
        lows = [(x(r["eps"]), y(r["robust_accuracy_ci_low"])) for _, r in rows.iterrows()]
        highs = [(x(r["eps"]), y(r["robust_accuracy_ci_high"])) for _, r in rows.iterrows()]
        has_band = len(points) > 1 and rows["robust_accuracy_ci_low"].notna().all()
        group = [f'<g class="series" data-{kind}="{escape(line)}">']
        if has_band:
            band = " ".join(f"{px:.1f},{py:.1f}" for px, py in highs + lows[::-1])
            group.append(f'<polygon points="{band}" fill="{colour}" fill-opacity="0.08" stroke="none"/>')
        width_px = 3 if line == WORST else 1.8
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        group.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width_px}"/>')
        for (_, r), (px, py), (_, ly), (_, hy) in zip(rows.iterrows(), points, lows, highs, strict=True):
            if not _missing(r["robust_accuracy_ci_low"]):
                group.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{ly:.1f}" y2="{hy:.1f}" stroke="{colour}"/>')
            tip = f"{line} at ε = {r['eps']:g}: {interval(r)} %"
            group.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"><title>{escape(tip)}</title></circle>'
            )
        group.append("</g>")
        parts += group
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch" style="background:{colours[line]}"></span>{escape(line)}</li>' for line in lines
    )
    return Markup("\n".join(parts) + f'\n<ul class="legend">{legend}</ul>')


def _cell_row(row: pd.Series, legend: dict[str, str]) -> dict[str, Any]:
    return {
        "attack": str(row["attack"]),
        "budget": f"{row['eps']:g}" if not _missing(row["eps"]) else str(row["budget"]),
        "eps_key": _sort_key(row["eps"]),
        "n": "–" if _missing(row["n"]) else int(row["n"]),
        "status": str(row["status"]),
        "robust": interval(row) if row["status"] == "ok" else "skipped",
        "robust_key": _sort_key(row["robust_accuracy"]),
        "success": percent(row["attack_success_rate"]),
        "success_key": _sort_key(row["attack_success_rate"]),
        "linf": _number(row["linf_mean"]),
        "linf_key": _sort_key(row["linf_mean"]),
        "l2": _number(row["l2_mean"]),
        "l2_key": _sort_key(row["l2_mean"]),
        "seconds": "–" if _missing(row["attack_seconds"]) else f"{float(row['attack_seconds']):.1f}",
        "seconds_key": _sort_key(row["attack_seconds"]),
        "flags": _flag_items(_flags(row["flags"]), legend),
        "note": "" if _missing(row["note"]) else str(row["note"]),
    }


def _values(rows: pd.DataFrame, column: str) -> list[str]:
    return [str(value) for value in dict.fromkeys(rows[column].dropna()) if str(value) != ""]


def _paper_figures(defense: str, rows: pd.DataFrame) -> list[dict[str, str]]:
    """The papers' figures for paper 001's models (``benchmark.publish.published``), beside ours."""
    labels = [label for label, spec in published.ROWS.items() if spec == defense]
    if not labels:
        return []
    label, eps = labels[0], published.EPS

    def ours(attack: str, column: str = "robust_accuracy") -> str:
        found = _at(rows[(rows["attack"] == attack) & (rows["status"] == "ok")], eps)
        return "–" if found.empty else percent(_pick(found)[column])

    figures = []
    if label in published.PAPER_TABLE_I:
        clean, (_fgsm_f1, fgsm), (_deepfool_f1, deepfool) = published.PAPER_TABLE_I[label]
        source = "paper 001, Table I"
        figures += [
            {"what": "clean accuracy", "source": source, "paper": f"{clean:g}", "ours": ours("fgsm", "clean_accuracy")},
            {"what": f"FGSM accuracy at ε = {eps:g}", "source": source, "paper": f"{fgsm:g}", "ours": ours("fgsm")},
            {
                "what": f"DeepFool accuracy at ε = {eps:g}",
                "source": source,
                "paper": f"{deepfool:g}",
                "ours": ours("deepfool"),
            },
        ]
    if label in published.ABS_PAPER_LINF:
        figures.append(
            {
                "what": f"accuracy under the best L∞ attack at ε = {eps:g} (ours: per-point worst case)",
                "source": "Schott et al. (ABS)",
                "paper": f"{published.ABS_PAPER_LINF[label]:g}",
                "ours": ours(WORST),
            }
        )
    return [{**figure, "model": label} for figure in figures]


#: The line of the per-point minimal perturbations in a defense's plot, and how many ε it is drawn at.
EPS_STAR_LINE, EPS_STAR_POINTS = "ε* (minimal perturbations)", 21


def eps_star_curve(eps_star: np.ndarray, high: float) -> pd.DataFrame:
    """Robust accuracy against ε implied by per-point minimal perturbations (one run, every ε up to ``high``),
    with Wilson intervals, as rows for ``svg_plot``."""
    rows = []
    for eps in np.linspace(0.0, high, EPS_STAR_POINTS):
        accuracy = robust_accuracy_at(eps_star, float(eps))
        low, high_ci = wilson_interval(round(accuracy * len(eps_star)), len(eps_star))
        rows.append(
            {
                "eps": float(eps),
                "robust_accuracy": accuracy,
                "robust_accuracy_ci_low": low,
                "robust_accuracy_ci_high": high_ci,
                "line": EPS_STAR_LINE,
            }
        )
    return pd.DataFrame(rows)


def defense_context(frame: pd.DataFrame, defense: str, standing: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A defense page: ``standing`` holds its rows of the index's rankings (the columns the index leaves out)."""
    legend = flag_explanations()
    rows = frame[frame["defense"] == defense]
    blocks = []
    groups = rows.groupby(["dataset", "profile", "threat_model"])
    ordered = sorted(groups, key=lambda item: (presentation_order(str(item[0][0]), str(item[0][2])), str(item[0][1])))
    for (dataset, profile, threat_model), part in ordered:
        part = part.sort_values(["attack", "eps"], kind="stable")
        plotted = part[(part["status"] == "ok") & part["eps"].notna() & part["robust_accuracy"].notna()]
        several = plotted.groupby(["attack", "eps"]).size().max() > 1 if not plotted.empty else False
        plotted = plotted.assign(
            line=[
                f"{attack} (n = {int(n)})" if several else str(attack)
                for attack, n in zip(plotted["attack"], plotted["n"], strict=True)
            ]
        )
        title = f"{defense} on {dataset}, {threat_model}, profile {profile}"
        stars = minimal_perturbations(part)
        if not stars.empty and not plotted.empty:
            plotted = pd.concat([plotted, eps_star_curve(stars.iloc[-1]["eps_star"], float(plotted["eps"].max()))])
        blocks.append(
            {
                "dataset": str(dataset),
                "profile": str(profile),
                "threat_model": str(threat_model),
                "title": title,
                "median_eps_star": None if stars.empty else format_eps_star(stars.iloc[-1]["median_eps_star"]),
                "eps_star_attacks": None if stars.empty else stars.iloc[-1]["eps_star_attacks"],
                "plot": None if plotted.empty else svg_plot(plotted, title, x_label=budget_label(str(threat_model))),
                "cells": [_cell_row(row, legend) for _, row in part.iterrows()],
            }
        )
    cells = rows[rows["attack"] != WORST]
    created = sorted(_values(cells, "created"))
    provenance = {
        "config hash": _values(cells, "config_hash"),
        "seed": _values(cells.assign(seed=cells["seed"].map(lambda s: s if _missing(s) else int(s))), "seed"),
        "profile": _values(cells, "profile"),
        "device": _values(cells, "device"),
        "library versions": _values(cells, "library_versions"),
        "created": [f"{created[0]} – {created[-1]}" if len(created) > 1 else created[0]] if created else [],
    }
    return {
        "defense": defense,
        "standing": standing or [],
        "blocks": blocks,
        "provenance": provenance,
        "figures": _paper_figures(defense, rows),
        "rules": [ROBUSTNESS_RULE, WORST_CASE_RULE, MINIMAL_RULE],
    }


# --- writing --------------------------------------------------------------------------------------------


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("benchmark.publish.site", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["code"] = lambda text: Markup(  # the rules' markdown: `code` and *emphasis*
        re.sub(r"\*([^*]+)\*", r"<em>\1</em>", re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
    )
    return environment


def render_site(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``out_dir/site/index.html`` and one page per defense of ``frame`` (a leaderboard frame,
    ``benchmark.results.frame.records_to_frame``); returns the files written, the index first.  Pages of
    defenses no longer in the store are removed."""
    frame = with_dataset(frame)
    site = Path(out_dir) / SITE
    pages = slugs([str(d) for d in frame["defense"].dropna().unique()])
    environment = _environment()
    written = [site / INDEX]
    attacks = attack_report.sections(frame)
    index = index_context(frame, pages, bool(attacks))
    atomic_write_text(written[0], environment.get_template("index.html.j2").render(**index))
    page = environment.get_template("defense.html.j2")
    for defense, stem in pages.items():
        path = site / f"{stem}.html"
        standing = [row for section in index["sections"] for row in section["rows"] if row["defense"] == defense]
        atomic_write_text(path, page.render(**defense_context(frame, defense, standing)))
        written.append(path)
    if attacks:
        written.append(site / f"{ATTACKS_PAGE}.html")
        context = {"sections": attacks, "definition": attack_report.DEFINITION, "weak": f"{attack_report.WEAK:g}"}
        atomic_write_text(written[-1], environment.get_template("attacks.html.j2").render(**context))
    for stale in set(site.glob("*.html")) - set(written):
        stale.unlink()
    return written


def report_html(out_dir: Path, frame: pd.DataFrame | None = None) -> list[Path]:
    """Render the site of the store in ``out_dir`` (or of ``frame``, its leaderboard frame) into ``out_dir/site``."""
    if frame is None:
        frame = load(Path(out_dir), allow_empty=True)
    return render_site(frame, Path(out_dir))


def publish_site(out_dir: Path, frame: pd.DataFrame) -> list[Path]:
    """Render a run's site, under its store's writer lock (as the run rewrote its leaderboard)."""
    with ResultStore(Path(out_dir)).writer_lock():
        return render_site(frame, Path(out_dir))
