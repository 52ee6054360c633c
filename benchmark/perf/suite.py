"""``run_perf``: run the chosen sections in order, rewriting ``perf.csv`` / ``perf.md`` after each one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchmark.datasets.base import DATASETS, DEFAULT_DATASET
from benchmark.perf import measurements as sections
from benchmark.perf.abs_inference import abs_rows
from benchmark.perf.attack_contenders import (
    AUTOATTACK_TASK,
    DEEPFOOL_TASK,
    FGSM_TASK,
    PGD_TASK,
    WORST_TASK,
    attack_rows,
)
from benchmark.perf.decision import decision_rows
from benchmark.perf.measurements import Measurement
from benchmark.perf.quantized import quantized_rows
from benchmark.perf.report import write_report
from benchmark.perf.run_wall import run_rows
from benchmark.perf.scale import scale_rows
from benchmark.perf.sparse import sparse_rows
from benchmark.perf.startup import startup_rows
from benchmark.perf.training_speed import training_rows
from benchmark.perf.workbench import PerfSettings, Workbench
from foundation import allocator
from foundation.errors import BenchError

SECTION_RUNNERS: dict[str, Callable[[Workbench, str], list[Measurement]]] = {
    sections.ATTACKS: lambda bench, name: attack_rows(bench, name, [PGD_TASK, FGSM_TASK]),
    sections.DEEPFOOL: lambda bench, name: attack_rows(bench, name, [DEEPFOOL_TASK]),
    sections.WORST: lambda bench, name: attack_rows(bench, name, [WORST_TASK]),
    sections.DECISION: decision_rows,
    sections.QUANTIZED: quantized_rows,
    sections.SPARSE: sparse_rows,
    sections.AUTOATTACK: lambda bench, name: attack_rows(bench, name, [AUTOATTACK_TASK]),
    sections.TRAINING: training_rows,
    sections.ABS: abs_rows,
    sections.STARTUP: startup_rows,
    sections.SCALE: scale_rows,
    sections.RUN: run_rows,
}


def parse_sections(text: str | None, dataset: str = DEFAULT_DATASET) -> tuple[str, ...]:
    """``attacks,deepfool`` -> the sections in the suite's order; None -> the default sections (no ``run``,
    no ``scale``).  Sections built on MNIST-only defenses are refused on other datasets, or left out of the
    default sections there."""
    DATASETS.get(dataset)
    if text is None:
        if dataset == DEFAULT_DATASET:
            return sections.DEFAULT_SECTIONS
        return tuple(section for section in sections.DEFAULT_SECTIONS if section not in sections.MNIST_ONLY)
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(sections.SECTIONS))
    if unknown:
        raise BenchError(f"unknown perf section {unknown[0]!r}; valid: {', '.join(sections.SECTIONS)}")
    if not chosen:
        raise BenchError(f"no perf section selected; valid: {', '.join(sections.SECTIONS)}")
    mnist_only = sorted(chosen & set(sections.MNIST_ONLY))
    if dataset != DEFAULT_DATASET and mnist_only:
        raise BenchError(
            f"perf section {mnist_only[0]!r} times MNIST-only defenses; run it with --dataset mnist, or choose "
            f"among {', '.join(s for s in sections.SECTIONS if s not in sections.MNIST_ONLY)}"
        )
    return tuple(section for section in sections.SECTIONS if section in chosen)


def kept_rows(csv_path: Path, chosen: tuple[str, ...]) -> list[Measurement]:
    """Rows of an earlier ``perf.csv`` for the sections not measured now (e.g. ``run``, measured on its own)."""
    if not csv_path.exists():
        return []
    try:
        frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
        frame["note"] = frame["note"].fillna("").astype(str)
        present = [column for column in sections.COLUMNS if column in frame]  # older files lack newer columns
        rows = [Measurement(**record) for record in frame[present].to_dict("records")]
    except (ValueError, KeyError, TypeError, pd.errors.ParserError) as error:
        raise BenchError(f"{csv_path} is not a perf CSV ({error}); remove it or choose another --out") from None
    return [row for row in rows if row.section in sections.SECTIONS and row.section not in chosen]


def run_perf(settings: PerfSettings, chosen: tuple[str, ...], out_dir: Path, command: str) -> tuple[Path, Path]:
    """Measure ``chosen`` sections, keeping an earlier ``perf.csv``'s other sections; returns the two paths.

    Both files are rewritten after every section, so an interrupted suite keeps what it measured.
    """
    allocator.tune()
    bench = Workbench(settings)
    kept = kept_rows(Path(out_dir) / "perf.csv", chosen)
    measured: list[Measurement] = []
    paths = Path(out_dir) / "perf.csv", Path(out_dir) / "perf.md"
    for section in chosen:
        measured += SECTION_RUNNERS[section](bench, section)
        paths = write_report(
            sort_rows(kept + measured),
            out_dir,
            settings.device,
            command,
            settings.repeats,
            kept=tuple(dict.fromkeys(row.section for row in kept)),
        )
    return paths


def sort_rows(rows: list[Measurement]) -> list[Measurement]:
    """Sections in the suite's order (the order of rows within a section is kept)."""
    return sorted(rows, key=lambda row: sections.SECTIONS.index(row.section))
