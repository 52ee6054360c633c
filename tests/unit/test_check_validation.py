"""``bench check`` validates the baseline and the run leaderboard before comparing them."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.results.frame import records_to_frame

from .test_tables import record

BASELINE_SMOKE = Path(__file__).resolve().parents[2] / "results" / "baseline-smoke.csv"


@pytest.fixture
def leaderboard(tmp_path) -> Path:
    """A small valid leaderboard CSV as the harness writes it, with a skipped cell (blank numbers)."""
    skipped = {**record("cnn", "vaea", 0.1, 0.0), "status": "skipped", "note": "vaea needs vae, which cnn lacks"}
    for column in ("robust_accuracy", "robust_accuracy_ci_low", "robust_accuracy_ci_high"):
        skipped[column] = None
    frame = records_to_frame([record("cnn", "fgsm", 0.1, 0.5), record("cnn", "fgsm", 0.3, 0.1), skipped])
    path = tmp_path / "leaderboard.csv"
    frame.to_csv(path, index=False)
    return path


def check(capsys, baseline: Path, run: Path) -> tuple[int, str, str]:
    code = main(["check", "--baseline", str(baseline), "--run", str(run)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def edited(path: Path, row: int, column: str, value: str) -> Path:
    """A copy of the CSV with one value replaced (row: 0-based data row, so on line row + 2)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    out = path.with_name(f"edited-{column}-{row}.csv")
    frame.to_csv(out, index=False)
    return out


def test_a_valid_leaderboard_against_itself_passes(capsys, leaderboard):
    code, out, err = check(capsys, leaderboard, leaderboard)
    assert code == 0 and err == "" and "0 regressions, 0 missing" in out


def test_the_committed_smoke_baseline_is_valid(capsys):
    code, out, err = check(capsys, BASELINE_SMOKE, BASELINE_SMOKE)
    assert code == 0 and err == "" and "0 regressions, 0 missing" in out


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("robust_accuracy", "abc", "'abc' is not a number in [0, 1]"),
        ("robust_accuracy", "", "'' is blank, but an ok row needs a number in [0, 1]"),
        ("robust_accuracy", "1.5", "'1.5' is not a number in [0, 1]"),
        ("robust_accuracy_ci_low", "-0.1", "'-0.1' is not a number in [0, 1]"),
        ("robust_accuracy_ci_high", "nan", "'nan' is not a number in [0, 1]"),
        ("eps", "big", "'big' is not a number (nor blank)"),
        ("defense", " ", "' ' must not be blank"),
        ("status", "done", "'done' is not ok or skipped"),
    ],
)
def test_a_bad_baseline_value_names_file_line_column_and_value(capsys, leaderboard, column, value, what):
    frame = pd.read_csv(leaderboard)
    row = int(frame.index[(frame["attack"] == "fgsm") & (frame["eps"] == 0.3)][0])
    bad = edited(leaderboard, row, column, value)
    code, out, err = check(capsys, bad, leaderboard)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1
    assert err.startswith(f"bench: error: baseline {bad} line {row + 2}, column {column}: {what}; "), err


def test_a_bad_run_value_is_reported_too(capsys, leaderboard):
    bad = edited(leaderboard, 0, "robust_accuracy", "oops")
    code, _, err = check(capsys, leaderboard, bad)
    assert code == 2 and f"run leaderboard {bad} line 2, column robust_accuracy: 'oops'" in err


def test_skipped_rows_may_leave_numbers_blank_but_keep_their_key(capsys, leaderboard):
    frame = pd.read_csv(leaderboard, dtype=str, keep_default_na=False)
    row = int(frame.index[frame["status"] == "skipped"][0])
    assert frame.loc[row, "robust_accuracy"] == ""  # legal: passes in the valid test above
    bad = edited(leaderboard, row, "attack", "")
    code, _, err = check(capsys, bad, leaderboard)
    assert code == 2 and f"line {row + 2}, column attack: '' must not be blank" in err


def test_line_numbers_count_multi_line_fields(capsys, leaderboard, tmp_path):
    frame = pd.read_csv(leaderboard, dtype=str, keep_default_na=False)
    frame.loc[0, "note"] = "first line\nsecond line"
    frame.loc[1, "robust_accuracy"] = "x"
    path = tmp_path / "multiline.csv"
    frame.to_csv(path, index=False)
    code, _, err = check(capsys, path, leaderboard)
    assert code == 2 and "line 4, column robust_accuracy: 'x'" in err  # header, row 1 on two lines, row 2


def test_missing_columns_and_empty_baselines(capsys, leaderboard, tmp_path):
    pd.read_csv(leaderboard).drop(columns=["robust_accuracy_ci_low", "eps"]).to_csv(tmp_path / "c.csv", index=False)
    code, _, err = check(capsys, tmp_path / "c.csv", leaderboard)
    assert code == 2 and "lacks columns eps, robust_accuracy_ci_low" in err
    pd.read_csv(leaderboard).iloc[0:0].to_csv(tmp_path / "empty.csv", index=False)
    code, _, err = check(capsys, tmp_path / "empty.csv", leaderboard)
    assert code == 2 and "has no rows" in err
    code, _, err = check(capsys, tmp_path, leaderboard)  # a directory as the baseline
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1


def test_the_run_may_be_a_results_directory(capsys, leaderboard, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(leaderboard, results / "leaderboard.csv")
    code, out, _ = check(capsys, leaderboard, results)
    assert code == 0 and "0 regressions" in out
