"""Start-up wall time of ``bench --help``, ``bench list`` and ``bench show`` on the committed store: what a
user waits for before anything runs (``show`` reads a store without importing torch).

Each call is a fresh ``python -m benchmark`` process (interpreter start and every import included).
The commands alternate round-robin after one untimed warm-up round, as the in-process tasks do.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmark.perf.measurements import FAILED, Measurement, wall_time
from benchmark.perf.run_wall import Spawn, _last_line, spawn_bench
from benchmark.perf.workbench import Workbench

#: The committed store (beside the package in a checkout) that ``bench show`` reads.
COMMITTED_STORE = Path(__file__).resolve().parents[2] / "results"
COMMANDS = (("--help",), ("list",), ("show", "--out", str(COMMITTED_STORE)))
TASKS = ("bench --help", "bench list", "bench show")
CONTENDER = "python -m benchmark"


def startup_rows(bench: Workbench, section: str, spawn: Spawn = spawn_bench) -> list[Measurement]:
    seconds: dict[str, list[float]] = {task: [] for task in TASKS}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-perf-startup-") as tmp:
        log_path = Path(tmp) / "stderr.log"
        for round_ in range(bench.settings.repeats + 1):  # round 0 warms the file cache up, untimed
            for task, argv in zip(TASKS, COMMANDS, strict=True):
                elapsed, status = spawn(list(argv), log_path)
                if status != 0:
                    notes.setdefault(task, f"{FAILED} (exit {status}): {_last_line(log_path)}")
                if round_ > 0:
                    seconds[task].append(elapsed)
    return [
        wall_time(
            section, task, CONTENDER, bench.device_name, statistics.median(times), len(times), notes.get(task, "")
        )
        for task, times in seconds.items()
    ]
