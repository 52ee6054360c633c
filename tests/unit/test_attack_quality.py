"""Attack quality: AttackBench's optimality against the per-point best of the attacks run, on synthetic stores."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.publish.attack_report import markdown
from benchmark.results.attack_quality import attack_quality, attack_summary
from benchmark.results.frame import records_to_frame
from benchmark.results.statistics import pack_norms
from benchmark.store.result_store import ResultStore
from tests.synthetic import masked_cell_record

EPS = (0.1, 0.2, 0.3)


def _cells(defense: str, attack: str, masks: dict[float, list[bool]], start: int, **changes) -> list[dict]:
    return [
        masked_cell_record(start + k, defense, attack, eps, mask, **changes)
        for k, (eps, mask) in enumerate(masks.items())
    ]


def _quality(records: list[dict]):
    quality = attack_quality(records_to_frame(records))
    return quality.set_index(["defense", "attack"])


# Points 0-7, all correct clean.  The strong attack breaks a superset of the weak one's points at every ε.
WEAK_MASKS = {0.1: [True] * 7 + [False], 0.2: [True] * 6 + [False] * 2, 0.3: [True] * 5 + [False] * 3}
STRONG_MASKS = {0.1: [True] * 5 + [False] * 3, 0.2: [True] * 3 + [False] * 5, 0.3: [True] + [False] * 7}


def test_a_dominated_attack_scores_below_the_one_dominating_it_which_scores_one():
    quality = _quality(_cells("cnn", "weak", WEAK_MASKS, 1) + _cells("cnn", "strong", STRONG_MASKS, 10))
    assert quality.loc[("cnn", "strong"), "optimality"] == pytest.approx(1.0)
    weak = quality.loc[("cnn", "weak")]
    assert 0 < weak["optimality"] < 1
    # by hand: areas by the trapezoid rule on 0, 0.1, 0.2, 0.3; clean accuracy 1
    curve = lambda masks: [1.0, *(sum(m) / 8 for m in masks.values())]  # noqa: E731
    area = lambda values: sum((a + b) / 2 * 0.1 for a, b in itertools.pairwise(values))  # noqa: E731
    best, mine = area(curve(STRONG_MASKS)), area(curve(WEAK_MASKS))
    assert weak["optimality"] == pytest.approx(1 - (mine - best) / (1.0 * 0.3 - best))
    assert weak["beaten_points"] == 4 and weak["robust_at_headline"] == pytest.approx(5 / 8)


def test_identical_attacks_score_equal_and_a_lone_attack_scores_one():
    quality = _quality(
        _cells("cnn", "a", WEAK_MASKS, 1) + _cells("cnn", "b", WEAK_MASKS, 10) + _cells("madry", "a", WEAK_MASKS, 20)
    )
    assert quality.loc[("cnn", "a"), "optimality"] == quality.loc[("cnn", "b"), "optimality"] == pytest.approx(1.0)
    assert quality.loc[("madry", "a"), "optimality"] == pytest.approx(1.0)


def test_the_envelope_is_per_point_not_the_better_curve():
    """Two attacks that each break other points: neither is the best, since the best breaks both sets."""
    left = {eps: [False] * 4 + [True] * 4 for eps in EPS}
    right = {eps: [True] * 4 + [False] * 4 for eps in EPS}
    quality = _quality(_cells("cnn", "left", left, 1) + _cells("cnn", "right", right, 10))
    assert quality.loc[("cnn", "left"), "optimality"] == pytest.approx(quality.loc[("cnn", "right"), "optimality"])
    assert quality.loc[("cnn", "left"), "optimality"] < 1
    assert quality.loc[("cnn", "left"), "best_at_headline"] == 0.0


def test_minimal_perturbations_fill_the_grid_and_a_partial_attack_only_tightens_the_envelope():
    norms = np.array([0.05, 0.15, 0.25, 0.35, math.inf, math.inf, math.inf, 0.12])
    minimal = {"minimal_norms": pack_norms(norms)}
    records = [masked_cell_record(1, "cnn", "ddn", 0.3, list(norms > 0.3), **minimal)]  # one cell: ε* fills 0.1, 0.2
    records += _cells("cnn", "pgd", WEAK_MASKS, 10)
    records += [masked_cell_record(20, "cnn", "autoattack", 0.3, [False] * 8)]  # run at the headline ε only
    quality = _quality(records)
    assert quality.loc[("cnn", "ddn"), "curve_from"] == "ε* and cells"
    assert not math.isnan(quality.loc[("cnn", "ddn"), "optimality"])
    partial = quality.loc[("cnn", "autoattack")]
    assert math.isnan(partial["optimality"]) and partial["curve_from"] == "cells at 1 of 3 ε"
    assert quality.loc[("cnn", "pgd"), "best_at_headline"] == 0.0  # autoattack broke every point at 0.3


def test_the_summary_averages_over_defenses_and_counts_weak_ones():
    records = _cells("cnn", "weak", WEAK_MASKS, 1) + _cells("cnn", "strong", STRONG_MASKS, 10)
    records += _cells("madry", "weak", WEAK_MASKS, 20)
    quality = attack_quality(records_to_frame(records))
    summary = attack_summary(quality).set_index("attack")
    weak_cnn = quality[(quality["defense"] == "cnn") & (quality["attack"] == "weak")]["optimality"].iloc[0]
    assert summary.loc["weak", "mean_optimality"] == pytest.approx((weak_cnn + 1.0) / 2)
    assert summary.loc["weak", "defenses"] == 2 and summary.loc["weak", "weak_on"] == int(weak_cnn < 0.9)
    assert next(iter(summary.index)) == "strong"  # the best first


def test_bench_report_attacks_writes_the_page(tmp_path, capsys):
    store = ResultStore(tmp_path)
    for record in _cells("cnn", "weak", WEAK_MASKS, 1) + _cells("cnn", "strong", STRONG_MASKS, 10):
        store.write(record)
    assert main(["report", "attacks", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "attacks.md").read_text()
    assert "`strong` (native) comes closest to the per-point best" in page
    assert page == markdown(records_to_frame(store.records()))
    assert "wrote" in capsys.readouterr().out


def test_the_counter_counts_images_forward_and_back():
    import torch
    from torch import nn

    from benchmark.run.measurements import PropagationCounter

    counter = PropagationCounter(nn.Linear(4, 3))
    x = torch.rand(5, 4, requires_grad=True)
    with torch.no_grad():
        counter(x[:2])  # a query: forward only
    loss = counter(x).sum()
    torch.autograd.grad(loss, x)  # one backward through the output
    assert (counter.forwards, counter.backwards) == (7, 5)
    assert counter.per_point(5) == {"forward_passes": 1.4, "backward_passes": 1.0}


def test_the_counter_shows_the_attack_the_wrapped_models_mode():
    """An attack that checks ``model.training`` (Foolbox warns on it) sees the deployed model's eval mode."""
    from torch import nn

    from benchmark.run.measurements import PropagationCounter

    deployed = nn.Sequential(nn.Linear(4, 3), nn.Dropout()).eval()
    counter = PropagationCounter(deployed)
    assert not counter.training and not deployed.training
    assert PropagationCounter(nn.Linear(4, 3)).training  # a model in training mode stays so


def test_bench_report_attacks_on_an_empty_store_is_one_line(tmp_path, capsys):
    assert main(["report", "attacks", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("bench: error: no results in") and error.count("\n") == 1
    assert not (tmp_path / "attacks.md").exists()
