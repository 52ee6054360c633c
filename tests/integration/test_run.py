"""End-to-end runs of `bench run` on a real MNIST slice (smoke profile)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from attacks.base import ATTACKS, Attack
from benchmark.results.statistics import unpack_mask
from benchmark.store.result_store import ResultStore
from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration

REQUIRED_COLUMNS = {
    "defense",
    "attack",
    "eps",
    "n",
    "clean_accuracy",
    "robust_accuracy",
    "robust_accuracy_ci_low",
    "robust_accuracy_ci_high",
    "f1_macro",
    "attack_success_rate",
    "train_seconds",
    "attack_seconds",
    "profile",
    "seed",
    "config_hash",
    "library_versions",
    "device",
}


def test_run_writes_leaderboards_and_a_rerun_recomputes_nothing(bench, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm,pgd", "--eps", "0,0.1,0.3", "--out", str(out)
    )
    assert code == 0
    assert "6 cells computed" in stdout and "robust accuracy per attack" in stdout
    everything = leaderboard(out)
    assert set(everything.columns) >= REQUIRED_COLUMNS
    frame, worst = everything[everything["attack"] != "worst"], everything[everything["attack"] == "worst"]
    assert len(frame) == 6 and (frame["n"] == 200).all()
    assert worst["eps"].tolist() == [0.0, 0.1, 0.3] and (worst["flags"].fillna("") == "").all()
    per_eps_best = frame.groupby("eps")["robust_accuracy"].min()
    assert (worst.set_index("eps")["robust_accuracy"] <= per_eps_best).all()
    assert (out / "leaderboard.md").read_text().count("| cnn ") >= 3
    cnn = frame.set_index(["attack", "eps"])
    clean = cnn["clean_accuracy"].iloc[0]
    assert clean > 0.85
    for attack in ("fgsm", "pgd"):
        assert cnn.loc[(attack, 0.0), "robust_accuracy"] == clean  # ε = 0 reproduces clean accuracy
        curve = cnn.loc[attack]["robust_accuracy"].sort_index()
        assert curve.is_monotonic_decreasing  # accuracy does not rise with ε
        assert curve.loc[0.3] < 0.1
    assert cnn.loc[("pgd", 0.1), "robust_accuracy"] <= cnn.loc[("fgsm", 0.1), "robust_accuracy"]
    assert cnn.loc[("pgd", 0.3), "linf_max"] <= 0.3 + 1e-6

    code, stdout, _ = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm,pgd", "--eps", "0,0.1,0.3", "--out", str(out)
    )
    assert code == 0 and "0 cells computed" in stdout
    pd.testing.assert_frame_equal(leaderboard(out), everything)


def test_interrupted_run_keeps_finished_cells_and_resumes(bench, tmp_path, monkeypatch):
    out = tmp_path / "out"
    original, writes = ResultStore.write, []

    def write_then_interrupt(self, record):
        if len(writes) == 2:
            raise KeyboardInterrupt
        writes.append(record["cell_key"])
        original(self, record)

    monkeypatch.setattr(ResultStore, "write", write_then_interrupt)
    code, _, stderr = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.05,0.1,0.2,0.3", "--out", str(out)
    )
    assert code == 130 and "Rerun the same command to resume" in stderr
    assert sorted(p.stem for p in (out / "cells").glob("*.json")) == sorted(writes)
    monkeypatch.setattr(ResultStore, "write", original)
    code, stdout, _ = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.05,0.1,0.2,0.3", "--out", str(out)
    )
    assert code == 0 and "2 cells computed" in stdout
    assert (leaderboard(out)["attack"] == "fgsm").sum() == 4


def test_corrupt_checkpoint_is_reported_and_retrained(bench, tmp_path):
    cache = tmp_path / "cache"
    args = ("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--cache-dir", str(cache))
    assert bench(*args, "--out", str(tmp_path / "a"))[0] == 0
    (checkpoint,) = cache.glob("cnn-*.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    code, _, stderr = bench(*args, "--out", str(tmp_path / "b"))
    assert code == 0
    assert "checkpoint of cnn is corrupt" in stderr and "retraining" in stderr
    code, _, stderr = bench(*args, "--out", str(tmp_path / "c"))
    assert code == 0 and "loaded cached checkpoint" in stderr and "corrupt" not in stderr
    assert (
        leaderboard(tmp_path / "a")["robust_accuracy"].tolist()
        == leaderboard(tmp_path / "c")["robust_accuracy"].tolist()
    )


class _Cheater(Attack):
    """Returns perturbations twice the budget: the guard must stop the cell."""

    description = "test attack that breaks its budget"

    def _run(self, model, x, y, eps, generator):
        return (x + 2 * eps).clamp(0, 1)


def test_threat_model_violation_stops_the_cell_and_records_nothing(bench, tmp_path, monkeypatch):
    ATTACKS.names()  # load the built-ins before adding the test attack (removed again after the test)
    monkeypatch.setitem(ATTACKS._classes, "test.cheater", _Cheater)
    out = tmp_path / "out"
    code, _, stderr = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm,test.cheater", "--eps", "0.1", "--out", str(out)
    )
    assert code == 1
    assert "cell cnn × test.cheater failed" in stderr and "outside the L∞ ball of radius 0.1" in stderr
    assert leaderboard(out)["attack"].tolist() == ["fgsm", "worst"]  # the worst case covers what was recorded


def test_native_art_and_foolbox_backends_agree(bench, tmp_path):
    out = tmp_path / "out"
    attacks = "fgsm,art.fgsm,foolbox.fgsm,pgd,art.pgd,foolbox.pgd"
    assert bench("run", "--defenses", "cnn", "--attacks", attacks, "--eps", "0.1", "--out", str(out))[0] == 0
    frame = leaderboard(out).set_index("attack")
    assert frame.loc["art.pgd", "backend"] == "art" and frame.loc["foolbox.fgsm", "backend"] == "foolbox"
    for family in ("fgsm", "pgd"):
        rows = frame.loc[[family, f"art.{family}", f"foolbox.{family}"]]
        assert rows["robust_accuracy_ci_low"].max() <= rows["robust_accuracy"].min()
        assert rows["robust_accuracy"].max() <= rows["robust_accuracy_ci_high"].min()
    fgsm = frame.loc[["fgsm", "art.fgsm", "foolbox.fgsm"], "robust_accuracy"]
    assert fgsm.max() - fgsm.min() <= 0.01  # deterministic: the same examples up to float rounding


def test_randomized_vae_is_evaluated_with_eot_and_repeated_predictions(bench, tmp_path):
    out = tmp_path / "out"
    code, _, _ = bench(
        "run",
        "--defenses",
        "vae,vae:deterministic=true",
        "--attacks",
        "pgd",
        "--eps",
        "0,0.2",
        "--out",
        str(out),
        "--eot-samples",
        "3",
        "--repeats",
        "4",
    )
    assert code == 0
    frame = leaderboard(out).query("attack == 'pgd'").set_index(["defense", "eps"])
    sampled, mean = frame.loc["vae"], frame.loc["vae:deterministic=true"]
    assert sampled["randomized"].all() and (sampled["eot_samples"] == 3).all()
    assert (sampled["prediction_repeats"] == 4).all()
    assert not mean["randomized"].any() and (mean["prediction_repeats"] == 1).all()
    assert mean.loc[0.0, "robust_accuracy"] == mean.loc[0.0, "clean_accuracy"]
    assert sampled.loc[0.0, "robust_accuracy"] <= sampled.loc[0.0, "clean_accuracy"]
    assert sampled.loc[0.2, "robust_accuracy"] < sampled.loc[0.0, "robust_accuracy"]
    assert sampled["config_hash"].iloc[0] != mean["config_hash"].iloc[0]


def test_parameter_range_attacks_skips_and_reconstruction_loss(bench, tmp_path):
    out = tmp_path / "out"
    code, _, _ = bench("run", "--defenses", "cnn,vae", "--attacks", "gna,vaea", "--eps", "0.1", "--out", str(out))
    assert code == 0
    frame = leaderboard(out).set_index(["defense", "attack"])
    skipped = frame.loc[("cnn", "vaea")]
    assert skipped["status"] == "skipped" and "needs vae" in skipped["note"] and pd.isna(skipped["robust_accuracy"])
    gna = frame.loc[("vae", "gna")]
    assert pd.isna(gna["eps"]) and "σ" in gna["budget"] and gna["status"] == "ok"
    assert gna["reconstruction_loss"] > 0 and pd.isna(frame.loc[("cnn", "gna"), "reconstruction_loss"])
    assert frame.loc[("vae", "vaea"), "robust_accuracy"] <= frame.loc[("vae", "vaea"), "clean_accuracy"]
    markdown = (out / "leaderboard.md").read_text()
    assert "gna (μ∈" in markdown and "skipped" in markdown


def test_transfer_attack_uses_an_independent_surrogate(bench, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = bench("run", "--defenses", "cnn", "--attacks", "pgd,transfer", "--eps", "0.2", "--out", str(out))
    assert code == 0
    assert "cnn (surrogate, seed 1000): " in stderr  # trained (or loaded) in addition to the target
    frame = leaderboard(out).set_index("attack")
    assert "surrogate cnn (seed 1000)" in frame.loc["transfer", "note"]
    white_box, transfer = frame.loc["pgd"], frame.loc["transfer"]
    assert transfer["robust_accuracy"] >= white_box["robust_accuracy"]  # black-box does not beat white-box
    assert transfer["robust_accuracy"] < transfer["clean_accuracy"]  # but it transfers


def test_parsed_mnist_is_cached_and_identical(mnist_dir, tmp_path):
    from benchmark.datasets.idx import load_mnist

    first = load_mnist(mnist_dir, download=False, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("data/mnist-*.pt")
    second = load_mnist(mnist_dir, download=False, cache_dir=tmp_path)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert first[0].x.shape == (60_000, 1, 28, 28) and first[1].x.shape == (10_000, 1, 28, 28)
    cached.write_bytes(b"corrupt")
    third = load_mnist(mnist_dir, download=False, cache_dir=tmp_path)
    assert torch.equal(third[1].x, first[1].x)


def test_cascade_equals_the_worst_case_of_separate_cells(bench, tmp_path):
    """On the deterministic cnn the cascade breaks exactly the points some member breaks as its own cell."""
    out = tmp_path / "out"
    attacks = "fgsm,deepfool,cascade:members=fgsm+deepfool"
    code, _, _ = bench("run", "--defenses", "cnn", "--attacks", attacks, "--eps", "0.1,0.15", "--out", str(out))
    assert code == 0
    records = pd.DataFrame(ResultStore(out).records()).set_index(["attack", "eps"])
    for eps in (0.1, 0.15):
        fgsm, deepfool, cascade = (
            unpack_mask(records.loc[(attack, eps), "robust_points"], 200)
            for attack in ("fgsm", "deepfool", "cascade:members=fgsm+deepfool")
        )
        assert fgsm.sum() > (fgsm & deepfool).sum()  # the members differ, so the test can fail
        assert (cascade == (fgsm & deepfool)).all()
