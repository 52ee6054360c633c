"""The store trusts nothing it reads: schema checks, invalid records skipped and moved aside, claims."""

from __future__ import annotations

import json
import threading

import pytest

from benchmark.store.records import cell_problem
from benchmark.store.result_store import ResultStore
from tests.synthetic import cell_record

KEY = "0123456789abcdef"


def record(key: str = KEY, **changes) -> dict:
    return cell_record(key, **changes)


def test_a_written_record_reads_back_with_non_finite_numbers_as_null(tmp_path):
    store = ResultStore(tmp_path)
    store.write(record(train_seconds=float("nan")))
    assert store.has(KEY)
    assert store.records() == [record(train_seconds=None)] and store.skipped == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "missing field 'cell_key'"),
        (json.dumps(record(train_seconds=float("nan"))), "train_seconds is nan, not a number or null"),
        ("[1, 2]", "holds a JSON list, not a record"),
        ('{"cell_key": "01', "is not JSON"),
        (json.dumps(record(robust_accuracy="high")), "robust_accuracy is 'high', not a number in [0, 1]"),
        (json.dumps(record(robust_accuracy=1.5)), "robust_accuracy is 1.5"),
        (json.dumps(record(n=True)), "n is True, not a positive integer"),
        (json.dumps(record(status="done")), "status is 'done', not ok or skipped"),
        (json.dumps(record(eps=-0.1)), "eps is -0.1"),
        (json.dumps(record(defense="")), "defense is ''"),
        (json.dumps(record(cell_key="fedcba9876543210")), "is filed under 0123456789abcdef but holds cell"),
        (json.dumps(record(clean_accuracy=0.4)), "exceeds clean_accuracy"),
        (json.dumps(record(robust_accuracy_ci_low=0.6)), "lies outside its interval"),
        (json.dumps(record(robust_points="ffff")), "robust_points holds 16 bits, not 8 points"),
        (json.dumps(record(robust_points="ff")), "robust_points marks 8 of 8 points robust, but robust_accuracy 0.5"),
        (json.dumps(record(robust_points="07", n=5)), "robust_points sets bits beyond its 5 points"),
        (json.dumps(record(attack="worst")), "attack is 'worst', the label of the derived worst-case rows"),
    ],
)
def test_invalid_records_are_skipped_with_their_reason(tmp_path, text, problem):
    store = ResultStore(tmp_path)
    store.write(record("1111111111111111"))
    (store.cells / f"{KEY}.json").write_text(text)
    assert not store.has(KEY)
    assert [r["cell_key"] for r in store.records()] == ["1111111111111111"]
    assert len(store.skipped) == 1 and problem in str(store.skipped[0])
    assert f"{KEY}.json" in str(store.skipped[0])


def test_a_skipped_cell_needs_no_measurements():
    assert cell_problem(record(status="skipped", n=None, robust_accuracy=None), KEY) is None


def test_invalid_records_are_moved_aside_never_deleted(tmp_path):
    store = ResultStore(tmp_path)
    store.write(record())
    bad = store.cells / "2222222222222222.json"
    for _ in range(2):  # a second bad record under the same name keeps the first one moved aside
        bad.write_text("{}")
        (moved, target), *rest = store.move_aside()
        assert not rest and moved.path == bad and target.read_text() == "{}"
    assert sorted(p.name for p in (store.rejected / "cells").iterdir()) == [
        "2222222222222222.1.json",
        "2222222222222222.json",
    ]
    assert store.has(KEY) and store.move_aside() == []


def test_a_removed_cell_takes_its_adversarials_with_it_and_leaves_the_others(tmp_path):
    import torch

    store = ResultStore(tmp_path)
    other = "1111111111111111"
    for key in (KEY, other):
        store.write(record(key))
        store.write_adversarials(key, torch.zeros(2, 1, 2, 2))
    assert store.remove(KEY) and not store.remove(KEY)
    assert not store.has(KEY) and not store.adversarials_path(KEY).exists()
    assert [r["cell_key"] for r in store.records()] == [other] and store.adversarials_path(other).exists()


def test_invalid_clean_evaluations_are_not_trusted(tmp_path):
    store = ResultStore(tmp_path)
    good = {
        "clean_key": KEY, "defense_key": "d", "n": 2, "predictions": [3, 1], "diagnostics": {"flip": 0.0},
        "input_quantizer": None,
    }  # fmt: skip
    store.write_clean(good)
    assert store.get_clean(KEY) == good
    store.write_clean({key: value for key, value in good.items() if key != "input_quantizer"})
    assert store.get_clean(KEY) is None  # stored before the quantiser search: computed again
    store.write_clean({**good, "input_quantizer": {"below": [0.4], "above": "x"}})
    assert store.get_clean(KEY) is None and "null or a quantizer" in str(store.invalid()[0])
    store.write_clean({**good, "predictions": [3]})
    assert store.get_clean(KEY) is None
    assert "holds 1 predictions, not n = 2" in str(store.invalid()[0])


def test_a_claim_is_held_by_one_holder_at_a_time(tmp_path):
    store = ResultStore(tmp_path)
    held_elsewhere, release = threading.Event(), threading.Event()

    def other_process() -> None:  # filelock's locks are per file handle: a thread stands in for a process
        with store.claim(KEY, wait=True) as held:
            assert held
            held_elsewhere.set()
            release.wait(10)

    thread = threading.Thread(target=other_process)
    thread.start()
    held_elsewhere.wait(10)
    with store.claim(KEY, wait=False) as held:
        assert not held
    release.set()
    with store.claim(KEY, wait=True) as held:
        assert held
    thread.join()
    with store.claim("fedcba9876543210", wait=False) as held:
        assert held
