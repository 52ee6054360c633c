"""Given defenses (``benchmark.evaluate``'s live models): keyed by class and weights, handed out by the run's
``Build``, shipped to Ray workers with their code (``benchmark.run.in_memory``)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
import torch

from benchmark.run import in_memory
from benchmark.run.build import Build
from benchmark.store.checkpoints import weights_digest
from defenses.model import ModelConfig, ModelDefense
from foundation.errors import BenchError
from foundation.registry import Spec

NET = """
import torch
from torch import nn


class Doubled(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        return 2 * self.linear(x)
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's, importable here only (its folder is on this process's path)."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "user_net_xyz.py").write_text(textwrap.dedent(NET))
    monkeypatch.syspath_prepend(str(folder))
    yield importlib.import_module("user_net_xyz")
    sys.modules.pop("user_net_xyz", None)


def _given(model) -> ModelDefense:
    return ModelDefense.of_module(model, weights_digest(model.state_dict()), name="mine")


def test_a_given_model_is_a_copy_keyed_by_its_class_and_weights(user_module):
    torch.manual_seed(0)
    model = user_module.Doubled()
    defense = _given(model)
    assert defense.model is not model
    assert torch.equal(defense.deployed_model()(torch.ones(1, 4)), model(torch.ones(1, 4)))
    options = defense.options()
    assert options["model_class"] == "user_net_xyz.Doubled"
    assert options["weights_sha256"] == weights_digest(model.state_dict())
    with torch.no_grad():
        model.linear.bias += 1  # a changed weight: another key; the copy taken before keeps its own
    assert _given(model).options() != options and defense.options() == options
    with pytest.raises(BenchError, match="takes no source"):
        ModelDefense(ModelConfig(source="net.py"), model, "0" * 64)


def test_a_build_hands_out_the_given_defense_and_copies_of_it(user_module):
    defense, spec = _given(user_module.Doubled()), Spec("model", (("name", "mine"),))
    build = Build("smoke", "mnist", "linf", {spec: defense})
    assert build.defense(spec) is defense and defense.profile == "smoke"
    copy = build.untrained(spec)
    assert copy is not defense and copy.options() == defense.options()


def test_shipped_defenses_carry_their_code_to_a_process_that_cannot_import_it(user_module, tmp_path):
    pytest.importorskip("ray", reason="shipping models is the Ray executor's (pip install -e '.[ray]')")
    torch.manual_seed(0)
    model = user_module.Doubled()
    spec = Spec("model", (("name", "mine"),))
    payload = in_memory.shipped({spec: _given(model)})
    script = (
        "import pickle, sys, torch\n"
        "(spec, defense), = pickle.loads(sys.stdin.buffer.read()).items()\n"
        "print(spec.label, type(defense.model).__name__, defense.model(torch.ones(1, 4)).tolist())\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, cwd=elsewhere, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split()[:2] == ["mine", "Doubled"]
    assert "user_net_xyz" not in cloudpickle_registry()  # the by-value registration is undone


def cloudpickle_registry() -> set[str]:
    from ray import cloudpickle

    return set(cloudpickle.list_registry_pickle_by_value())


def test_a_payload_is_installed_once_per_process(user_module):
    pytest.importorskip("ray", reason="shipping models is the Ray executor's (pip install -e '.[ray]')")
    model = user_module.Doubled()
    payload = in_memory.shipped({Spec("model", (("name", "mine"),)): _given(model)})
    first = in_memory.installed(payload)
    assert in_memory.installed(payload) is first
    (defense,) = first.values()
    assert torch.equal(defense.model(torch.ones(1, 4)), model(torch.ones(1, 4)))
    assert in_memory.installed(None) == {}  # a run without given defenses
