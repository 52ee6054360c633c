"""Leaderboard tables and the regression check on synthetic records."""

import pandas as pd

from benchmark.leaderboard import COLUMNS, markdown, records_to_frame
from benchmark.metrics import wilson_interval
from benchmark.regression import compare


def record(defense, attack, eps, robust, n=200, **extra):
    low, high = wilson_interval(round(robust * n), n)
    return {
        "defense": defense,
        "attack": attack,
        "backend": "native",
        "eps": eps,
        "n": n,
        "status": "ok",
        "clean_accuracy": 0.99,
        "robust_accuracy": robust,
        "robust_accuracy_ci_low": low,
        "robust_accuracy_ci_high": high,
        "f1_macro": robust,
        "train_seconds": 12.0,
        "profile": "smoke",
        "seed": 0,
        "config_hash": f"h-{defense}",
        "randomized": False,
        "library_versions": "torch=x",
        **extra,
    }


def test_frame_has_the_long_format_columns_in_order():
    frame = records_to_frame([record("vae", "pgd", 0.3, 0.1), record("cnn", "fgsm", 0.1, 0.5)])
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS
    assert frame["defense"].tolist() == ["cnn", "vae"]


def test_markdown_pivots_robust_accuracy_f1_and_training_time():
    frame = records_to_frame(
        [
            record("cnn", "fgsm", 0.1, 0.5),
            record("cnn", "fgsm", 0.3, 0.0),
            record("vae", "fgsm", 0.1, 0.25),
            {**record("cnn", "vaea", 0.1, 0.0), "status": "skipped", "note": "vaea needs vae, which cnn lacks"},
        ]
    )
    text = markdown(frame)
    assert "| defense   | fgsm @ 0.1        | fgsm @ 0.3     | vaea @ 0.1   |" in text
    assert "| cnn       | 50.0 [43.1, 56.9] | 0.0 [0.0, 1.9] | skipped      |" in text
    assert "### Macro-F1 under attack" in text and "0.250" in text
    assert "training time" in text and "12.0" in text
    assert "- cnn × vaea: vaea needs vae, which cnn lacks" in text
    vae_row = next(line for line in text.splitlines() if line.startswith("| vae ") and "[" in line)
    assert "nan" not in vae_row and vae_row.count("| –") == 2  # cells never run: fgsm @ 0.3, vaea @ 0.1
    assert "*all* `prediction_repeats` repeated predictions are correct" in text


def test_regression_beyond_the_combined_interval_is_flagged():
    baseline = pd.DataFrame([record("cnn", "pgd", 0.1, 0.60), record("cnn", "pgd", 0.3, 0.05)])
    within = pd.DataFrame([record("cnn", "pgd", 0.1, 0.55), record("cnn", "pgd", 0.3, 0.04)])
    report = compare(baseline, within)
    assert report.ok and report.compared == 2
    beyond = pd.DataFrame([record("cnn", "pgd", 0.1, 0.40), record("cnn", "pgd", 0.3, 0.05)])
    report = compare(baseline, beyond)
    assert not report.ok
    assert report.regressions[["defense", "eps"]].values.tolist() == [["cnn", 0.1]]
    assert 0.06 < report.regressions["tolerance"].iloc[0] < 0.1


def test_floor_and_missing_cells():
    baseline = pd.DataFrame([record("cnn", "pgd", 0.1, 0.0, n=10_000), record("vae", "pgd", 0.1, 0.2)])
    run = pd.DataFrame([record("cnn", "pgd", 0.1, 0.0, n=10_000)])
    report = compare(baseline, run, floor=0.02)
    assert report.regressions.empty
    assert report.missing[["defense", "attack"]].values.tolist() == [["vae", "pgd"]]
    improved = pd.DataFrame([record("cnn", "pgd", 0.1, 0.5), record("vae", "pgd", 0.1, 0.9)])
    assert compare(baseline, improved).ok


def test_a_recomputed_cell_supersedes_the_record_of_earlier_code():
    """Same cell under a new key (e.g. an attack's new revision): the table shows the newest record only."""
    old = {**record("cnn", "pgd", 0.1, 0.75), "cell_key": "old", "created": "2026-11-20T10:00:00+00:00"}
    new = {**record("cnn", "pgd", 0.1, 0.70), "cell_key": "new", "created": "2026-11-21T10:00:00+00:00"}
    other_eps = {**record("cnn", "pgd", 0.3, 0.0), "cell_key": "x", "created": "2026-11-19T10:00:00+00:00"}
    frame = records_to_frame([new, old, other_eps])
    pgd = frame[frame["attack"] == "pgd"].set_index("eps")
    assert len(pgd) == 2 and pgd.loc[0.1, "cell_key"] == "new" and pgd.loc[0.1, "robust_accuracy"] == 0.70
