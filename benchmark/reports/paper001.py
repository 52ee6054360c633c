"""``bench report paper001``: paper 001 (Parallel-GAN DQN) and its baselines reproduced.

Runs (or resumes) a fixed matrix in the store of ``OUT`` and writes ``OUT/paper001.md``: paper 001's
Table I (CNN, Madry, Binary ABS, Proposed; clean accuracy, and accuracy and macro-F1 under FGSM and
DeepFool at ε = 0.3) with our measured values beside the paper's; the ABS paper's L∞ (ε = 0.3) and L2
(ε = 1.5) figures for CNN, Madry, ABS and binary ABS beside our per-point worst case, in L2 over gradient
and label-only attacks (Boundary, HopSkipJump, Pointwise), with the points the label-only attacks break
and the median minimal perturbation beside Schott et al.'s; white-box (FGSM, DeepFool, PGD-40,
AutoAttack) and black-box columns (transfer from an independent surrogate, score-based Square,
decision-based HopSkipJump); and the ABS rows attacked as Schott et al. attacked them: transfer from the
non-binarised ABS, the label-only attacks, and PGD with restarts and steps large enough to cross binary
ABS's threshold, each with the points it breaks that the other white-box attacks left standing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.run_config import RunConfig
from benchmark.publish.published import (
    ABS_PAPER_L0,
    ABS_PAPER_L2,
    ABS_PAPER_L2_MEDIAN,
    ABS_PAPER_LINF,
    BINARY_CNN_L0,
    EPS,
    L0_EPS,
    L2_EPS,
    PAPER_TABLE_I,
    ROWS,
)
from benchmark.reports.common import cell, markdown_table, number, percent_with_interval, provenance, run_matrix
from benchmark.results.columns import WORST
from benchmark.results.frame import load
from benchmark.results.label_only import LABEL_ONLY, label_only_gains
from benchmark.results.minimal_perturbations import format_eps_star, minimal_perturbations
from benchmark.results.statistics import unpack_mask
from benchmark.run.adaptive import label_only_spec
from benchmark.store.atomic import atomic_write_text

WHITE_BOX = ["fgsm", "deepfool", "pgd", "autoattack"]
#: ``hsj``: the batched HopSkipJump, the decision-based column (ART's one-image-at-a-time ``art.hsj`` stays available).
BLACK_BOX = ["transfer", "square", "hsj"]
#: The gradient attacks of the L2 column (DDN and FMN: minimum-norm, as the adaptive protocol runs in L2).
L2_GRADIENT = ["pgd", "deepfool", "foolbox.ddn", "foolbox.fmn"]
#: The attacks of the L0 column, as ``--attacks adaptive`` runs them in L0: Sparse-RS (score-based), FMN (white-box,
#: minimum-norm) and Pointwise (labels only, its pixel-reset stage), plus the threshold-aware attack on binary ABS.
L0_ATTACKS = ["sparse-rs", "foolbox.fmn", "pointwise"]
#: The binarised CNN of ``results/label-only`` (Schott et al.'s "binary CNN"), in that store beside this one.
BINARY_CNN_STORE, BINARY_CNN = "label-only", "binarised-cnn-hard"
#: The issue's targets for the Madry row at the quick profile.
MADRY_CLEAN, MADRY_PGD = 0.97, 0.80
ABS_ROWS = ("abs", "binary-abs")
#: Schott et al. attacked binary ABS by transfer from the non-binarised ABS.
ABS_TRANSFER = "transfer:surrogate=abs"
#: PGD through BPDA with steps that cross the binarisation threshold (0.075 at ε = 0.3) and restarts.
BPDA_PGD = "pgd:steps=20:rel_stepsize=0.25:restarts=3"
#: ABS answers ~90 images/s at `quick` on two idle cores (``bench perf --sections abs``): below `paper` these
#: cells of the matrix are left out or shrunk, each for the stated reason.
ABS_COST = "ABS answers ~90 images/s on two cores"
LEFT_OUT: dict[tuple[str, str, str], str] = {
    ("abs", "square", "linf"): f"1,000 queries per image on 200 points, about 40 minutes; {ABS_COST}",
    ("binary-abs", "square", "linf"): f"1,000 queries per image on 200 points, about 40 minutes; {ABS_COST}",
    ("binary-abs", "foolbox.ddn", "l2"): f"DDN's 50 steps through BPDA on 200 points; {ABS_COST}",
    ("binary-abs", "foolbox.fmn", "l2"): f"FMN's 50 steps through BPDA on 200 points; {ABS_COST}",
    ("binary-abs", "quantized", "linf"): (
        f"in L∞ each free crossing is one step of an ABS forward and backward pass per point, hours; {ABS_COST}"
    ),
    ("binary-abs", "foolbox.fmn", "l0"): f"FMN's 50 steps through BPDA on 200 points; {ABS_COST}",
}
#: The label-only attacks on the ABS rows: 500 queries per image (a tenth of the quick budget; the adaptive
#: protocol's probe form: Pointwise from the nearest other-class image only); 12 to 20 minutes a cell as measured
#: in results/recompute (717 to 1,179 s on 200 points).
ABS_LABEL_ONLY = {name: label_only_spec(name, 500).label for name in LABEL_ONLY}
LABEL_ONLY_COST = (
    "the profile's 5,000 queries per image on 200 points take ten times the 12 to 20 minutes a cell measured "
    f"at 500, 2 to 3.3 hours; {ABS_COST}"
)
#: The threat-aware attack on binary ABS's declared binarisation, at 8 measured crossings per step and no targeted
#: searches: about 10 s per point on two cores at that budget (38 s on 4 points), so about 35 minutes on 200.
ABS_QUANTIZED = "quantized:candidates=8:targets=0"
QUANTIZED_COST = f"the profile's 16 crossings per step and 2 targeted searches cost about 6× as much; {ABS_COST}"
#: AutoAttack's members at 10 APGD and FAB steps and 100 Square queries.
ABS_AUTOATTACK = "autoattack:apgd_steps=10:fab_steps=10:square_queries=100"
#: Below `paper` these cells run with the smaller budget of their spec instead, each for the stated reason.
SHRUNK: dict[tuple[str, str, str], tuple[str, str]] = (
    {
        ("binary-abs", "autoattack", "linf"): (
            ABS_AUTOATTACK,
            f"the profile's 9 targeted APGD and FAB runs on the ~150 points left standing take hours; {ABS_COST}",
        ),
        ("binary-abs", "quantized", "l2"): (ABS_QUANTIZED, QUANTIZED_COST),
        ("binary-abs", "quantized", "l0"): (ABS_QUANTIZED, QUANTIZED_COST),
    }
    | {
        (defense, "sparse-rs", "l0"): (
            "sparse-rs:queries=300",
            f"the profile's 1,000 queries per image on 200 points, about 40 minutes a row; {ABS_COST}",
        )
        for defense in ABS_ROWS
    }
    | {
        (defense, attack, threat_model): (spec, LABEL_ONLY_COST)
        for defense in ABS_ROWS
        for threat_model in ("linf", "l2")
        for attack, spec in ABS_LABEL_ONLY.items()
    }
    | {(defense, "pointwise", "l0"): (ABS_LABEL_ONLY["pointwise"], LABEL_ONLY_COST) for defense in ABS_ROWS}
)


def _spec_at(profile: str, defense: str, attack: str, threat_model: str) -> str | None:
    """The spec ``attack`` runs as on ``defense`` at ``profile``: itself, its smaller budget, or ``None`` (left out)."""
    if profile == "paper":
        return attack
    if (defense, attack, threat_model) in LEFT_OUT:
        return None
    return SHRUNK.get((defense, attack, threat_model), (attack,))[0]


def _row_cell(
    frame: pd.DataFrame, defense: str, attack: str, eps: float = EPS, threat_model: str = "linf"
) -> pd.Series | None:
    """The row's cell of ``attack`` at ``eps``: at the full budget, else at its smaller one (``SHRUNK``)."""
    row = cell(frame, defense, attack, eps, threat_model)
    if row is None and (defense, attack, threat_model) in SHRUNK:
        row = cell(frame, defense, SHRUNK[defense, attack, threat_model][0], eps, threat_model)
    return row


def run(base: RunConfig, compute: bool = True) -> pd.DataFrame:
    """The matrix, cheapest blocks first (an interrupted report resumes where it stopped), less the cells
    the profile leaves out; returns the report's rows of the store."""
    rows, l2, l0, frames = list(ROWS.values()), replace(base, norm="l2"), replace(base, norm="l0"), []
    l2_rows = [ROWS[label] for label in ABS_PAPER_L2]
    l0_rows = [ROWS[label] for label in ABS_PAPER_L0]
    for config, defenses, attacks, eps in [
        (base, rows, [*WHITE_BOX[:3], "transfer"], EPS),
        (base, list(ABS_ROWS), [ABS_TRANSFER], EPS),
        (base, rows, ["autoattack"], EPS),
        (l2, l2_rows, L2_GRADIENT, L2_EPS),
        (base, ["binary-abs"], [BPDA_PGD], EPS),
        (base, rows, ["square", "hsj"], EPS),
        (l2, l2_rows, list(LABEL_ONLY), L2_EPS),
        (base, list(ABS_ROWS), [attack for attack in LABEL_ONLY if attack != "hsj"], EPS),
        (l2, ["binary-abs"], ["quantized"], L2_EPS),
        (l0, l0_rows, L0_ATTACKS, L0_EPS),
        (l0, ["binary-abs"], ["quantized"], L0_EPS),
        (base, ["binary-abs"], ["quantized"], EPS),
    ]:
        for attack in attacks:
            specs = {d: _spec_at(base.profile.name, d, attack, config.norm) for d in defenses}
            for spec in dict.fromkeys(spec for spec in specs.values() if spec is not None):
                kept = [d for d in defenses if specs[d] == spec]
                frames.append(run_matrix(config, kept, [spec], (eps,), compute=compute))
    frame = frames[-1]  # every block returns the whole store's rows of the profile
    return frame[frame["defense"].isin(rows)]


def _accuracy(row: pd.Series | None) -> str:
    return "–" if row is None else f"{100 * row['robust_accuracy']:.1f}"


def _f1(row: pd.Series | None) -> str:
    return "–" if row is None else f"{row['f1_macro']:.2f}"


def _table_one(frame: pd.DataFrame) -> list[str]:
    table = []
    for label, paper in PAPER_TABLE_I.items():
        defense = ROWS[label]
        fgsm, deepfool = _row_cell(frame, defense, "fgsm"), _row_cell(frame, defense, "deepfool")
        clean = fgsm["clean_accuracy"] if fgsm is not None else None
        table.append(
            {
                "model": label,
                "defense": f"`{defense}`",
                "clean % (ours / paper)": f"{number(None if clean is None else 100 * clean)} / {paper[0]}",
                "FGSM acc % (ours / paper)": f"{_accuracy(fgsm)} / {paper[1][1]}",
                "FGSM F1 (ours / paper)": f"{_f1(fgsm)} / {paper[1][0]}",
                "DeepFool acc % (ours / paper)": f"{_accuracy(deepfool)} / {paper[2][1]}",
                "DeepFool F1 (ours / paper)": f"{_f1(deepfool)} / {paper[2][0]}",
            }
        )
    return [
        f"## Paper 001, Table I (ε = {EPS})",
        "",
        "Accuracy is our robust accuracy (correct both clean and under attack); F1 is macro-F1 of the predictions "
        "on the adversarial inputs. The paper's F1 values are not consistent with its accuracies (an F1 of 0.1 with "
        "21 % accuracy, 0.54 with 91 %), so compare accuracies first.",
        "",
        markdown_table(table),
        "",
    ]


def _lowest_white_box(frame: pd.DataFrame, defense: str) -> pd.Series | None:
    rows = [row for row in (_row_cell(frame, defense, attack) for attack in WHITE_BOX) if row is not None]
    return min(rows, key=lambda row: row["robust_accuracy"]) if rows else None


def _abs_paper_table(frame: pd.DataFrame, published: dict[str, int], eps: float, threat_model: str) -> str:
    table = []
    for label, figure in published.items():
        defense = ROWS[label]
        worst = cell(frame, defense, WORST, eps, threat_model)
        table.append(
            {
                "model": label,
                "defense": f"`{defense}`",
                "ours: per-point worst case, %": percent_with_interval(worst),
                "over": "–" if worst is None else str(worst["note"]).removeprefix("per-point worst case over "),
                "Schott et al., %": figure,
            }
        )
    return markdown_table(table)


def _label_only_table(frame: pd.DataFrame) -> str:
    """Per L2 row: the points the label-only attacks break that every gradient attack left, and median ε*."""
    gains = label_only_gains(frame, "l2", L2_EPS)
    table = [
        {"model": label, **gains[ROWS[label]].columns(), "Schott et al.'s median": median}
        for label, median in ABS_PAPER_L2_MEDIAN.items()
        if ROWS[label] in gains
    ]
    return markdown_table(table) if table else "No row has both gradient and label-only cells yet."


def _abs_section(frame: pd.DataFrame) -> list[str]:
    label_only = ", ".join(f"`{attack}`" for attack in LABEL_ONLY)
    return [
        f"## ABS paper, L∞ ε = {EPS} and L2 ε = {L2_EPS}",
        "",
        "Schott et al. report each model's accuracy under its best attack of each threat model; ours is the "
        "per-point worst case over every attack run on the row at that ε (a point counts only if it survived all "
        "of them). ABS is attacked through the envelope gradient at the optimum latent, binary ABS with BPDA "
        f"through the binarisation; both also by transfer from ABS and by the label-only attacks {label_only} "
        "(see below).",
        "",
        f"### L∞, ε = {EPS}",
        "",
        _abs_paper_table(frame, ABS_PAPER_LINF, EPS, "linf"),
        "",
        f"### L2, ε = {L2_EPS}",
        "",
        f"Attacks: the gradient attacks {', '.join(f'`{attack}`' for attack in L2_GRADIENT)} and the label-only "
        f"(decision-based, batched) attacks {label_only} in the L2 ball (`bench run --norm l2`); on the ABS rows "
        "the label-only ones at a smaller budget (listed at the end).",
        "",
        _abs_paper_table(frame, ABS_PAPER_L2, L2_EPS, "l2"),
        "",
        "What the label-only attacks add: the points they break that every gradient attack on the row left "
        "standing, and the median per-point minimal perturbation ε* (the smallest adversarial L2 norm any "
        "minimisation attack found; ∞ when more than half the points withstood them all) over the gradient "
        "minimisation attacks (DeepFool, DDN, FMN) alone and over all of them, beside Schott et al.'s median "
        "perturbation size.",
        "",
        _label_only_table(frame),
        "",
    ]


def _median_eps_star(frame: pd.DataFrame, defense: str, threat_model: str) -> str:
    """The row's median per-point minimal perturbation ε* over its minimisation attacks in ``threat_model``."""
    rows = frame[(frame["defense"] == defense) & (frame["threat_model"] == threat_model)]
    stars = minimal_perturbations(rows)
    return "–" if stars.empty else format_eps_star(float(stars["median_eps_star"].iloc[0]))


def _binary_cnn(out_dir: Path) -> pd.DataFrame:
    """The L0 records of the binarised CNN in ``OUT/label-only`` (empty where that store has none)."""
    store = out_dir / BINARY_CNN_STORE
    frame = load(store, allow_empty=True) if store.is_dir() else pd.DataFrame()
    if frame.empty:
        return pd.DataFrame(columns=["defense", "attack", "threat_model", "eps"])
    return frame[(frame["defense"] == BINARY_CNN) & (frame["threat_model"] == "l0")]


def _l0_section(frame: pd.DataFrame, out_dir: Path) -> list[str]:
    table = []
    binary_cnn = _binary_cnn(out_dir)
    rows = [(label, ROWS[label], frame, figure) for label, figure in ABS_PAPER_L0.items()]
    rows.append(("Binary CNN", BINARY_CNN, binary_cnn, BINARY_CNN_L0))
    for label, defense, source, figure in rows:
        worst = cell(source, defense, WORST, L0_EPS, "l0")
        table.append(
            {
                "model": label,
                "defense": f"`{defense}`",
                "ours: per-point worst case, %": percent_with_interval(worst),
                "median ε* (pixels)": _median_eps_star(source, defense, "l0"),
                "over": "–" if worst is None else str(worst["note"]).removeprefix("per-point worst case over "),
                "Schott et al., %": figure,
            }
        )
    attacks = ", ".join(f"`{attack}`" for attack in L0_ATTACKS)
    return [
        f"## ABS paper, L0 ε = {L0_EPS:g} pixels",
        "",
        f"The third column of Schott et al.'s table: at most {L0_EPS:g} changed pixels (`bench run --norm l0`; a "
        f"pixel counts once however much it changes). Attacks: {attacks} (Sparse-RS by score queries, FMN through "
        "the row's gradient, Pointwise's pixel resets by labels only), and on binary ABS the threshold-aware "
        "`quantized` on its declared binarisation; on the ABS rows at the smaller budgets listed at the end. The "
        f"binary CNN is the hard-threshold entry of `results/{BINARY_CNN_STORE}` (the quick `cnn` behind x ≥ 0.5, "
        "nothing declared), in that store. Schott et al. give no median L0 size; ours is the per-point minimum "
        "over the minimisation attacks (∞ when more than half the points withstood them all).",
        "",
        markdown_table(table),
        "",
    ]


def _newly_broken(frame: pd.DataFrame, defense: str, row: pd.Series | None) -> str:
    """How many points the attack of ``row`` breaks that every standard white-box attack left standing."""
    white = [r for r in (_row_cell(frame, defense, name) for name in WHITE_BOX) if r is not None]
    if row is None or not white or any(pd.isna(r["robust_points"]) for r in [row, *white]):
        return "–"
    n = int(row["n"])
    standing = np.logical_and.reduce([unpack_mask(r["robust_points"], n) for r in white])
    broken = standing & ~unpack_mask(row["robust_points"], n)
    return f"{int(broken.sum())} of {int(standing.sum())}"


def _abs_attacks_section(frame: pd.DataFrame) -> list[str]:
    table = []
    for defense in ABS_ROWS:
        for attack in [ABS_TRANSFER, *LABEL_ONLY, BPDA_PGD]:
            row = _row_cell(frame, defense, attack)
            if row is None:
                continue
            table.append(
                {
                    "defense": f"`{defense}`",
                    "attack": f"`{row['attack']}`",
                    "robust accuracy, %": percent_with_interval(row),
                    "points it breaks that the white-box attacks left standing": _newly_broken(frame, defense, row),
                }
            )
    white = ", ".join(f"`{attack}`" for attack in WHITE_BOX)
    return [
        f"## ABS rows attacked as Schott et al. attacked them (L∞, ε = {EPS})",
        "",
        f"The last column counts points that survived every standard white-box attack run on the row ({white}, "
        "those that ran) and fall to this one. `transfer:surrogate=abs`: PGD on an independently trained ABS "
        "(seed + 1000), evaluated on the target; `boundary`, `hsj` and `pointwise` see labels only (their budget "
        f"is in their label); `{BPDA_PGD}`: PGD through BPDA with steps of ε/4, large enough to carry a pixel "
        "across binary ABS's threshold at 0.5, from three random starts.",
        "",
        markdown_table(table) if table else "Not run yet.",
        "",
    ]


def _left_out_section(profile: str) -> list[str]:
    if profile == "paper":
        return []
    lines = [
        f"## Left out at the `{profile}` profile",
        "",
        "The `paper` profile runs these cells of the matrix too:",
        "",
    ]
    lines += [
        f"- `{defense}` × `{attack}` ({threat_model}): {why}."
        for (defense, attack, threat_model), why in LEFT_OUT.items()
    ]
    lines += ["", "These run with a smaller budget instead (the spec in the row says which):", ""]
    lines += [
        f"- `{defense}` × `{attack}` ({threat_model}) runs as `{spec}`: {why}."
        for (defense, attack, threat_model), (spec, why) in SHRUNK.items()
    ]
    return [*lines, ""]


def _status(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _checks(frame: pd.DataFrame) -> list[str]:
    """The targets, and every black-box column that beats the defense's best white-box attack."""
    lines = [f"## Checks at ε = {EPS}", ""]
    madry_pgd = cell(frame, "madry", "pgd", EPS)
    if madry_pgd is not None:
        clean, robust = madry_pgd["clean_accuracy"], madry_pgd["robust_accuracy"]
        lines.append(
            f"- `madry` clean accuracy ≥ {100 * MADRY_CLEAN:.0f} %: {100 * clean:.1f} %, "
            f"{_status(clean >= MADRY_CLEAN)}."
        )
        lines.append(
            f"- `madry` PGD-40 robust accuracy ≥ {100 * MADRY_PGD:.0f} %: {percent_with_interval(madry_pgd)}, "
            f"{_status(robust >= MADRY_PGD)}."
        )
    binary, plain = _lowest_white_box(frame, "binary-abs"), _lowest_white_box(frame, "abs")
    if binary is not None and plain is not None:
        above = binary["robust_accuracy_ci_low"] > plain["robust_accuracy_ci_high"]
        lines.append(
            f"- `binary-abs` clearly above `abs` (lowest white-box, intervals apart): {percent_with_interval(binary)} "
            f"vs {percent_with_interval(plain)}, {_status(above)}."
        )
    for label, defense in ROWS.items():
        white = _lowest_white_box(frame, defense)
        for attack in BLACK_BOX:
            row = _row_cell(frame, defense, attack)
            if white is not None and row is not None and row["robust_accuracy"] < white["robust_accuracy"]:
                lines.append(
                    f"- {label}: black-box `{attack}` ({percent_with_interval(row)}) goes below the best white-box "
                    f"attack (`{white['attack']}`, {percent_with_interval(white)}): the white-box number overstates "
                    "robustness; take the lower one."
                )
    return [*lines, ""]


def _with_budget_mark(row: pd.Series | None, attack: str) -> str:
    """The cell's accuracy, marked ``*`` when it ran with a smaller budget than the column's attack."""
    mark = "" if row is None or row["attack"] == attack else "*"
    return percent_with_interval(row) + mark


def _robustness_section(frame: pd.DataFrame) -> list[str]:
    table = []
    for label, defense in ROWS.items():
        entry = {"model": label}
        entry |= {
            attack: _with_budget_mark(_row_cell(frame, defense, attack), attack) for attack in WHITE_BOX + BLACK_BOX
        }
        entry["worst case"] = percent_with_interval(cell(frame, defense, WORST, EPS, "linf"))
        table.append(entry)
    return [
        f"## White-box and black-box robust accuracy at ε = {EPS}, % [95 % Wilson interval]",
        "",
        "`autoattack`: standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square) at the profile's budget; `transfer`: PGD "
        "on an independently trained surrogate CNN; `square`: score-based; `hsj`: decision-based (labels only, "
        "HopSkipJump batched over the points). A "
        "black-box number far above the white-box ones is expected; one *below* them would point at a weak "
        "white-box evaluation. `worst case`: per point over every attack run on the row at this ε, including the "
        "ABS rows' own attacks below. `–`: not run at this profile; `*`: run with a smaller budget (both listed at "
        "the end).",
        "",
        markdown_table(table),
        "",
    ]


def write(base: RunConfig, frame: pd.DataFrame, destination: Path, command: str) -> Path:
    lines = [
        "# Paper 001 reproduced: Parallel-GAN DQN and its baselines",
        "",
        *provenance(frame, command, Path(base.out_dir)),
        "",
        *_table_one(frame),
        *_abs_section(frame),
        *_l0_section(frame, Path(base.out_dir)),
        *_robustness_section(frame),
        *_abs_attacks_section(frame),
        *_checks(frame),
        *_left_out_section(base.profile.name),
        "## Rows",
        "",
        "\n".join(f"- {label}: `{spec}`" for label, spec in ROWS.items()),
        "",
    ]
    atomic_write_text(destination, "\n".join(lines))
    return destination


def report(base: RunConfig, command: str, compute: bool = True) -> Path:
    """Run (or resume) the matrix in the store of ``OUT`` (cells other runs computed are reused, never
    computed twice) and write ``OUT/paper001.md``."""
    return write(base, run(base, compute), Path(base.out_dir) / "paper001.md", command)
