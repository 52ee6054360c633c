"""The issue's done-when targets, evaluated from the measurements (never from fixed numbers).

A target is *met* or *not met* from its rows, or *not measured* when its section did not run.
"Identical robust accuracy" of two PGD contenders means at most ``SAME_ROBUST_ACCURACY`` apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd

from benchmark.perf import abs_inference, decision, quantized, run_wall, scale, sparse, startup, training_speed
from benchmark.perf import attack_contenders as attacks
from benchmark.perf import measurements as sections
from benchmark.perf.measurements import FAILED

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"
SAME_ROBUST_ACCURACY = 0.01
PGD_RATIO_OFF, PGD_RATIO_ON = 0.95, 3.0
DEEPFOOL_RATIO_FOOLBOX, DEEPFOOL_RATIO_ART = 1.0, 3.0
TRAINING_SLOWDOWN = 1.1
DECISION_RATIO = 10.0
QUANTIZED_RATIO = 10.0
SPARSE_RATIO = 1.0
ABS_PAPER_RATIO = 1.2
RUN_SECONDS = {"cold": 30 * 60, "warm": 5 * 60, "stored": 10}
STARTUP_SECONDS = 2.0
#: (contender, reference, least ratio of cells/s) of the scaling section.
SCALING = [(scale.RAY_2, scale.RAY_1, 1.7), (scale.RAY_2, scale.LOCAL, 1.0), (scale.RAY_1, scale.LOCAL, 0.9)]


@dataclass(frozen=True)
class Target:
    target: str
    measured: str
    status: str


def _row(frame: pd.DataFrame, section: str, task: str, contender: str) -> pd.Series | None:
    rows = frame[(frame["section"] == section) & (frame["task"] == task) & (frame["contender"] == contender)]
    return None if rows.empty else rows.iloc[0]


def _status(ok: bool) -> str:
    return MET if ok else NOT_MET


def _pgd(frame: pd.DataFrame, contender: str, threshold: float, label: str) -> Target:
    target = f"harness PGD-40 ({label}) ≥ {threshold:g}× the hand loop on cnn, at identical robust accuracy"
    row, hand = (_row(frame, sections.ATTACKS, attacks.PGD_TASK, name) for name in (contender, attacks.HAND_LOOP))
    if row is None or hand is None:
        return Target(target, "–", NOT_MEASURED)
    ratio, accuracy, hand_accuracy = row["ratio_to_reference"], row["robust_accuracy"], hand["robust_accuracy"]
    same = abs(accuracy - hand_accuracy) <= SAME_ROBUST_ACCURACY
    measured = f"{ratio:.2f}× (robust accuracy {100 * accuracy:.1f} % vs hand loop {100 * hand_accuracy:.1f} %)"
    return Target(target, measured, _status(ratio >= threshold and same))


def _deepfool(frame: pd.DataFrame, other: str, threshold: float) -> Target:
    target = f"harness DeepFool ≥ {threshold:g}× {other}"
    row, reference = (_row(frame, sections.DEEPFOOL, attacks.DEEPFOOL_TASK, name) for name in (attacks.HARNESS, other))
    if row is None or reference is None:
        return Target(target, "–", NOT_MEASURED)
    ratio = row["images_per_s_median"] / reference["images_per_s_median"]
    return Target(target, f"{ratio:.2f}×", _status(ratio >= threshold))


def _faster_at_the_same_accuracy(
    frame: pd.DataFrame, target: str, section: str, task: str, contender: str, reference: str, faster: bool
) -> Target:
    """``contender``'s ratio to ``reference``'s images/s, met when above 1 (``faster``) or at least 1, at a robust
    accuracy within ``SAME_ROBUST_ACCURACY`` of the reference's."""
    row, base = (_row(frame, section, task, name) for name in (contender, reference))
    if row is None or base is None:
        return Target(target, "–", NOT_MEASURED)
    same = abs(row["robust_accuracy"] - base["robust_accuracy"]) <= SAME_ROBUST_ACCURACY
    ratio = row["ratio_to_reference"]
    measured = (
        f"{ratio:.2f}× (robust accuracy {100 * row['robust_accuracy']:.1f} % vs {100 * base['robust_accuracy']:.1f} %)"
    )
    return Target(target, measured, _status((ratio > 1 if faster else ratio >= 1) and same))


def _worst_case(frame: pd.DataFrame) -> Target:
    target = "worst case as a cascade faster than its attacks run separately, at identical robust accuracy"
    task = attacks.WORST_TASK
    return _faster_at_the_same_accuracy(frame, target, sections.WORST, task, attacks.CASCADE, attacks.SEPARATE, True)


def _autoattack(frame: pd.DataFrame) -> Target:
    target = "harness autoattack ≥ 1× torchattacks' AutoAttack points/s at the standard budgets, same robust accuracy"
    contenders = (attacks.HARNESS, attacks.TORCHATTACKS_STANDARD)
    return _faster_at_the_same_accuracy(frame, target, sections.AUTOATTACK, attacks.AUTOATTACK_TASK, *contenders, False)


def _decision(frame: pd.DataFrame) -> Target:
    target = f"batched hsj ≥ {DECISION_RATIO:g}× ART's HopSkipJump images/s at a median perturbation no larger"
    rows = frame[frame["section"] == sections.DECISION]
    harness, art = (rows[rows["contender"] == name] for name in (decision.HARNESS, decision.ART))
    if harness.empty or art.empty:
        return Target(target, "–", NOT_MEASURED)
    harness, art = harness.iloc[0], art.iloc[0]
    ratio = harness["ratio_to_reference"]
    sizes = harness["median_perturbation"], art["median_perturbation"]
    measured = f"{ratio:.1f}× (median L2 perturbation {sizes[0]:.3f} vs ART {sizes[1]:.3f})"
    return Target(target, measured, _status(ratio >= DECISION_RATIO and sizes[0] <= sizes[1] + 1e-9))


def _quantized(frame: pd.DataFrame) -> Target:
    target = (
        f"quantized (score queries) ≥ {QUANTIZED_RATIO:g}× the faster Pointwise's points/s on a binarised cnn, "
        "at a median ε* no larger"
    )
    rows = frame[frame["section"] == sections.QUANTIZED]
    ours = rows[rows["contender"] == quantized.SCORES]
    pointwise = rows[rows["contender"].isin([quantized.POINTWISE, quantized.FOOLBOX])]
    if ours.empty or len(pointwise) < 2:
        return Target(target, "–", NOT_MEASURED)
    ours, reference = ours.iloc[0], pointwise.sort_values("images_per_s_median").iloc[-1]
    ratio = ours["images_per_s_median"] / reference["images_per_s_median"]
    sizes = ours["median_perturbation"], reference["median_perturbation"]
    measured = f"{ratio:.1f}× {reference['contender']} (median ε* {sizes[0]:.3f} vs {sizes[1]:.3f})"
    return Target(target, measured, _status(ratio >= QUANTIZED_RATIO and sizes[0] <= sizes[1] + 1e-9))


def _sparse(frame: pd.DataFrame) -> Target:
    target = (
        f"sparse-rs ≥ {SPARSE_RATIO:g}× Foolbox L0FMN's points/s at L0 ε = {sparse.EPS}, at a robust accuracy no "
        f"higher (+{100 * SAME_ROBUST_ACCURACY:g} pt)"
    )
    rows = frame[frame["section"] == sections.SPARSE]
    ours, reference = (rows[rows["contender"] == name] for name in (sparse.SPARSE_RS, sparse.FOOLBOX_FMN))
    if ours.empty or reference.empty:
        return Target(target, "–", NOT_MEASURED)
    ours, reference = ours.iloc[0], reference.iloc[0]
    ratio = ours["ratio_to_reference"]
    accuracies = ours["robust_accuracy"], reference["robust_accuracy"]
    measured = f"{ratio:.2f}× (robust accuracy {100 * accuracies[0]:.1f} % vs {100 * accuracies[1]:.1f} %)"
    stronger = accuracies[0] <= accuracies[1] + SAME_ROBUST_ACCURACY
    return Target(target, measured, _status(ratio >= SPARSE_RATIO and stronger))


def _abs_paper(frame: pd.DataFrame) -> Target:
    target = f"ABS inference at the paper budget ≥ {ABS_PAPER_RATIO:g}× the plain decoder's, identical predictions"
    row = _row(frame, sections.ABS, abs_inference.PAPER_TASK, abs_inference.HARNESS)
    if row is None:
        return Target(target, "–", NOT_MEASURED)
    ratio, same = row["ratio_to_reference"], row["identical_predictions"]
    measured = f"{ratio:.2f}× ({100 * same:.1f} % of predictions identical)"
    return Target(target, measured, _status(ratio >= ABS_PAPER_RATIO and same == 1.0))


def _training(frame: pd.DataFrame, arch: str, mode: str) -> Target:
    task = training_speed.task_name(arch, mode)
    target = f"{task} training within {TRAINING_SLOWDOWN:g}× of the hand loop"
    row = _row(frame, sections.TRAINING, task, training_speed.HARNESS)
    if row is None or math.isnan(row["ratio_to_reference"]):
        return Target(target, "–", NOT_MEASURED)
    slowdown = 1 / row["ratio_to_reference"]
    return Target(target, f"{slowdown:.2f}× the hand loop's time", _status(slowdown <= TRAINING_SLOWDOWN))


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _run(frame: pd.DataFrame, phase: str) -> Target:
    limit = RUN_SECONDS[phase]
    target = f"`{run_wall.TASK}` {phase} ≤ {_duration(limit)}"
    row = _row(frame, sections.RUN, run_wall.TASK, phase)
    if row is None:
        return Target(target, "–", NOT_MEASURED)
    failed = str(row["note"]).startswith(FAILED)
    measured = _duration(row["seconds_median"]) + (f" ({row['note']})" if failed else "")
    return Target(target, measured, _status(not failed and row["seconds_median"] <= limit))


def _startup(frame: pd.DataFrame, task: str) -> Target:
    target = f"`{task}` in a fresh process < {STARTUP_SECONDS:g} s"
    row = _row(frame, sections.STARTUP, task, startup.CONTENDER)
    if row is None:
        return Target(target, "–", NOT_MEASURED)
    failed = str(row["note"]).startswith(FAILED)
    measured = f"{row['seconds_median']:.2f} s" + (f" ({row['note']})" if failed else "")
    return Target(target, measured, _status(not failed and row["seconds_median"] < STARTUP_SECONDS))


def _scaling(frame: pd.DataFrame, contender: str, reference: str, threshold: float) -> Target:
    target = f"`bench run` cells/s: {contender} ≥ {threshold:g}× {reference}"
    row, base = (_row(frame, sections.SCALE, scale.TASK, name) for name in (contender, reference))
    if row is None or base is None:
        return Target(target, "–", NOT_MEASURED)
    failed = [str(r["note"]) for r in (row, base) if str(r["note"]).startswith(FAILED)]
    if failed:
        return Target(target, failed[0], NOT_MET)
    ratio = row["images_per_s_median"] / base["images_per_s_median"]
    return Target(target, f"{ratio:.2f}×", _status(ratio >= threshold))


TARGETS: list[Callable[[pd.DataFrame], Target]] = [
    lambda f: _pgd(f, attacks.HARNESS, PGD_RATIO_OFF, "early stopping off"),
    lambda f: _pgd(f, attacks.HARNESS_EARLY_STOP, PGD_RATIO_ON, "early stopping on"),
    lambda f: _deepfool(f, attacks.FOOLBOX, DEEPFOOL_RATIO_FOOLBOX),
    lambda f: _deepfool(f, attacks.ART, DEEPFOOL_RATIO_ART),
    _worst_case,
    _decision,
    _quantized,
    _sparse,
    _autoattack,
    _abs_paper,
    *(lambda f, a=arch, m=mode: _training(f, a, m) for arch in training_speed.ARCHS for mode in training_speed.MODES),
    *(lambda f, t=task: _startup(f, t) for task in startup.TASKS),
    *(lambda f, p=phase: _run(f, p) for phase in run_wall.PHASES),
    *(lambda f, c=contender, r=reference, t=least: _scaling(f, c, r, t) for contender, reference, least in SCALING),
]


def evaluate_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per target: what it asks, what was measured, and met / not met / not measured."""
    return pd.DataFrame([asdict(evaluate(frame)) for evaluate in TARGETS], columns=["target", "measured", "status"])
