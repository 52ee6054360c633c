"""Leaderboard tables and the regression check on synthetic records."""

import pandas as pd

from benchmark.results.columns import COLUMNS
from benchmark.results.frame import records_to_frame
from benchmark.results.leaderboard import markdown
from benchmark.results.regression import regressions as compare
from benchmark.results.statistics import wilson_interval


def record(defense, attack, eps, robust, n=200, **extra):
    low, high = wilson_interval(round(robust * n), n)
    return {
        "defense": defense,
        "attack": attack,
        "backend": "native",
        "threat_model": "linf",
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
    assert "### L∞, ε = 0.1: robust accuracy per attack, %" in text
    assert "| defense   | fgsm              | vaea    |" in text
    assert "| cnn       | 50.0 [43.1, 56.9] | skipped |" in text
    assert "| vae       | 25.0 [19.5, 31.4] | –       |" in text  # – : never run
    assert "### L∞, ε = 0.3: robust accuracy per attack, %" in text
    assert "| cnn       | 0.0 [0.0, 1.9] |" in text
    assert "### L∞, ε = 0.1: macro-F1 under attack" in text and "0.250" in text
    assert "training time" in text and "12.0" in text
    assert "- cnn × vaea: vaea needs vae, which cnn lacks" in text
    assert "nan" not in text
    assert "*all* `prediction_repeats` repeated predictions are correct" in text


def test_the_worst_case_comes_first_ranked_at_the_headline_eps_then_one_table_per_eps():
    points = {"robust_points": None}
    frame = records_to_frame(
        [
            record("cnn", "fgsm", 0.1, 0.5),
            record("cnn", "fgsm", 0.3, 0.0),
            record("madry", "fgsm", 0.1, 0.9),
            record("madry", "fgsm", 0.3, 0.8),
            record("abs", "pgd", 0.3, 0.1),
            {**record("cnn", "pgd", 1.5, 0.02), "threat_model": "l2"},
            {**record("abs", "pgd", 1.5, 0.7), "threat_model": "l2"},
        ]
    )
    frame = frame.drop(columns=[c for c in points if c in frame])
    from benchmark.results.worst_case import worst_case_rows

    assert worst_case_rows(frame).empty  # no per-point masks: no worst case
    headings = [line for line in markdown(frame).splitlines() if line.startswith("### ")]
    assert headings == [
        "### L∞, ε = 0.1: robust accuracy per attack, %",
        "### L∞, ε = 0.1: macro-F1 under attack",
        "### L∞, ε = 0.3: robust accuracy per attack, %",
        "### L∞, ε = 0.3: macro-F1 under attack",
        "### L2, ε = 1.5: robust accuracy per attack, %",
        "### L2, ε = 1.5: macro-F1 under attack",
        "### Defenses: clean accuracy (%), test points and training time (s)",
    ]


def test_worst_case_rows_rank_the_defenses_per_threat_model():
    import numpy as np

    def masked(defense, attack, eps, robust, threat_model="linf", n=10):
        mask = np.zeros(n, dtype=bool)
        mask[: round(robust * n)] = True
        return {
            **record(defense, attack, eps, robust, n=n),
            "threat_model": threat_model,
            "robust_points": np.packbits(mask).tobytes().hex(),
            "cell_key": f"{defense}-{attack}-{eps}",
            "created": "2026-11-30T00:00:00+00:00",
            "attack_seconds": 1.0,
            "device": "cpu",
        }

    frame = records_to_frame(
        [
            masked("cnn", "fgsm", 0.3, 0.5),
            masked("cnn", "pgd", 0.3, 0.2),
            masked("madry", "pgd", 0.3, 0.9),
            masked("cnn", "pgd", 1.5, 0.1, "l2"),
            masked("madry", "pgd", 1.5, 0.4, "l2"),
            masked("abs", "pgd", 1.5, 0.8, "l2"),
        ]
    )
    worst = frame[frame["attack"] == "worst"].set_index(["threat_model", "defense"])["robust_accuracy"]
    assert worst.to_dict() == {
        ("linf", "cnn"): 0.2,
        ("linf", "madry"): 0.9,
        ("l2", "abs"): 0.8,
        ("l2", "cnn"): 0.1,
        ("l2", "madry"): 0.4,
    }
    lines = markdown(frame).splitlines()
    headings = [line for line in lines if line.startswith("### ")]
    assert headings[0].startswith("### L∞ headline: per-sample worst case")
    assert headings[0].endswith("(ranked at ε = 0.3)")
    l2 = headings.index(next(h for h in headings if h.startswith("### L2 headline")))
    assert headings[l2].endswith("(ranked at ε = 1.5)")
    l2_table = lines[lines.index(headings[l2]) + 2 : lines.index(headings[l2]) + 7]
    assert [row.split("|")[1].strip() for row in l2_table[2:]] == ["abs", "madry", "cnn"]


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


def test_a_cell_measured_on_other_weights_or_draws_is_flagged_stale_and_so_is_its_worst_case():
    import numpy as np

    def masked(attack, clean, created):
        mask = np.zeros(10, dtype=bool)
        mask[:5] = True
        return {
            **record("madry", attack, 0.3, 0.5, n=10),
            "clean_accuracy": clean,
            "threat_model": "linf",
            "robust_points": np.packbits(mask).tobytes().hex(),
            "cell_key": f"madry-{attack}",
            "created": created,
            "attack_seconds": 1.0,
            "device": "cpu",
            "randomized": False,
            "eot_samples": 1,
            "prediction_repeats": 1,
        }

    frame = records_to_frame(
        [masked("fgsm", 0.9, "2026-11-21T00:00:00+00:00"), masked("pgd", 0.8, "2026-11-30T00:00:00+00:00")]
    )
    flags = frame.set_index("attack")["flags"]
    assert flags["fgsm"] == "stale" and flags["pgd"] == "" and flags["worst"] == "stale"
    # Same clean accuracy, other weights: the digests tell them apart; a record without one is not judged by it.
    older, newer = masked("fgsm", 0.8, "2026-11-21T00:00:00+00:00"), masked("pgd", 0.8, "2026-11-30T00:00:00+00:00")
    legacy = {**masked("deepfool", 0.8, "2026-11-20T00:00:00+00:00")}
    frame = records_to_frame([{**older, "weights_sha256": "a" * 64}, {**newer, "weights_sha256": "b" * 64}, legacy])
    flags = frame.set_index("attack")["flags"]
    assert flags["fgsm"] == "stale" and flags["pgd"] == "" and flags["deepfool"] == "" and flags["worst"] == "stale"
    frame = records_to_frame([{**older, "weights_sha256": "b" * 64}, {**newer, "weights_sha256": "b" * 64}, legacy])
    assert (frame["flags"] == "").all()
