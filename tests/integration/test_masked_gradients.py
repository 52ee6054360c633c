"""Models whose gradients mislead: a user's model that binarises its input at 0.5, written with a hard
threshold (no gradient path at all) and with a straight-through gradient (BPDA), evaluated end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.config.profiles import get_profile
from benchmark.datasets.idx import load_mnist
from benchmark.datasets.slices import make_slices
from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration

MODEL_FILE = """
import torch
from torch import nn


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return (x >= 0.5).float()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Binarised(nn.Module):
    def __init__(self, straight_through):
        super().__init__()
        self.straight_through = straight_through
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        binary = _StraightThrough.apply(x) if self.straight_through else (x >= 0.5).float()
        return self.net(binary)


def hard():
    return Binarised(False)


def straight():
    return Binarised(True)
"""

#: The L2 attacks the harness had before decision-based attacks (those that run on a linear model quickly).
TODAYS_L2 = ["pgd", "deepfool", "foolbox.ddn", "foolbox.fmn", "autoattack", "square", "transfer"]
ONE_POINTWISE = "pointwise:nearest=1:boundary_queries=0"


@pytest.fixture(scope="module")
def weights(mnist_dir: Path, tmp_path_factory) -> Path:
    """A linear classifier trained on binarised images (300 Adam steps on the smoke training slice)."""
    full_train, test = load_mnist(mnist_dir, download=False)
    smoke = get_profile("smoke")
    train = make_slices(full_train, test, smoke.n_train, smoke.n_val, smoke.n_test, seed=0).train
    torch.manual_seed(0)
    net, generator = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):
        index = torch.randint(len(train), (128,), generator=generator)
        loss = nn.functional.cross_entropy(net((train.x[index] >= 0.5).float()), train.y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("binarised") / "weights.pt"
    torch.save({f"net.{name}": value for name, value in net.state_dict().items()}, path)
    return path


def _run(bench, tmp_path: Path, weights: Path, entry: str) -> tuple[int, str, str, pd.DataFrame]:
    source = tmp_path / "binarised.py"
    source.write_text(MODEL_FILE)
    out = tmp_path / "out"
    spec = f"model:source={source}:entry={entry}:weights={weights}:name={entry}"
    attacks = ",".join(["adaptive", *TODAYS_L2, ONE_POINTWISE])
    code, stdout, stderr = bench(
        "run",
        "--defenses",
        spec,
        "--attacks",
        attacks,
        "--norm",
        "l2",
        "--eps",
        "1.5",
        "--n-test",
        "100",
        "--out",
        str(out),
    )
    return code, stdout, stderr, leaderboard(out).fillna({"flags": "", "note": ""}).set_index("attack")


def _robust(frame: pd.DataFrame, attack: str) -> float:
    return float(frame.loc[attack, "robust_accuracy"])


def test_a_hard_threshold_runs_to_the_end_flagged_masked_and_label_only_attacks_break_it(bench, tmp_path, weights):
    code, stdout, stderr, frame = _run(bench, tmp_path, weights, "hard")
    assert code == 0 and "Traceback" not in stderr
    assert "bench: warning: hard is flagged masked (input gradients zero or missing on 100 % of points)" in stderr
    assert "adaptive: hard: ran autoattack" in stdout and "the masked flag fires" in stdout
    for attack in ("pgd", "deepfool", "foolbox.ddn", "foolbox.fmn", "autoattack"):
        assert frame.loc[attack, "status"] == "skipped" and "zero or missing" in frame.loc[attack, "note"]
    assert (frame["gradient_masking_share"].dropna() == 1.0).all()
    assert "masked" in ";".join(frame["flags"])
    for attack in ("boundary", "hsj", "pointwise"):  # the second stage ran at full budget, and says why
        assert frame.loc[attack, "status"] == "ok" and "the masked flag fires" in frame.loc[attack, "note"]
    worst = _robust(frame, "worst")
    ran = [attack for attack in TODAYS_L2 if frame.loc[attack, "status"] == "ok"]
    assert ran == ["square", "transfer"]
    assert all(worst < _robust(frame, attack) for attack in ran)
    assert worst < _robust(frame, ONE_POINTWISE)


def test_a_straight_through_twin_is_caught_by_the_probe(bench, tmp_path, weights):
    """Its gradients are neither zero nor NaN, so no flag fires on it: only the label-only probe catches it."""
    code, stdout, stderr, frame = _run(bench, tmp_path, weights, "straight")
    assert code == 0 and "Traceback" not in stderr and "flagged masked" not in stderr
    assert (frame["gradient_masking_share"].dropna() < 0.1).all()
    assert "a probe broke" in stdout or "a probe found a smaller median perturbation" in stdout
    worst = _robust(frame, "worst")
    assert all(frame.loc[attack, "status"] == "ok" for attack in TODAYS_L2)
    assert all(worst < _robust(frame, attack) for attack in TODAYS_L2)
    assert worst < _robust(frame, ONE_POINTWISE)
    assert "adaptive: standard AutoAttack, always" in frame.loc["autoattack", "note"]
    star = frame.loc["pointwise", "note"]
    assert "label-only at full budget" in star


def test_adaptive_alone_finds_the_threshold_and_runs_the_threshold_aware_attack(bench, tmp_path, weights):
    """``bench run --attacks adaptive`` in the README's form (no other attack) on the hard threshold, which
    declares nothing: the diagnostics find the threshold and the protocol adds the threshold-aware attack."""
    source = tmp_path / "binarised.py"
    source.write_text(MODEL_FILE)
    out = tmp_path / "out"
    spec = f"model:source={source}:entry=hard:weights={weights}:name=hard"
    code, stdout, stderr = bench(
        "run", "--defenses", spec, "--attacks", "adaptive", "--norm", "l2", "--eps", "1.5", "--n-test", "100",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "Traceback" not in stderr
    assert "added quantized:gradients=false (threshold-aware, ranked by score queries" in stdout
    assert "input quantiser 2 levels, threshold 0.5 (found by the diagnostics" in stdout
    frame = leaderboard(out).fillna({"flags": "", "note": ""}).set_index("attack")
    quantized = "quantized:gradients=false"
    assert frame.loc[quantized, "status"] == "ok" and "quantized" in frame.loc[quantized, "flags"]
    assert frame.loc[quantized, "input_quantizer"].startswith("2 levels, threshold 0.5 (found by the diagnostics")
    others = [
        attack for attack in frame.index if attack not in (quantized, "worst") and frame.loc[attack, "status"] == "ok"
    ]
    assert others and all(_robust(frame, quantized) <= _robust(frame, attack) for attack in others)
    assert _robust(frame, quantized) <= 0.10  # the label-only attacks leave far more on this model
