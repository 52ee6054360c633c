"""In-memory models (``benchmark.evaluate``) as a module the ``model`` defense imports, here and on Ray workers.

``register(model)`` keeps a copy of the model under ``model_<sha256 of its state dict>``, and
``model:module=benchmark.in_memory:entry=model_<sha256>`` builds a copy of that copy: the entry's name
carries the weights' digest into the defense key, so a changed weight is a new row and an unchanged
model is never evaluated twice.  No file is written: a worker in another process, or on another machine,
gets ``shipped(entries)`` (each model cloudpickled: its state dict and the code that builds it) and
``install``s it before it builds the defense.  Code outside installed packages (a notebook's or a
script's classes, a test's) travels by value; an installed package's classes by reference, so the
package must be installed on the workers, as the harness itself is.
"""

from __future__ import annotations

import copy
import site
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from torch import nn

from benchmark.checkpoints import weights_digest

#: Entry name -> the registered copy of a model (on the CPU, in eval mode).
_MODELS: dict[str, nn.Module] = {}
PREFIX = "model_"


def register(model: nn.Module) -> str:
    """Keep a copy of ``model``; returns its entry name (``model_`` and the sha256 of its state dict)."""
    snapshot = copy.deepcopy(model).cpu().eval()
    entry = f"{PREFIX}{weights_digest(snapshot.state_dict())}"
    _MODELS.setdefault(entry, snapshot)
    return entry


def __getattr__(name: str) -> Callable[[], nn.Module]:
    """``model_<sha256>``: a function building a fresh copy of that registered model (what ``entry`` names)."""
    if name not in _MODELS:
        raise AttributeError(f"module {__name__!r} has no registered model {name!r}")
    return lambda: copy.deepcopy(_MODELS[name])


def _installed_code_roots() -> list[Path]:
    paths = {*site.getsitepackages(), site.getusersitepackages(), *sysconfig.get_paths().values()}
    return [Path(path).resolve() for path in paths if path]


def _travels_by_value(module: ModuleType, roots: list[Path]) -> bool:
    """Whether a module's code is shipped with the model: Python source outside the standard library and
    installed packages (``__main__``, a notebook's or a script's, always travels by value)."""
    file = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or file is None:
        return False
    path = Path(file).resolve()
    return path.suffix == ".py" and not any(path.is_relative_to(root) for root in roots)


def shipped(entries: Iterable[str]) -> dict[str, bytes]:
    """The registered models among ``entries``, each cloudpickled (Ray's copy) with the code that builds it."""
    from ray import cloudpickle

    roots = _installed_code_roots()
    wanted = [entry for entry in dict.fromkeys(entries) if entry in _MODELS]
    modules = {type(part).__module__ for entry in wanted for part in _MODELS[entry].modules()}
    registered = set(cloudpickle.list_registry_pickle_by_value())
    candidates = [sys.modules[name] for name in sorted(modules - registered) if name in sys.modules]
    by_value = [module for module in candidates if _travels_by_value(module, roots)]
    for module in by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return {entry: cloudpickle.dumps(_MODELS[entry]) for entry in wanted}
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(module)


def install(models: dict[str, bytes] | None) -> None:
    """Register models shipped by ``shipped`` (in a worker process; each is unpickled once per process)."""
    import pickle

    for entry, payload in (models or {}).items():
        if entry not in _MODELS:
            _MODELS[entry] = pickle.loads(payload)
