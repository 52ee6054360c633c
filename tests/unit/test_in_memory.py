"""``benchmark.in_memory``: in-memory models as the ``model`` defense's module, shipped with their code."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
import torch

from benchmark import in_memory
from benchmark.checkpoints import weights_digest
from defenses.base import DEFENSES

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


def test_a_registered_model_is_built_as_a_copy_named_by_its_weights(user_module):
    torch.manual_seed(0)
    model = user_module.Doubled()
    entry = in_memory.register(model)
    assert entry == f"model_{weights_digest(model.state_dict())}"
    built = getattr(in_memory, entry)()
    assert built is not model and torch.equal(built(torch.ones(1, 4)), model(torch.ones(1, 4)))
    with torch.no_grad():
        model.linear.bias += 1  # a changed weight: another entry
    assert in_memory.register(model) != entry
    defense = DEFENSES.build(f"model:module=benchmark.in_memory:entry={entry}", "smoke")
    assert torch.equal(defense.deployed_model()(torch.ones(1, 4)), built(torch.ones(1, 4)))
    with pytest.raises(AttributeError, match="no registered model 'model_0'"):
        in_memory.model_0  # noqa: B018


def test_a_shipped_model_carries_its_code_to_a_process_that_cannot_import_it(user_module, tmp_path):
    pytest.importorskip("ray", reason="shipping models is the Ray executor's (pip install -e '.[ray]')")
    torch.manual_seed(0)
    model = user_module.Doubled()
    entry = in_memory.register(model)
    payload = in_memory.shipped([entry, "model_unknown"])
    assert list(payload) == [entry]
    script = (
        "import pickle, sys, torch\n"
        "model = pickle.loads(sys.stdin.buffer.read())\n"
        "print(type(model).__name__, model(torch.ones(1, 4)).tolist())\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", script], input=payload[entry], capture_output=True, cwd=elsewhere, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split()[0] == "Doubled"
    assert "user_net_xyz" not in cloudpickle_registry()  # the by-value registration is undone


def cloudpickle_registry() -> set[str]:
    from ray import cloudpickle

    return set(cloudpickle.list_registry_pickle_by_value())


def test_install_registers_shipped_models_once(user_module):
    pytest.importorskip("ray", reason="shipping models is the Ray executor's (pip install -e '.[ray]')")
    model = user_module.Doubled()
    entry = in_memory.register(model)
    payload = in_memory.shipped([entry])
    in_memory._MODELS.pop(entry)
    in_memory.install(payload)
    first = in_memory._MODELS[entry]
    in_memory.install(payload)
    assert in_memory._MODELS[entry] is first and torch.equal(first(torch.ones(1, 4)), model(torch.ones(1, 4)))
    in_memory.install(None)  # a plan without in-memory models
