"""Checkpoint layouts of the ecosystem (``defenses.checkpoint_formats``) on tiny synthetic files."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from defenses.base import DEFENSES
from foundation.errors import BenchError
from tests.unit.test_model_defense import data, fitted, key, save, write

BATCHNORM = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
"""


def batchnorm_net() -> nn.Module:
    """What ``BATCHNORM`` builds, seeded, its BatchNorm statistics moved off their initial values."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    model.train()
    with torch.no_grad():
        model(torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(2)))
    return model.eval()


def old_style(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict as torch before 0.4.1 saved it: BatchNorm without ``num_batches_tracked``, no version."""
    return {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}


def scripted(path: Path, model: nn.Module) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(path))
    return path


@pytest.fixture
def net(tmp_path: Path) -> Path:
    return write(tmp_path / "net.py", BATCHNORM)


def layouts(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each layout of the same weights: (file, the layout the record names)."""
    state = batchnorm_net().state_dict()
    prefixed = {f"module.{k}": v for k, v in state.items()}
    safetensors = tmp_path / "net.safetensors"
    save_file(dict(state), str(safetensors))
    misnamed = tmp_path / "safetensors.bin"
    misnamed.write_bytes(safetensors.read_bytes())
    checkpoint = {"epoch": 90, "best_acc1": 0.75, "arch": "mlp", "optimizer": {"param_groups": [{"lr": 0.1}]}}
    return {
        "plain": (save(tmp_path / "plain.pt", state), "torch.save file, a state dict"),
        "old BatchNorm": (save(tmp_path / "old.pt", old_style(state)), "torch.save file, a state dict"),
        **{
            f"nested under {name}": (
                save(tmp_path / f"{name}.pt", {**checkpoint, name: state}),
                f"torch.save file, a checkpoint's {name!r} entry",
            )
            for name in ("state_dict", "model", "model_state_dict", "net")
        },
        "module. prefix": (
            save(tmp_path / "parallel.pt", prefixed),
            "torch.save file, a state dict, 'module.' prefixes removed",
        ),
        "nested and prefixed": (
            save(tmp_path / "ddp.pt", {**checkpoint, "state_dict": prefixed}),
            "torch.save file, a checkpoint's 'state_dict' entry, 'module.' prefixes removed",
        ),
        "safetensors": (safetensors, "safetensors, a state dict"),
        "safetensors by content": (misnamed, "safetensors, a state dict"),
        "TorchScript": (scripted(tmp_path / "scripted.pt", batchnorm_net()), "TorchScript archive, a state dict"),
    }


def test_each_layout_loads_the_same_weights_and_is_named(tmp_path, net):
    x = data().x
    for layout, (path, name) in layouts(tmp_path).items():
        defense = fitted(f"model:source={net}:weights={path}")
        assert torch.allclose(defense.predict(x), batchnorm_net()(x)), layout
        assert defense.fit_summary() == {"weights_layout": name}, layout


def test_the_file_read_enters_the_key(tmp_path, net):
    files = layouts(tmp_path)
    keys = {layout: key(f"model:source={net}:weights={path}") for layout, (path, _) in files.items()}
    assert len(set(keys.values())) == len(keys)  # the sha256 of each file, not of the weights it holds


def test_an_old_batchnorm_state_dict_with_a_genuine_misfit_names_the_real_one(tmp_path, net):
    state = old_style(batchnorm_net().state_dict())
    del state["4.bias"]
    path = save(tmp_path / "old-missing.pt", state)
    with pytest.raises(BenchError) as caught:
        fitted(f"model:source={net}:weights={path}")
    assert str(caught.value).endswith("does not fit the model that " + f"{net} builds: missing key '4.bias'")


def test_a_scripted_archive_is_the_model_with_no_source(tmp_path):
    archive = scripted(tmp_path / "model.pt", batchnorm_net())
    spec = f"model:scripted={archive}"
    defense = fitted(spec)
    x = data().x
    assert torch.allclose(defense.deployed_model()(x), batchnorm_net()(x))
    assert defense.fit_summary() == {"weights_layout": "TorchScript archive, the model with its weights"}
    options = DEFENSES.build(spec, "smoke").options()
    assert len(options["scripted_sha256"]) == 64 and "source_sha256" not in options
    # what TrainedDefense.restore does: build from the spec, then load the checkpoint
    restored = DEFENSES.build(spec, "smoke")
    restored.load_state_dict(defense.state_dict())
    assert torch.equal(restored.predict(x), defense.predict(x))
    first = key(spec)
    scripted(archive, nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    assert key(spec) != first


def test_a_scripted_archive_takes_weights_too(tmp_path):
    archive = scripted(tmp_path / "model.pt", batchnorm_net())
    other = batchnorm_net()
    with torch.no_grad():
        other[4].bias += 1.0
    weights = save(tmp_path / "other.pt", {"model": other.state_dict()})
    defense = fitted(f"model:scripted={archive}:weights={weights}")
    assert torch.allclose(defense.deployed_model()(data().x), other(data().x))


def test_options_of_todays_specs_are_unchanged(tmp_path, net):
    options = DEFENSES.build(f"model:source={net}", "smoke").options()
    assert "scripted" not in options and set(options) >= {"source", "weights_sha256", "source_sha256"}


def malformed(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Each malformed file: (the option, part of its one-line message)."""
    state = batchnorm_net().state_dict()
    truncated = tmp_path / "cut.safetensors"
    save_file(dict(state), str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:200])
    archive = scripted(tmp_path / "cut-archive.pt", batchnorm_net())
    archive.write_bytes(archive.read_bytes()[:400])
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).state_dict()
    return {
        "no state dict in a checkpoint": (
            f"weights={save(tmp_path / 'ckpt.pt', {'epoch': 3, 'weights': [1, 2]})}",
            "holds a dict with top-level keys 'epoch', 'weights' but no state dict of tensors, at the top or under "
            "'state_dict', 'model', 'model_state_dict', 'net'",
        ),
        "nested state dict that does not fit": (
            f"weights={save(tmp_path / 'other.pt', {'epoch': 3, 'state_dict': wrong})}",
            "builds: missing key '2.weight' (and 5 more) (in a checkpoint's 'state_dict' entry; the checkpoint's "
            "top-level keys: 'epoch', 'state_dict')",
        ),
        "prefixed state dict that does not fit": (
            f"weights={save(tmp_path / 'ddp.pt', {f'module.{k}': v for k, v in wrong.items()})}",
            "missing key '2.weight' (and 5 more)",  # without their prefix; num_batches_tracked is not missing
        ),
        "a list": (f"weights={save(tmp_path / 'list.pt', [1, 2])}", "holds a list, not a state dict of tensors"),
        "truncated safetensors": (f"weights={truncated}", "cannot be read as a safetensors file"),
        "truncated TorchScript weights": (f"weights={archive}", "cannot be read by torch.load"),
        "scripted= a state dict": (
            f"scripted={save(tmp_path / 'sd.pt', state)}",
            "option scripted of defense 'model': " + f"{tmp_path / 'sd.pt'} is not a TorchScript archive",
        ),
        "scripted= truncated": (f"scripted={archive}", "option scripted of defense 'model'"),
        "scripted and source": (f"scripted={archive}:source={tmp_path / 'x.py'}", "got both"),
    }


def test_each_malformed_file_is_a_one_line_bench_error(tmp_path, net):
    for case, (option, message) in malformed(tmp_path).items():
        spec = f"model:{option}" if option.startswith("scripted") else f"model:source={net}:{option}"
        with pytest.raises(BenchError) as caught:
            fitted(spec)
        text = str(caught.value)
        assert "\n" not in text and message in text, (case, text)
        assert "weights_only=False" not in text, case
