"""Wall time of a whole ``bench run`` (``--defenses all --attacks fgsm,deepfool --profile quick``).

Three subprocess runs share a fresh, temporary checkpoint cache: *cold* (empty cache, fresh results
directory), *warm* (cached checkpoints, another fresh results directory: every cell is computed
again) and *stored* (the warm results directory again: every cell is already stored).  Hours on a
laptop CPU, so the section runs only when asked for by name.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmark.perf.measurements import FAILED, Measurement, wall_time
from benchmark.perf.workbench import Workbench, log

RUN_ARGS = ("run", "--defenses", "all", "--attacks", "fgsm,deepfool", "--profile", "quick", "--no-progress")
TASK = "bench " + " ".join(RUN_ARGS)
PHASES = ("cold", "warm", "stored")
#: ``spawn(argv, log_path) -> (seconds, exit status)``
Spawn = Callable[[list[str], Path], tuple[float, int]]


def spawn_bench(argv: list[str], log_path: Path) -> tuple[float, int]:
    """Run ``bench`` with ``argv`` in a subprocess (its stderr into ``log_path``); wall seconds and exit status."""
    with log_path.open("wb") as stderr:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "benchmark", *argv], stdout=subprocess.DEVNULL, stderr=stderr)
        return time.perf_counter() - start, result.returncode


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else ""


def run_rows(bench: Workbench, section: str, spawn: Spawn = spawn_bench) -> list[Measurement]:
    s = bench.settings
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-perf-run-") as tmp:
        root = Path(tmp)
        outs = {"cold": root / "cold", "warm": root / "warm", "stored": root / "warm"}
        for phase in PHASES:
            argv = [*RUN_ARGS, "--cache-dir", str(root / "cache"), "--out", str(outs[phase])]
            argv += ["--device", str(s.device), "--seed", str(s.seed)]
            argv += ["--data-dir", str(s.data_dir)] if s.data_dir else []
            argv += [] if s.download else ["--no-download"]
            argv += s.run_flags()
            log(f"{s.run_task(TASK)}: {phase} run")
            log_path = root / f"{phase}.log"
            seconds, status = spawn(argv, log_path)
            note = "" if status == 0 else f"{FAILED} (exit {status}): {_last_line(log_path)}"
            rows.append(wall_time(section, s.run_task(TASK), phase, bench.device_name, seconds, 1, note))
    return rows
