"""``evaluate``: RobustBench's one-function ``benchmark()`` for an in-memory PyTorch model.

The model goes through the same planner, threat-model guard, store and tables as any defense: it is
handed to the run itself, as the ``model`` defense of its spec (``ModelDefense.of_module``), whose key
holds its class and the sha256 of its state dict, so a changed weight is a new row and an unchanged model
is never evaluated twice.  It runs in this process (``executor="local"``) or on Ray workers
(``executor="ray"``), which receive the model, its state dict and the code that builds it
(``benchmark.run.in_memory``), and compute the local run's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from torch import nn

from benchmark.publish.site import publish_site
from benchmark.run.adaptive import ADAPTIVE, run_adaptive
from benchmark.run.environment import resolve_cache_dir
from benchmark.run.runner import run_benchmark
from benchmark.select import checked_arguments, run_config
from benchmark.store.checkpoints import weights_digest
from defenses.model import ModelDefense
from defenses.preprocessing import spec_text
from foundation.errors import BenchError
from foundation.registry import Spec


def _normalization_options(mean: Sequence[float] | None, std: Sequence[float] | None) -> dict[str, str]:
    """``mean`` and ``std`` as the model defense's options (none without them; it refuses one without the other)."""
    given = [(name, values) for name, values in (("mean", mean), ("std", std)) if values is not None]
    return {name: spec_text(values, name) for name, values in given}


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
    ``"adaptive"`` among ``attacks`` runs the adaptive protocol (``benchmark.run.adaptive``) besides the other
    attacks named.
    Every argument is checked first (``benchmark.select``): a bad one raises ``BenchError``
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
    cache = resolve_cache_dir(Path(cache_dir) if cache_dir else None)
    normalization = _normalization_options(mean, std)
    defense = ModelDefense.of_module(
        model, weights_digest(model.state_dict()), name=name, randomized=randomized, **normalization
    )
    spec = Spec("model", (("name", name), ("randomized", str(randomized).lower()), *normalization.items()))
    config = run_config(
        defenses=(spec,),
        attacks=tuple(Spec.parse(attack) for attack in attacks if attack != ADAPTIVE),
        epsilons=epsilons,
        norm=norm,
        profile=profile,
        dataset=dataset,
        executor=executor,
        seed=seed,
        device=device,
        out_dir=Path(out_dir),
        cache_dir=cache,
        data_dir=Path(data_dir) if data_dir else None,
        download=download,
        progress=progress,
        n_test=n_test,
    )
    given = {spec: defense}
    result = run_adaptive(config, given) if ADAPTIVE in attacks else run_benchmark(config, given)
    publish_site(config.out_dir, result.frame)
    if result.failures:
        raise BenchError(f"{len(result.failures)} cells failed: {result.failures[0].message}")
    frame = result.frame
    rows = frame[(frame["defense"] == name) & (frame["dataset"] == dataset) & (frame["profile"] == profile)]
    rows = rows[rows["n"] == config.effective_n_test]  # not the rows of other --n-test runs in the store
    return rows.reset_index(drop=True)
