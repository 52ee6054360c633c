"""Fooling criteria: one prediction, or the leaderboard's repeated-prediction rule."""

import pytest
import torch
from torch import nn

from attacks.base import ATTACKS
from attacks.criteria import Misclassification, RepeatedMisclassification
from benchmark.config.profiles import get_profile
from benchmark.config.run_config import RunConfig
from benchmark.run.evaluation import criterion
from benchmark.run.plan import Planner
from foundation.registry import Spec


def one_hot_logits(predictions: torch.Tensor) -> torch.Tensor:
    return nn.functional.one_hot(predictions, 10).float()


def test_misclassification_compares_one_prediction_with_the_label():
    model = nn.Flatten()  # logits = the pixels: the class is the brightest pixel
    x = torch.zeros(3, 10)
    x[0, 2], x[1, 5], x[2, 7] = 1.0, 1.0, 1.0
    assert Misclassification(model)(x, torch.tensor([2, 4, 7])).tolist() == [False, True, False]


def test_repeated_misclassification_is_fooled_when_any_repeat_is_wrong():
    """A defense that errs on point 1 only at its third draw: fooled under 3 repeats, not under 2."""
    y = torch.tensor([0, 1, 2])
    draws = []

    def predict(x: torch.Tensor) -> torch.Tensor:
        draws.append(len(x))
        predictions = y.clone()
        if len(draws) % 3 == 0:
            predictions[1] = 9
        return one_hot_logits(predictions)

    assert RepeatedMisclassification(predict, 2)(torch.zeros(3, 1), y).tolist() == [False, False, False]
    draws.clear()
    assert RepeatedMisclassification(predict, 3)(torch.zeros(3, 1), y).tolist() == [False, True, False]
    assert draws == [3, 3, 3]


def test_repeated_misclassification_needs_a_repeat():
    with pytest.raises(ValueError, match="repeats"):
        RepeatedMisclassification(lambda x: x, 0)


class _CoinFlipDefense:
    """A randomized defense whose prediction of class 0 is right half the time, class 1 always right."""

    randomized = True

    def __init__(self) -> None:
        self.generator = torch.Generator().manual_seed(0)

    def predict(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        predictions = torch.ones(len(x), dtype=torch.long)
        predictions[0] = int(torch.randint(0, 2, (1,), generator=self.generator))
        return one_hot_logits(predictions)


def _planner(repeats: int) -> Planner:
    config = RunConfig(
        defenses=(Spec("vae"),),
        attacks=(Spec("autoattack"),),
        epsilons=(0.1,),
        profile=get_profile("smoke"),
        prediction_repeats=repeats,
    )
    return Planner(config)


def test_the_criterion_is_the_tables_repeated_prediction_rule():
    """A point right only some of the time is fooled under 20 repeats, as the table would count it."""
    judge = criterion(
        _CoinFlipDefense(), ATTACKS.build("autoattack", "smoke"), nn.Identity(), repeats=20, batch_size=500
    )
    assert judge(torch.zeros(2, 1), torch.tensor([1, 1])).tolist() == [True, False]
    assert judge.stochastic  # attacks must not stop on a drawn verdict
    transfer = criterion(
        _CoinFlipDefense(), ATTACKS.build("transfer", "smoke"), nn.Identity(), repeats=20, batch_size=500
    )
    assert transfer is None  # a transfer attack judges by its own surrogate


def test_a_new_attack_revision_gets_new_cell_keys(monkeypatch):
    planner = _planner(3)
    before = planner.cell_key("d", Spec("fgsm"), 0.1, 100)
    monkeypatch.setattr(type(planner.attack(Spec("fgsm"))), "revision", 1)
    assert planner.cell_key("d", Spec("fgsm"), 0.1, 100) != before
