"""Per-sample worst case, sanity flags and robustness curves on synthetic records."""

import numpy as np
import pandas as pd
import torch

from benchmark.results.curves import write_curves
from benchmark.results.frame import records_to_frame
from benchmark.results.sanity import sanity_flags
from benchmark.results.statistics import pack_mask, wilson_interval
from benchmark.results.worst_case import worst_case_rows


def cell(attack, eps, robust_points, *, defense="cnn", access="white-box", clean=1.0, **extra):
    mask = torch.tensor(robust_points, dtype=torch.bool)
    n, k = len(mask), int(mask.sum())
    low, high = wilson_interval(k, n)
    return {
        "defense": defense,
        "attack": attack,
        "eps": eps,
        "n": n,
        "status": "ok",
        "threat_model": "linf",
        "access": access,
        "profile": "smoke",
        "seed": 0,
        "config_hash": "h",
        "eot_samples": 1,
        "prediction_repeats": 1,
        "clean_accuracy": clean,
        "robust_accuracy": k / n,
        "robust_accuracy_ci_low": low,
        "robust_accuracy_ci_high": high,
        "robust_points": pack_mask(mask),
        "train_seconds": 1.0,
        "attack_seconds": 2.0,
        "randomized": False,
        "device": "cpu",
        "library_versions": "x",
        "created": "2026-01-01",
        "cell_key": f"{defense}-{attack}-{eps}",
        "budget": f"ε={eps}",
        **extra,
    }


def test_worst_case_requires_a_point_to_survive_every_attack():
    a = [1, 1, 0, 1, 1, 0, 1, 1]
    b = [1, 0, 1, 1, 1, 0, 1, 1]
    worst = worst_case_rows(pd.DataFrame([cell("fgsm", 0.1, a), cell("pgd", 0.1, b)]))
    assert len(worst) == 1
    row = worst.iloc[0]
    assert row["attack"] == "worst" and row["robust_accuracy"] == np.mean(np.logical_and(a, b)) == 5 / 8
    assert row["robust_accuracy"] <= min(np.mean(a), np.mean(b))
    assert row["note"] == "per-point worst case over fgsm, pgd" and row["attack_seconds"] == 4.0


def test_no_worst_case_over_a_partial_set_of_attacks():
    old = {**cell("deepfool", 0.1, [1] * 8), "robust_points": None}
    assert worst_case_rows(pd.DataFrame([cell("fgsm", 0.1, [1] * 8), old])).empty


def test_worst_case_groups_by_epsilon_and_skips_semantic_attacks():
    frame = pd.DataFrame(
        [
            cell("fgsm", 0.1, [1, 1, 1, 0]),
            cell("fgsm", 0.3, [1, 0, 0, 0]),
            {**cell("gna", None, [0, 0, 0, 0]), "threat_model": "semantic"},
        ]
    )
    worst = worst_case_rows(frame).set_index("eps")
    assert worst["robust_accuracy"].to_dict() == {0.1: 0.75, 0.3: 0.25}


def _flags(rows):
    frame = records_to_frame(rows)
    return dict(zip(frame["attack"] + "@" + frame["eps"].astype(str), frame["flags"], strict=True))


def test_a_sound_curve_has_no_flags():
    rows = [
        cell("pgd", 0.0, [1] * 40),
        cell("pgd", 0.1, [1] * 20 + [0] * 20),
        cell("pgd", 1.0, [0] * 40),
        cell("transfer", 0.1, [1] * 30 + [0] * 10, access="transfer"),
    ]
    assert set(_flags(rows).values()) == {""}


def test_each_flag_fires_on_its_failure():
    n = 100
    rows = [
        cell("fgsm", 0.0, [1] * 70 + [0] * 30),  # ε = 0 but clean accuracy is 1.0
        cell("pgd", 0.1, [1] * 20 + [0] * 80),
        cell("pgd", 0.2, [1] * 90 + [0] * 10),  # rises with ε
        cell("pgd", 1.0, [1] * 50 + [0] * 50),  # unbounded budget leaves 50 %
        cell("square", 0.2, [0] * n, access="query"),  # black-box far below every white-box attack at 0.2
    ]
    flags = _flags(rows)
    assert flags["fgsm@0.0"] == "eps0"
    assert flags["pgd@0.2"] == "rises"
    assert "unbroken" in flags["pgd@1.0"]
    assert flags["square@0.2"] == "blackbox"
    assert flags["pgd@0.1"] == ""


def test_eps0_is_not_checked_on_derived_worst_rows():
    # each cell equals clean accuracy (0.88); their per-point AND (0.76) is far below it
    noisy = [cell("fgsm", 0.0, [1] * 88 + [0] * 12), cell("pgd", 0.0, [0] * 12 + [1] * 88)]
    flags = _flags([{**row, "clean_accuracy": 0.88} for row in noisy])
    assert flags == {"fgsm@0.0": "", "pgd@0.0": "", "worst@0.0": ""}


def test_masked_gradients_and_undeclared_randomness_are_flagged():
    frame = pd.DataFrame(
        [
            cell("fgsm", 0.1, [1] * 10, defense="quantised", gradient_masking_share=1.0, prediction_flip_share=0.0),
            cell("fgsm", 0.1, [1] * 10, defense="noisy", gradient_masking_share=0.0, prediction_flip_share=0.2),
            cell(
                "fgsm",
                0.1,
                [1] * 10,
                defense="sampled",
                gradient_masking_share=0.0,
                prediction_flip_share=0.2,
                randomized=True,
            ),
        ]
    )
    assert sanity_flags(frame).tolist() == ["masked", "random", ""]


def test_curves_are_written_as_csv_and_png(tmp_path):
    frame = records_to_frame(
        [cell("pgd", eps, [1] * int(10 - 30 * eps) + [0] * int(30 * eps)) for eps in (0.0, 0.1, 0.2, 0.3)]
        + [cell("fgsm", 0.1, [1] * 10)]
    )
    written = write_curves(frame, tmp_path)
    assert [p.name for p in written] == ["curves.csv", "smoke-pgd.png", "smoke-worst.png"]  # worst case too
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves["attack"].unique().tolist() == ["pgd", "worst"]
    assert curves.loc[curves["attack"] == "pgd", "eps"].tolist() == [0.0, 0.1, 0.2, 0.3]
    assert (tmp_path / "curves" / "smoke-pgd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
