"""User words to a checked ``RunConfig``, in one place: names, norm, ε and its defaults, bounds.

The CLI (``bench run``, ``report``, ``perf``) and ``benchmark.evaluate`` both build their run through
``run_config``: every name is looked up in its registry (defenses, attacks, datasets, executors) and
every number is checked before anything is saved, loaded or trained, with one-line ``BenchError``s.
``checked_arguments`` adds the checks of ``evaluate``'s Python arguments (types a flag cannot have).
Strings are read as the CLI reads its flags: ``attacks="fgsm,pgd"``, ``epsilons="0.1,0.3"`` or
``"0:0.3:0.1"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attacks.base import ATTACKS
from benchmark.config.epsilons import checked_epsilons, parse_epsilons
from benchmark.config.profiles import get_profile
from benchmark.config.run_config import MAX_SEED, RunConfig, check_bounds
from benchmark.datasets.base import DATASETS
from benchmark.run.adaptive import ADAPTIVE
from benchmark.run.environment import resolve_cache_dir, resolve_device
from benchmark.run.executors import EXECUTORS
from defenses.base import DEFENSES
from foundation.errors import BenchError
from foundation.registry import Spec
from foundation.threat_models import ball_dimension, check_norm

#: What separates a spec's options: the model defense's spec carries ``name`` and the cache path.
SPEC_SEPARATOR = ":"


def attacks_in(norm: str, text: str) -> list[Spec]:
    """The attack specs of ``text`` for the ``norm`` threat model: ``all`` selects those that run in it,
    a named attack that does not is refused, naming those that do."""
    named = {Spec.parse(item).name for item in text.split(",") if item.strip() and item.strip() != "all"}
    specs = ATTACKS.expand(text)
    for spec in specs:
        if spec.name in named and not ATTACKS.get(spec.name).runs_in(norm):
            valid = ", ".join(name for name in ATTACKS.primary_names() if ATTACKS.get(name).runs_in(norm))
            raise BenchError(f"attack {spec.name!r} does not run under --norm {norm}; attacks that do: {valid}")
    return [spec for spec in specs if ATTACKS.get(spec.name).runs_in(norm)]


def _epsilons(epsilons: Any, norm: str, dimension: int) -> tuple[float, ...] | None:
    if epsilons is None:
        return None
    if isinstance(epsilons, str):
        return parse_epsilons(epsilons, norm, dimension)
    if not isinstance(epsilons, Sequence):
        raise BenchError(f"epsilons must be a sequence of numbers, e.g. (0.1, 0.3); got {epsilons!r}")
    return checked_epsilons(list(epsilons), norm, dimension)


def run_config(
    *,
    defenses: str | Sequence[Spec],
    attacks: str | Sequence[Spec],
    epsilons: str | Sequence[float] | None = None,
    profile: str = "quick",
    dataset: str = "mnist",
    norm: str = "linf",
    executor: str = "local",
    **options: Any,
) -> RunConfig:
    """A checked ``RunConfig``: defense and attack names (text as ``--defenses``/``--attacks`` take it, or
    specs), the attacks that run in ``norm``, ε parsed and bounded by the dataset's box (``None``: the dataset's
    default list for the profile and norm); ``options`` are ``RunConfig``'s other fields."""
    chosen = get_profile(profile)
    data = DATASETS.build(dataset, chosen.name)
    check_norm(norm)
    if executor not in EXECUTORS:
        raise BenchError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    defense_specs = DEFENSES.expand(defenses) if isinstance(defenses, str) else list(defenses)
    attack_specs = attacks_in(norm, attacks) if isinstance(attacks, str) else list(attacks)
    chosen_epsilons = _epsilons(epsilons, norm, ball_dimension(data.input_shape, norm))
    return RunConfig(
        defenses=tuple(defense_specs),
        attacks=tuple(attack_specs) if attacks else (),
        epsilons=chosen_epsilons if chosen_epsilons is not None else data.default_epsilons(chosen, norm),
        profile=chosen,
        dataset=dataset,
        norm=norm,
        executor=executor,
        **options,
    )


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
    check_norm(norm, "norm")
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
    return _attack_texts(attacks, norm), _epsilons(epsilons, norm, ball_dimension(shape, norm))
