"""`bench run --n-test N`: N test points, the first N of the profile's seeded slice, recorded as n = N."""

from __future__ import annotations

import pytest
import torch

from benchmark.store.result_store import ResultStore
from tests.integration.conftest import leaderboard
from tests.integration.test_model_defense import MODEL_FILE, accuracy, slices, trained

pytestmark = pytest.mark.integration
__all__ = ["slices", "trained"]  # fixtures, used by name


@pytest.fixture
def spec(tmp_path, trained) -> str:
    source, weights = tmp_path / "net.py", tmp_path / "net.pt"
    source.write_text(MODEL_FILE)
    torch.save(trained.state_dict(), weights)
    return f"model:source={source}:weights={weights}:name=linear"


def test_n_test_50_runs_50_points_and_records_n_50(bench, tmp_path, spec, slices, trained):
    out = tmp_path / "out"
    args = ("run", "--defenses", spec, "--attacks", "fgsm", "--eps", "0.1", "--out", str(out), "--n-test", "50")
    code, stdout, stderr = bench(*args)
    assert code == 0, stderr
    assert "1 cells computed" in stdout
    (record,) = ResultStore(out).records()
    assert record["n"] == 50
    rows = leaderboard(out)
    assert (rows["n"] == 50).all()
    # the first 50 points of the smoke profile's seeded test slice
    assert record["clean_accuracy"] == pytest.approx(accuracy(trained, slices.test.x[:50], slices.test.y[:50]))
    code, stdout, _ = bench(*args)
    assert code == 0 and "0 cells computed" in stdout  # resumed under the same keys
    code, stdout, _ = bench(*args[:-1], "200")  # the profile's size: the profile's cells
    assert code == 0 and "1 cells computed" in stdout
    assert sorted(record["n"] for record in ResultStore(out).records()) == [50, 200]
    code, stdout, _ = bench(*args)  # its summary shows the 50-point rows, not the store's 200-point ones
    row = [line for line in stdout.splitlines() if line.startswith("| linear")][-1]  # the defenses table
    assert code == 0 and "0 cells computed" in stdout and row.split("|")[3].strip() == "50", stdout


def test_more_points_than_the_test_set_exits_2_in_one_line(bench, tmp_path, spec):
    args = ("run", "--defenses", spec, "--attacks", "fgsm", "--eps", "0.1", "--out", str(tmp_path / "o"))
    code, _, stderr = bench(*args, "--n-test", "10001")
    assert code == 2 and "Traceback" not in stderr and stderr.count("bench: error") == 1
    assert (
        stderr.splitlines()[-1]
        == "bench: error: --n-test 10,001 exceeds the 10,000 test images of mnist; choose at most 10,000"
    )


def test_a_defenses_own_cap_is_said(bench, tmp_path):
    code, _, stderr = bench("run", "--defenses", "abs", "--attacks", "fgsm", "--n-test", "50", "--dry-run")
    assert code == 0
    assert "abs: 20 test points, its own budget at profile smoke, not the 50 of --n-test" in stderr


def test_evaluate_takes_n_test(tmp_path, mnist_dir, shared_cache, trained, slices):
    from benchmark import evaluate

    rows = evaluate(
        trained,
        attacks=("fgsm",),
        epsilons=(0.1,),
        profile="smoke",
        n_test=30,
        out_dir=tmp_path / "api",
        cache_dir=shared_cache,
        data_dir=mnist_dir,
        download=False,
    )
    assert set(rows["attack"]) == {"fgsm", "worst"} and (rows["n"] == 30).all()
    assert rows["clean_accuracy"].iloc[0] == pytest.approx(accuracy(trained, slices.test.x[:30], slices.test.y[:30]))


def test_verify_rechecks_a_run_on_more_points_than_the_profiles(bench, tmp_path, spec, shared_cache, mnist_dir):
    out, unnamed = tmp_path / "out", spec.removesuffix(":name=linear")
    args = ("--attacks", "fgsm", "--eps", "0.1", "--out", str(out), "--n-test", "250", "--save-adversarials")
    assert bench("run", "--defenses", unnamed, *args)[0] == 0
    (record,) = ResultStore(out).records()
    assert record["n"] == 250  # above the smoke profile's 200
    verify = ("verify", "--out", str(out), "--cache-dir", str(shared_cache), "--data-dir", str(mnist_dir))
    code, stdout, stderr = bench(*verify)
    assert code == 0 and "1 cells verified, 0 failed" in stdout, stdout + stderr
