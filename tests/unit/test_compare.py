"""Paired comparison: the exact McNemar test on per-point results, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.results.paired import compare, mcnemar_exact
from benchmark.results.statistics import pack_mask
from foundation.errors import BenchError


def test_mcnemar_matches_a_table_worked_by_hand():
    # 10 discordant pairs favour A, 2 favour B: p = 2 · P(X ≤ 2 | 12, ½) = 2 · (1 + 12 + 66) / 4096
    assert mcnemar_exact(10, 2) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0


def row(defense: str, mask: list[bool], **extra) -> dict:
    return {
        "dataset": "mnist",
        "profile": "smoke",
        "seed": 0,
        "defense": defense,
        "attack": "worst",
        "eps": 0.3,
        "status": "ok",
        "n": len(mask),
        "robust_points": pack_mask(torch.tensor(mask)),
        **extra,
    }


def test_only_the_discordant_points_count_and_a_capped_row_is_compared_on_its_first_points():
    a = [True] * 10 + [False] * 2 + [True] * 4  # 16 points
    b = [False] * 10 + [True] * 2  # 12 points: the first 12 of the same slice
    result = compare(pd.DataFrame([row("a", a), row("b", b)]), "a", "b", 0.3)
    assert (result.n, result.robust_a, result.robust_b, result.only_a, result.only_b) == (12, 10, 2, 10, 2)
    assert result.p_value == pytest.approx(2 * 79 / 4096) and result.verdict.startswith("a is more robust")
    same = compare(pd.DataFrame([row("a", a), row("b", a)]), "a", "b", 0.3)
    assert same.p_value == 1.0 and same.verdict.startswith("no significant difference")


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"seed": 1}, "were not evaluated on the same points: seed 0 vs 1"),
        ({"dataset": "cifar10"}, "dataset mnist vs cifar10"),
        ({"robust_points": np.nan}, "has no per-point results"),
    ],
)
def test_rows_of_different_points_are_refused(other, message):
    frame = pd.DataFrame([row("a", [True, False]), row("b", [True, True], **other)])
    with pytest.raises(BenchError, match=message):
        compare(frame, "a", "b", 0.3)


def test_bench_compare_on_the_committed_results(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the default --out is results/
    assert main(["compare", "madry", "binary-abs", "--eps", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "worst at ε = 0.3 on the same 200 test points:"
    assert out[-1].startswith("  madry is more robust (exact McNemar p = ")
