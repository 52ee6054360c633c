"""The paper-000 report on synthetic records: tables are filled and verdicts follow the numbers."""

from pathlib import Path

import pandas as pd
import pytest

from benchmark.config.profiles import get_profile
from benchmark.config.run_config import RunConfig
from benchmark.reports import paper000
from foundation.registry import Spec

ATTACK_LOSS = {"clean": 70.0, "FGSM": 80.0, "PGD": 78.0, "GNA": 75.0, "GTA": 120.0}


def _records(profile: str, pgd_ratio: float, cnn_ratio: float, gta_loss: float) -> pd.DataFrame:
    rows = paper000.matrix(profile)
    records = []
    for arch, specs in rows.items():
        for label, defense in specs.items():
            mode = label if label in paper000.TRAINING_MODES else "RANDOM"
            per_epoch = 10.0 * (pgd_ratio if mode == "PGD" else 1.0) * (cnn_ratio if arch == "cnn" else 1.0)
            for column, (attack, eps) in paper000.LOSS_COLUMNS.items():
                loss = gta_loss if column == "GTA" else ATTACK_LOSS[column]
                records.append(
                    {
                        "defense": defense,
                        "attack": attack,
                        "eps": eps,
                        "n": 100,
                        "profile": profile,
                        "seed": 0,
                        "clean_accuracy": 0.95,
                        "robust_accuracy": 0.5 if label != "clean" else 0.2,
                        "robust_accuracy_ci_low": 0.4,
                        "robust_accuracy_ci_high": 0.6,
                        "reconstruction_loss": loss - (3.0 if label == "GNA" and column in ("FGSM", "PGD") else 0.0),
                        "train_seconds": per_epoch * 4,
                        "train_epochs": 4.0,
                        "device": "cpu",
                        "library_versions": "x",
                    }
                )
    frame = pd.DataFrame(records)
    extra = frame[frame["attack"] == "fgsm"].assign(attack="pgd")
    return pd.concat([frame, extra])


@pytest.mark.parametrize(
    ("pgd_ratio", "cnn_ratio", "gta_loss", "verdicts"),
    [
        (3.0, 6.5, 120.0, ["reproduced"] * 5),
        (5.0, 2.0, 60.0, ["not reproduced", "reproduced", "reproduced", "not reproduced", "not reproduced"]),
    ],
)
def test_findings_follow_the_numbers(tmp_path: Path, pgd_ratio, cnn_ratio, gta_loss, verdicts):
    config = RunConfig(
        defenses=(Spec("vae"),),
        attacks=(Spec("fgsm"),),
        epsilons=(0.1,),
        profile=get_profile("quick"),
        out_dir=tmp_path,
    )
    frame = _records("quick", pgd_ratio, cnn_ratio, gta_loss)
    text = paper000.write(config, frame, tmp_path / "paper000.md", "bench report paper000").read_text()
    findings = [line for line in text.splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]
    assert [("not reproduced" if "**not reproduced**" in line else "reproduced") for line in findings] == verdicts
    assert "| PGD " in text and "7:25 (2.93)" in text
    assert f"{pgd_ratio:.2f}" in text
    assert "w_l = 0 (plain PER)" in text
    assert "beats `vae` at its training ε" in text
