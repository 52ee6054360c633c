"""Proof the sanity checks work: deliberately broken defenses get the right flags, a sound one none."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defenses.base import DEFENSES, Defense
from defenses.networks import MadryCNN
from tests.integration.conftest import leaderboard

pytestmark = pytest.mark.integration


class _Quantise(nn.Module):
    """Rounds inputs to 4 grey levels: piecewise constant, so its gradient is zero (masking)."""

    def forward(self, x):
        return torch.round(x * 4) / 4


class _Noise(nn.Module):
    def forward(self, x):
        return (x + 0.5 * torch.randn_like(x)).clamp(0, 1)


class _WrappedCNN(Defense):
    """The shared CNN behind a preprocessing step, evaluated as the (wrong) defense declares itself."""

    dependencies = ("cnn",)
    preprocess: type[nn.Module] = nn.Identity

    def __init__(self, config=None):
        super().__init__(config)
        self.model = MadryCNN()

    def fit(self, train, val, ctx):
        self.model.load_state_dict(ctx.dependency("cnn").deployed_model().state_dict())

    def deployed_model(self):
        return nn.Sequential(self.preprocess(), self.model).eval()

    def modules(self):
        return {"classifier": self.model}


class QuantisedWithoutBPDA(_WrappedCNN):
    preprocess = _Quantise


class NoisyUndeclared(_WrappedCNN):
    preprocess = _Noise  # randomized, but `randomized` stays False: no EOT, no repeated predictions


@pytest.fixture
def broken_defenses(monkeypatch):
    DEFENSES.names()
    for name, cls in (("test.quantised", QuantisedWithoutBPDA), ("test.noisy", NoisyUndeclared)):
        monkeypatch.setattr(cls, "name", name)
        monkeypatch.setitem(DEFENSES._classes, name, cls)


def test_flags_fire_on_broken_defenses_and_not_on_a_sound_one(bench, tmp_path, broken_defenses):
    out = tmp_path / "out"
    code, _, _ = bench(
        "run",
        "--defenses",
        "cnn,test.quantised,test.noisy",
        "--attacks",
        "fgsm,pgd,transfer",
        "--eps",
        "0,0.2",
        "--out",
        str(out),
    )
    assert code == 0
    frame = leaderboard(out).fillna({"flags": ""})
    flags = {defense: set(";".join(group["flags"]).split(";")) - {""} for defense, group in frame.groupby("defense")}
    assert flags["cnn"] == set()
    assert "masked" in flags["test.quantised"]
    assert "random" in flags["test.noisy"] and "masked" not in flags["test.noisy"]
    quantised = frame[frame["defense"] == "test.quantised"].set_index(["attack", "eps"])
    for attack in ("fgsm", "pgd"):  # gradients are zero everywhere: gradient attacks are skipped, said why
        assert quantised.loc[(attack, 0.2), "status"] == "skipped"
        assert "zero or missing" in quantised.loc[(attack, 0.2), "note"]
    assert quantised.loc[("worst", 0.2), "robust_accuracy"] <= quantised.loc[("transfer", 0.2), "robust_accuracy"]
    code, stdout, _ = bench("check", "--baseline", str(out / "leaderboard.csv"), "--run", str(out), "--strict")
    assert code == 1 and "Sanity flags (--strict)" in stdout and "test.quantised" in stdout
    assert "⚑masked" in (out / "leaderboard.md").read_text()


class NoisyDeclared(_WrappedCNN):
    """The same noise, declared: evaluated with EOT and repeated predictions."""

    preprocess = _Noise

    @property
    def randomized(self) -> bool:
        return True


def test_eps0_reproduces_clean_accuracy_of_a_randomized_defense(bench, tmp_path, monkeypatch):
    """An untouched input keeps its clean verdict instead of facing the defense's noise a second time."""
    DEFENSES.names()
    monkeypatch.setattr(NoisyDeclared, "name", "test.declared")
    monkeypatch.setitem(DEFENSES._classes, "test.declared", NoisyDeclared)
    out = tmp_path / "out"
    args = ("--defenses", "test.declared", "--attacks", "fgsm", "--eps", "0,0.1", "--repeats", "5")
    assert bench("run", *args, "--out", str(out))[0] == 0
    frame = leaderboard(out).fillna({"flags": ""}).set_index(["attack", "eps"])
    clean = frame.loc[("fgsm", 0.0), "clean_accuracy"]
    assert 0.2 < clean < 0.95  # the noise makes repeated predictions disagree, so double counting would show
    assert frame.loc[("fgsm", 0.0), "robust_accuracy"] == clean
    assert "eps0" not in frame.loc[("fgsm", 0.0), "flags"]
    assert frame.loc[("fgsm", 0.1), "robust_accuracy"] < clean
