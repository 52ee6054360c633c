"""The sparse threat models end to end on a real MNIST slice (smoke profile): ``--attacks adaptive`` in L0 and
L1 as the README documents it, on the undefended CNN and Madry's L∞-trained model."""

from __future__ import annotations

import pytest

from benchmark.results.leaderboard import MEDIAN_EPS_STAR
from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("norm", "eps", "first"),
    [("l0", "12", ["sparse-rs", "foolbox.fmn", "pointwise"]), ("l1", "10", ["autoattack", "foolbox.fmn", "pointwise"])],
)
def test_adaptive_runs_the_attacks_of_the_sparse_norm_end_to_end(bench, tmp_path, norm, eps, first):
    out = tmp_path / "out"
    code, stdout, stderr = bench(
        "run", "--defenses", "cnn,madry", "--attacks", "adaptive", "--norm", norm, "--eps", eps, "--n-test", "20",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "Traceback" not in stderr, stderr
    frame = leaderboard(out)
    assert set(frame["threat_model"]) == {norm} and set(frame["defense"]) == {"cnn", "madry"}
    ran = {attack.split(":")[0] for attack in frame["attack"]}
    assert set(first) <= ran and "worst" in ran
    cells = frame[frame["attack"] != "worst"]
    assert (cells["status"] == "ok").all()
    assert (cells[f"{norm}_mean"] <= float(eps) + 1e-4).all()
    worst = frame[frame["attack"] == "worst"].set_index("defense")
    for defense in ("cnn", "madry"):
        rows = cells[cells["defense"] == defense]
        assert worst.loc[defense, "robust_accuracy"] <= rows["robust_accuracy"].min()
        assert worst.loc[defense, "robust_accuracy"] < worst.loc[defense, "clean_accuracy"]
    markdown = (out / "leaderboard.md").read_text()
    headline = markdown.split(f"### {norm.upper()} headline: per-sample worst case")[1].split("###")[0]
    assert MEDIAN_EPS_STAR in headline  # the minimisation attacks give each point's ε*
    assert f"adaptive: madry: ran {first[0]}" in stdout
