"""MNIST through torchvision, and seeded, deterministic train / validation / test slices."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir

from benchmark.atomic import atomic_write
from benchmark.config import config_hash
from defenses.base import Split
from foundation.errors import BenchError

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
N_CLASSES = 10
_FIX = "re-download it (delete it and run with downloading on) or replace it"


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
        raise BenchError(f"{fmt.title} file {path} cannot be read ({error.strerror or error}); {_FIX}") from None
    if len(head) < 4:
        raise BenchError(f"{fmt.title} file {path} is truncated: {size:,} bytes, not even a header; {_FIX}")
    found = int.from_bytes(head, "big")
    if found != magic:
        raise BenchError(
            f"{fmt.title} file {path} has magic number 0x{found:08x}, not 0x{magic:08x} (uint8 {kind}, "
            f"{n_dims}-d IDX): it is not an {fmt.title} {kind} file; {_FIX}"
        )
    header = 4 + 4 * n_dims
    if len(dims_bytes) < 4 * n_dims:
        raise BenchError(
            f"{fmt.title} file {path} is truncated: {size:,} bytes, shorter than its {header}-byte header; {_FIX}"
        )
    dims = tuple(int(d) for d in np.frombuffer(dims_bytes, dtype=">u4"))
    if magic == IMAGES_MAGIC and dims[1:] != IMAGE_SHAPE:
        raise BenchError(f"{fmt.title} file {path} holds images of {dims[1]}×{dims[2]} pixels, not 28×28; {_FIX}")
    expected = header + math.prod(dims)
    if size < expected:
        raise BenchError(f"{fmt.title} file {path} is truncated: {size:,} of {expected:,} bytes; {_FIX}")
    if size > expected:
        raise BenchError(
            f"{fmt.title} file {path} has {size - expected:,} trailing bytes after its {expected:,} bytes "
            f"(header and {dims[0]:,} {kind}); {_FIX}"
        )
    return dims


def _label_problem(labels: np.ndarray | torch.Tensor) -> str | None:
    """What is wrong with a batch of labels (one vectorised pass), or ``None``."""
    bad = (labels < 0) | (labels >= N_CLASSES)
    if not bad.any():
        return None
    first = int(bad.nonzero()[0][0])
    return f"{int(bad.sum()):,} labels outside 0..{N_CLASSES - 1} (the first: {int(labels[first])} at index {first:,})"


def check_raw_files(raw: Path, train: bool, fmt: IdxFormat = MNIST_FORMAT) -> None:
    """Check one split's raw IDX files before torchvision parses them; a problem raises a one-line ``BenchError``."""
    images_path, labels_path = (raw / name for name in RAW_FILES[train])
    n_images = _idx_dims(images_path, IMAGES_MAGIC, fmt)[0]
    n_labels = _idx_dims(labels_path, LABELS_MAGIC, fmt)[0]
    if n_images == 0:
        raise BenchError(f"{fmt.title} file {images_path} holds no images; {_FIX}")
    if n_images != n_labels:
        raise BenchError(
            f"{fmt.title} files {images_path} and {labels_path} disagree: {n_images:,} images but {n_labels:,} labels; "
            "re-download both (delete them and run with downloading on) or replace them"
        )
    problem = _label_problem(np.fromfile(labels_path, dtype=np.uint8, offset=8))
    if problem:
        raise BenchError(f"{fmt.title} file {labels_path} holds {problem}; {_FIX}")


def _tensor_problem(x: object, y: object, image_shape: tuple[int, ...] = IMAGE_SHAPE) -> str | None:
    """What is wrong with one split's parsed tensors (uint8 images N × ``image_shape``, int64 labels N in
    0..9), or ``None``."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        return "not a pair of tensors"
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != tuple(image_shape):
        return f"images are {x.dtype} {tuple(x.shape)}, not uint8 N×{'×'.join(map(str, image_shape))}"
    if y.dtype != torch.int64 or y.dim() != 1:
        return f"labels are {y.dtype} {tuple(y.shape)}, not int64 of one dimension"
    if len(x) != len(y) or len(x) == 0:
        return f"{len(x):,} images but {len(y):,} labels"
    return _label_problem(y)


def read_cache(cached: Path, input_shape: tuple[int, int, int]) -> tuple[Split, Split] | None:
    """The cached parsed tensors (uint8, N × ``input_shape``), or ``None`` (the file is then deleted) when
    they are unreadable or invalid."""
    try:
        pairs = torch.load(cached, weights_only=True)
        if not isinstance(pairs, list | tuple) or len(pairs) != 2:
            raise ValueError("not two splits")
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2 or _tensor_problem(*pair, input_shape):
                raise ValueError("invalid split")
        return tuple(Split(x.float().div_(255.0), y) for x, y in pairs)  # type: ignore[return-value]
    except Exception:
        cached.unlink(missing_ok=True)
        return None


def _load_split(root: Path, train: bool, fmt: IdxFormat) -> Split:
    raw = root / fmt.folder / "raw"
    if all((raw / name).is_file() for name in RAW_FILES[train]):
        check_raw_files(raw, train, fmt)
    dataset = fmt.dataset_class()(root=str(root), train=train, download=False)
    # Also covers torchvision's legacy ``<folder>/processed/*.pt``, which it prefers to the raw files.
    problem = _tensor_problem(dataset.data, dataset.targets)
    if problem:
        raise BenchError(
            f"{fmt.title} in {root / fmt.folder} is invalid: {problem}; delete it and run with downloading on"
        )
    images = dataset.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return Split(images, dataset.targets.to(torch.int64))


def content_digest(folder: Path) -> str:
    """sha256 over the files a dataset is parsed from (all but the ``.gz`` archives): each one's path, size and
    bytes, in path order.  Content, not sizes and times: a label changed in place with its time kept is a new
    key.  Hashing MNIST's 55 MB takes well under a second, once per process (``environment._dataset``)."""
    digest = hashlib.sha256()
    files = sorted((str(p.relative_to(folder)), p) for p in folder.rglob("*") if p.is_file() and p.suffix != ".gz")
    for name, path in files:
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        try:
            with path.open("rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
        except OSError as error:
            raise BenchError(f"{path} cannot be read ({error.strerror or error}); {_FIX}") from None
    return digest.hexdigest()


def parsed_cache(data_dir: Path, cache_dir: Path | None, folder: str, prefix: str) -> Path | None:
    """Where the parsed tensors of a dataset's copy are cached (keyed by its files' content digest)."""
    raw = data_dir / folder
    if cache_dir is None or not raw.is_dir():
        return None
    # In a folder of their own: the checkpoint cache's top level holds checkpoints only.
    return cache_dir / "data" / f"{prefix}-{config_hash([str(data_dir.resolve()), content_digest(raw)])}.pt"


def not_found(title: str, layout: str, data_dir: Path, how: str, error: Exception) -> BenchError:
    return BenchError(
        f"{title} not found in {data_dir} ({how}: {str(error).splitlines()[0] if str(error) else error!r}); "
        f"put torchvision's {layout} files there, or point --data-dir (or ${DATA_DIR_ENV}) at a "
        "directory that has them"
    )


def write_cache(cached: Path | None, splits: tuple[Split, Split]) -> None:
    """Cache parsed splits as uint8 images (a cache: a directory that cannot be written is skipped)."""
    if cached is None:
        return
    as_bytes = [((split.x * 255).round().to(torch.uint8), split.y) for split in splits]
    with contextlib.suppress(OSError):
        atomic_write(cached, lambda handle: torch.save(as_bytes, handle))


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


@dataclass(frozen=True)
class DataSlices:
    train: Split
    val: Split
    test: Split

    def describe(self) -> dict[str, int]:
        return {"n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def make_slices(
    full_train: Split, test: Split, n_train: int, n_val: int, n_test: int, seed: int, train_size: int = TRAIN_SIZE
) -> DataSlices:
    """Seeded slices: a split of the training set into its first ``train_size`` shuffled images (training)
    and the rest (validation), then the first n of each part (MNIST: 50k / 10k, as paper 000)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(full_train), generator=generator)
    train_index, val_index = order[:train_size][:n_train], order[train_size:][:n_val]
    test_index = torch.randperm(len(test), generator=generator)[:n_test]
    return DataSlices(
        Split(full_train.x[train_index], full_train.y[train_index]),
        Split(full_train.x[val_index], full_train.y[val_index]),
        Split(test.x[test_index], test.y[test_index]),
    )
