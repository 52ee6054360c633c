"""``cascade``: a worst case over several attacks, each attacking only the points still standing.

``cascade:members=fgsm+pgd+deepfool`` runs FGSM on every point, PGD on the points FGSM did not fool,
DeepFool on the rest: AutoAttack's composition for any registered attacks.  Its robust accuracy is
the per-point worst case over its members (the leaderboard's ``worst`` row when they are run as
separate cells), at the cost of attacking each point only until one member breaks it.  Put cheap
members first.  Whether a point is fooled is the call's criterion, the table's own rule: repeated
predictions for a randomized defense.

Members are built for the cascade's profile with their default options, so ``cascade:members=pgd``
attacks exactly as the ``pgd`` cell does.  They must share one threat model and use ε; transfer
attacks (another model) and nested cascades are refused.  ``--attacks all`` does not select it
(it would repeat its members' work).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from attacks.base import ATTACKS, Attack, register_attack
from foundation.errors import BenchError
from foundation.threat_models import DEFAULT_NORM, NORMS

SEPARATOR = "+"


def member_names(members: str) -> list[str]:
    return [name.strip() for name in members.split(SEPARATOR) if name.strip()]


@dataclass(frozen=True)
class CascadeConfig:
    """The member attacks, in the order they run, joined by ``+``."""

    members: str = "fgsm+pgd+deepfool"

    def __post_init__(self) -> None:
        names = member_names(self.members)
        if not names:
            raise ValueError(f"members must name at least one attack, joined by {SEPARATOR!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"members name an attack twice: {self.members!r}")
        classes = self.member_classes()
        for name, cls in zip(names, classes, strict=True):
            if cls is Cascade:
                raise ValueError("a cascade cannot contain a cascade")
            if cls.surrogate is not None:
                raise ValueError(f"{name} attacks a surrogate, not the defense; run it as its own cell")
            if not cls.uses_epsilon:
                raise ValueError(f"{name} is bounded by a parameter range, not ε; run it as its own cell")
        semantic = [name for name, cls in zip(names, classes, strict=True) if cls.threat_model == "semantic"]
        if semantic:
            raise ValueError(f"members mix threat models ({', '.join(semantic)}: semantic, not a norm ball)")
        if not frozenset.intersection(*(frozenset(cls.norms) for cls in classes)):
            runs = "; ".join(
                f"{name} in {', '.join(sorted(cls.norms))}" for name, cls in zip(names, classes, strict=True)
            )
            raise ValueError(f"members share no threat model ({runs})")

    def member_classes(self) -> list[type[Attack]]:
        """The registered classes of the members (an unknown name is an error listing the valid ones)."""
        return [ATTACKS.get(name) for name in member_names(self.members)]


@register_attack("cascade")
class Cascade(Attack):
    """Member attacks in order, each on the points the previous ones left standing."""

    description = "worst case over member attacks (members=a+b+c), each only on points still standing"
    Config = CascadeConfig
    backend = "composite"
    selected_by_all = False
    #: Any norm its members share (checked per instance by ``for_threat_model``).
    norms = frozenset(NORMS)

    def __init__(self, config: CascadeConfig | None = None) -> None:
        super().__init__(config)
        classes = self.config.member_classes()
        self.norms = frozenset.intersection(*(frozenset(cls.norms) for cls in classes))
        self.threat_model = DEFAULT_NORM if DEFAULT_NORM in self.norms else min(self.norms)
        self.requires = frozenset().union(*(cls.requires for cls in classes))

    def requirers(self, capabilities: frozenset[str]) -> list[str]:
        """The members that need any of ``capabilities``."""
        names = member_names(self.config.members)
        return [
            name for name, cls in zip(names, self.config.member_classes(), strict=True) if cls.requires & capabilities
        ]

    def for_threat_model(self, norm: str) -> Attack:
        names, classes = member_names(self.config.members), self.config.member_classes()
        outside = [
            f"{name} (it supports: {', '.join(sorted(cls.norms))})"
            for name, cls in zip(names, classes, strict=True)
            if norm in NORMS and norm not in cls.norms
        ]
        if outside:
            raise BenchError(
                f"cascade member {', '.join(outside)} does not run in the {norm} threat model; drop it from members"
            )
        attack = super().for_threat_model(norm)
        attack.__dict__.pop("members", None)  # rebuilt in the new norm
        return attack

    @functools.cached_property
    def members(self) -> list[Attack]:
        """The member attacks, built for this cascade's profile (set by the registry after ``__init__``) and
        threat model."""
        return [
            ATTACKS.build(name, self.profile).for_threat_model(self.threat_model)
            for name in member_names(self.config.members)
        ]

    def options(self) -> dict[str, Any]:
        """Each member's full options and revision, so a member's change gives the cascade new cells."""
        return {
            "members": [
                {"attack": member.name, "options": member.options(), "revision": member.revision}
                for member in self.members
            ]
        }

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        def run(member: Attack, xs: Tensor, ys: Tensor) -> Tensor:
            return member(model, xs, ys, eps, generator=generator, criterion=self._criterion)

        return self.until_fooled((functools.partial(run, member) for member in self.members), x, y)
