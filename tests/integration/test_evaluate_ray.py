"""`benchmark.evaluate(..., executor="ray")` on a real local Ray: the in-memory model travels to the workers
(its state dict and the code that builds it) and they compute the local run's numbers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.store import ResultStore
from tests.integration.test_model_defense import slices

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install -e '.[ray]')")
__all__ = ["slices"]  # a fixture, used by name

#: Fields that depend on the process rather than the cell: timings, and the device string (it names the threads).
PROCESS_FIELDS = {"created", "attack_seconds", "device"}
#: Floating-point summaries whose last digits follow the thread count (its order of additions).
FLOAT_SUMMARIES = {"linf_mean", "linf_max", "l2_mean"}


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
    net, generator = TwoLayer(), torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        index = torch.randint(len(slices.train), (128,), generator=generator)
        loss = nn.functional.cross_entropy(net(slices.train.x[index]), slices.train.y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture
def local_ray():
    """A real local Ray instance with two CPUs, stopped afterwards."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _records(out) -> dict[str, dict]:
    return {r["cell_key"]: {k: v for k, v in r.items() if k not in PROCESS_FIELDS} for r in ResultStore(out).records()}


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
    expected, got = _records(tmp_path / "local"), _records(tmp_path / "ray")
    assert expected.keys() == got.keys() and len(got) == 4  # the same keys: the same model, wherever it ran
    for key, record in got.items():
        for column, value in record.items():
            if column in FLOAT_SUMMARIES:
                assert value == pytest.approx(expected[key][column], rel=1e-4), (key, column)
            else:
                assert value == expected[key][column], (key, column)
