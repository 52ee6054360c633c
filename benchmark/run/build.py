"""The run's defenses and attacks, each built once from its spec and handed to every stage that needs it.

A ``Build`` belongs to one run in one process (the driver's, or a Ray worker's): planning reads each
defense's options, budgets and dependencies from ``defense(spec)``, evaluation takes its attacks from
``attack(spec)`` (already in the run's threat model), and so do the adaptive protocol and verify.  A
checkpoint is restored into an instance of its own (``restorable``), and training constructs one inside the
job's seed (``untrained``), because a network's initial weights are drawn when it is constructed.
Defenses can also be handed in built (``given``): ``benchmark.evaluate`` gives the user's live model,
which no spec could rebuild.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from attacks.base import ATTACKS, Attack
from benchmark.config.run_config import RunConfig
from benchmark.datasets.base import DATASETS
from defenses.base import DEFENSES, Defense
from foundation.errors import BenchError
from foundation.registry import Spec


def build_defense(spec: Spec, profile: str, dataset: str) -> Defense:
    """A defense built for a dataset: one that supports it, its networks sized to its images and classes."""
    supported = DEFENSES.get(spec.name).datasets
    if supported is not None and dataset not in supported:
        raise BenchError(
            f"defense {spec.name!r} runs on {', '.join(sorted(supported))} only, not on {dataset!r}; "
            "choose another defense or --dataset"
        )
    defense = DEFENSES.build(spec, profile)
    data = DATASETS.build(dataset, profile)
    defense.for_dataset(data.input_shape, data.classes)
    return defense


class Build:
    """Defenses and attacks of one profile, dataset and threat model, each built once per spec."""

    def __init__(self, profile: str, dataset: str, norm: str, given: Mapping[Spec, Defense] | None = None) -> None:
        self.profile, self.dataset, self.norm = profile, dataset, norm
        self._defenses: dict[Spec, Defense] = {}
        self._attacks: dict[Spec, Attack] = {}
        #: Defenses handed in already built (``benchmark.evaluate``'s model), by the spec that names them.
        self.given: dict[Spec, Defense] = {}
        self.give(given or {})

    @classmethod
    def of(cls, config: RunConfig, given: Mapping[Spec, Defense] | None = None) -> Build:
        return cls(config.profile.name, config.dataset, config.norm, given)

    def give(self, defenses: Mapping[Spec, Defense]) -> None:
        """Take defenses built elsewhere (a user's live model) as the instances of their specs."""
        for spec, defense in defenses.items():
            if spec not in self.given:
                data = DATASETS.build(self.dataset, self.profile)
                defense.for_dataset(data.input_shape, data.classes)
                defense.profile = self.profile
                self.given[spec] = self._defenses[spec] = defense

    def defense(self, spec: Spec) -> Defense:
        """The run's instance of the defense (untrained): what planning reads."""
        if spec not in self._defenses:
            self._defenses[spec] = build_defense(spec, self.profile, self.dataset)
        return self._defenses[spec]

    def restorable(self, spec: Spec) -> Defense:
        """An instance of its own for a checkpoint to be loaded into (a defense may be trained under two seeds in
        one run, as itself and as a transfer attack's surrogate): built from the spec (a TorchScript model cannot
        be deep-copied), a given defense copied."""
        if spec in self.given:
            return copy.deepcopy(self.given[spec])
        return build_defense(spec, self.profile, self.dataset)

    def untrained(self, spec: Spec) -> Defense:
        """A new instance to train: call it under the job's seed, which draws its initial weights (a given
        defense is copied: its weights are the user's)."""
        return self.restorable(spec)

    def attack(self, spec: Spec) -> Attack:
        """The attack, in the run's threat model."""
        if spec not in self._attacks:
            self._attacks[spec] = ATTACKS.build(spec, self.profile).for_threat_model(self.norm)
        return self._attacks[spec]


#: A worker process's builds (a Ray worker serves many tasks of one run), by (profile, dataset, norm).
_WORKER_BUILDS: dict[tuple[str, str, str], Build] = {}


def worker_build(profile: str, dataset: str, norm: str, given: Mapping[Spec, Defense] | None = None) -> Build:
    """This process's ``Build`` for tasks of a run with these settings (one per process, reused by its tasks),
    holding the run's given defenses (shipped to the worker with their code, ``benchmark.run.in_memory``)."""
    key = (profile, dataset, norm)
    if key not in _WORKER_BUILDS:
        _WORKER_BUILDS[key] = Build(*key)
    _WORKER_BUILDS[key].give(given or {})
    return _WORKER_BUILDS[key]
