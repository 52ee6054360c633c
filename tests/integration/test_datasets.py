"""Registered datasets on small fixtures written in torchvision's on-disk formats (no download).

Fashion-MNIST is written as its four IDX files, CIFAR-10 as its pickled batches; torchvision's own
loaders read them.  CIFAR-10's loader first checks each file's MD5 against the published files, which
a fixture cannot match: that check alone is substituted, never the loader.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.store.result_store import ResultStore

pytestmark = pytest.mark.integration


def _images(n: int, shape: tuple[int, ...], labels: np.ndarray, seed: int) -> np.ndarray:
    """Noise with a bright class-dependent band, so that a small CNN learns the labels in an epoch."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 80, size=(n, *shape), dtype=np.uint8)
    rows = shape[-2] // 10
    for label in range(10):
        images[labels == label, ..., label * rows : (label + 1) * rows, :] = 255
    return images


def write_fashion_mnist(root: Path, n_train: int = 600, n_test: int = 200) -> Path:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = _images(n, (28, 28), labels, seed)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    return root


def write_cifar10(root: Path, per_batch: int = 120, n_test: int = 200) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = [(f"data_batch_{i}", per_batch, i) for i in range(1, 6)] + [("test_batch", n_test, 9)]
    for name, n, seed in batches:
        labels = np.arange(n) % 10
        images = _images(n, (3, 32, 32), labels, seed).reshape(n, 3072)
        with (folder / name).open("wb") as handle:
            pickle.dump({"data": images, "labels": labels.tolist()}, handle)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, handle)
    return root


@pytest.fixture
def cifar_checksums_substituted(monkeypatch):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)


def run(data: Path, out: Path, cache: Path, *args: str) -> int:
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm,pgd", "--profile", "smoke", "--no-progress"]
    return main([*argv, "--data-dir", str(data), "--no-download", "--out", str(out), "--cache-dir", str(cache), *args])


@pytest.mark.parametrize(
    ("dataset", "epsilons"),
    [("fashion-mnist", [0.1, 0.3]), ("cifar10", [2 / 255, 8 / 255])],
)
def test_a_dataset_runs_with_its_own_epsilons_keys_and_table_section(
    tmp_path, capsys, cifar_checksums_substituted, dataset, epsilons
):
    data = write_fashion_mnist(tmp_path / "data") if dataset == "fashion-mnist" else write_cifar10(tmp_path / "data")
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run(data, out, cache, "--dataset", dataset) == 0
    records = ResultStore(out).records()
    assert len(records) == 4 and {r["dataset"] for r in records} == {dataset}
    assert sorted({r["eps"] for r in records}) == pytest.approx(epsilons)
    clean = records[0]["clean_accuracy"]
    assert clean > 0.5  # the fixture's bands are learnable: the network was sized to the dataset and trained
    assert all(r["robust_accuracy"] <= clean for r in records)
    assert f"## {dataset}, profile `smoke`" in (out / "leaderboard.md").read_text()
    board = (out / "leaderboard.csv").read_text().splitlines()
    assert board[0].startswith("dataset,") and all(line.startswith(f"{dataset},") for line in board[1:])
    capsys.readouterr()
    assert run(data, out, cache, "--dataset", dataset) == 0 and "0 cells computed" in capsys.readouterr().out


def test_datasets_never_share_checkpoints_or_cells(tmp_path, capsys, mnist_dir):
    """The same defense on another dataset is another key; MNIST keeps the keys it had before datasets."""
    data = write_fashion_mnist(tmp_path / "data")
    (data / "MNIST").symlink_to(mnist_dir / "MNIST")
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run(data, out, cache, "--dataset", "fashion-mnist", "--eps", "0.1") == 0
    assert run(data, out, cache, "--eps", "0.1") == 0
    records = ResultStore(out).records()
    assert {r["dataset"] for r in records} == {"fashion-mnist", "mnist"}
    assert len({r["config_hash"] for r in records}) == 2
    mnist = next(r for r in records if r["dataset"] == "mnist")
    assert mnist["config_hash"] == "7de9f28a6ce73036"  # the smoke cnn's key before datasets existed
    assert len(list(cache.glob("cnn-*.pt"))) == 2


@pytest.mark.parametrize("defense", ["abs", "vae", "pgan-dqn"])
def test_mnist_only_defenses_refuse_other_datasets(tmp_path, capsys, defense):
    code = main(["run", "--defenses", defense, "--attacks", "fgsm", "--dataset", "cifar10", "--out", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1
    assert f"defense '{defense}' runs on mnist only, not on 'cifar10'" in stderr


def test_a_damaged_cifar_batch_is_reported_in_one_line(tmp_path, capsys, cifar_checksums_substituted):
    data = write_cifar10(tmp_path / "data")
    (data / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    assert run(data, tmp_path / "out", tmp_path / "cache", "--dataset", "cifar10") == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("bench: error: CIFAR-10 in ") and "missing or corrupt" in stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
