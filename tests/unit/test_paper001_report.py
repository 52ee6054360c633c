"""The paper-001 report on synthetic records: Table I beside the paper's, ABS figures, black-box columns."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.profiles import get_profile
from benchmark.config.run_config import RunConfig
from benchmark.reports import paper001
from benchmark.results.frame import records_to_frame
from benchmark.results.statistics import pack_norms
from foundation.registry import Spec

ROBUST = {"cnn": 0.02, "madry": 0.9, "binary-abs": 0.7, "pgan-dqn": 0.5, "abs": 0.1}
N = 200


def _record(defense: str, attack: str, eps: float, robust: float, threat_model: str = "linf", first: int = 0) -> dict:
    """A record whose robust points are ``round(robust * N)`` consecutive points from ``first``."""
    mask = np.zeros(N, dtype=bool)
    count = round(robust * N)
    mask[first : first + count] = True
    return {
        "defense": defense,
        "attack": attack,
        "threat_model": threat_model,
        "status": "ok",
        "access": "white-box",
        "randomized": False,
        "eps": eps,
        "n": N,
        "profile": "quick",
        "seed": 0,
        "clean_accuracy": 0.99,
        "robust_accuracy": count / N,
        "robust_accuracy_ci_low": max(0.0, count / N - 0.05),
        "robust_accuracy_ci_high": min(1.0, count / N + 0.05),
        "robust_points": np.packbits(mask).tobytes().hex(),
        "f1_macro": count / N,
        "config_hash": f"h-{defense}",
        "cell_key": f"{defense}-{attack}-{eps}",
        "attack_seconds": 1.0,
        "created": "2026-11-30T00:00:00+00:00",
        "device": "cpu",
        "library_versions": "x",
    }


def _records(extra: list[dict] | None = None) -> pd.DataFrame:
    records = []
    for defense, robust in ROBUST.items():
        for attack in [*paper001.WHITE_BOX, *paper001.BLACK_BOX]:
            if attack in ("square", "hsj") and "abs" in defense:
                continue  # below `paper`: square is left out on the ABS rows, hsj runs at a smaller budget
            records.append(
                _record(defense, attack, 0.3, min(1.0, robust + (0.3 if attack in paper001.BLACK_BOX else 0)))
            )
        if defense != "pgan-dqn":
            records.append(_record(defense, "pgd", paper001.L2_EPS, robust / 2, threat_model="l2"))
    return records_to_frame(records + (extra or []))


def _config(out_dir: Path) -> RunConfig:
    return RunConfig(
        defenses=(Spec("cnn"),), attacks=(Spec("fgsm"),), epsilons=(0.3,), profile=get_profile("quick"), out_dir=out_dir
    )


def test_page_puts_our_numbers_beside_the_papers(tmp_path: Path):
    text = paper001.write(_config(tmp_path), _records(), tmp_path / "paper001.md", "bench report paper001").read_text()
    madry = next(line for line in text.splitlines() if line.startswith("| Madry ") and "`madry`" in line)
    assert "98.8" in madry and "90.0 / 89" in madry and "0.90 / 0.48" in madry
    linf, l2 = text.split("### L∞, ε = 0.3")[1].split("### L2, ε = 1.5")
    abs_linf = next(line for line in linf.splitlines() if line.startswith("| ABS "))
    assert "10.0 [" in abs_linf and "| 8 " in abs_linf  # the worst case over every attack, beside Schott et al.
    abs_l2 = next(line for line in l2.splitlines() if line.startswith("| ABS "))
    assert "5.0 [" in abs_l2 and "| 80 " in abs_l2 and "| pgd " in abs_l2
    black_box = next(
        line for line in text.splitlines() if line.startswith("| Binary ABS ") and "[" in line and "`" not in line
    )
    assert black_box.count("–") == 2  # square (left out) and hsj (not run yet) on the ABS rows
    assert "Proposed (PGAN-DQN)" in text and "`pgan-dqn`" in text


def test_the_abs_rows_own_attacks_count_the_points_only_they_break(tmp_path: Path):
    """binary-abs survives the white-box attacks on points 0..139; transfer from ABS breaks 0..19 of them."""
    transfer = _record("binary-abs", paper001.ABS_TRANSFER, 0.3, 0.6, first=20)
    hsj = _record("binary-abs", paper001.ABS_LABEL_ONLY["hsj"], 0.3, 0.7)  # the smaller budget the quick profile runs
    pointwise = _record("binary-abs", paper001.ABS_LABEL_ONLY["pointwise"], 0.3, 0.6, first=20)
    records = _records([transfer, hsj, pointwise])
    text = paper001.write(_config(tmp_path), records, tmp_path / "paper001.md", "c").read_text()
    section = text.split("## ABS rows attacked as Schott et al. attacked them")[1].split("## Checks")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `binary-abs`")]
    transfer_line = next(line for line in rows if "transfer" in line)
    assert "60.0 [" in transfer_line and "20 of 140" in transfer_line
    hsj_line = next(line for line in rows if "hsj" in line)
    assert "0 of 140" in hsj_line and f"`{paper001.ABS_LABEL_ONLY['hsj']}`" in hsj_line
    assert "20 of 140" in next(line for line in rows if "pointwise" in line)  # points 0..19 fall to it
    black_box = next(line for line in text.splitlines() if line.startswith("| Binary ABS ") and "*" in line)
    assert "70.0 [65.0, 75.0]*" in black_box  # the hsj column shows the smaller budget's cell, marked
    worst = next(line for line in text.split("### L∞, ε = 0.3")[1].splitlines() if line.startswith("| Binary ABS"))
    assert "60.0 [" in worst  # the worst case includes the new attacks: points 20..139 survive all


def test_the_l2_section_counts_what_the_label_only_attacks_add_and_their_median_eps_star(tmp_path: Path):
    """madry: the gradient attacks leave points 0..89 at ε = 1.5 (pgd; deepfool's ε* is 3.0 on 0..179), hsj
    breaks 0..39 of them at ε* 1.0 and finds 2.0 elsewhere: the medians are 3.0 alone, 2.0 with hsj."""
    gradient_norms = np.where(np.arange(N) < 180, 3.0, 1.0)
    hsj_norms = np.where(np.arange(N) < 40, 1.0, 2.0)
    deepfool = _record("madry", "deepfool", paper001.L2_EPS, 0.9, threat_model="l2")
    deepfool["minimal_norms"] = pack_norms(gradient_norms)
    hsj = _record("madry", "hsj", paper001.L2_EPS, 0.7, threat_model="l2", first=40)
    hsj["minimal_norms"] = pack_norms(hsj_norms)
    frame = _records([deepfool, hsj])
    text = paper001.write(_config(tmp_path), frame, tmp_path / "paper001.md", "c").read_text()
    section = text.split("What the label-only attacks add")[1].split("## ABS paper, L0")[0]
    madry = next(line for line in section.splitlines() if line.startswith("| Madry "))
    cells = [cell.strip() for cell in madry.strip("|").split("|")]
    assert cells == ["Madry", "200", "45.0", "40 of 90", "25.0", "3.00", "2.00", "1.4"]
    assert "| CNN " not in section  # a row without label-only cells has nothing to add


def test_the_l0_column_puts_each_row_and_the_binary_cnn_beside_schott_et_al(tmp_path: Path, monkeypatch):
    """madry at 12 pixels: sparse-rs leaves points 0..19 (10 %), FMN's ε* is 5 on every point; the binary CNN's
    record lies in the label-only store beside this one."""
    eps = paper001.L0_EPS
    sparse_rs = _record("madry", "sparse-rs", eps, 0.1, threat_model="l0")
    fmn = _record("madry", "foolbox.fmn", eps, 0.3, threat_model="l0")
    fmn["minimal_norms"] = pack_norms(np.full(N, 5.0))
    binary = _record(paper001.BINARY_CNN, "pointwise", eps, 0.4, threat_model="l0")
    binary["minimal_norms"] = pack_norms(np.full(N, 8.0))
    (tmp_path / paper001.BINARY_CNN_STORE).mkdir()  # the label-only store, read as the report reads a store
    monkeypatch.setattr(paper001, "load", lambda store, allow_empty: records_to_frame([binary]))
    text = paper001.write(_config(tmp_path), _records([sparse_rs, fmn]), tmp_path / "paper001.md", "c").read_text()
    section = text.split("## ABS paper, L0 ε = 12 pixels")[1].split("## White-box")[0]
    madry = next(line for line in section.splitlines() if line.startswith("| Madry "))
    cells = [cell.strip() for cell in madry.strip("|").split("|")]
    assert cells[2].startswith("10.0 [") and cells[3] == "5.00" and cells[-1] == "0"
    assert "foolbox.fmn" in cells[4] and "sparse-rs" in cells[4]
    binary_cnn = next(line for line in section.splitlines() if line.startswith("| Binary CNN "))
    assert "40.0 [" in binary_cnn and "| 8.00 " in binary_cnn and binary_cnn.rstrip(" |").endswith("38")
    assert next(line for line in section.splitlines() if line.startswith("| CNN ")).count("–") == 3  # not run


def test_checks_judge_the_targets_and_black_box_columns_below_white_box(tmp_path: Path):
    config = _config(tmp_path)
    records = _records()
    text = paper001.write(config, records, tmp_path / "paper001.md", "c").read_text()
    checks = text.split("## Checks")[1].split("## Rows")[0]
    assert "clean accuracy ≥ 97 %: 99.0 %, met" in checks and "≥ 80 %: 90.0 [85.0, 95.0], met" in checks
    assert "`binary-abs` clearly above `abs`" in checks and "below the best white-box" not in checks
    square = (records["defense"] == "madry") & (records["attack"] == "square")
    records.loc[square, "robust_accuracy"] = 0.5
    records.loc[records["defense"] == "madry", "clean_accuracy"] = 0.95
    checks = paper001.write(config, records, tmp_path / "paper001.md", "c").read_text().split("## Checks")[1]
    assert "clean accuracy ≥ 97 %: 95.0 %, **not met**" in checks
    assert "Madry: black-box `square`" in checks and "(`fgsm`, 90.0 [85.0, 95.0])" in checks


def test_stored_only_writes_the_page_from_the_store_and_refuses_an_empty_one(tmp_path: Path, capsys):
    import json
    import shutil

    from benchmark.cli import main

    assert main(["report", "paper001", "--stored-only", "--out", str(tmp_path)]) == 2
    assert "no stored cell of profile 'quick'" in capsys.readouterr().err
    assert main(["report", "html", "--stored-only", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--stored-only applies to paper000 and paper001 only" in err and "Traceback" not in err
    (tmp_path / "cells").mkdir()
    committed = Path(__file__).resolve().parents[2] / "results" / "cells"
    fgsm = None
    for path in committed.glob("*.json"):  # the committed cnn cells: other rows show –
        record = json.loads(path.read_text())
        if record["defense"] == "cnn":
            shutil.copy(path, tmp_path / "cells")
            if (record["attack"], record["threat_model"], record["eps"]) == ("fgsm", "linf", 0.3):
                fgsm = record["robust_accuracy"]
    assert fgsm is not None, "the committed store has no cnn FGSM cell at L∞ ε 0.3"
    assert main(["report", "paper001", "--stored-only", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "paper001.md").read_text()
    assert "--stored-only" in text
    cnn = next(line for line in text.splitlines() if line.startswith("| CNN ") and "`cnn`" in line)
    madry = next(line for line in text.splitlines() if line.startswith("| Madry ") and "`madry`" in line)
    assert f"| {100 * fgsm:.1f} / 21 " in cnn and "– / 89" in madry  # Table I's FGSM column, ours / the paper's


def test_the_quick_matrix_runs_the_abs_rows_expensive_cells_at_a_smaller_budget_and_says_so(tmp_path, monkeypatch):
    planned = []
    monkeypatch.setattr(
        paper001,
        "run_matrix",
        lambda config, defenses, attacks, eps, compute: (
            planned.append((config.norm, attacks[0], tuple(defenses))) or _records()
        ),
    )
    paper001.run(_config(tmp_path), compute=False)
    runs = {(norm, attack): defenses for norm, attack, defenses in planned}
    assert "binary-abs" not in runs["linf", "autoattack"] and runs["linf", paper001.ABS_AUTOATTACK] == ("binary-abs",)
    assert "abs" in runs["linf", "autoattack"]
    shrunk = paper001.ABS_LABEL_ONLY
    assert runs["linf", shrunk["hsj"]] == ("binary-abs", "abs") and "abs" not in runs["linf", "hsj"]
    assert "abs" not in runs["linf", "square"] and "binary-abs" not in runs["l2", "foolbox.ddn"]
    for attack in paper001.LABEL_ONLY:  # every label-only attack in L2, and on the ABS rows in L∞ too
        assert runs["l2", attack] == ("cnn", "madry") and runs["l2", shrunk[attack]] == ("abs", "binary-abs")
        assert set(runs["linf", shrunk[attack]]) == {"abs", "binary-abs"}
    assert ("linf", "boundary") not in runs and ("linf", "pointwise") not in runs
    text = paper001.write(_config(tmp_path), _records(), tmp_path / "paper001.md", "c").read_text()
    left_out = text.split("## Left out at the `quick` profile")[1]
    assert f"`binary-abs` × `autoattack` (linf) runs as `{paper001.ABS_AUTOATTACK}`" in left_out
    planned.clear()
    paper001.run(replace(_config(tmp_path), profile=get_profile("paper")), compute=False)
    runs = {(norm, attack): defenses for norm, attack, defenses in planned}
    assert {"abs", "binary-abs"} <= set(runs["linf", "hsj"]) and "binary-abs" in runs["linf", "autoattack"]
    assert set(runs["l2", "pointwise"]) == {"cnn", "madry", "abs", "binary-abs"}
    assert ("linf", shrunk["hsj"]) not in runs and ("linf", paper001.ABS_AUTOATTACK) not in runs
