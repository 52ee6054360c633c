"""Shared fixtures: tiny synthetic models and data for unit tests, a real MNIST slice for integration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def _mnist_dir() -> Path | None:
    configured = os.environ.get("BENCH_DATA_DIR")
    if configured:
        return Path(configured)
    return SHARED_MNIST if (SHARED_MNIST / "MNIST" / "raw").is_dir() else None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST root. Explicitly configured data that is missing is an error, not a skip."""
    path = _mnist_dir()
    if path is None:
        pytest.skip("no MNIST: set BENCH_DATA_DIR or place it at ../shared/data/mnist")
    if not (path / "MNIST" / "raw").is_dir():
        pytest.fail(f"BENCH_DATA_DIR={path} has no MNIST/raw")
    return path


@pytest.fixture
def linear_model() -> nn.Module:
    """A fixed random linear classifier on 1x8x8 images, frozen, in eval mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return model.eval().requires_grad_(False)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def labels(linear_model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Labels the model gets right, so clean accuracy is 100 %."""
    with torch.no_grad():
        return linear_model(images).argmax(dim=1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())
