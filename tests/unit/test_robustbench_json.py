"""`bench report json`: RobustBench-compatible per-model JSON files from a synthetic store."""

from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from benchmark.publish.robustbench_json import ROBUSTBENCH_FIELDS, eps_text, file_stem, report_json
from benchmark.results.frame import records_to_frame
from benchmark.results.statistics import wilson_interval
from benchmark.store.result_store import ResultStore
from tests.synthetic import masked_cell_record as _cell
from tests.synthetic import small_matrix

N = 8
#: RobustBench's fields and their JSON types, as in its model_info/*.json files and `ModelInfo` (None: null).
ROBUSTBENCH_TYPES = {
    "link": (str, type(None)),
    "name": (str,),
    "authors": (str, type(None)),
    "additional_data": (bool, type(None)),
    "number_forward_passes": (int, type(None)),
    "dataset": (str,),
    "venue": (str, type(None)),
    "architecture": (str, type(None)),
    "eps": (str,),
    "clean_acc": (str,),
    "reported": (str, type(None)),
    "autoattack_acc": (str, type(None)),
    "footnote": (str, type(None)),
}


#: cnn: fgsm and pgd at 0.1 and 0.3 (points 0-3 survive fgsm at 0.3, 2-5 survive pgd: the worst case keeps 2, 3);
#: madry: fgsm and autoattack at 0.3, a semantic cell (no worst case); vae: only an ε-free cell (no file).
CELLS = [
    *small_matrix(),
    _cell(8, "vae:arch=cnn", "gna", None, [True] * 8, threat_model="semantic"),
]


@pytest.fixture
def store(tmp_path):
    results = ResultStore(tmp_path)
    for record in CELLS:
        results.write(record)
    assert len(results.records()) == len(CELLS)
    return tmp_path


def _read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_one_file_per_dataset_threat_model_and_defense(store):
    paths = report_json(store)
    assert paths == [store / "json" / "mnist" / "Linf" / "cnn.json", store / "json" / "mnist" / "Linf" / "madry.json"]
    assert sorted(store.joinpath("json").rglob("*.json")) == paths


def test_robustbench_fields_are_typed_as_robustbench_types_them(store):
    for path in report_json(store):
        info = _read(path)
        assert set(ROBUSTBENCH_FIELDS) <= set(info)
        for field, types in ROBUSTBENCH_TYPES.items():
            assert isinstance(info[field], types), (path.name, field, info[field])
        assert info["dataset"] == "mnist" and info["eps"] == "0.3"
        assert float(info["clean_acc"]) == 100.0
        for unknown in ("link", "authors", "additional_data", "number_forward_passes", "venue", "footnote"):
            assert info[unknown] is None


def test_worst_case_is_the_leaderboards_worst_row_at_the_headline_eps(store):
    frame = records_to_frame(ResultStore(store).records())
    worst = frame[(frame["attack"] == "worst") & (frame["defense"] == "cnn") & (frame["eps"] == 0.3)].iloc[0]
    report_json(store)
    info = _read(store / "json" / "mnist" / "Linf" / "cnn.json")
    assert info["worst_case_acc"] == pytest.approx(worst["robust_accuracy"]) == 2 / 8
    assert info["worst_case_ci"] == pytest.approx([worst["robust_accuracy_ci_low"], worst["robust_accuracy_ci_high"]])
    assert info["worst_case_attacks"] == ["fgsm", "pgd"]
    assert set(info["attacks"]) == {"fgsm", "pgd"}
    assert info["attacks"]["pgd"] == {
        "robust_acc": 0.5,
        "ci_low": pytest.approx(wilson_interval(4, N)[0]),
        "ci_high": pytest.approx(wilson_interval(4, N)[1]),
        "success_rate": 0.5,
        "flags": [],
    }
    assert info["n"] == N and info["seed"] == 0 and info["profile"] == "smoke"
    assert info["config_hash"] == "hash-cnn" and isinstance(info["flags"], list)
    assert info["library_versions"] == "python=3.11" and info["device"] == "cpu"
    assert all(isinstance(value, float) for value in [info["worst_case_acc"], *info["worst_case_ci"]])


def test_autoattack_acc_is_null_without_an_autoattack_cell_and_a_percent_string_with_one(store):
    report_json(store)
    cnn, madry = (_read(store / "json" / "mnist" / "Linf" / f"{name}.json") for name in ("cnn", "madry"))
    assert cnn["autoattack_acc"] is None
    assert madry["autoattack_acc"] == "62.5"
    assert madry["worst_case_attacks"] == ["autoattack", "fgsm"]


def test_reported_comes_from_the_papers_figures_or_is_null(store):
    report_json(store)
    cnn, madry = (_read(store / "json" / "mnist" / "Linf" / f"{name}.json") for name in ("cnn", "madry"))
    assert madry["reported"] == "87.0" and "Schott" in madry["reported_source"]  # paper001.ABS_PAPER_LINF
    assert cnn["reported"] == "0.0"
    assert cnn["architecture"].startswith("Undefended")


def test_reported_is_null_away_from_the_papers_eps(tmp_path):
    results = ResultStore(tmp_path)
    results.write(_cell(1, "madry", "fgsm", 0.2, [True] * 8))
    (path,) = report_json(tmp_path)
    info = _read(path)
    assert info["eps"] == "0.2" and info["reported"] is None and info["reported_source"] is None


def test_headline_prefers_the_standard_eps_and_otherwise_the_largest(tmp_path):
    results = ResultStore(tmp_path)
    for index, eps in enumerate((0.1, 0.3, 0.4), start=1):
        results.write(_cell(index, "cnn", "fgsm", eps, [True] * 4 + [False] * 4))
    for index, eps in enumerate((0.05, 0.15), start=4):
        results.write(_cell(index, "madry", "fgsm", eps, [True] * 4 + [False] * 4))
    report_json(tmp_path)
    assert _read(tmp_path / "json" / "mnist" / "Linf" / "cnn.json")["eps"] == "0.3"
    assert _read(tmp_path / "json" / "mnist" / "Linf" / "madry.json")["eps"] == "0.15"


def test_dataset_field_and_file_names(tmp_path):
    results = ResultStore(tmp_path)
    results.write(_cell(1, "adv-vae:train_attack=pgd", "pgd", 8 / 255, [True] * 8, dataset="cifar10"))
    (path,) = report_json(tmp_path)
    assert path == tmp_path / "json" / "cifar10" / "Linf" / "adv-vae_train_attack=pgd.json"
    info = _read(path)
    assert info["dataset"] == "cifar10" and info["eps"] == "8/255" and info["name"] == "adv-vae:train_attack=pgd"
    assert file_stem("a:b=c") == "a_b=c"
    assert eps_text(0.5, "cifar10", "L2") == "0.5" and eps_text(0.3, "mnist", "Linf") == "0.3"


def test_files_are_deterministic_sorted_and_indented(store):
    first = {path: path.read_bytes() for path in report_json(store)}
    second = {path: path.read_bytes() for path in report_json(store)}
    assert first == second
    text = next(iter(first.values())).decode()
    keys = list(json.loads(text))
    assert keys == sorted(keys) and text.startswith('{\n  "') and text.endswith("}\n")
    assert not list(store.joinpath("json").rglob("*.tmp"))


def test_cli_writes_the_files(store, capsys):
    assert main(["report", "json", "--out", str(store)]) == 0
    assert "wrote 2 RobustBench-style JSON file(s)" in capsys.readouterr().out
    assert (store / "json" / "mnist" / "Linf" / "madry.json").is_file()


def test_cli_exits_2_on_an_empty_store(tmp_path, capsys):
    assert main(["report", "json", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bench: error: no results in") and "\n" not in error
    assert not (tmp_path / "json").exists()
