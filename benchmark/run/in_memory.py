"""Given defenses (``benchmark.evaluate``'s live models) shipped to Ray workers with the code that builds them.

A model handed to ``evaluate`` exists only in the caller's process: no spec can rebuild it.  ``shipped``
cloudpickles the run's given defenses (Ray's copy of ``cloudpickle``): the model's state dict and the
code of its classes.  Code outside installed packages (a notebook's or a script's classes, a test's)
travels by value; an installed package's classes by reference, so the package must be installed on the
workers, as the harness itself is.  A worker ``installed``s the payload once per process.
"""

from __future__ import annotations

import hashlib
import pickle
import site
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from defenses.base import Defense
from foundation.registry import Spec

#: Payloads unpickled in this process, by their sha256 (a worker serves many tasks of one run).
_INSTALLED: dict[str, dict[Spec, Defense]] = {}


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


def shipped(defenses: Mapping[Spec, Defense]) -> bytes:
    """The given defenses, cloudpickled with the code of their models' classes."""
    from ray import cloudpickle  # Ray is the optional extra that ships; only its executor calls this

    roots = _installed_code_roots()
    networks = [network for defense in defenses.values() for network in defense.modules().values()]
    modules = {type(part).__module__ for network in networks for part in network.modules()}
    registered = set(cloudpickle.list_registry_pickle_by_value())
    candidates = [sys.modules[name] for name in sorted(modules - registered) if name in sys.modules]
    by_value = [module for module in candidates if _travels_by_value(module, roots)]
    for module in by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(dict(defenses))
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(module)


def installed(payload: bytes | None) -> dict[Spec, Defense]:
    """The defenses of a ``shipped`` payload, unpickled once per process (``None``: a run without any)."""
    if payload is None:
        return {}
    digest = hashlib.sha256(payload).hexdigest()
    if digest not in _INSTALLED:
        _INSTALLED[digest] = pickle.loads(payload)
    return _INSTALLED[digest]
