"""The IDX format of MNIST and Fashion-MNIST: each raw file checked, then parsed through torchvision."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.datasets.files import (
    FIX,
    label_problem,
    not_found,
    offline_requested,
    parsed_cache,
    read_cache,
    tensor_problem,
    write_cache,
)
from foundation.errors import BenchError
from foundation.splits import Split


@dataclass(frozen=True)
class IdxFormat:
    """A dataset torchvision keeps as MNIST's raw IDX files in ``DATA_DIR/<folder>/raw`` (MNIST, Fashion-MNIST)."""

    title: str
    folder: str
    torchvision_class: str

    def dataset_class(self) -> type:
        import torchvision.datasets

        return getattr(torchvision.datasets, self.torchvision_class)


MNIST_FORMAT = IdxFormat("MNIST", "MNIST", "MNIST")
FASHION_MNIST_FORMAT = IdxFormat("Fashion-MNIST", "FashionMNIST", "FashionMNIST")

#: The raw IDX files torchvision reads (``DATA_DIR/<folder>/raw``), per split: (images, labels).
RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: IDX magic numbers: 0x08 = unsigned byte, then the number of dimensions.
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
IMAGE_SHAPE = (28, 28)
#: MNIST's input shape (channels, height, width).
MNIST_INPUT_SHAPE = (1, *IMAGE_SHAPE)


def _idx_dims(path: Path, magic: int, fmt: IdxFormat) -> tuple[int, ...]:
    """The dimensions in the header of one IDX file, after checking its magic number and its size.

    Same format as torchvision's ``read_sn3_pascalvincent_tensor``: a big-endian 4-byte magic number
    (type code, number of dimensions), one big-endian uint32 per dimension, then the payload.
    """
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
            n_dims = magic & 0xFF
            dims_bytes = handle.read(4 * n_dims)
    except OSError as error:
        raise BenchError(f"{fmt.title} file {path} cannot be read ({error.strerror or error}); {FIX}") from None
    if len(head) < 4:
        raise BenchError(f"{fmt.title} file {path} is truncated: {size:,} bytes, not even a header; {FIX}")
    found = int.from_bytes(head, "big")
    if found != magic:
        raise BenchError(
            f"{fmt.title} file {path} has magic number 0x{found:08x}, not 0x{magic:08x} (uint8 {kind}, "
            f"{n_dims}-d IDX): it is not an {fmt.title} {kind} file; {FIX}"
        )
    header = 4 + 4 * n_dims
    if len(dims_bytes) < 4 * n_dims:
        raise BenchError(
            f"{fmt.title} file {path} is truncated: {size:,} bytes, shorter than its {header}-byte header; {FIX}"
        )
    dims = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
    if magic == IMAGES_MAGIC and dims[1:] != IMAGE_SHAPE:
        raise BenchError(f"{fmt.title} file {path} holds images of {dims[1]}×{dims[2]} pixels, not 28×28; {FIX}")
    expected = header + math.prod(dims)
    if size < expected:
        raise BenchError(f"{fmt.title} file {path} is truncated: {size:,} of {expected:,} bytes; {FIX}")
    if size > expected:
        raise BenchError(
            f"{fmt.title} file {path} has {size - expected:,} trailing bytes after its {expected:,} bytes "
            f"(header and {dims[0]:,} {kind}); {FIX}"
        )
    return dims


def check_raw_files(raw: Path, train: bool, fmt: IdxFormat = MNIST_FORMAT) -> None:
    """Check one split's raw IDX files before torchvision parses them; a problem raises a one-line ``BenchError``."""
    images_path, labels_path = (raw / name for name in RAW_FILES[train])
    n_images = _idx_dims(images_path, IMAGES_MAGIC, fmt)[0]
    n_labels = _idx_dims(labels_path, LABELS_MAGIC, fmt)[0]
    if n_images == 0:
        raise BenchError(f"{fmt.title} file {images_path} holds no images; {FIX}")
    if n_images != n_labels:
        raise BenchError(
            f"{fmt.title} files {images_path} and {labels_path} disagree: {n_images:,} images but {n_labels:,} labels; "
            "re-download both (delete them and run with downloading on) or replace them"
        )
    problem = label_problem(np.fromfile(labels_path, dtype=np.uint8, offset=8))
    if problem:
        raise BenchError(f"{fmt.title} file {labels_path} holds {problem}; {FIX}")


def _load_split(root: Path, train: bool, fmt: IdxFormat) -> Split:
    raw = root / fmt.folder / "raw"
    if all((raw / name).is_file() for name in RAW_FILES[train]):
        check_raw_files(raw, train, fmt)
    dataset = fmt.dataset_class()(root=str(root), train=train, download=False)
    # Also covers torchvision's legacy ``<folder>/processed/*.pt``, which it prefers to the raw files.
    problem = tensor_problem(dataset.data, dataset.targets)
    if problem:
        raise BenchError(
            f"{fmt.title} in {root / fmt.folder} is invalid: {problem}; delete it and run with downloading on"
        )
    images = dataset.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return Split(images, dataset.targets.to(torch.int64))


def load_mnist(
    data_dir: Path, download: bool = True, cache_dir: Path | None = None, fmt: IdxFormat = MNIST_FORMAT
) -> tuple[Split, Split]:
    """The training and test images of an IDX dataset (MNIST by default), in [0, 1], shape (N, 1, 28, 28).

    Looks for torchvision's layout (``DATA_DIR/<folder>/raw``); downloads there when missing and
    allowed, and otherwise stops with a message that names the directory and the flag.  Each raw
    file is checked before it is parsed (magic number, dimensions, size, counts, label range), and a
    bad one stops with a message that names it.  With a ``cache_dir``, the parsed uint8 tensors are
    cached there (parsing the raw files takes seconds) and checked the same way when read back.
    """
    download = download and not offline_requested()
    prefix = fmt.folder.lower()
    cached = parsed_cache(data_dir, cache_dir, fmt.folder, prefix)
    if cached is not None and cached.exists():
        splits = read_cache(cached, MNIST_INPUT_SHAPE)
        if splits is not None:
            return splits
    raw, layout = data_dir / fmt.folder / "raw", f"{fmt.folder}/raw"
    if download and not all((raw / name).is_file() for names in RAW_FILES.values() for name in names):
        try:
            fmt.dataset_class()(root=str(data_dir), train=True, download=True)  # all four files (or legacy data)
        except Exception as error:
            raise not_found(fmt.title, layout, data_dir, "download failed", error) from None
    try:
        splits = _load_split(data_dir, True, fmt), _load_split(data_dir, False, fmt)
    except BenchError:
        raise
    except Exception as error:
        how = "download failed" if download else "downloading is off"
        raise not_found(fmt.title, layout, data_dir, how, error) from None
    write_cache(cached or parsed_cache(data_dir, cache_dir, fmt.folder, prefix), splits)
    return splits
