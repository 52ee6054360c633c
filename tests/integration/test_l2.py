"""The L2 threat model end to end on a real MNIST slice (smoke profile, the shared smoke ``cnn``)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration


def test_l2_backends_agree_accuracy_falls_with_eps_and_eps_zero_is_clean(bench, tmp_path):
    out = tmp_path / "out"
    curve = ("run", "--defenses", "cnn", "--attacks", "pgd,deepfool", "--norm", "l2", "--eps", "0,1,2.5")
    code, stdout, stderr = bench(*curve, "--out", str(out))
    assert code == 0, stderr
    assert "L2 headline" in stdout
    cross_check = (
        "run",
        "--defenses",
        "cnn",
        "--attacks",
        "pgd,foolbox.pgd,autoattack",
        "--norm",
        "l2",
        "--eps",
        "1.5",
    )
    assert bench(*cross_check, "--out", str(out))[0] == 0
    frame = leaderboard(out)
    cells = frame[frame["attack"] != "worst"]
    assert (cells["threat_model"] == "l2").all() and len(cells) == 9
    assert ((cells["l2_mean"] <= cells["eps"] + 1e-6) | (cells["eps"] == 0)).all()
    table = cells.set_index(["attack", "eps"])
    clean = table["clean_accuracy"].iloc[0]
    assert table.loc[("pgd", 0.0), "robust_accuracy"] == clean  # PGD-L2 at ε = 0 is clean accuracy
    for attack in ("pgd", "deepfool"):
        accuracy = table.loc[attack]["robust_accuracy"].sort_index()
        assert accuracy.is_monotonic_decreasing and accuracy.loc[2.5] < accuracy.loc[1.0] < clean
    rows = table.xs(1.5, level="eps").loc[["pgd", "foolbox.pgd", "autoattack"]]  # backends agree
    assert rows["robust_accuracy_ci_low"].max() <= rows["robust_accuracy"].min() + 1e-9
    assert rows["robust_accuracy"].max() <= rows["robust_accuracy_ci_high"].min() + 1e-9
    worst = frame[frame["attack"] == "worst"].set_index("eps")
    assert (worst["threat_model"] == "l2").all()
    assert worst.loc[1.5, "robust_accuracy"] <= rows["robust_accuracy"].min()
    markdown = (out / "leaderboard.md").read_text()
    assert "### L2 headline: per-sample worst case" in markdown and "### L2, ε = 1.5: robust accuracy" in markdown


def test_l2_cells_have_their_own_keys_and_linf_keys_are_unchanged(bench, tmp_path):
    out = tmp_path / "out"
    assert bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.3", "--out", str(out))[0] == 0
    assert (
        bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.3", "--norm", "l2", "--out", str(out))[0]
        == 0
    )
    frame = leaderboard(out)
    cells = frame[frame["attack"] == "fgsm"].set_index("threat_model")
    assert cells.loc["linf", "cell_key"] != cells.loc["l2", "cell_key"]
    assert cells.loc["l2", "robust_accuracy"] > cells.loc["linf", "robust_accuracy"]  # an L2 ball of 0.3 is tiny


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--norm", "l3"], "unknown --norm 'l3'"),
        (["--norm", "l2", "--attacks", "vaea"], "attack 'vaea' does not run under --norm l2; attacks that do:"),
        (["--norm", "l2", "--eps", "40"], "an L2 epsilon must lie in [0, 28]"),
        (["--eps", "1.5"], "L2 budgets need --norm l2"),
    ],
)
def test_bad_threat_model_input_is_one_line_and_exit_2(bench, tmp_path, args, message):
    code, _, stderr = bench("run", "--defenses", "cnn", "--attacks", "fgsm", *args, "--out", str(tmp_path / "o"))
    assert code == 2
    assert message in stderr and stderr.count("\n") == 1
