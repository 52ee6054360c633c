from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(max(1, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One checkpoint cache for the session, so the smoke CNN is trained once."""
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture
def bench(mnist_dir: Path, shared_cache: Path, capsys) -> Callable[..., tuple[int, str, str]]:
    """Run `bench ...` in-process on the real MNIST slice; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        argv = list(args)
        if argv[0] == "run":
            argv += ["--data-dir", str(mnist_dir), "--no-download", "--no-progress"]
            if "--cache-dir" not in argv:
                argv += ["--cache-dir", str(shared_cache)]
            if "--profile" not in argv:
                argv += ["--profile", "smoke"]
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def leaderboard(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "leaderboard.csv")
