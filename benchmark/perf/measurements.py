"""Rows of ``perf.csv``: one per (section, task, contender), with the median and the ratio to a reference."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from benchmark.perf.timing import Timing

COLUMNS = (
    "section",
    "task",
    "contender",
    "device",
    "batch",
    "images_per_s_median",
    "seconds_median",
    "repeats",
    "ratio_to_reference",
    "note",
    "robust_accuracy",
    "median_perturbation",
    "identical_predictions",
)
#: The suite's sections; ``run`` (hours on a CPU) is left out unless asked for.
ATTACKS, DEEPFOOL, WORST, TRAINING, ABS, RUN = "attacks", "deepfool", "worst", "training", "abs", "run"
STARTUP = "startup"
SCALE = "scale"
DECISION = "decision"
#: The threshold-aware attack against the Pointwise Attacks on a binarised model (asked for by name).
QUANTIZED = "quantized"
#: The harness's AutoAttack against torchattacks' at the standard budgets (minutes on a CPU: asked for by name).
AUTOATTACK = "autoattack"
#: The harness's L0 attacks against the libraries' at 12 pixels (asked for by name).
SPARSE = "sparse"
SECTIONS = (ATTACKS, DEEPFOOL, WORST, DECISION, QUANTIZED, SPARSE, AUTOATTACK, TRAINING, ABS, STARTUP, SCALE, RUN)
DEFAULT_SECTIONS = (ATTACKS, DEEPFOOL, WORST, DECISION, TRAINING, ABS, STARTUP)
#: Sections that time MNIST-only defenses (paper 000's VAEs, ABS, every built-in defense's run).
MNIST_ONLY = (TRAINING, ABS, RUN)
#: Notes of measurements whose command failed start with this (their targets count as not met).
FAILED = "failed"


@dataclass(frozen=True)
class Measurement:
    section: str
    task: str
    contender: str
    device: str
    batch: float  # images per attacked/predicted batch, or per training step; NaN where it does not apply
    images_per_s_median: float
    seconds_median: float
    repeats: int
    ratio_to_reference: float  # images/s over the reference contender's (NaN without a reference)
    note: str = ""
    robust_accuracy: float = math.nan
    #: Median size of the perturbations a minimisation attack found (the ``decision`` section).
    median_perturbation: float = math.nan
    #: Share of the points on which the contender predicts what the reference contender predicts (``abs``).
    identical_predictions: float = math.nan


def wall_time(
    section: str, task: str, contender: str, device: str, seconds: float, repeats: int, note: str
) -> Measurement:
    """A measurement of a whole command's wall time (no batch, no images/s, no reference)."""
    return Measurement(section, task, contender, device, math.nan, math.nan, seconds, repeats, math.nan, note)


def from_timings(
    section: str,
    task: str,
    timings: list[Timing],
    *,
    device: str,
    batch: int,
    images: int | None = None,
    reference: str | None = None,
    robust_accuracy: dict[str, float] | None = None,
    note: str = "",
) -> list[Measurement]:
    """One measurement per timing; ``images`` processed per call (default ``batch``), ratios to ``reference``."""
    images = batch if images is None else images
    rates = {timing.name: images / timing.median for timing in timings}
    if reference is not None and reference not in rates:
        raise ValueError(f"reference {reference!r} is not among the contenders {list(rates)}")
    robust_accuracy = robust_accuracy or {}
    return [
        Measurement(
            section=section,
            task=task,
            contender=timing.name,
            device=device,
            batch=batch,
            images_per_s_median=rates[timing.name],
            seconds_median=timing.median,
            repeats=len(timing.seconds),
            ratio_to_reference=rates[timing.name] / rates[reference] if reference is not None else math.nan,
            note="; ".join(part for part in (note, timing.contender.note) if part),
            robust_accuracy=robust_accuracy.get(timing.name, math.nan),
        )
        for timing in timings
    ]


def to_frame(measurements: list[Measurement]) -> pd.DataFrame:
    return pd.DataFrame([asdict(m) for m in measurements], columns=list(COLUMNS))
