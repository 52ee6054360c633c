"""results/recompute: rerun.py runs only the cells not yet recomputed; swap.py moves a recomputed row into the
committed store whole, and only once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmark.store.result_store import ResultStore
from foundation.errors import BenchError
from tests.synthetic import cell_record

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "results" / "recompute"))
import rerun  # maintenance scripts beside the store they maintain, not package modules
from swap import swap

NEW_WEIGHTS, OLD_WEIGHTS = "a" * 64, "b" * 64


CLEAN = {
    "clean_key": "c1ea000000000000",
    "defense": "cnn",
    "defense_key": "d",
    "n": 2,
    "predictions": [3, 1],
    "diagnostics": {},
    "input_quantizer": None,
}


@pytest.fixture
def stores(tmp_path):
    old, new = ResultStore(tmp_path / "results"), ResultStore(tmp_path / "recompute")
    old.write(cell_record("1000000000000000"))  # cnn, an old record that names no weights
    old.write(cell_record("2000000000000000", weights_sha256=OLD_WEIGHTS))
    old.write(cell_record("3000000000000000", weights_sha256=NEW_WEIGHTS, attack="pgd"))  # already on the new weights
    old.write(cell_record("4000000000000000", defense="madry"))  # another row: stays as it is
    new.write(cell_record("5000000000000000", weights_sha256=NEW_WEIGHTS))
    new.write(cell_record("6000000000000000", weights_sha256=NEW_WEIGHTS, attack="deepfool"))
    new.write_clean(CLEAN)
    return old, new


def keys(store: ResultStore) -> list[str]:
    return [record["cell_key"] for record in store.records()]


def test_a_row_moves_whole_old_weights_out_new_cells_and_clean_record_in(stores):
    old, new = stores
    swap(["cnn"], new, old, dry_run=False)
    assert keys(old) == ["3000000000000000", "4000000000000000", "5000000000000000", "6000000000000000"]
    assert old.get_clean(CLEAN["clean_key"]) == CLEAN
    swap(["cnn"], new, old, dry_run=False)  # moving again changes nothing
    assert keys(old) == ["3000000000000000", "4000000000000000", "5000000000000000", "6000000000000000"]


def test_a_dry_run_says_what_would_move_and_moves_nothing(stores, capsys):
    old, new = stores
    swap(["cnn"], new, old, dry_run=True)
    assert "cnn: 2 old cells out, 2 recomputed cells in" in capsys.readouterr().out
    assert keys(old) == ["1000000000000000", "2000000000000000", "3000000000000000", "4000000000000000"]


def test_an_invalid_recomputed_record_stops_the_move_before_anything_moves(stores):
    old, new = stores
    (new.cells / "6000000000000000.json").write_text("{}")
    with pytest.raises(BenchError, match=r"6000000000000000\.json: missing field .cell_key.: rerun rerun\.py"):
        swap(["cnn"], new, old, dry_run=False)
    assert keys(old) == ["1000000000000000", "2000000000000000", "3000000000000000", "4000000000000000"]


def test_rerun_runs_only_the_cells_not_yet_recomputed_less_the_superseded_ones(tmp_path, monkeypatch):
    old, new = ResultStore(tmp_path / "results"), ResultStore(tmp_path / "recompute")
    monkeypatch.setattr(rerun, "RESULTS", old.root)
    monkeypatch.setattr(rerun, "HERE", new.root)
    for key, eps in (("1000000000000000", 0.1), ("2000000000000000", 0.2), ("3000000000000000", 0.3)):
        old.write(cell_record(key, profile="quick", eps=eps))
    old.write(cell_record("4000000000000000", profile="quick", defense="madry", attack=next(iter(rerun.SUPERSEDED))))
    new.write(cell_record("5000000000000000", profile="quick", eps=0.2, weights_sha256=NEW_WEIGHTS))
    (command,) = rerun.remaining_runs()
    assert command[:8] == ["bench", "run", "--defenses", "cnn", "--attacks", "fgsm", "--norm", "linf"]
    assert command[8:] == ["--eps", "0.1,0.3", *rerun.COMMON]
    assert rerun.remaining_runs({"madry"}) == []
    with pytest.raises(BenchError, match="--defenses: no stored row vgg; rows: cnn, madry"):
        rerun.main(dry_run=True, defenses={"vgg"})
    with pytest.raises(BenchError, match="--defenses: an empty name"):
        rerun.main(dry_run=True, defenses={"cnn", ""})
