"""`benchmark.evaluate(..., executor="ray")` on a real local Ray: the in-memory model travels to the workers
(its state dict and the code that builds it) and they compute the local run's numbers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from tests.integration.test_model_defense import adam_steps, slices
from tests.integration.test_ray import assert_same_records, records

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install -e '.[ray]')")
__all__ = ["slices"]  # a fixture, used by name


class TwoLayer(nn.Module):
    """A model class defined here, in no installed package: Ray workers get its code with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(784, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x.flatten(1))))


@pytest.fixture(scope="module")
def model(slices) -> nn.Module:
    torch.manual_seed(0)
    return adam_steps(TwoLayer(), slices.train, steps=200)


@pytest.fixture
def local_ray():
    """A real local Ray instance with two CPUs, stopped afterwards."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_evaluate_on_ray_gives_the_local_numbers(tmp_path, mnist_dir, model, local_ray, capsys):
    from benchmark import evaluate

    common = dict(attacks=("fgsm", "deepfool"), epsilons=(0.1, 0.3), profile="smoke", name="two-layer")
    common |= dict(data_dir=mnist_dir, download=False, n_test=100)
    local = evaluate(model, out_dir=tmp_path / "local", cache_dir=tmp_path / "local-cache", **common)
    capsys.readouterr()
    # A fresh cache: the model's loading job, its clean evaluation and every cell run as tasks on the workers.
    distributed = evaluate(model, out_dir=tmp_path / "ray", cache_dir=tmp_path / "ray-cache", executor="ray", **common)
    stderr = capsys.readouterr().err
    assert "two-layer: training on the cluster" in stderr
    assert (distributed["n"] == 100).all() and set(distributed["attack"]) == {"fgsm", "deepfool", "worst"}
    assert local["clean_accuracy"].iloc[0] > 0.8  # a sane model, or the comparison says little
    columns = ["attack", "eps", "clean_accuracy", "robust_accuracy", "robust_accuracy_ci_low", "f1_macro"]
    ordered = [frame[columns].sort_values(["attack", "eps"]).reset_index(drop=True) for frame in (local, distributed)]
    pd.testing.assert_frame_equal(*ordered)
    expected, got = records(tmp_path / "local"), records(tmp_path / "ray")
    assert len(got) == 4
    assert_same_records(expected, got)  # under the same keys: the same model, wherever it ran
