import struct

import numpy as np
import pytest
import torch

from benchmark.datasets.files import resolve_data_dir
from benchmark.datasets.idx import load_mnist
from benchmark.datasets.slices import make_slices
from foundation.errors import BenchError
from foundation.splits import Split


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


# --- raw IDX files checked at load (small fixtures in torchvision's on-disk format) ---

N_TRAIN, N_TEST = 20, 10


def write_idx(path, magic, dims, payload: bytes):
    path.write_bytes(struct.pack(f">I{len(dims)}I", magic, *dims) + payload)


def write_mnist(root, labels_from=None):
    """A valid small MNIST in ``root/MNIST/raw``: 20 training and 10 test images with labels 0..9."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", 0x803, (n, 28, 28), images.tobytes())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", 0x801, (n,), (np.arange(n) % 10).astype(np.uint8).tobytes())
    return raw


def assert_one_line_naming(error, path):
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message


def test_a_valid_small_mnist_loads_and_is_cached(tmp_path):
    write_mnist(tmp_path / "data")
    cache = tmp_path / "cache"
    cache.mkdir()
    train, test = load_mnist(tmp_path / "data", download=False, cache_dir=cache)
    assert train.x.shape == (N_TRAIN, 1, 28, 28) and test.x.shape == (N_TEST, 1, 28, 28)
    assert train.y.dtype == torch.int64 and train.y.tolist() == [i % 10 for i in range(N_TRAIN)]
    assert float(train.x.min()) >= 0 and float(train.x.max()) <= 1
    assert len(list(cache.glob("data/mnist-*.pt"))) == 1
    again = load_mnist(tmp_path / "data", download=False, cache_dir=cache)
    assert torch.equal(again[0].x, train.x) and torch.equal(again[1].y, test.y)


def test_truncated_image_file(tmp_path):
    path = write_mnist(tmp_path) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BenchError, match=r"is truncated: 15,686 of 15,696 bytes; re-download it") as error:
        load_mnist(tmp_path, download=False)
    assert_one_line_naming(error, path)


def test_trailing_bytes(tmp_path):
    path = write_mnist(tmp_path) / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(BenchError, match="has 2 trailing bytes") as error:
        load_mnist(tmp_path, download=False)
    assert_one_line_naming(error, path)


@pytest.mark.parametrize("header", [b"\x1f\x8b\x08\x00", b"\x00\x00\x08\x01"])  # a gzip, a labels header
def test_garbled_magic_number(tmp_path, header):
    path = write_mnist(tmp_path) / "t10k-images-idx3-ubyte"
    path.write_bytes(header + path.read_bytes()[4:])
    with pytest.raises(BenchError, match=r"has magic number 0x.*not 0x00000803") as error:
        load_mnist(tmp_path, download=False)
    assert_one_line_naming(error, path)
    assert "MNIST not found" not in str(error.value)


def test_labels_out_of_range(tmp_path):
    path = write_mnist(tmp_path) / "train-labels-idx1-ubyte"
    labels = (np.arange(N_TRAIN) % 10).astype(np.uint8)
    labels[[3, 7]] = 12
    write_idx(path, 0x801, (N_TRAIN,), labels.tobytes())
    with pytest.raises(BenchError, match=r"2 labels outside 0\.\.9 \(the first: 12 at index 3\)") as error:
        load_mnist(tmp_path, download=False)
    assert_one_line_naming(error, path)


def test_image_and_label_counts_differ(tmp_path):
    raw = write_mnist(tmp_path)
    write_idx(raw / "t10k-labels-idx1-ubyte", 0x801, (N_TEST - 1,), bytes(N_TEST - 1))
    with pytest.raises(BenchError, match="10 images but 9 labels") as error:
        load_mnist(tmp_path, download=False)
    assert_one_line_naming(error, raw / "t10k-images-idx3-ubyte")
    assert_one_line_naming(error, raw / "t10k-labels-idx1-ubyte")


def test_wrong_image_dimensions(tmp_path):
    path = write_mnist(tmp_path) / "train-images-idx3-ubyte"
    write_idx(path, 0x803, (N_TRAIN, 32, 32), bytes(N_TRAIN * 32 * 32))
    with pytest.raises(BenchError, match="images of 32×32 pixels, not 28×28") as error:
        load_mnist(tmp_path, download=False)
    assert_one_line_naming(error, path)


def test_a_missing_file_is_still_not_found(tmp_path):
    raw = write_mnist(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(BenchError, match=f"MNIST not found in {tmp_path} \\(downloading is off.*--data-dir"):
        load_mnist(tmp_path, download=False)


@pytest.mark.parametrize(
    "bad",
    [
        lambda pairs: pairs[:1],
        lambda pairs: [(pairs[0][0].float(), pairs[0][1]), pairs[1]],
        lambda pairs: [pairs[0], (pairs[1][0], pairs[1][1] + 5)],
        lambda pairs: [pairs[0], (pairs[1][0][:, :14], pairs[1][1])],
        lambda pairs: "not tensors",
    ],
)
def test_an_invalid_parsed_cache_is_discarded(tmp_path, bad):
    write_mnist(tmp_path / "data")
    cache = tmp_path / "cache"
    cache.mkdir()
    train, test = load_mnist(tmp_path / "data", download=False, cache_dir=cache)
    (cached,) = cache.glob("data/mnist-*.pt")
    torch.save(bad(torch.load(cached, weights_only=True)), cached)
    again = load_mnist(tmp_path / "data", download=False, cache_dir=cache)
    assert torch.equal(again[0].x, train.x) and torch.equal(again[1].y, test.y)
    assert torch.load(cached, weights_only=True)[1][1].tolist() == test.y.tolist()  # rewritten valid


def test_cli_run_on_bad_data_is_one_line_and_exit_2(tmp_path, capsys):
    from benchmark.cli import main

    bad_dir = tmp_path / "data"
    path = write_mnist(bad_dir) / "train-labels-idx1-ubyte"
    write_idx(path, 0x801, (N_TRAIN,), np.full(N_TRAIN, 12, dtype=np.uint8).tobytes())
    argv = ["run", "--defenses", "cnn", "--attacks", "fgsm", "--profile", "smoke", "--data-dir", str(bad_dir)]
    argv += ["--no-download", "--no-progress", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("bench: error: MNIST file ") and str(path) in stderr and "outside 0..9" in stderr


def test_missing_files_are_downloaded_through_torchvision_then_checked(monkeypatch, tmp_path):
    from torchvision.datasets import MNIST

    calls = []

    def fake_download(self):  # stands in for torchvision's download: writes the four raw files
        calls.append(self.raw_folder)
        if not (tmp_path / "MNIST" / "raw").exists():
            write_mnist(tmp_path)

    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    monkeypatch.setattr(MNIST, "download", fake_download)
    train, test = load_mnist(tmp_path, download=True)
    assert calls and len(train) == N_TRAIN and len(test) == N_TEST
    calls.clear()
    load_mnist(tmp_path, download=True)
    assert not calls  # present files are not fetched again

    def failing_download(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror, got: no network")

    monkeypatch.setattr(MNIST, "download", failing_download)
    with pytest.raises(BenchError, match=r"MNIST not found in .*empty \(download failed: 'Error downloading"):
        load_mnist(tmp_path / "empty", download=True)


def test_a_label_changed_in_place_with_its_time_kept_is_not_served_from_the_parsed_cache(tmp_path):
    import os

    raw = write_mnist(tmp_path / "data")
    cache = tmp_path / "cache"
    _, test = load_mnist(tmp_path / "data", download=False, cache_dir=cache)
    labels = raw / "t10k-labels-idx1-ubyte"
    stamp = labels.stat()

    def damage(value: int) -> None:
        data = bytearray(labels.read_bytes())
        data[8] = value
        labels.write_bytes(bytes(data))
        os.utime(labels, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same size, same time

    damage((int(test.y[0]) + 1) % 10)
    assert load_mnist(tmp_path / "data", download=False, cache_dir=cache)[1].y[0] == (test.y[0] + 1) % 10
    damage(12)
    with pytest.raises(BenchError, match=r"t10k-labels-idx1-ubyte holds 1 labels outside 0\.\.9"):
        load_mnist(tmp_path / "data", download=False, cache_dir=cache)
    assert len(list(cache.glob("data/mnist-*.pt"))) == 2  # one parsed copy per content, the corrupt one none
