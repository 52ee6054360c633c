"""MNIST through torchvision, and seeded, deterministic train / validation / test slices."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir

from attacks.errors import BenchError
from benchmark.atomic import atomic_write
from benchmark.config import config_hash
from defenses.base import Split

DATA_DIR_ENV = "BENCH_DATA_DIR"
OFFLINE_ENV = "BENCH_OFFLINE"
#: Paper 000 splits the 60k training images into 50k for training and 10k for validation.
TRAIN_SIZE = 50_000


def resolve_data_dir(flag: str | os.PathLike[str] | None) -> Path:
    """``--data-dir`` beats ``$BENCH_DATA_DIR`` beats the per-user cache directory."""
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return Path(user_cache_dir("bench")) / "data"


def offline_requested() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() in {"1", "true", "yes"}


def _load_split(root: Path, train: bool, download: bool) -> Split:
    from torchvision.datasets import MNIST

    try:
        dataset = MNIST(root=str(root), train=train, download=False)
    except RuntimeError:
        if not download:
            raise
        dataset = MNIST(root=str(root), train=train, download=True)
    images = dataset.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return Split(images, dataset.targets.to(torch.int64))


def _parsed_cache(data_dir: Path, cache_dir: Path | None) -> Path | None:
    """Where the parsed tensors of this MNIST copy are cached (keyed by its raw files' sizes and times)."""
    raw = data_dir / "MNIST" / "raw"
    if cache_dir is None or not raw.is_dir():
        return None
    stamp = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in raw.iterdir() if p.suffix != ".gz")
    return cache_dir / f"mnist-{config_hash([str(data_dir.resolve()), stamp])}.pt"


def load_mnist(data_dir: Path, download: bool = True, cache_dir: Path | None = None) -> tuple[Split, Split]:
    """The 60k training and 10k test images, in [0, 1], shape (N, 1, 28, 28).

    Looks for torchvision's layout (``DATA_DIR/MNIST/raw``); downloads there when missing and
    allowed, and otherwise stops with a message that names the directory and the flag.  With a
    ``cache_dir``, the parsed uint8 tensors are cached there (parsing the raw files takes seconds).
    """
    download = download and not offline_requested()
    cached = _parsed_cache(data_dir, cache_dir)
    if cached is not None and cached.exists():
        try:
            images = torch.load(cached, weights_only=True)
            return tuple(Split(x.unsqueeze(1).float().div_(255.0), y) for x, y in images)  # type: ignore[return-value]
        except Exception:
            cached.unlink(missing_ok=True)
    try:
        splits = _load_split(data_dir, True, download), _load_split(data_dir, False, download)
    except Exception as error:
        how = "download failed" if download else "downloading is off"
        raise BenchError(
            f"MNIST not found in {data_dir} ({how}: {str(error).splitlines()[0] if str(error) else error!r}); "
            f"put torchvision's MNIST/raw files there, or point --data-dir (or ${DATA_DIR_ENV}) at a "
            "directory that has them"
        ) from None
    cached = cached or _parsed_cache(data_dir, cache_dir)
    if cached is not None:
        as_bytes = [((split.x * 255).round().to(torch.uint8).squeeze(1), split.y) for split in splits]
        atomic_write(cached, lambda handle: torch.save(as_bytes, handle))
    return splits


@dataclass(frozen=True)
class DataSlices:
    train: Split
    val: Split
    test: Split

    def describe(self) -> dict[str, int]:
        return {"n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def make_slices(full_train: Split, test: Split, n_train: int, n_val: int, n_test: int, seed: int) -> DataSlices:
    """Seeded slices: a 50k / 10k split of the training set, then the first n of each part."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(full_train), generator=generator)
    train_index, val_index = order[:TRAIN_SIZE][:n_train], order[TRAIN_SIZE:][:n_val]
    test_index = torch.randperm(len(test), generator=generator)[:n_test]
    return DataSlices(
        Split(full_train.x[train_index], full_train.y[train_index]),
        Split(full_train.x[val_index], full_train.y[val_index]),
        Split(test.x[test_index], test.y[test_index]),
    )
