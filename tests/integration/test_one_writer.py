"""One writer per store: concurrent runs share the work, and SIGTERM keeps every finished cell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.store.result_store import ResultStore

pytestmark = pytest.mark.integration


def bench_process(mnist_dir: Path, out: Path, cache: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchmark", "run", "--profile", "smoke", "--no-progress"]
    command += ["--data-dir", str(mnist_dir), "--no-download", "--out", str(out), "--cache-dir", str(cache), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_concurrent_runs_train_each_checkpoint_and_compute_each_cell_once(mnist_dir, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    matrix = ["--defenses", "cnn", "--attacks", "fgsm,pgd,deepfool", "--eps", "0.1,0.3"]
    runs = [bench_process(mnist_dir, out, cache, *matrix) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    stderr = "".join(err for _, err in outputs)
    assert stderr.count("cnn: training") == 1
    assert stderr.count("cnn: loaded cached checkpoint") == 1  # the second run waited, then loaded it
    computed = [line for line in stderr.splitlines() if "robust accuracy" in line]
    assert len(computed) == 6 and len(set(computed)) == 6  # every cell exactly once, between both runs
    assert sum(int(out_.split(" cells computed")[0].split()[-1]) for out_, _ in outputs) == 6
    assert len(ResultStore(out).records()) == 6


def test_sigterm_exits_143_keeping_finished_cells_and_rewriting_the_leaderboard(mnist_dir, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    slow = ["--defenses", "cnn", "--attacks", "fgsm,pgd:steps=400:early_stop=false", "--eps", "0.1,0.2,0.3"]
    run = bench_process(mnist_dir, out, cache, *slow)
    deadline = time.monotonic() + 300
    for line in run.stderr:  # wait for the first finished cell
        if "robust accuracy" in line or time.monotonic() > deadline:
            break
    run.send_signal(signal.SIGTERM)
    _, rest = run.communicate(timeout=120)
    assert run.returncode == 143
    message = rest.strip().splitlines()[-1]
    assert message.startswith("bench: terminated (SIGTERM); ") and "Rerun the same command to resume" in message
    kept = len(ResultStore(out).records())
    assert 1 <= kept < 6 and f"{kept} finished cells are kept" in message
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board[board["attack"] != "worst"]) == kept
    assert "Traceback" not in rest
