"""Scaling of ``bench run`` over executors: local vs Ray with 1 and 2 workers on a two-node local cluster.

One matrix of ``CELLS`` CPU-bound cells (the ``cnn`` at the smoke profile, PGD-40 without early
stopping at twelve ε), its checkpoint trained beforehand and untimed.  Each contender is a fresh
``bench run`` process into a fresh results directory (interpreter start, imports and connecting to
the cluster included: what a user waits for).  The cluster is real and started for the section: a
head (``ray start --head``) and a second node (``ray start --address``) on this machine, one CPU each,
so that nothing relies on one process by accident.  Ray's overhead per task is measured apart, as the
round trip of an empty task on that cluster.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmark.perf.measurements import FAILED, Measurement, wall_time
from benchmark.perf.run_wall import Spawn, _last_line, spawn_bench
from benchmark.perf.workbench import Workbench, log
from foundation.errors import BenchError

CELLS = 12
RUN = ("run", "--defenses", "cnn", "--profile", "smoke", "--no-progress")
MATRIX = (*RUN, "--attacks", "pgd:steps=40:early_stop=false", "--eps", "0.05:0.6:0.05")
#: Trains the checkpoint the matrix uses (one cheap cell), before anything is timed.
WARM_UP = (*RUN, "--attacks", "fgsm", "--eps", "0.1")
TASK = f"bench run: {CELLS} cells (cnn, PGD-40, smoke)"
OVERHEAD_TASK = "Ray overhead per task"
LOCAL, RAY_1, RAY_2 = "local", "ray, 1 worker", "ray, 2 workers"
CONTENDERS = {LOCAL: (), RAY_1: ("--executor", "ray", "--workers", "1"), RAY_2: ("--executor", "ray", "--workers", "2")}
NODE_CPUS = 1
EMPTY_TASKS = 50


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"`ray {' '.join(args)}` failed (exit {result.returncode}): {last}")


class TwoNodeCluster:
    """A Ray head and a second node on this machine, started on entry and stopped on exit."""

    def __enter__(self) -> str:
        # The head enables Ray's token authentication; the second node and every driver present its token.
        self.auth_mode = os.environ.get("RAY_AUTH_MODE")
        os.environ["RAY_AUTH_MODE"] = "token"
        self.address = f"127.0.0.1:{_free_port()}"
        port = self.address.split(":")[1]
        _ray("start", "--head", "--port", port, "--num-cpus", str(NODE_CPUS), "--include-dashboard=false")
        _ray("start", "--address", self.address, "--num-cpus", str(NODE_CPUS))
        return self.address

    def __exit__(self, *exc: object) -> None:
        _ray("stop", "--force")
        if self.auth_mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = self.auth_mode


def task_overhead(address: str) -> float:
    """Median seconds of one empty task's round trip (submit, schedule, run, fetch) on the cluster."""
    import ray

    ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        empty = ray.remote(num_cpus=1)(lambda: None)
        ray.get(empty.remote())  # the first call starts a worker process: not part of the per-task cost
        seconds = []
        for _ in range(EMPTY_TASKS):
            start = time.perf_counter()
            ray.get(empty.remote())
            seconds.append(time.perf_counter() - start)
        return statistics.median(seconds)
    finally:
        ray.shutdown()


def scale_rows(bench: Workbench, section: str, spawn: Spawn = spawn_bench) -> list[Measurement]:
    s = bench.settings
    common = ["--device", "cpu", "--seed", str(s.seed), "--dataset", s.dataset]
    common += ["--data-dir", str(s.data_dir)] if s.data_dir else []
    common += [] if s.download else ["--no-download"]
    common += s.run_flags()
    task = s.run_task(TASK)
    measured: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-perf-scale-") as tmp:
        root = Path(tmp)
        common += ["--cache-dir", str(root / "cache")]
        log(f"{task}: training the cnn checkpoint (untimed)")
        spawn([*WARM_UP, *common, "--out", str(root / "warm-up")], root / "warm-up.log")
        with TwoNodeCluster() as address:
            for index, (name, flags) in enumerate(CONTENDERS.items()):
                log(f"{task}: {name}")
                where = ["--ray-address", address] if flags else []
                log_path = root / f"contender-{index}.log"
                seconds, status = spawn([*MATRIX, *flags, *where, *common, "--out", str(root / str(index))], log_path)
                note = f"{FAILED} (exit {status}): {_last_line(log_path)}" if status else "images/s column: cells/s"
                measured.append(wall_time(section, task, name, bench.device_name, seconds, 1, note))
            overhead = task_overhead(address)
    local_rate = CELLS / measured[0].seconds_median
    rows = [
        replace(
            row,
            batch=CELLS,
            images_per_s_median=(rate := CELLS / row.seconds_median),
            ratio_to_reference=rate / local_rate,
        )
        for row in measured
    ]
    note = f"median round trip of an empty task, {EMPTY_TASKS} tasks"
    return [*rows, wall_time(section, OVERHEAD_TASK, "ray", bench.device_name, overhead, EMPTY_TASKS, note)]
