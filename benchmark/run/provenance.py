"""Provenance recorded with every result: library versions and the device."""

from __future__ import annotations

import functools
import platform
from importlib.metadata import PackageNotFoundError, version

import torch

LIBRARIES = (
    "robustness-bench",
    "torch",
    "torchvision",
    "adversarial-robustness-toolbox",
    "foolbox",
    "torchattacks",
    "adv-lib",
    "numpy",
    "scikit-learn",
    "pandas",
)


@functools.cache
def library_versions() -> str:
    """``name=version`` pairs joined by ``;`` (python first)."""
    pairs = [f"python={platform.python_version()}"]
    for name in LIBRARIES:
        try:
            pairs.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            pairs.append(f"{name}=missing")
    return ";".join(pairs)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}x{torch.get_num_threads()}"
