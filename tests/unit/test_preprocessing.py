"""``mean=``/``std=`` of the ``model`` defense: the input normalised inside the model, on tiny synthetic tensors."""

from __future__ import annotations

import pytest
import torch

from defenses.base import DEFENSES
from defenses.preprocessing import Normalized, spec_text
from foundation.errors import BenchError
from tests.unit.test_checkpoint_formats import key
from tests.unit.test_model_defense import LINEAR, linear, write


def test_normalized_is_the_normalisation_in_front_of_the_model():
    model = linear()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(Normalized(model, (0.5,), (0.25,))(x), model((x - 0.5) / 0.25))
    assert set(Normalized(model, (0.5,), (0.25,)).state_dict()) == {f"model.{k}" for k in model.state_dict()}


def test_the_defense_deploys_the_normalised_model_and_keeps_its_checkpoint(tmp_path):
    source = write(tmp_path / "net.py", LINEAR)
    plain = DEFENSES.build(f"model:source={source}", "smoke")
    normalised = DEFENSES.build(f"model:source={source}:mean=0.1307:std=0.3081", "smoke")
    normalised.for_dataset((1, 28, 28), 10)
    normalised.load_state_dict(plain.state_dict())
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(normalised.predict(x), plain.predict((x - 0.1307) / 0.3081))
    assert set(normalised.state_dict()["model"]) == set(plain.state_dict()["model"])  # mean and std are options
    assert "mean" not in plain.options() and normalised.options()["std"] == "0.3081"
    assert key(f"model:source={source}:mean=0.1307:std=0.3081") != key(f"model:source={source}")


def test_spec_text_reads_back_as_the_same_floats():
    values = (0.4914, 1 / 3, 0.2616)
    assert tuple(float(part) for part in spec_text(values, "mean").split("+")) == values
    with pytest.raises(BenchError, match="mean must be a sequence of numbers"):
        spec_text(["a"], "mean")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("mean=0.5+0.5:std=0.2+0.2", "has 2 value(s), but the dataset's images (1×28×28) have 1 channel(s)"),
        ("std=0.2", "needs both mean= and std="),
        ("mean=a:std=0.2", "option mean of defense 'model' must be numbers joined by '+'"),
        ("mean=nan:std=0.2", "must hold finite numbers"),
        ("mean=0.5:std=-1", "must hold positive numbers"),
    ],
)
def test_wrong_normalisation_is_one_line(tmp_path, options, message):
    source = write(tmp_path / "net.py", LINEAR)
    with pytest.raises(BenchError) as caught:
        DEFENSES.build(f"model:source={source}:{options}", "smoke").for_dataset((1, 28, 28), 10)
    assert "\n" not in str(caught.value) and message in str(caught.value)
