"""``--n-test`` / ``RunConfig.n_test``: test points chosen by the user, keyed as the profile's slice size is."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import build_parser
from benchmark.run.plan import Planner
from benchmark.store.result_store import ResultStore
from foundation.errors import BenchError
from tests.unit.test_plan import REPO, config


def _cells(**extra):
    return Planner(config("cnn", "fgsm,deepfool", **extra)).plan(ResultStore(Path("/nonexistent"))).cells


def test_the_profiles_size_given_as_n_test_keeps_every_key():
    """The committed quick cells are found under the keys a run with --n-test 1000 (quick's size) computes."""
    quick = config("cnn,vae", "fgsm,pgd,deepfool", (0.1, 0.2, 0.3), "quick", n_test=1000)
    plan = Planner(quick).plan(ResultStore(REPO / "results"))
    assert plan.cells == () and plan.stored == 18
    assert [cell.keys for cell in _cells(n_test=200)] == [cell.keys for cell in _cells()]  # smoke's 200


def test_another_number_of_points_is_other_cells_and_clean_evaluations():
    default, fifty = _cells(), _cells(n_test=50)
    assert all(cell.n_test == 50 for cell in fifty)
    assert not {key for cell in fifty for key in cell.keys} & {key for cell in default for key in cell.keys}
    assert fifty[0].clean_key != default[0].clean_key
    assert fifty[0].defense_key == default[0].defense_key  # the checkpoint does not depend on test points
    assert [cell.n_test for cell in _cells(n_test=5000)] == [5000] * 3  # above the profile's: the user's choice


def test_a_defenses_own_budget_still_caps_and_is_said():
    planner = Planner(config("abs,cnn", "fgsm", n_test=50))
    assert [planner.n_test(planner.defense(spec)) for spec in planner.config.defenses] == [20, 50]
    said = "abs: 20 test points, its own budget at profile smoke, not the 50 of --n-test"
    assert planner.capped_test_points() == [said]
    below = Planner(config("abs", "fgsm", n_test=10))
    assert below.n_test(below.defense(below.config.defenses[0])) == 10 and below.capped_test_points() == []
    assert Planner(config("abs", "fgsm")).capped_test_points() == [
        "abs: 20 test points, its own budget at profile smoke, not the 200 of profile smoke"
    ]


@pytest.mark.parametrize("value", [0, -3])
def test_n_test_below_one_is_refused(value):
    with pytest.raises(BenchError, match=f"--n-test must be at least 1; got {value}"):
        config("cnn", "fgsm", n_test=value)


@pytest.mark.parametrize("command", ["run", "report", "perf"])
def test_run_report_and_perf_take_n_test(command):
    assert build_parser().parse_args([command, "--n-test", "50"]).n_test == 50


def test_a_report_reads_the_rows_on_its_own_test_points():
    import pandas as pd

    frame = pd.DataFrame({"defense": ["cnn", "cnn", "abs", "abs", "other"], "n": [50, 200, 20, 200, 7]})
    kept = Planner(config("abs,cnn", "fgsm", n_test=50)).on_its_test_points(frame)
    assert kept.to_dict("list") == {"defense": ["cnn", "abs", "other"], "n": [50, 20, 7]}
