"""`bench run` on checkpoints as the ecosystem saves them: every layout of one trained model, the same numbers."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from benchmark.store.result_store import ResultStore
from tests.integration.conftest import leaderboard
from tests.integration.test_model_defense import adam_steps, slices

pytestmark = pytest.mark.integration
__all__ = ["slices"]  # a fixture, used by name

MODEL_FILE = """
from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
"""


def build() -> nn.Module:
    """What MODEL_FILE builds."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def trained(slices) -> nn.Module:
    """A small BatchNorm MLP: 300 Adam steps on the smoke training slice (a second or two)."""
    torch.manual_seed(0)
    return adam_steps(build(), slices.train)


def _jit_save(model: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(path))
    return path


def _files(root: Path, model: nn.Module) -> dict[str, str]:
    """Name -> the spec options of each layout of the same weights (the source written beside them)."""
    source = root / "net.py"
    source.write_text(MODEL_FILE)
    state = model.state_dict()
    torch.save(state, root / "plain.pt")
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, root / "old.pt")
    torch.save({"epoch": 12, "optimizer": {"lr": 0.01}, "state_dict": state}, root / "nested.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, root / "parallel.pt")
    save_file(dict(state), str(root / "net.safetensors"))
    archive = _jit_save(model, root / "scripted.pt")
    with_source = f"source={source}:weights="
    return {
        "plain": f"{with_source}{root / 'plain.pt'}",
        "old-batchnorm": f"{with_source}{root / 'old.pt'}",
        "nested": f"{with_source}{root / 'nested.pt'}",
        "parallel": f"{with_source}{root / 'parallel.pt'}",
        "safetensors": f"{with_source}{root / 'net.safetensors'}",
        "torchscript-weights": f"{with_source}{archive}",
        "torchscript-only": f"scripted={archive}",
    }


LAYOUTS = {
    "plain": "torch.save file, a state dict",
    "old-batchnorm": "torch.save file, a state dict",
    "nested": "torch.save file, a checkpoint's 'state_dict' entry",
    "parallel": "torch.save file, a state dict, 'module.' prefixes removed",
    "safetensors": "safetensors, a state dict",
    "torchscript-weights": "TorchScript archive, a state dict",
}


def test_every_layout_gives_the_plain_state_dicts_numbers(bench, tmp_path, slices, trained):
    files, out = _files(tmp_path, trained), tmp_path / "out"
    specs = ",".join(f"model:{options}:name={name}" for name, options in files.items())
    code, stdout, stderr = bench("run", "--defenses", specs, "--attacks", "fgsm", "--eps", "0.1", "--out", str(out))
    assert code == 0, stderr
    assert "7 cells computed" in stdout
    rows = leaderboard(out)
    rows = rows[rows["attack"] == "fgsm"].set_index("defense")
    assert sorted(rows.index) == sorted(files)
    with torch.no_grad():
        own = float((trained(slices.test.x).argmax(dim=1) == slices.test.y).float().mean())
    assert own > 0.8  # a sane model, or the comparison says little
    assert rows["clean_accuracy"].tolist() == pytest.approx([own] * len(files), abs=1e-6)
    assert rows["robust_accuracy"].nunique() == 1 and (rows["n"] == 200).all()
    recorded = {record["defense"]: record.get("train_weights_layout") for record in ResultStore(out).records()}
    assert recorded == {**LAYOUTS, "torchscript-only": "TorchScript archive, the model with its weights"}


def _malformed(root: Path, model: nn.Module) -> dict[str, tuple[str, str]]:
    """Each malformed file: (spec options, part of its one-line error)."""
    source = root / "net.py"
    source.write_text(MODEL_FILE)
    torch.save({"epoch": 12, "weights": [1.0, 2.0]}, root / "no-state.pt")
    prefixed = {f"module.{k}": v for k, v in model.state_dict().items() if not k.startswith("4.")}
    torch.save(prefixed, root / "short.pt")
    save_file(dict(model.state_dict()), str(root / "cut.safetensors"))
    (root / "cut.safetensors").write_bytes((root / "cut.safetensors").read_bytes()[:100])
    torch.save(model.state_dict(), root / "state.pt")
    return {
        "checkpoint without a state dict": (
            f"source={source}:weights={root / 'no-state.pt'}",
            "holds a dict with top-level keys 'epoch', 'weights' but no state dict of tensors",
        ),
        "prefixed and short of keys": (
            f"source={source}:weights={root / 'short.pt'}",
            "does not fit the model that " + f"{source} builds: missing key '4.weight' (and 1 more)",
        ),
        "truncated safetensors": (f"source={source}:weights={root / 'cut.safetensors'}", "as a safetensors file"),
        "scripted= a state dict": (f"scripted={root / 'state.pt'}", "is not a TorchScript archive"),
    }


def test_each_malformed_checkpoint_exits_2_in_one_line(bench, tmp_path, trained):
    for case, (options, message) in _malformed(tmp_path, trained).items():
        out = str(tmp_path / "o")
        code, _, stderr = bench(
            "run", "--defenses", f"model:{options}", "--attacks", "fgsm", "--eps", "0.1", "--out", out
        )
        assert code == 2 and "Traceback" not in stderr, case
        assert stderr.count("bench: error") == 1, case
        error = stderr.splitlines()[-1]
        assert error.startswith("bench: error: ") and message in error, (case, error)
