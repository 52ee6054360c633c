"""Bad input: one line on stderr, exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--defenses", "cnn,resnet"], "unknown defense 'resnet'; valid: abs, adv-vae, binary-abs, cnn"),
        (["--attacks", "fgsm,cw"], "unknown attack 'cw'; valid: advlib.alma, advlib.apgd"),
        (["--eps", "1.5"], "epsilon 1.5 is outside [0, 1]"),
        (["--eps", "0.1,abc"], "epsilon 'abc' is not a number"),
        (["--defenses", ""], "no defense selected"),
        (["--attacks", ","], "no attack selected"),
        (["--profile", "huge"], "unknown profile 'huge'; valid: smoke, quick, paper"),
        (["--repeats", "0"], "--repeats must be between 1 and 1,000"),
        (["--attacks", "pgd:steps=-1"], "steps must be at least 1"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--seed", "x"], "invalid int value"),
    ],
)
def test_bad_run_arguments(bench, tmp_path, args, message):
    code, _, stderr = bench("run", "--attacks", "fgsm", *args, "--out", str(tmp_path))
    assert code == 2
    assert stderr.startswith("bench: error: ") and message in stderr and stderr.count("\n") == 1


def test_unwritable_out_dir(bench, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, stderr = bench("run", "--defenses", "cnn", "--out", str(blocker / "out"))
    assert code == 2 and f"cannot write to --out {blocker / 'out'}" in stderr


def test_missing_data_exits_2_naming_the_directory_and_flag(tmp_path):
    env = {**os.environ, "BENCH_OFFLINE": "1", "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark",
            "run",
            "--defenses",
            "cnn",
            "--attacks",
            "fgsm",
            "--profile",
            "smoke",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "out"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert f"MNIST not found in {tmp_path / 'empty'}" in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_reports_regressions_and_missing_cells(bench, tmp_path):
    out = tmp_path / "out"
    assert bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1,0.2", "--out", str(out))[0] == 0
    code, stdout, _ = bench("check", "--baseline", str(out / "leaderboard.csv"), "--run", str(out))
    assert code == 0 and "4 cells compared, 0 regressions, 0 missing" in stdout  # 2 cells + 2 worst-case rows

    baseline = leaderboard(out)
    baseline.loc[(baseline["eps"] == 0.1) & (baseline["attack"] == "fgsm"), "robust_accuracy"] = 1.0
    extra = baseline.iloc[[0]].assign(defense="vae")
    higher = tmp_path / "baseline.csv"
    pd.concat([baseline, extra]).to_csv(higher, index=False)
    code, stdout, _ = bench("check", "--baseline", str(higher), "--run", str(out))
    assert code == 1
    regression_lines = [line for line in stdout.splitlines() if "| cnn " in line and "| fgsm " in line]
    assert "Regressions" in stdout and len(regression_lines) == 1 and "| 0.100 |" in regression_lines[0]
    assert "missing from the run" in stdout and "1 regressions, 1 missing" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--baseline", "nope.csv"], "baseline nope.csv does not exist"),
        (["check", "--baseline", "README.md", "--floor", "2"], "--floor must lie in [0, 1]"),
        (["show", "--out", "/nonexistent"], "no results in /nonexistent/cells"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_other_commands(bench, args, message):
    code, _, stderr = bench(*args)
    assert code == 2 and message in stderr
