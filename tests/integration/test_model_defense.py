"""`bench run --defenses model:...`: a user's own PyTorch model, trained here in seconds, evaluated end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.config.profiles import get_profile
from benchmark.datasets.idx import load_mnist
from benchmark.datasets.slices import make_slices
from foundation.splits import Split
from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration

MODEL_FILE = """
from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


def build() -> nn.Module:
    """What MODEL_FILE builds."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


@pytest.fixture(scope="module")
def slices(mnist_dir: Path):
    """The smoke profile's slices of seed 0: what `bench run --profile smoke` trains and tests on."""
    full_train, test = load_mnist(mnist_dir, download=False)
    smoke = get_profile("smoke")
    return make_slices(full_train, test, smoke.n_train, smoke.n_val, smoke.n_test, seed=0)


def adam_steps(model: nn.Module, train: Split, steps: int = 300) -> nn.Module:
    """``model`` after ``steps`` seeded Adam steps on batches of 128 of ``train``, in eval mode."""
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        index = torch.randint(len(train), (128,), generator=generator)
        loss = nn.functional.cross_entropy(model(train.x[index]), train.y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(slices) -> nn.Module:
    """A linear classifier: 300 Adam steps on the 5k training images (about a second)."""
    torch.manual_seed(0)
    return adam_steps(build(), slices.train)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def test_a_users_model_is_evaluated_and_a_changed_weight_is_a_new_defense(bench, tmp_path, slices, trained):
    source, weights, out = tmp_path / "net.py", tmp_path / "net.pt", tmp_path / "out"
    source.write_text(MODEL_FILE)
    torch.save(trained.state_dict(), weights)
    spec = f"model:source={source}:entry=build:weights={weights}"
    args = ("run", "--defenses", spec, "--attacks", "fgsm,pgd", "--eps", "0.1", "--profile", "smoke", "--out", str(out))

    code, stdout, stderr = bench(*args)
    assert code == 0, stderr
    assert "2 cells computed" in stdout
    frame = leaderboard(out)
    rows = frame[(frame["defense"] == spec) & frame["attack"].isin(["fgsm", "pgd"])].set_index("attack")
    assert len(rows) == 2 and (rows["n"] == 200).all()
    own = accuracy(trained, slices.test.x, slices.test.y)
    assert own > 0.8  # a sane model, or the comparisons below say little
    assert rows["clean_accuracy"].tolist() == pytest.approx([own, own], abs=1e-6)  # the same points right
    assert rows.loc["pgd", "robust_accuracy"] < own

    code, stdout, _ = bench(*args)
    assert code == 0 and "0 cells computed" in stdout  # same files, same key: nothing to do

    changed = build()
    changed.load_state_dict(trained.state_dict())
    with torch.no_grad():
        changed[1].weight[0, 0] += 0.01  # one weight
    torch.save(changed.state_dict(), weights)
    code, stdout, stderr = bench(*args)
    assert code == 0, stderr
    assert "2 cells computed" in stdout  # a new defense key, so new cells


def test_a_model_with_the_wrong_logits_shape_exits_2_in_one_line(bench, tmp_path):
    source = tmp_path / "wide.py"
    source.write_text(MODEL_FILE.replace("784, 10", "784, 12"))
    code, _, stderr = bench(
        "run",
        "--defenses",
        f"model:source={source}",
        "--attacks",
        "fgsm",
        "--eps",
        "0.1",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2 and "Traceback" not in stderr
    error = stderr.splitlines()[-1]  # after the run's progress log
    assert error.startswith("bench: error: ") and stderr.count("bench: error") == 1
    assert f"{source}: the model maps a batch of shape (2, 1, 28, 28)" in error
    assert "to logits of shape (2, 12); expected (2, 10)" in error


def test_evaluate_gives_the_clis_numbers_for_the_same_model(bench, tmp_path, mnist_dir, shared_cache, trained):
    """``benchmark.evaluate`` runs the in-memory model through the same planner, guard, store and tables."""
    from benchmark import evaluate

    source, weights, out = tmp_path / "net.py", tmp_path / "net.pt", tmp_path / "cli"
    source.write_text(MODEL_FILE)
    torch.save(trained.state_dict(), weights)
    spec = f"model:source={source}:entry=build:weights={weights}:name=mine"
    assert bench("run", "--defenses", spec, "--attacks", "fgsm,deepfool", "--eps", "0.1", "--out", str(out))[0] == 0
    cli = leaderboard(out).set_index("attack")

    rows = evaluate(
        trained,
        attacks=("fgsm", "deepfool"),
        epsilons=(0.1,),
        name="mine",
        profile="smoke",
        out_dir=tmp_path / "api",
        cache_dir=shared_cache,
        data_dir=mnist_dir,
        download=False,
    ).set_index("attack")
    assert set(rows.index) == {"fgsm", "deepfool", "worst"} and (rows["defense"] == "mine").all()
    for attack in ("fgsm", "deepfool", "worst"):  # deterministic attacks: the same points fall
        for column in ("clean_accuracy", "robust_accuracy", "robust_accuracy_ci_low", "f1_macro"):
            assert rows.loc[attack, column] == pytest.approx(cli.loc[attack, column], nan_ok=True), (attack, column)
    assert pd.isna(rows.loc["fgsm", "train_seconds"]) and rows.loc["fgsm", "trained"] is False  # not 0 s
