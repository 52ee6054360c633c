"""``evaluate``: RobustBench's one-function ``benchmark()`` for an in-memory PyTorch model.

The model goes through the same planner, threat-model guard, store and tables as any defense: its
weights are saved (``CACHE/models/<sha256>.pt``) and it becomes a ``model`` defense whose key holds
the weights' sha256, so a changed weight is a new row and an unchanged model is never evaluated twice.
It runs in this process (the local executor): the module object itself cannot travel to workers.
"""

from __future__ import annotations

import copy
import hashlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from benchmark.api_arguments import checked_arguments
from benchmark.atomic import atomic_write
from benchmark.config import RunConfig, get_profile
from benchmark.datasets.base import DATASETS
from benchmark.environment import resolve_cache_dir
from benchmark.runner import run_benchmark
from foundation.errors import BenchError
from foundation.registry import Spec


def _saved_weights(model: nn.Module, cache_dir: Path) -> tuple[Path, str]:
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}, buffer)
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    path = cache_dir / "models" / f"{digest}.pt"
    if not path.exists():
        atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return path, digest


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
) -> pd.DataFrame:
    """Evaluate ``model`` ([0, 1] images of ``dataset``'s shape to logits) under ``attacks`` at ``epsilons``
    in the ``norm`` ball (``linf`` or ``l2``; default ε: the dataset's for that norm); returns its rows of the
    leaderboard (``attack == "worst"``: the per-point worst case), which are also written to ``out_dir`` with
    every other row of that store.  Every argument is checked first (``benchmark.api_arguments``): a bad one
    raises ``BenchError`` (``benchmark.BenchError``) with the CLI's one-line message."""
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
    weights, digest = _saved_weights(model, cache)
    # The model defense builds its module by calling ``entry`` in ``module``: a copy of this model.
    entry = f"model_{digest[:16]}"
    setattr(sys.modules[__name__], entry, lambda: copy.deepcopy(model).cpu())
    spec = f"model:module={__name__}:entry={entry}:weights={weights}:randomized={str(randomized).lower()}:name={name}"
    config = RunConfig(
        defenses=(Spec.parse(spec),),
        attacks=tuple(Spec.parse(attack) for attack in attacks),
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
    )
    frame = run_benchmark(config)
    failures = frame.attrs["failures"]
    if failures:
        raise BenchError(f"{len(failures)} cells failed: {failures[0].message}")
    rows = frame[(frame["defense"] == name) & (frame["dataset"] == dataset) & (frame["profile"] == profile)]
    return rows.reset_index(drop=True)
