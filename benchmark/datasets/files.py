"""Where datasets live and how their parsed tensors are cached: directories, the offline switch, the
content-keyed cache of parsed splits, and the checks of parsed tensors (shared by every dataset plugin)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir

from benchmark.config.run_config import config_hash
from benchmark.store.atomic import atomic_write
from foundation.errors import BenchError
from foundation.splits import Split

DATA_DIR_ENV = "BENCH_DATA_DIR"
OFFLINE_ENV = "BENCH_OFFLINE"
#: Labels of the built-in datasets: 0..9.
N_CLASSES = 10
FIX = "re-download it (delete it and run with downloading on) or replace it"


def resolve_data_dir(flag: str | os.PathLike[str] | None) -> Path:
    """``--data-dir`` beats ``$BENCH_DATA_DIR`` beats the per-user cache directory."""
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return Path(user_cache_dir("bench")) / "data"


def offline_requested() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() in {"1", "true", "yes"}


def label_problem(labels: np.ndarray | torch.Tensor, classes: int = N_CLASSES) -> str | None:
    """What is wrong with a batch of labels (one vectorised pass), or ``None``."""
    bad = (labels < 0) | (labels >= classes)
    if not bad.any():
        return None
    first = int(bad.nonzero()[0][0])
    return f"{int(bad.sum()):,} labels outside 0..{classes - 1} (the first: {int(labels[first])} at index {first:,})"


def tensor_problem(x: object, y: object, image_shape: tuple[int, ...] = (28, 28)) -> str | None:
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
    return label_problem(y)


def read_cache(cached: Path, input_shape: tuple[int, int, int]) -> tuple[Split, Split] | None:
    """The cached parsed tensors (uint8, N × ``input_shape``), or ``None`` (the file is then deleted) when
    they are unreadable or invalid."""
    try:
        pairs = torch.load(cached, weights_only=True)
        if not isinstance(pairs, list | tuple) or len(pairs) != 2:
            raise ValueError("not two splits")
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2 or tensor_problem(*pair, input_shape):
                raise ValueError("invalid split")
        return tuple(Split(x.float().div_(255.0), y) for x, y in pairs)  # type: ignore[return-value]
    except Exception:
        cached.unlink(missing_ok=True)
        return None


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
            raise BenchError(f"{path} cannot be read ({error.strerror or error}); {FIX}") from None
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
