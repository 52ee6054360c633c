"""Run configuration and profiles.  A profile changes budgets, never the method."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from foundation.errors import BenchError, did_you_mean
from foundation.registry import Spec
from foundation.threat_models import DEFAULT_NORM, NORMS


@dataclass(frozen=True)
class Profile:
    """Budgets of a run: data slice sizes and evaluation effort.  Defenses and attacks carry
    their own per-profile budgets (epochs, steps) in ``profile_overrides``."""

    name: str
    n_train: int
    n_val: int
    n_test: int
    eot_samples: int  # gradient samples per step for randomized defenses
    prediction_repeats: int  # a point is robust only if all repeated predictions are correct
    batch_size: int = 500  # evaluation batch for attacks and predictions
    epsilons: tuple[float, ...] = (0.1, 0.2, 0.3)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", n_train=5000, n_val=1000, n_test=200, eot_samples=2, prediction_repeats=3, epsilons=(0.1, 0.3)
    ),
    "quick": Profile("quick", n_train=50_000, n_val=10_000, n_test=1000, eot_samples=4, prediction_repeats=5),
    "paper": Profile("paper", n_train=50_000, n_val=10_000, n_test=10_000, eot_samples=16, prediction_repeats=10),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BenchError(
            f"unknown profile {name!r}; {did_you_mean(name, PROFILES)}valid: {', '.join(PROFILES)}"
        ) from None


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise BenchError(f"{what} {text!r} is not a finite number")
    return value


def parse_epsilons(text: str, norm: str = DEFAULT_NORM, dimension: int | None = None) -> tuple[float, ...]:
    """Epsilons from ``0.1,0.3`` or a range ``start:stop:step`` (inclusive), or a mix of both; L2 budgets
    are bounded by the diameter of the box of ``dimension`` pixels."""
    values: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if ":" in item:
            parts = item.split(":")
            if len(parts) != 3:
                raise BenchError(f"epsilon range {item!r} must be start:stop:step, e.g. 0:0.3:0.1")
            start, stop, step = (_number(part, "epsilon") for part in parts)
            if step <= 0 or stop < start:
                raise BenchError(f"epsilon range {item!r} needs start <= stop and a positive step")
            steps = (stop - start) / step  # inf when the step is tiny beside the span (1e-320, 1e-308)
            count = math.floor(steps + 1e-9) + 1 if steps < 1e15 else math.inf
            if count + len(values) > MAX_EPSILONS:
                many = f"{count:,}" if count < math.inf else f"about {steps:.3g}" if steps < math.inf else "over 1e308"
                raise BenchError(f"epsilon range {item!r} has {many} values; at most {MAX_EPSILONS} per run")
            values.extend(round(start + i * step, 10) for i in range(count))
        else:
            values.append(_number(item, "epsilon"))
    return checked_epsilons(values, norm, dimension)


def checked_epsilons(
    values: Sequence[float], norm: str = DEFAULT_NORM, dimension: int | None = None
) -> tuple[float, ...]:
    """The distinct epsilons of ``values``, sorted, each checked against the ``norm`` ball's bounds (as
    ``parse_epsilons``); a value that is not a finite number, or a list empty or too long, is a ``BenchError``."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real):
            raise BenchError(f"epsilon {value!r} is not a number")
        if not math.isfinite(value):
            raise BenchError(f"epsilon {value!r} is not a finite number")
    if len(values) > MAX_EPSILONS:
        raise BenchError(f"{len(values):,} epsilons given; at most {MAX_EPSILONS} per run")
    if not values:
        raise BenchError("no epsilon given; pass e.g. --eps 0.1,0.3 or --eps 0:0.3:0.1")
    from attacks.base import validate_epsilon  # here, not at the top: importing attacks.base imports torch

    for value in map(float, values):
        if norm != DEFAULT_NORM:
            validate_epsilon(value, norm, dimension)
            continue
        try:
            validate_epsilon(value)
        except BenchError:
            raise BenchError(
                f"epsilon {value:g} is outside [0, 1] (inputs are images in [0, 1]; L2 budgets need --norm l2)"
            ) from None
    return tuple(sorted(set(map(float, values))))


def attacks_in(norm: str, text: str) -> list[Spec]:
    """The attack specs of ``text`` for the ``norm`` threat model: ``all`` selects those that run in it,
    a named attack that does not is refused, naming those that do."""
    from attacks.base import ATTACKS

    named = {Spec.parse(item).name for item in text.split(",") if item.strip() and item.strip() != "all"}
    specs = ATTACKS.expand(text)
    for spec in specs:
        if spec.name in named and not ATTACKS.get(spec.name).runs_in(norm):
            valid = ", ".join(name for name in ATTACKS.primary_names() if ATTACKS.get(name).runs_in(norm))
            raise BenchError(f"attack {spec.name!r} does not run under --norm {norm}; attacks that do: {valid}")
    return [spec for spec in specs if ATTACKS.get(spec.name).runs_in(norm)]


#: Bounds on the work one run may ask for; each has a flag or a message saying how to go beyond.
DEFAULT_MAX_CELLS = 500
MAX_EPSILONS = 100
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
        from benchmark.datasets.base import DATASETS

        DATASETS.get(self.dataset)
        if self.norm not in NORMS:
            raise BenchError(f"unknown --norm {self.norm!r}; {did_you_mean(self.norm, NORMS)}valid: {', '.join(NORMS)}")
        from benchmark.executors import EXECUTORS

        if self.executor not in EXECUTORS:
            raise BenchError(f"unknown executor {self.executor!r}; valid: {', '.join(EXECUTORS)}")
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
