"""The arguments of ``benchmark.evaluate``, checked before anything is saved, loaded or trained.

Every problem is a ``BenchError`` with the CLI's one-line message (the same checks: ``parse_epsilons``'s
bounds, the registries' names and options, ``RunConfig``'s bounds), so that a bad ε or a typo stops the call
at once instead of after the data, the model and its clean evaluation.  Strings are read as the CLI reads
its flags: ``attacks="fgsm,pgd"``, ``epsilons="0.1,0.3"`` or ``"0:0.3:0.1"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.adaptive import ADAPTIVE
from benchmark.config import MAX_SEED, attacks_in, check_bounds, checked_epsilons, get_profile, parse_epsilons
from benchmark.datasets.base import DATASETS
from benchmark.environment import resolve_cache_dir, resolve_device
from foundation.errors import BenchError, did_you_mean
from foundation.threat_models import NORMS

#: What separates a spec's options: the model defense's spec carries ``name`` and the cache path.
SPEC_SEPARATOR = ":"


def _flag(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise BenchError(f"{what} must be True or False; got {value!r}")


def _spec_text(value: Any, what: str) -> None:
    """``value`` can travel inside the model defense's spec (text without ``:``)."""
    if not isinstance(value, str | Path) or not str(value).strip():
        raise BenchError(f"{what} must be a non-empty text; got {value!r}")
    if SPEC_SEPARATOR in str(value):
        raise BenchError(
            f"{what} {str(value)!r} contains {SPEC_SEPARATOR!r}, which separates options in a spec; "
            f"choose one without it"
        )


def _attack_texts(attacks: Any, norm: str) -> tuple[str, ...]:
    text = attacks if isinstance(attacks, str) else None
    if text is None:
        if not isinstance(attacks, Sequence) or not all(isinstance(attack, str) for attack in attacks):
            raise BenchError(f"attacks must be attack specs, e.g. ('fgsm', 'pgd:steps=100'); got {attacks!r}")
        text = ",".join(attacks)
    items = [item.strip() for item in text.split(",")]
    adaptive = ADAPTIVE in items  # the protocol, not an attack: it chooses attacks per defense
    others = ",".join(item for item in items if item != ADAPTIVE)
    specs = attacks_in(norm, others) if others or not adaptive else []
    texts = tuple(":".join([spec.name, *(f"{k}={v}" for k, v in spec.options)]) for spec in specs)
    return (*texts, ADAPTIVE) if adaptive else texts


def _epsilons(epsilons: Any, norm: str, dimension: int) -> tuple[float, ...] | None:
    if epsilons is None:
        return None
    if isinstance(epsilons, str):
        return parse_epsilons(epsilons, norm, dimension)
    if not isinstance(epsilons, Sequence):
        raise BenchError(f"epsilons must be a sequence of numbers, e.g. (0.1, 0.3); got {epsilons!r}")
    return checked_epsilons(list(epsilons), norm, dimension)


def checked_arguments(
    *,
    dataset: Any,
    out_dir: Any,
    data_dir: Any,
    attacks: Any,
    epsilons: Any,
    randomized: Any,
    name: Any,
    profile: Any,
    seed: Any,
    device: Any,
    cache_dir: Any,
    download: Any,
    progress: Any,
    norm: Any,
) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    """Check ``evaluate``'s arguments; returns its attack specs (texts) and epsilons (``None``: the dataset's)."""
    for value, what in ((profile, "profile"), (dataset, "dataset"), (norm, "norm"), (device, "device")):
        if not isinstance(value, str):
            raise BenchError(f"{what} must be a name (a text); got {value!r}")
    get_profile(profile)
    if norm not in NORMS:
        raise BenchError(f"unknown norm {norm!r}; {did_you_mean(str(norm), NORMS)}valid: {', '.join(NORMS)}")
    shape = DATASETS.build(dataset, profile).input_shape
    check_bounds(seed, 0, MAX_SEED, "seed")
    resolve_device(device)
    for value, what in ((randomized, "randomized"), (download, "download"), (progress, "progress")):
        _flag(value, what)
    _spec_text(name, "name")
    for path, what in ((out_dir, "out_dir"), (cache_dir, "cache_dir"), (data_dir, "data_dir")):
        if not isinstance(path, str | Path | None) or (what == "out_dir" and not str(path or "").strip()):
            raise BenchError(f"{what} must be a path; got {path!r}")
    _spec_text(resolve_cache_dir(Path(cache_dir) if cache_dir else None), "cache_dir (or $BENCH_CACHE_DIR)")
    return _attack_texts(attacks, norm), _epsilons(epsilons, norm, math.prod(shape))
