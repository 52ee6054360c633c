"""A hostile user's inputs: each gets one line `bench: error: …`, exit 2, no traceback, and loses nothing.

Every case runs against an output directory that already holds a finished cell; afterwards the cell,
its bytes unchanged, must still be there.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from tests.synthetic import cell_record, masked_cell_record

pytestmark = pytest.mark.integration

KEPT_KEY = "0123456789abcdef"
KEPT_RECORD = cell_record(KEPT_KEY)
LEADERBOARD = (
    "profile,defense,attack,eps,status,robust_accuracy,robust_accuracy_ci_low,robust_accuracy_ci_high\n"
    "smoke,cnn,fgsm,0.1,ok,{value},0.2,0.8\n"
)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A results directory holding one finished cell."""
    cells = tmp_path / "out" / "cells"
    cells.mkdir(parents=True)
    (cells / f"{KEPT_KEY}.json").write_text(json.dumps(KEPT_RECORD))
    return tmp_path / "out"


def bad_mnist(tmp_path: Path, mnist_dir: Path, damage: str) -> Path:
    """A copy of the real MNIST files with one file damaged."""
    raw = tmp_path / "bad-mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (raw / name).symlink_to(mnist_dir / "MNIST" / "raw" / name)
    labels = bytearray((mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").read_bytes())
    if damage == "truncated":
        labels = labels[:-10]
    elif damage == "header":
        labels[:4] = struct.pack(">i", 12345)
    elif damage == "labels":
        labels[8 + 5] = 12
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    return raw.parent.parent


CASES = {
    # ε lists and ranges
    "huge epsilon range": (["run", "--eps", "0:1:0.000001"], "has 1,000,001 values; at most 100"),
    "denormal epsilon step": (["run", "--eps", "0:0.3:1e-320"], "has over 1e308 values; at most 100"),
    "epsilon span of 1e308": (["run", "--eps", "0:1e308:1e-308"], "has over 1e308 values; at most 100"),
    "too many epsilons": (["run", "--eps", ",".join(f"{i / 1000}" for i in range(101))], "at most 100"),
    "epsilon above 1": (["run", "--eps", "1.5"], "epsilon 1.5 is outside [0, 1]"),
    "epsilon not a number": (["run", "--eps", "0.1,abc"], "epsilon 'abc' is not a number"),
    "epsilon nan": (["run", "--eps", "nan"], "is not a finite number"),
    "empty epsilon list": (["run", "--eps", ","], "no epsilon given"),
    "backwards range": (["run", "--eps", "0.3:0.1:0.1"], "needs start <= stop"),
    "range of two parts": (["run", "--eps", "0:0.3"], "must be start:stop:step"),
    # budgets and seeds
    "billion repeats": (["run", "--repeats", "1000000000"], "--repeats must be between 1 and 1,000"),
    "zero repeats": (["run", "--repeats", "0"], "--repeats must be between 1 and 1,000"),
    "billion EOT samples": (["run", "--eot-samples", "1000000000"], "--eot-samples must be between 1 and 1,000"),
    "huge seed": (["run", "--seed", "99999999999999999999999"], "--seed must be between 0 and"),
    "negative seed": (["run", "--seed", "-1"], "--seed must be between 0 and"),
    "seed not a number": (["run", "--seed", "x"], "invalid int value"),
    "zero max cells": (["run", "--max-cells", "0"], "--max-cells must be at least 1"),
    "plan above the cell limit": (
        ["run", "--defenses", "cnn", "--attacks", "fgsm,pgd", "--eps", "0:0.3:0.01", "--max-cells", "20"],
        "the plan has 62 cells to compute, above the limit of 20",
    ),
    "everything at a fine grid": (
        ["run", "--defenses", "all", "--attacks", "all", "--eps", "0:0.99:0.01"],
        "above the limit of 500; select fewer defenses, attacks or epsilons, or pass --max-cells",
    ),
    # names, typos and options
    "attack typo": (["run", "--attacks", "fgms"], "unknown attack 'fgms'; did you mean 'fgsm'?"),
    "defense typo": (["run", "--defenses", "cnnn"], "unknown defense 'cnnn'; did you mean 'cnn'?"),
    "profile typo": (["run", "--profile", "smok"], "unknown profile 'smok'; did you mean 'smoke'?"),
    "option typo": (["run", "--attacks", "pgd:step=3"], "did you mean 'steps'?"),
    "option not a number": (["run", "--attacks", "pgd:steps=abc"], "must be a number (int); got 'abc'"),
    "option without a value": (["run", "--attacks", "pgd:steps"], "is not of the form key=value"),
    "option out of its choices": (["run", "--defenses", "vae:arch=resnet"], "must be one of fc, cnn"),
    "option out of range": (["run", "--attacks", "pgd:steps=-1"], "steps must be at least 1"),
    "option nan": (["run", "--attacks", "pgd:rel_stepsize=nan"], "rel_stepsize of attack 'pgd' must be a finite"),
    "option inf": (["run", "--attacks", "pgd:rel_stepsize=inf"], "must be a finite number; got 'inf'"),
    "option -inf": (["run", "--defenses", "madry:epochs=-inf"], "must be a number (int); got '-inf'"),
    "repeated option": (["run", "--attacks", "pgd:steps=10:steps=20"], "option 'steps' is given twice"),
    "no defense": (["run", "--defenses", ""], "no defense selected"),
    "unknown device": (["run", "--device", "tpu"], "unknown device 'tpu'"),
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    # perf options
    "unknown perf section": (["perf", "--sections", "nonsense"], "nonsense"),
    "zero perf repeats": (["perf", "--repeats", "0"], "--repeats must be between 1 and 1,000"),
    "zero batch size": (["perf", "--batch-size", "0"], "--batch-size must be between 1 and 100,000"),
    # check and its baseline
    "baseline missing": (["check", "--baseline", "nope.csv"], "baseline nope.csv does not exist"),
    "floor out of range": (["check", "--baseline", "README.md", "--floor", "2"], "--floor must lie in [0, 1]"),
}


@pytest.mark.parametrize(("args", "message"), CASES.values(), ids=CASES.keys())
def test_bad_input_gets_one_line_exit_2_and_loses_nothing(bench, out, args, message):
    if args[0] in ("run", "perf"):
        args = [*args, "--out", str(out)]
    assert_refused(bench(*args), message, out)


def assert_refused(result: tuple[int, str, str], message: str, out: Path) -> None:
    code, _, stderr = result
    assert code == 2, stderr
    assert stderr.startswith("bench: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr and "Traceback" not in stderr
    assert json.loads((out / "cells" / f"{KEPT_KEY}.json").read_text()) == KEPT_RECORD


@pytest.mark.parametrize(
    ("value", "message"),
    [("high", "'high' is not a number in [0, 1]"), ("", "column robust_accuracy"), ("1.7", "1.7")],
    ids=["non-numeric", "blank", "above 1"],
)
def test_a_bad_baseline_value_is_named_by_row_and_column(bench, out, tmp_path, value, message):
    baseline = tmp_path / "baseline.csv"
    baseline.write_text(LEADERBOARD.format(value=value))
    (out / "leaderboard.csv").write_text(LEADERBOARD.format(value=0.5))
    code, stdout, stderr = bench("check", "--baseline", str(baseline), "--run", str(out))
    assert_refused((code, stdout, stderr), message, out)
    assert "line 2" in stderr


def test_a_negative_baseline_epsilon_is_a_bad_value_not_a_missing_cell(bench, out, tmp_path):
    baseline = tmp_path / "baseline.csv"
    baseline.write_text(LEADERBOARD.format(value=0.5).replace(",0.1,ok,", ",-3,ok,"))
    (out / "leaderboard.csv").write_text(LEADERBOARD.format(value=0.5))
    result = bench("check", "--baseline", str(baseline), "--run", str(out))
    assert_refused(result, "line 2, column eps: '-3' is negative", out)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncated", "t10k-labels-idx1-ubyte is truncated"),
        ("header", "t10k-labels-idx1-ubyte"),
        ("labels", "t10k-labels-idx1-ubyte"),
    ],
)
def test_damaged_mnist_names_the_file(out, tmp_path, mnist_dir, capsys, damage, message):
    data = bad_mnist(tmp_path, mnist_dir, damage)
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--profile", "smoke", "--no-download", "--no-progress"]
    code = main([*argv, "--out", str(out), "--data-dir", str(data), "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert_refused((code, captured.out, captured.err), message, out)


@pytest.mark.parametrize(
    "text",
    ["{}", "[1, 2]", '{"cell_key": ', json.dumps({**KEPT_RECORD, "cell_key": "fedcba9876543210"})],
    ids=["empty object", "list", "unparsable", "filed under another key"],
)
def test_invalid_records_are_named_skipped_and_kept(bench, out, text):
    bad = out / "cells" / "1111111111111111.json"
    bad.write_text(text)
    code, stdout, stderr = bench("show", "--out", str(out))
    assert code == 0 and "| cnn " in stdout
    assert stderr.startswith("bench: warning: skipped 1 invalid record(s)") and "1111111111111111.json" in stderr
    assert stderr.count("\n") == 1 and bad.read_text() == text  # a reader never moves or deletes


def test_a_run_moves_an_invalid_record_aside_and_recomputes_its_cell(bench, tmp_path):
    out = tmp_path / "out"
    assert bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(out))[0] == 0
    (path,) = (out / "cells").glob("*.json")
    original = json.loads(path.read_text())
    path.write_text(json.dumps({**original, "robust_accuracy": "0.5"}))
    code, stdout, stderr = bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(out))
    assert code == 0 and "1 cells computed" in stdout
    assert f"invalid record cells/{path.name}: robust_accuracy is '0.5'" in stderr
    assert json.loads((out / "rejected" / "cells" / path.name).read_text())["robust_accuracy"] == "0.5"
    recomputed = json.loads(path.read_text())
    assert recomputed["robust_accuracy"] == original["robust_accuracy"]


def test_unwritable_out_dir(bench, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, stderr = bench("run", "--out", str(blocker / "out"))
    assert code == 2 and f"cannot write to --out {blocker / 'out'}" in stderr and stderr.count("\n") == 1
    shutil.rmtree(tmp_path)


# A store whose masks can lie ---------------------------------------------------------------------------------------
def lying_store(out: Path) -> Path:
    """A store of cnn and madry under fgsm at 0.3 whose madry record's mask says every point survived while its
    robust accuracy is 0; returns the lying record's path."""
    honest = masked_cell_record(1, "cnn", "fgsm", 0.3, [True] * 4 + [False] * 4)
    lying = masked_cell_record(2, "madry", "fgsm", 0.3, [False] * 8, robust_points="ff")
    for record in (honest, lying):
        (out / "cells" / f"{record['cell_key']}.json").write_text(json.dumps(record))
    return out / "cells" / f"{lying['cell_key']}.json"


LIE = "robust_points marks 8 of 8 points robust, but robust_accuracy 0.0 means 0"


def test_a_lying_mask_is_left_out_of_show_with_its_reason(bench, out):
    lying_store(out)
    code, stdout, stderr = bench("show", "--out", str(out))
    assert code == 0 and "| cnn " in stdout and "madry" not in stdout
    assert stderr.startswith("bench: warning: skipped 1 invalid record(s)") and LIE in stderr
    assert stderr.count("\n") == 1


def test_a_lying_mask_is_never_compared(bench, out):
    lying_store(out)
    code, _, stderr = bench("compare", "cnn", "madry", "--attack", "fgsm", "--eps", "0.3", "--out", str(out))
    warning, error = stderr.splitlines()
    assert code == 2 and LIE in warning and error.startswith("bench: error: ") and "'madry'" in error
    assert "more robust" not in stderr and "Traceback" not in stderr


def test_check_leaves_out_the_rows_of_a_lying_mask_and_their_worst_case(bench, out, tmp_path):
    lying = lying_store(out)
    lying.write_text(json.dumps(json.loads(lying.read_text()) | {"robust_points": "00"}))
    assert bench("report", "leaderboard", "--out", str(out))[0] == 0  # an honest leaderboard, then the lie
    baseline = tmp_path / "baseline.csv"
    shutil.copy(out / "leaderboard.csv", baseline)
    lying.write_text(json.dumps(json.loads(lying.read_text()) | {"robust_points": "ff"}))
    code, stdout, stderr = bench("check", "--baseline", str(baseline), "--run", str(out))
    assert code == 1 and LIE in stderr
    assert "2 regressions" not in stdout and "0 regressions, 2 missing" in stdout  # madry × fgsm and its worst row


def test_a_run_moves_a_lying_mask_aside_and_verify_skips_it(bench, tmp_path):
    out = tmp_path / "out"
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(out)]
    assert bench(*argv, "--save-adversarials")[0] == 0
    (path,) = (out / "cells").glob("*.json")
    original = json.loads(path.read_text())
    n = original["n"]
    path.write_text(json.dumps(original | {"robust_points": "ff" * (n // 8) + ("" if n % 8 == 0 else "00")}))
    code, _, stderr = bench("verify", "--out", str(out), "--cache-dir", str(tmp_path / "unused"))
    assert code == 2 and "robust_points marks" in stderr.splitlines()[0] and "Traceback" not in stderr
    assert stderr.splitlines()[1].startswith("bench: error: no cell in")
    code, stdout, stderr = bench(*argv)
    assert code == 0 and "1 cells computed" in stdout
    assert f"invalid record cells/{path.name}: robust_points marks" in stderr
    assert (out / "rejected" / "cells" / path.name).is_file()
    assert json.loads(path.read_text())["robust_points"] == original["robust_points"]


# The API --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("epsilons", "message"), [("0.3,x", "'x' is not a number"), ((5,), "epsilon 5 is outside")])
def test_evaluate_refuses_a_bad_epsilon_before_anything_runs(tmp_path, epsilons, message):
    from torch import nn

    import benchmark

    with pytest.raises(benchmark.BenchError, match=message):
        benchmark.evaluate(
            nn.Linear(784, 10), epsilons=epsilons, cache_dir=tmp_path / "cache", out_dir=tmp_path / "out"
        )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


# The store and its paths ------------------------------------------------------------------------------------------
DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize(
    ("damage", "problem"),
    [("deep", "nests its values too deeply to be a record"), ("folder", "cannot be read (Is a directory)")],
)
def test_a_deeply_nested_record_or_a_folder_among_the_records_is_an_invalid_record(bench, out, damage, problem):
    bad = out / "cells" / "1111111111111111.json"
    bad.mkdir() if damage == "folder" else bad.write_text(DEEP)
    for command in (["show"], ["report", "html"], ["compare", "cnn", "cnn2"]):
        code, _, stderr = bench(*command, "--out", str(out))
        assert f"1111111111111111.json: {problem}" in stderr.splitlines()[0] and "Traceback" not in stderr
        assert code in (0, 2) and stderr.count("\n") <= 2


@pytest.mark.parametrize(
    ("damage", "problem"),
    [("deep", "nests its values too deeply to be a record"), ("folder", "cannot be read (Is a directory)")],
)
def test_a_run_moves_a_deeply_nested_record_or_a_folder_aside(bench, tmp_path, damage, problem):
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    bad = out / "cells" / "1111111111111111.json"
    bad.mkdir() if damage == "folder" else bad.write_text(DEEP)
    code, stdout, stderr = bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(out))
    assert code == 0 and "1 cells computed" in stdout and f"{bad.name}: {problem}; moved to" in stderr
    moved = out / "rejected" / "cells" / bad.name
    assert moved.is_dir() if damage == "folder" else moved.read_text() == DEEP
    assert not bad.exists()


@pytest.mark.parametrize(
    ("name", "make", "wrong"),
    [
        ("leaderboard.csv", Path.mkdir, "is a folder, but bench writes a file there"),
        ("site", Path.touch, "is a file, but bench keeps a folder there"),
        ("json", Path.touch, "is a file, but bench keeps a folder there"),
        ("cells", Path.touch, "is a file, but bench keeps a folder there"),
    ],
)
def test_a_folder_where_a_file_goes_or_the_reverse_stops_the_run_before_it_computes(bench, tmp_path, name, make, wrong):
    out = tmp_path / "out"
    out.mkdir()
    make(out / name)
    code, stdout, stderr = bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(out))
    assert code == 2 and stderr == f"bench: error: {out / name} {wrong}; move it away or pick another --out\n"
    assert "computed" not in stdout and not (out / "clean").exists()


def test_a_folder_where_a_checkpoint_goes_is_one_line(bench, tmp_path, shared_cache):
    assert bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(tmp_path / "a"))[0] == 0
    (checkpoint,) = shared_cache.glob("cnn-*.pt")
    cache = tmp_path / "cache"
    (cache / checkpoint.name).mkdir(parents=True)
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(tmp_path / "b")]
    code, _, stderr = bench(*argv, "--cache-dir", str(cache))
    assert code == 2 and stderr.splitlines()[-1] == (
        f"bench: error: {cache / checkpoint.name} is a folder where the checkpoint of cnn belongs; move it away "
        "(or pick another --cache-dir)"
    )
    assert "Traceback" not in stderr and (cache / checkpoint.name).is_dir()


@pytest.fixture
def read_only(out):
    """``out`` made read-only: by its mode, or (as root, whom modes do not stop) as an immutable folder."""
    if os.geteuid() != 0:
        out.chmod(0o555)
        yield out
        out.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("root, and this file system cannot make a folder immutable (chattr +i)")
    try:
        yield out
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)


@pytest.mark.parametrize("report", ["leaderboard", "json", "html"])
def test_a_report_into_a_read_only_store_is_one_line(bench, read_only, report):
    code, _, stderr = bench("report", report, "--out", str(read_only))
    assert code == 2 and stderr.startswith(f"bench: error: cannot write to --out {read_only}: ")
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


# bench compare ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vea", "cnn"], "unknown defense 'vea' in this store; stored: cnn, madry"),
        (["cnn", "madyr"], "unknown defense 'madyr' in this store; did you mean 'madry'? stored: cnn, madry"),
        (["cnn", "madry", "--attack", "fgms"], "unknown attack 'fgms' in this store; did you mean 'fgsm'?"),
        (["cnn", "cnn"], "both defenses are 'cnn'; a paired comparison needs two different defenses"),
        (["cnn", "madry", "--eps", "0.2"], "no worst row for 'cnn' at ε = 0.2; its stored ε: 0.3; pass one of them"),
    ],
    ids=["unknown defense", "defense typo", "attack typo", "itself", "unstored epsilon"],
)
def test_compare_refuses_what_the_store_does_not_hold(bench, out, args, message):
    for index, defense in ((1, "cnn"), (2, "madry")):
        record = masked_cell_record(index, defense, "fgsm", 0.3, [True] * 4 + [False] * 4)
        (out / "cells" / f"{record['cell_key']}.json").write_text(json.dumps(record))
    (out / "cells" / f"{KEPT_KEY}.json").unlink()
    code, stdout, stderr = bench("compare", *args, "--out", str(out))
    assert code == 2 and stderr.startswith(f"bench: error: {message}") and not stdout
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


# User models ------------------------------------------------------------------------------------------------------
USER_MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
FORWARD


def build():
    return Net()
"""
#: The third image of every batch gets NaN logits: the load check's two images are fine.
NAN_ON_LARGE_BATCHES = USER_MODEL.replace(
    "FORWARD", '        return logits.masked_fill(torch.arange(len(x))[:, None] == 2, float("nan"))'
)


#: Infinite logits on images whose pixels are not multiples of 1/255 (attacked ones), beyond the load check.
NAN_WHEN_ATTACKED = USER_MODEL.replace(
    "FORWARD",
    """        if len(x) <= 2:
            return logits
        off_grid = ((x * 255 - (x * 255).round()).abs() > 1e-3).flatten(1).any(dim=1)
        return logits.masked_fill(off_grid[:, None], float("inf"))""",
)


def test_a_users_model_that_is_not_finite_on_attacked_images_fails_its_cell_in_one_line(bench, tmp_path):
    source = tmp_path / "net.py"
    source.write_text(NAN_WHEN_ATTACKED)
    argv = ["run", "--defenses", f"model:source={source}", "--attacks", "fgsm", "--eps", "0.1"]
    code, _, stderr = bench(*argv, "--out", str(tmp_path / "out"))
    (line,) = [line for line in stderr.splitlines() if line.startswith("bench: ")]
    assert code == 1 and line.startswith(f"bench: cell model:source={source} × fgsm failed: {source}: the model's")
    assert "logits are not all finite (nan or inf)" in line and "Traceback" not in stderr
    assert not list((tmp_path / "out").glob("cells/*.json"))  # nothing scored


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (NAN_ON_LARGE_BATCHES, "the model's logits are not all finite (nan or inf) on 1 of 200 images"),
        ("import sys\nsys.exit(3)\n", "failed: SystemExit: 3"),
        ("import sys\n\ndef build():\n    sys.exit()\n", "build() raised SystemExit"),
    ],
    ids=["nan beyond the load check", "sys.exit at import", "sys.exit in entry"],
)
def test_a_users_model_that_misbehaves_stops_in_one_line(bench, tmp_path, code, message):
    source = tmp_path / "net.py"
    source.write_text(code)
    argv = ["run", "--defenses", f"model:source={source}", "--attacks", "fgsm", "--eps", "0.1"]
    status, _, stderr = bench(*argv, "--out", str(tmp_path / "out"))
    assert status == 2 and stderr.splitlines()[-1].startswith("bench: error: ") and message in stderr
    assert stderr.count("bench: error") == 1 and "Traceback" not in stderr
    assert not list((tmp_path / "out").glob("cells/*.json"))  # nothing scored


def test_a_cascade_member_outside_the_norm_is_named(bench, out):
    code, _, stderr = bench(
        "run", "--attacks", "cascade:members=fgsm+vaea", "--norm", "l2", "--dry-run", "--out", str(out)
    )
    assert_refused(
        (code, "", stderr), "cascade member vaea (it supports: linf) does not run in the l2 threat model", out
    )


def test_a_cascade_skipped_for_a_missing_capability_names_the_member(bench, tmp_path):
    argv = ["run", "--defenses", "cnn", "--attacks", "cascade:members=fgsm+vaea", "--eps", "0.1"]
    code, _, stderr = bench(*argv, "--out", str(tmp_path / "out"))
    assert code == 0 and "needs vae (for its member vaea), which cnn lacks" in stderr


# Messages that bury the line --------------------------------------------------------------------------------------
class NotATensor:
    """Pickled into a file that ``torch.load(weights_only=True)`` must refuse."""


def test_files_that_fail_to_load_are_named_without_torchs_advice(bench, tmp_path, shared_cache, mnist_dir):
    import torch

    from benchmark.run.verify import sha256_of

    out = tmp_path / "out"
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--save-adversarials", "--out", str(out)]
    assert bench(*argv)[0] == 0
    (record_path,) = (out / "cells").glob("*.json")
    adversarials = out / "adversarials" / f"{record_path.stem}.pt"
    original = record_path.read_text(), adversarials.read_bytes()
    torch.save({"x_adv": NotATensor()}, adversarials)
    record_path.write_text(
        json.dumps(json.loads(record_path.read_text()) | {"adversarials_sha256": sha256_of(adversarials)})
    )
    verify = ["verify", "--out", str(out), "--data-dir", str(mnist_dir), "--no-download"]
    code, stdout, _ = bench(*verify, "--cache-dir", str(shared_cache))
    (line,) = [line for line in stdout.splitlines() if line.startswith(record_path.stem)]
    assert code == 1 and line.endswith(
        f"FAILED: {adversarials.name} cannot be read (torch.load(weights_only=True) refuses it: Unsupported global: "
        f"GLOBAL {__name__}.NotATensor)"
    )
    record_path.write_text(original[0])
    adversarials.write_bytes(original[1])
    bad_cache = tmp_path / "bad-cache"
    bad_cache.mkdir()
    (checkpoint,) = shared_cache.glob(f"cnn-{json.loads(record_path.read_text())['config_hash']}.pt")
    torch.save({"state": NotATensor(), "meta": {}}, bad_cache / checkpoint.name)
    code, stdout, stderr = bench(*verify, "--cache-dir", str(bad_cache))
    assert code == 2 and stderr.count("\n") == 1 and "weights_only=False" not in stderr + stdout
    assert stderr.startswith(
        f"bench: error: {bad_cache / checkpoint.name} cannot be read (torch.load(weights_only=True)"
    )


# Data -------------------------------------------------------------------------------------------------------------
def test_a_label_corrupted_in_place_with_its_time_kept_is_caught_by_the_next_run(tmp_path, mnist_dir, shared_cache):
    from benchmark.datasets.idx import load_mnist

    data = bad_mnist(tmp_path, mnist_dir, "none")  # a copy whose test labels are a file of its own
    labels = data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    load_mnist(data, download=False, cache_dir=shared_cache)  # parsed and cached
    stamp = labels.stat()
    damaged = bytearray(labels.read_bytes())
    damaged[8 + 5] = 12
    labels.write_bytes(bytes(damaged))
    os.utime(labels, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--profile", "smoke", "--no-download"]
    argv += ["--data-dir", str(data), "--cache-dir", str(shared_cache), "--out", str(tmp_path / "out")]
    result = subprocess.run([sys.executable, "-m", "benchmark", *argv], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.splitlines()[-1]  # after the run's log lines (its checkpoint loaded from the cache)
    assert last.startswith(f"bench: error: MNIST file {labels} holds 1 labels outside 0..9")
