"""CIFAR-10 through torchvision (``DATA_DIR/cifar-10-batches-py``), with its standard L∞ budgets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.datasets.base import Dataset, register_dataset
from benchmark.datasets.files import not_found, offline_requested, parsed_cache, read_cache, write_cache
from foundation.errors import BenchError
from foundation.splits import Split

FOLDER = "cifar-10-batches-py"
STANDARD_EPSILONS = (2 / 255, 4 / 255, 8 / 255)


def _split(data_dir: Path, train: bool) -> Split:
    from torchvision.datasets import CIFAR10

    try:
        # torchvision checks each file's MD5 before it unpickles it, so only the published files are read.
        dataset = CIFAR10(root=str(data_dir), train=train, download=False)
    except Exception as error:  # a failed checksum (RuntimeError), or a file that does not unpickle
        raise BenchError(
            f"CIFAR-10 in {data_dir / FOLDER} is missing or corrupt ({type(error).__name__}: {error}); delete it and "
            "run with downloading "
            f"on, or point --data-dir (or $BENCH_DATA_DIR) at a directory holding torchvision's {FOLDER}"
        ) from None
    images, labels = np.asarray(dataset.data), torch.as_tensor(dataset.targets, dtype=torch.int64)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise BenchError(
            f"CIFAR-10 in {data_dir / FOLDER} holds images of {images.dtype} {images.shape}, not N×32×32×3"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise BenchError(f"CIFAR-10 in {data_dir / FOLDER} holds labels outside 0..9; delete it and download it again")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return Split(x.contiguous(), labels)


@register_dataset("cifar10")
class Cifar10(Dataset):
    description = (
        "CIFAR-10, 3×32×32, 10 classes (DATA_DIR/cifar-10-batches-py); ε 2/255, 4/255, 8/255 "
        "(L2: 0.25, 0.5, 1.0; L1: 6, 12, 18; L0: 8, 16, 24 pixels)"
    )
    input_shape = (3, 32, 32)
    classes = 10
    epsilons = {"smoke": (2 / 255, 8 / 255), "quick": STANDARD_EPSILONS, "paper": STANDARD_EPSILONS}
    #: RobustBench ranks CIFAR-10 L2 at ε = 0.5.
    l2_epsilons = {"smoke": (0.25, 0.5), "quick": (0.25, 0.5, 1.0), "paper": (0.25, 0.5, 1.0)}
    #: AutoAttack-L1 (Croce & Hein, "Mind the box") ranks CIFAR-10 at L1 ε = 12; Sparse-RS (Croce et al.) attacks
    #: 24 pixels of 1,024.
    l1_epsilons = {"smoke": (6.0, 12.0), "quick": (6.0, 12.0, 18.0), "paper": (6.0, 12.0, 18.0)}
    l0_epsilons = {"smoke": (12.0, 24.0), "quick": (8.0, 16.0, 24.0), "paper": (8.0, 16.0, 24.0)}
    train_share = 45_000 / 50_000
    eps_in_255ths = True

    def load(self, data_dir: Path, download: bool, cache_dir: Path | None) -> tuple[Split, Split]:
        cached = parsed_cache(data_dir, cache_dir, FOLDER, "cifar10")
        if cached is not None and cached.exists() and (splits := read_cache(cached, self.input_shape)) is not None:
            return splits
        if download and not offline_requested() and not (data_dir / FOLDER).is_dir():
            from torchvision.datasets import CIFAR10

            try:
                CIFAR10(root=str(data_dir), train=True, download=True)
            except Exception as error:
                raise not_found("CIFAR-10", FOLDER, data_dir, "download failed", error) from None
        if not (data_dir / FOLDER).is_dir():
            how = "downloading is off" if not download or offline_requested() else "download failed"
            raise not_found("CIFAR-10", FOLDER, data_dir, how, FileNotFoundError(f"no {FOLDER} directory"))
        splits = _split(data_dir, True), _split(data_dir, False)
        write_cache(cached or parsed_cache(data_dir, cache_dir, FOLDER, "cifar10"), splits)
        return splits
