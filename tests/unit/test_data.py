import pytest
import torch

from attacks.errors import BenchError
from benchmark.data import load_mnist, make_slices, resolve_data_dir
from defenses.base import Split


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("BENCH_DATA_DIR")
    assert resolve_data_dir(None).parts[-2:] == ("bench", "data")


def test_missing_data_offline_names_the_directory_and_the_flag(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(BenchError, match=f"MNIST not found in {tmp_path}.*--data-dir"):
        load_mnist(tmp_path)


def test_slices_are_seeded_disjoint_and_sized():
    full = Split(torch.arange(60_000.0).view(-1, 1, 1, 1), torch.arange(60_000) % 10)
    test = Split(torch.arange(10_000.0).view(-1, 1, 1, 1), torch.arange(10_000) % 10)
    a = make_slices(full, test, 100, 50, 20, seed=1)
    b = make_slices(full, test, 100, 50, 20, seed=1)
    c = make_slices(full, test, 100, 50, 20, seed=2)
    assert a.describe() == {"n_train": 100, "n_val": 50, "n_test": 20}
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)
    assert not set(a.train.x.flatten().tolist()) & set(a.val.x.flatten().tolist())
    bigger = make_slices(full, test, 200, 50, 20, seed=1)
    assert torch.equal(bigger.train.x[:100], a.train.x)
