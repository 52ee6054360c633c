"""The cascade attack: the per-point worst case of its members, each attacking only the points still standing."""

import pytest
import torch
from torch import nn

from attacks.base import ATTACKS
from foundation.errors import BenchError
from foundation.registry import Spec
from tests.unit.test_strong_attacks import CountingModel

EPS = 0.03


def fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1) != y


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_cascade_is_the_per_point_worst_case_of_its_members(linear_model, images, labels):
    """Deterministic members: a point is fooled by the cascade exactly when some member fools it on its own."""
    by_fgsm = fooled(linear_model, ATTACKS.build("fgsm", "quick")(linear_model, images, labels, EPS), labels)
    deepfool_examples = ATTACKS.build("deepfool", "quick")(linear_model, images, labels, EPS)
    by_deepfool = fooled(linear_model, deepfool_examples, labels)
    assert 0 < by_fgsm.sum() < by_deepfool.sum() < len(labels)  # the members differ: the test can fail
    x_adv = ATTACKS.build("cascade:members=fgsm+deepfool", "quick")(linear_model, images, labels, EPS)
    assert torch.equal(fooled(linear_model, x_adv, labels), by_fgsm | by_deepfool)
    standing = ~(by_fgsm | by_deepfool)
    assert torch.equal(x_adv[standing], ATTACKS.build("fgsm", "quick")(linear_model, images, labels, EPS)[standing])


def test_later_members_attack_only_the_points_still_standing(linear_model, images, labels):
    by_fgsm = fooled(linear_model, ATTACKS.build("fgsm", "quick")(linear_model, images, labels, EPS), labels)
    alone = CountingModel(linear_model)
    ATTACKS.build("deepfool", "quick")(alone, images[~by_fgsm], labels[~by_fgsm], EPS)
    cascade = CountingModel(linear_model)
    ATTACKS.build("cascade:members=fgsm+deepfool", "quick")(cascade, images, labels, EPS)
    # FGSM's one gradient pass and the checks of each member's examples, then DeepFool on the survivors only.
    checks = len(images) + int((~by_fgsm).sum())
    assert cascade.examples == len(images) + checks + alone.examples


def test_the_criterion_decides_who_is_still_standing(linear_model, images, labels):
    calls: list[int] = []

    def everything_fooled(x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(len(y))
        return torch.ones(len(y), dtype=torch.bool)

    cascade = ATTACKS.build("cascade:members=fgsm+pgd", "quick")
    x_adv = cascade(linear_model, images, labels, EPS, generator=seeded(), criterion=everything_fooled)
    assert calls == [len(labels)]  # PGD never ran
    assert torch.equal(x_adv, ATTACKS.build("fgsm", "quick")(linear_model, images, labels, EPS))


def test_members_are_built_for_the_cascades_profile():
    cascade = ATTACKS.build("cascade:members=pgd+autoattack", "smoke")
    pgd, autoattack = cascade.members
    assert pgd.options() == ATTACKS.build("pgd", "smoke").options() != ATTACKS.build("pgd", "paper").options()
    assert autoattack.options() == ATTACKS.build("autoattack", "smoke").options()
    assert [member["attack"] for member in cascade.options()["members"]] == ["pgd", "autoattack"]


def test_cell_key_follows_members_and_their_revisions(monkeypatch):
    from tests.unit.test_criteria import _planner

    def key(spec: str) -> str:
        return _planner(3).cell_key("d", Spec.parse(spec), 0.1, 100)

    before = key("cascade:members=fgsm+pgd")
    assert before != key("cascade:members=pgd+fgsm") != key("cascade:members=fgsm+deepfool")
    monkeypatch.setattr(type(ATTACKS.build("pgd", "smoke")), "revision", 7)
    assert key("cascade:members=fgsm+pgd") != before


def test_requirements_are_the_union_of_the_members():
    assert ATTACKS.build("cascade:members=fgsm+square", "quick").requires == {"gradients", "queries"}
    assert ATTACKS.build("cascade:members=square+hsj", "quick").requires == {"queries"}


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ("fgsm+nonesuch", "unknown attack 'nonesuch'; valid:"),
        ("fgsm+cascade", "cannot contain a cascade"),
        ("fgsm+transfer", "surrogate"),
        ("fgsm+gna", "parameter range"),
        ("fgsm+random", "mix threat models"),
        ("fgsm+fgsm", "twice"),
        ("+", "at least one attack"),
    ],
)
def test_bad_members_are_explained(members, message):
    with pytest.raises(BenchError, match=message):
        ATTACKS.build(f"cascade:members={members}", "quick")


def test_all_does_not_select_the_cascade():
    names = [spec.name for spec in ATTACKS.expand("all")]
    assert "cascade" not in names and {"fgsm", "pgd", "autoattack"} <= set(names)
