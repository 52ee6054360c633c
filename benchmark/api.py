"""``evaluate``: RobustBench's one-function ``benchmark()`` for an in-memory PyTorch model.

The model goes through the same planner, threat-model guard, store and tables as any defense: it is
registered in ``benchmark.in_memory`` and becomes a ``model`` defense whose key holds the sha256 of its
state dict, so a changed weight is a new row and an unchanged model is never evaluated twice.  It runs in
this process (``executor="local"``) or on Ray workers (``executor="ray"``), which receive the model, its
state dict and the code that builds it, and compute the local run's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from torch import nn

from benchmark import in_memory
from benchmark.adaptive import ADAPTIVE, run_adaptive
from benchmark.api_arguments import checked_arguments
from benchmark.config import RunConfig, get_profile
from benchmark.datasets.base import DATASETS
from benchmark.environment import resolve_cache_dir
from benchmark.runner import run_benchmark
from defenses.preprocessing import spec_text
from foundation.errors import BenchError
from foundation.registry import Spec


def _normalization_options(mean: Sequence[float] | None, std: Sequence[float] | None) -> str:
    """``:mean=…:std=…`` of the model spec (nothing without them; the defense refuses one without the other)."""
    given = [(name, values) for name, values in (("mean", mean), ("std", std)) if values is not None]
    return "".join(f":{name}={spec_text(values, name)}" for name, values in given)


def evaluate(
    model: nn.Module,
    dataset: str = "mnist",
    attacks: Sequence[str] = ("autoattack",),
    epsilons: Sequence[float] | None = None,
    randomized: bool = False,
    *,
    name: str = "model",
    profile: str = "quick",
    out_dir: str | Path = "results",
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = False,
    norm: str = "linf",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    n_test: int | None = None,
    executor: str = "local",
) -> pd.DataFrame:
    """Evaluate ``model`` ([0, 1] images of ``dataset``'s shape to logits) under ``attacks`` at ``epsilons``
    in the ``norm`` ball (``linf`` or ``l2``; default ε: the dataset's for that norm); returns its rows of the
    leaderboard (``attack == "worst"``: the per-point worst case), which are also written to ``out_dir`` with
    every other row of that store.  ``mean`` and ``std`` (per channel) normalise the input inside the model,
    for a model trained on normalised images: attacks and ε stay in [0, 1] pixel space.  ``n_test`` is the
    number of test points (RobustBench's ``n_examples``; default: the profile's).  ``executor="ray"`` runs
    on Ray (the instance this process has initialised, else a local one started for the run).
    ``"adaptive"`` among ``attacks`` runs the adaptive protocol (``benchmark.adaptive``) besides the other
    attacks named.
    Every argument is checked first (``benchmark.api_arguments``): a bad one raises ``BenchError``
    (``benchmark.BenchError``) with the CLI's one-line message."""
    if not isinstance(model, nn.Module):
        raise BenchError(f"evaluate() needs a torch.nn.Module; got {type(model).__name__}")
    attacks, epsilons = checked_arguments(
        dataset=dataset,
        out_dir=out_dir,
        data_dir=data_dir,
        attacks=attacks,
        epsilons=epsilons,
        randomized=randomized,
        name=name,
        profile=profile,
        seed=seed,
        device=device,
        cache_dir=cache_dir,
        download=download,
        progress=progress,
        norm=norm,
    )
    chosen = get_profile(profile)
    cache = resolve_cache_dir(Path(cache_dir) if cache_dir else None)
    # The model defense builds its module by calling ``entry`` in ``module``: a copy of this model.
    entry = in_memory.register(model)
    spec = f"model:module={in_memory.__name__}:entry={entry}:randomized={str(randomized).lower()}:name={name}"
    spec += _normalization_options(mean, std)
    adaptive = ADAPTIVE in attacks
    config = RunConfig(
        defenses=(Spec.parse(spec),),
        attacks=tuple(Spec.parse(attack) for attack in attacks if attack != ADAPTIVE),
        epsilons=tuple(epsilons)
        if epsilons is not None
        else DATASETS.build(dataset, profile).default_epsilons(chosen, norm),
        norm=norm,
        profile=chosen,
        seed=seed,
        device=device,
        out_dir=Path(out_dir),
        cache_dir=cache,
        data_dir=Path(data_dir) if data_dir else None,
        download=download,
        progress=progress,
        dataset=dataset,
        n_test=n_test,
        executor=executor,
    )
    if adaptive:
        outcome = run_adaptive(config)
        frame, failures = outcome.frame, outcome.failures
    else:
        frame = run_benchmark(config)
        failures = frame.attrs["failures"]
    if failures:
        raise BenchError(f"{len(failures)} cells failed: {failures[0].message}")
    rows = frame[(frame["defense"] == name) & (frame["dataset"] == dataset) & (frame["profile"] == profile)]
    rows = rows[rows["n"] == config.effective_n_test]  # not the rows of other --n-test runs in the store
    return rows.reset_index(drop=True)
