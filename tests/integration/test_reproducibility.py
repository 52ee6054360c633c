"""Same seed, same numbers: randomized defenses reproduce exactly, and every cell shares one clean verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.store.result_store import ResultStore

pytestmark = pytest.mark.integration

#: What may differ between two runs of one command: when and how long.
TIMING_FIELDS = {"created", "attack_seconds"}


def stored(out: Path, folder: str = "cells") -> dict[str, dict]:
    return {
        path.stem: {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING_FIELDS}
        for path in sorted((out / folder).glob("*.json"))
    }


def test_a_randomized_defense_gives_identical_records_in_two_directories(bench, tmp_path):
    command = ["run", "--defenses", "vae", "--attacks", "fgsm,pgd", "--eps", "0.1"]
    for out in ("first", "second"):
        code, _, _ = bench(*command, "--out", str(tmp_path / out))
        assert code == 0
    first, second = stored(tmp_path / "first"), stored(tmp_path / "second")
    assert len(first) == 2 and first == second
    assert stored(tmp_path / "first", "clean") == stored(tmp_path / "second", "clean")
    assert all(record["randomized"] and record["prediction_repeats"] == 3 for record in first.values())
    assert all(0 < record["robust_accuracy"] < record["clean_accuracy"] for record in first.values())


def test_every_cell_of_a_resumed_table_shows_one_clean_accuracy(bench, tmp_path):
    out = str(tmp_path / "out")
    assert bench("run", "--defenses", "vae", "--attacks", "fgsm", "--eps", "0.3", "--out", out)[0] == 0
    code, stdout, _ = bench("run", "--defenses", "vae", "--attacks", "fgsm,deepfool", "--eps", "0.1,0.3", "--out", out)
    assert code == 0 and "3 cells computed" in stdout
    records = ResultStore(Path(out)).records()
    assert len(records) == 4
    for column in ("clean_accuracy", "prediction_flip_share", "gradient_masking_share"):
        assert len({record[column] for record in records}) == 1, column
    assert len(list((tmp_path / "out" / "clean").glob("*.json"))) == 1
