"""``RunConfig``: what one run does, as a value (no registry lookups), and the stable hash of its keys."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.config.profiles import Profile
from foundation.errors import BenchError
from foundation.registry import Spec
from foundation.threat_models import DEFAULT_NORM, check_norm

#: Bounds on the work one run may ask for; each has a flag or a message saying how to go beyond.
DEFAULT_MAX_CELLS = 500
MAX_EOT_SAMPLES = 1000  # EOT draws run in chunks: large values cost time, not memory
MAX_PREDICTION_REPEATS = 1000
MAX_SEED = 2**31 - 1  # leaves room for derived seeds (a transfer surrogate's is seed + 1000) in 32 bits


def check_bounds(value: int | None, low: int, high: int | None, flag: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise BenchError(f"{flag} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high:,}" if high is not None else f"at least {low}"
        raise BenchError(f"{flag} must be {allowed}; got {value:,}")


@dataclass(frozen=True)
class RunConfig:
    defenses: tuple[Spec, ...]
    attacks: tuple[Spec, ...]
    epsilons: tuple[float, ...]
    profile: Profile
    seed: int = 0
    device: str = "cpu"
    out_dir: Path = Path("results")
    cache_dir: Path | None = None
    data_dir: Path | None = None
    download: bool = True
    eot_samples: int | None = None
    prediction_repeats: int | None = None
    progress: bool = True
    max_cells: int = DEFAULT_MAX_CELLS
    #: Who trains and evaluates: ``local`` (this process) or ``ray`` (a Ray instance or cluster).
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_task: float = 0.0
    #: A registered dataset (``benchmark.datasets``); MNIST by default.
    dataset: str = "mnist"
    #: The norm ball of every ε-bounded attack (``--norm``): ``linf`` or ``l2``.
    norm: str = DEFAULT_NORM
    #: Store each cell's adversarial examples as ``OUT/adversarials/<cell_key>.pt`` (``bench verify`` re-checks them).
    save_adversarials: bool = False
    #: Test points per defense (``--n-test``, RobustBench's ``n_examples``); ``None``: the profile's.  A
    #: defense's own budget (ABS's) still caps it.  It enters the keys as the profile's slice size does.
    n_test: int | None = None
    #: (attack label, why it runs) pairs: the adaptive protocol's reasons, written into each record's note.
    attack_reasons: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Bounds only: names are checked against the registries by ``benchmark.select``, which builds configs."""
        check_norm(self.norm)
        check_bounds(self.workers, 1, None, "--workers")
        if not (math.isfinite(self.gpus_per_task) and 0 <= self.gpus_per_task <= 1_000):
            raise BenchError(
                f"--gpus-per-task must be a number of GPUs (0 or more, fractions allowed); got {self.gpus_per_task}"
            )
        if self.executor == "local" and (self.ray_address or self.workers or self.gpus_per_task):
            raise BenchError(
                "--ray-address, --workers and --gpus-per-task apply to --executor ray; add it or drop them"
            )
        check_bounds(self.seed, 0, MAX_SEED, "--seed")
        check_bounds(self.eot_samples, 1, MAX_EOT_SAMPLES, "--eot-samples")
        check_bounds(self.prediction_repeats, 1, MAX_PREDICTION_REPEATS, "--repeats")
        check_bounds(self.max_cells, 1, None, "--max-cells")
        check_bounds(self.n_test, 1, None, "--n-test")

    @property
    def effective_n_test(self) -> int:
        return self.n_test if self.n_test is not None else self.profile.n_test

    @property
    def effective_eot_samples(self) -> int:
        return self.eot_samples if self.eot_samples is not None else self.profile.eot_samples

    @property
    def effective_prediction_repeats(self) -> int:
        return self.prediction_repeats if self.prediction_repeats is not None else self.profile.prediction_repeats


def config_hash(payload: Any) -> str:
    """Short, stable hash of a JSON-able payload (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
