"""The Ray executor on a real local Ray instance: the same records as locally, resumable, robust to dying workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.store.result_store import ResultStore

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install -e '.[ray]')")

#: What depends on the process rather than the cell: timings, and the device string (it names the thread count).
PROCESS_FIELDS = {"created", "attack_seconds", "device"}
#: Floating-point summaries of the examples, whose last digits follow the thread count (its order of additions).
FLOAT_SUMMARIES = {"linf_mean", "linf_max", "l2_mean", "reconstruction_loss"}
MATRIX = ["--defenses", "cnn,vae", "--attacks", "fgsm,pgd,deepfool", "--eps", "0.1,0.3"]


def records(out: Path) -> dict[str, dict]:
    return {
        path.stem: {k: v for k, v in json.loads(path.read_text()).items() if k not in PROCESS_FIELDS}
        for path in (out / "cells").glob("*.json")
    }


def assert_same_records(expected: dict[str, dict], got: dict[str, dict]) -> None:
    """The same cells, field for field (float summaries of the examples to 1e-4)."""
    assert expected.keys() == got.keys()
    for key, record in got.items():
        for column, value in record.items():
            if column in FLOAT_SUMMARIES:
                assert value == pytest.approx(expected[key][column], rel=1e-4), (key, column)
            else:
                assert value == expected[key][column], (key, column)


def test_ray_writes_the_local_leaderboard_and_resumes(bench, tmp_path):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert bench("run", *MATRIX, "--out", str(local))[0] == 0
    code, stdout, _ = bench("run", *MATRIX, "--out", str(distributed), "--dry-run", "--executor", "ray")
    assert code == 0 and "10 attack runs" in stdout and "12 cells to compute" in stdout
    assert not (distributed / "cells").exists()  # a dry run computes nothing

    code, stdout, _ = bench("run", *MATRIX, "--out", str(distributed), "--executor", "ray", "--workers", "2")
    assert code == 0 and "12 cells computed" in stdout
    expected, got = records(local), records(distributed)
    assert len(got) == 12
    assert_same_records(expected, got)

    code, stdout, _ = bench("run", *MATRIX, "--out", str(distributed), "--executor", "ray", "--workers", "2")
    assert code == 0 and "0 cells computed" in stdout


def test_a_worker_killed_during_a_cell_is_retried_and_the_cell_recorded_once(mnist_dir, shared_cache, tmp_path):
    out = tmp_path / "out"
    slow = ["--defenses", "cnn", "--attacks", "pgd:steps=100:early_stop=false,fgsm", "--eps", "0.1,0.3"]
    command = [sys.executable, "-m", "benchmark", "run", *slow, "--profile", "smoke", "--no-progress"]
    command += ["--executor", "ray", "--workers", "2", "--out", str(out), "--cache-dir", str(shared_cache)]
    command += ["--data-dir", str(mnist_dir), "--no-download"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    killed, deadline = None, time.monotonic() + 240
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", "ray::_cell_task"], capture_output=True, text=True).stdout.split()
        if found:
            killed = int(found[0])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    stdout, stderr = run.communicate(timeout=600)
    assert killed is not None, "no cell task was seen running"
    assert run.returncode == 0, stderr
    stored = ResultStore(out).records()
    assert len(stored) == 4 and len({record["cell_key"] for record in stored}) == 4
    finished = [line for line in stderr.splitlines() if "robust accuracy" in line]
    assert len(finished) == 4 and len(set(finished)) == 4  # each cell recorded exactly once
    assert "4 cells computed" in stdout


def test_executor_ray_without_ray_exits_2_with_the_install_command(mnist_dir, tmp_path):
    blocker = tmp_path / "no-ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('ray is not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "benchmark", "run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1"]
    command += ["--profile", "smoke", "--executor", "ray", "--out", str(tmp_path / "out")]
    command += ["--cache-dir", str(tmp_path / "cache"), "--data-dir", str(mnist_dir), "--no-download"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'bench: error: --executor ray needs Ray, which is not installed; install it with pip install -e ".[ray]"'
    ]


def test_the_local_executor_never_imports_ray(mnist_dir, shared_cache, tmp_path):
    script = (
        "import sys\nfrom benchmark.cli import main\n"
        f"code = main(['run', '--defenses', 'cnn', '--attacks', 'fgsm', '--eps', '0.1', '--profile', 'smoke', "
        f"'--out', {str(tmp_path / 'out')!r}, '--cache-dir', {str(shared_cache)!r}, "
        f"'--data-dir', {str(mnist_dir)!r}, '--no-download', '--no-progress'])\n"
        "assert code == 0, code\nassert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_training_on_workers_gives_the_same_checkpoints_and_numbers_within_intervals(bench, tmp_path):
    """Jobs train as tasks in dependency order (the shared cnn before the vae, and a transfer surrogate); the
    driver saves the checkpoints under the keys a local run uses, and the numbers agree within intervals."""
    matrix = ["--defenses", "vae", "--attacks", "fgsm,transfer", "--eps", "0.3"]
    assert bench("run", *matrix, "--out", str(tmp_path / "local"))[0] == 0
    fresh = tmp_path / "ray-cache"
    code, _, stderr = bench(
        "run", *matrix, "--out", str(tmp_path / "ray"), "--executor", "ray", "--cache-dir", str(fresh)
    )
    assert code == 0, stderr
    assert stderr.count("training on the cluster") == 3
    checkpoints = [path.name.split("-")[0] for path in fresh.glob("*.pt")]  # parsed data caches live in data/
    assert sorted(checkpoints) == ["cnn", "cnn", "vae"]
    local, distributed = ResultStore(tmp_path / "local").records(), ResultStore(tmp_path / "ray").records()
    assert {r["cell_key"] for r in local} == {r["cell_key"] for r in distributed}  # same checkpoint keys
    by_key = {r["cell_key"]: r for r in local}
    for record in distributed:
        other = by_key[record["cell_key"]]
        assert other["robust_accuracy_ci_low"] <= record["robust_accuracy"] <= other["robust_accuracy_ci_high"]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
        ("ray://127.0.0.1:1", "cannot reach the Ray cluster at ray://127.0.0.1:1"),
        ("nonsense", "--ray-address 'nonsense' is not HOST:PORT (nor ray://HOST:PORT, nor auto)"),
    ],
)
def test_a_bad_ray_address_exits_2_at_once(bench, tmp_path, address, message):
    code, _, stderr = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(tmp_path),
        "--executor", "ray", "--ray-address", address,
    )  # fmt: skip
    assert code == 2 and stderr.splitlines()[-1].startswith(f"bench: error: {message}") and "Traceback" not in stderr


def test_an_address_that_is_not_ray_gets_one_line_and_no_ray_logs(mnist_dir, tmp_path):
    """Something listens at the address but is not a Ray cluster: Ray would retry for minutes, printing its C++
    client's log lines straight to the process's stderr; the harness says so in one line within seconds."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--profile", "smoke"]
        argv += ["--data-dir", str(mnist_dir), "--no-download", "--out", str(tmp_path / "out")]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "benchmark", *argv, "--executor", "ray", "--ray-address", address],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2 and time.monotonic() - started < 60
    assert (
        result.stderr == f"bench: error: {address} answers, but not as a Ray cluster (no gRPC server there); "
        "check --ray-address (`ray start --head` prints the address to use)\n"
    )


def test_training_on_a_worker_gives_the_local_weights_bit_for_bit(mnist_dir, tmp_path):
    """A training job on a worker takes the driver's torch thread count, so a defense trained there has the
    weights a local run trains, bit for bit, though its cells (two in flight) run on one thread each: the records
    then differ only where the README says, in the last digits of the floating-point means."""
    import torch

    from benchmark.cli import main
    from benchmark.store.checkpoints import CheckpointCache

    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm,pgd", "--eps", "0.1,0.3", "--profile", "smoke"]
    argv += ["--data-dir", str(mnist_dir), "--no-download", "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        assert main([*argv, "--out", str(tmp_path / "local"), "--cache-dir", str(tmp_path / "local-cache")]) == 0
        on_ray = ["--out", str(tmp_path / "ray"), "--cache-dir", str(tmp_path / "ray-cache"), "--executor", "ray"]
        assert main([*argv, *on_ray, "--workers", "2"]) == 0
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
    (local,), (distributed,) = (list((tmp_path / cache).glob("cnn-*.pt")) for cache in ("local-cache", "ray-cache"))
    key = local.stem.rpartition("-")[2]
    assert local.name == distributed.name
    assert CheckpointCache(local.parent).load_key(key).weights_sha256 == (
        CheckpointCache(distributed.parent).load_key(key).weights_sha256
    )
    expected, got = records(tmp_path / "local"), records(tmp_path / "ray")
    assert expected.keys() == got.keys() and len(got) == 4
    for cell, record in got.items():
        for column, value in record.items():
            if column in FLOAT_SUMMARIES:
                assert value == pytest.approx(expected[cell][column], rel=1e-4), (cell, column)
            elif column != "train_seconds":
                assert value == expected[cell][column], (cell, column)
