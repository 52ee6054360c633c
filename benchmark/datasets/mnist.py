"""MNIST (the default) and Fashion-MNIST: the same IDX files, in torchvision's layout."""

from __future__ import annotations

from pathlib import Path

from benchmark.datasets.base import Dataset, register_dataset
from benchmark.datasets.idx import FASHION_MNIST_FORMAT, MNIST_FORMAT, MNIST_INPUT_SHAPE, load_mnist
from foundation.splits import Split


@register_dataset("mnist")
class Mnist(Dataset):
    description = (
        "MNIST digits, 1×28×28, 10 classes (DATA_DIR/MNIST/raw); ε 0.1, 0.2, 0.3 "
        "(L2: 1.0, 1.5, 2.0; L1: 5, 10, 15; L0: 4, 8, 12, 24 pixels)"
    )
    input_shape = MNIST_INPUT_SHAPE
    classes = 10
    #: Schott et al. report L2 robustness at ε = 1.5; the curve brackets it.
    l2_epsilons = {"smoke": (1.0, 2.0), "quick": (1.0, 1.5, 2.0), "paper": (1.0, 1.5, 2.0)}
    #: AutoAttack-L1 (Croce & Hein, "Mind the box") evaluates MNIST at L1 ε = 10.
    l1_epsilons = {"smoke": (5.0, 10.0), "quick": (5.0, 10.0, 15.0), "paper": (5.0, 10.0, 15.0)}
    #: Schott et al. report L0 robustness at 12 changed pixels (of 784).
    l0_epsilons = {"smoke": (8.0, 12.0), "quick": (4.0, 8.0, 12.0, 24.0), "paper": (4.0, 8.0, 12.0, 24.0)}
    train_share = 50_000 / 60_000  # paper 000's 50k / 10k split

    def load(self, data_dir: Path, download: bool, cache_dir: Path | None) -> tuple[Split, Split]:
        return load_mnist(data_dir, download, cache_dir, MNIST_FORMAT)


@register_dataset("fashion-mnist")
class FashionMnist(Mnist):
    description = (
        "Fashion-MNIST, 1×28×28, 10 classes (DATA_DIR/FashionMNIST/raw); ε 0.1, 0.2, 0.3 "
        "(L2: 1.0, 1.5, 2.0; L1: 5, 10, 15; L0: 4, 8, 12, 24 pixels)"
    )

    def load(self, data_dir: Path, download: bool, cache_dir: Path | None) -> tuple[Split, Split]:
        return load_mnist(data_dir, download, cache_dir, FASHION_MNIST_FORMAT)
