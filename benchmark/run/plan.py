"""Planning: a ``RunConfig`` becomes training jobs, clean evaluations and the pending cells.

Planning is pure: it takes each defense and attack from the run's ``Build``, computes every key once,
asks the store which cells are already done, and computes nothing (whether a training job's checkpoint
is cached is the trainer's question, when the job comes up).  Its products are frozen, picklable
dataclasses holding everything an executor (this process or a Ray worker) needs to train one defense or
evaluate one cell.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attacks.base import Attack
from benchmark.config.run_config import RunConfig, config_hash
from benchmark.datasets.base import DEFAULT_DATASET
from benchmark.run.build import Build
from benchmark.store.result_store import ResultStore
from defenses.base import Defense
from foundation.errors import BenchError
from foundation.registry import Spec
from foundation.seeding import seed_from_key
from foundation.threat_models import DEFAULT_NORM

if TYPE_CHECKING:
    import pandas as pd

#: Surrogates of transfer attacks are trained with the run's seed plus this offset: another data
#: split, initialisation and order, i.e. independently of every defense they are evaluated on.
SURROGATE_SEED_OFFSET = 1000


@dataclass(frozen=True)
class TrainingJob:
    """Train (or load) one defense: its checkpoint is keyed by ``key``."""

    spec: Spec
    key: str
    seed: int
    label: str
    #: The jobs of the defenses this one builds on (e.g. the shared classifier), trained first.
    dependencies: tuple[TrainingJob, ...] = ()


@dataclass(frozen=True)
class CleanEvaluation:
    """A defense's clean predictions and diagnostics on its test points, shared by all its cells."""

    defense: Spec
    defense_key: str
    key: str
    n_test: int
    seed: int
    prediction_repeats: int
    eot_samples: int
    dataset: str = DEFAULT_DATASET


@dataclass(frozen=True)
class Cell:
    """One attack run on one defense: a fixed-budget attack at one ε, or a minimisation attack's curve
    (one run clipped to every ε).  ``keys`` are the store keys of its records, one per ε."""

    defense: Spec
    defense_key: str
    attack: Spec
    epsilons: tuple[float | None, ...]
    keys: tuple[str, ...]
    clean_key: str
    n_test: int
    seed: int
    eot_samples: int
    prediction_repeats: int
    profile: str
    surrogate_key: str | None = None
    dataset: str = DEFAULT_DATASET
    #: The norm ball of the cell's ε (``--norm``); semantic attacks ignore it.
    norm: str = DEFAULT_NORM
    #: Why the attack runs on this defense (the adaptive protocol's choice), for the records' note.
    reason: str = ""

    @property
    def label(self) -> str:
        return f"{self.defense.label} × {self.attack.label}"

    @property
    def random_seed(self) -> int:
        """Every draw of the cell comes from this seed, derived from its key."""
        return seed_from_key(self.keys[0])


@dataclass(frozen=True)
class Plan:
    """What a run will do; ``jobs`` in dependency order (a job's dependencies come before it)."""

    jobs: tuple[TrainingJob, ...]
    cleans: tuple[CleanEvaluation, ...]
    cells: tuple[Cell, ...]
    stored: int

    @property
    def pending_records(self) -> int:
        return sum(len(cell.keys) for cell in self.cells)

    def job(self, key: str) -> TrainingJob:
        return next(job for job in self.jobs if job.key == key)

    def clean(self, key: str) -> CleanEvaluation:
        return next(job for job in self.cleans if job.key == key)


class Planner:
    """Keys of defenses, cells and clean evaluations under one ``RunConfig``, each computed once."""

    def __init__(self, config: RunConfig, build: Build | None = None) -> None:
        self.config = config
        self.profile = config.profile.name
        self.build = build or Build.of(config)
        for kind, specs in (("defense", config.defenses), ("attack", config.attacks)):
            labels = [spec.label for spec in specs]
            twice = sorted({label for label in labels if labels.count(label) > 1})
            if twice:
                raise BenchError(f"two {kind}s are labelled {twice[0]!r}; give them different name= options")

    def defense(self, spec: Spec) -> Defense:
        return self.build.defense(spec)

    def attack(self, spec: Spec) -> Attack:
        return self.build.attack(spec)

    @functools.cache  # noqa: B019
    def job(self, spec: Spec, seed: int) -> TrainingJob:
        """The training job of a defense under ``seed`` (the run's, or a surrogate's)."""
        defense = self.defense(spec)
        dependencies = tuple(self.job(Spec(name), seed) for name in defense.dependencies)
        payload = {
            "defense": spec.name,
            "options": defense.options(),
            "profile": self.profile,
            "data": {"n_train": self.config.profile.n_train, "n_val": self.config.profile.n_val},
            "seed": seed,
            "dependencies": {job.spec.name: job.key for job in dependencies},
        }
        if self.config.dataset != DEFAULT_DATASET:  # MNIST's keys predate datasets and stay as they were
            payload["dataset"] = self.config.dataset
        if defense.revision:
            payload["revision"] = defense.revision
        key = config_hash(payload)
        label = spec.label if seed == self.config.seed else f"{spec.label} (surrogate, seed {seed})"
        return TrainingJob(spec, key, seed, label, dependencies)

    def defense_key(self, spec: Spec) -> str:
        return self.job(spec, self.config.seed).key

    def surrogate_job(self, attack: Attack) -> TrainingJob | None:
        if attack.surrogate is None:
            return None
        return self.job(Spec(attack.surrogate), self.config.seed + SURROGATE_SEED_OFFSET)

    def n_test(self, defense: Defense) -> int:
        """Test points for a defense: ``--n-test`` or the profile's, capped by the defense's own budget if it
        has one."""
        wanted = self.config.effective_n_test
        return min(wanted, defense.test_points.get(self.profile, wanted))

    def capped_test_points(self) -> list[str]:
        """A line for each defense whose own budget of test points is below the run's."""
        wanted, source = self.config.effective_n_test, "--n-test" if self.config.n_test else f"profile {self.profile}"
        lines = []
        for spec in self.config.defenses:
            n = self.n_test(self.defense(spec))
            if n < wanted:
                lines.append(
                    f"{spec.label}: {n:,} test points, its own budget at profile {self.profile}, not the "
                    f"{wanted:,} of {source}"
                )
        return lines

    def on_its_test_points(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of a leaderboard frame whose defense is not this run's, or is on this run's test points
        (``--n-test`` capped per defense): not the rows of other test sizes in the same store."""
        import pandas as pd  # the planner itself imports no pandas: only this filter of a frame needs it

        points = {spec.label: self.n_test(self.defense(spec)) for spec in self.config.defenses}
        kept = [
            pd.isna(n) or points.get(defense) in (None, n)  # skipped cells measured no points
            for defense, n in zip(frame["defense"], frame["n"], strict=True)
        ]
        return frame[kept]

    def prediction_repeats(self, defense: Defense) -> int:
        """How many predictions the table's rule draws per point: the run's repeats if randomized, else one."""
        return self.config.effective_prediction_repeats if defense.randomized else 1

    def epsilons(self, attack: Attack) -> list[float | None]:
        """The run's epsilons; a single ``None`` for attacks bounded by a parameter range instead."""
        return list(self.config.epsilons) if attack.uses_epsilon else [None]

    def cell_key(self, defense_key: str, attack_spec: Spec, eps: float | None, n_test: int) -> str:
        cfg, attack = self.config, self.attack(attack_spec)
        payload = {
            "defense_key": defense_key,
            "attack": attack_spec.name,
            "attack_options": attack.options(),
            "eps": eps,
            "n_test": n_test,
            "seed": cfg.seed,
            "eot_samples": cfg.effective_eot_samples,
            "prediction_repeats": cfg.effective_prediction_repeats,
        }
        surrogate = self.surrogate_job(attack)
        if surrogate is not None:
            payload["surrogate"] = surrogate.key
        if attack.revision:
            payload["attack_revision"] = attack.revision
        if attack.uses_epsilon and attack.threat_model != DEFAULT_NORM:  # L∞ keys predate threat models
            payload["threat_model"] = attack.threat_model
        return config_hash(payload)

    def clean_evaluation(self, spec: Spec) -> CleanEvaluation:
        cfg, defense = self.config, self.defense(spec)
        n_test, repeats, key = self.n_test(defense), self.prediction_repeats(defense), self.defense_key(spec)
        clean_key = config_hash(
            {
                "clean_of": key,
                "n_test": n_test,
                "seed": cfg.seed,
                "prediction_repeats": repeats,
                "eot_samples": cfg.effective_eot_samples,
            }
        )
        return CleanEvaluation(spec, key, clean_key, n_test, cfg.seed, repeats, cfg.effective_eot_samples, cfg.dataset)

    def cells(self, defense_spec: Spec, attack_spec: Spec) -> list[Cell]:
        """Every cell of a (defense, attack) pair, stored or not."""
        defense, attack = self.defense(defense_spec), self.attack(attack_spec)
        clean = self.clean_evaluation(defense_spec)
        surrogate = self.surrogate_job(attack)
        epsilons = self.epsilons(attack)
        # Minimisation attacks produce a whole curve from one run; fixed-budget ones run per epsilon.
        groups = [epsilons] if attack.minimization else [[eps] for eps in epsilons]
        return [
            Cell(
                defense=defense_spec,
                defense_key=clean.defense_key,
                attack=attack_spec,
                epsilons=tuple(group),
                keys=tuple(self.cell_key(clean.defense_key, attack_spec, eps, clean.n_test) for eps in group),
                clean_key=clean.key,
                n_test=clean.n_test,
                seed=self.config.seed,
                eot_samples=self.config.effective_eot_samples if defense.randomized else 1,
                prediction_repeats=clean.prediction_repeats,
                profile=self.profile,
                surrogate_key=None if surrogate is None else surrogate.key,
                dataset=self.config.dataset,
                norm=self.config.norm,
                reason=dict(self.config.attack_reasons).get(attack_spec.label, ""),
            )
            for group in groups
        ]

    def plan(self, store: ResultStore) -> Plan:
        """The jobs and cells still to do; a cell with all its records stored is left out (a minimisation
        attack's cell with some stored is kept whole, and only its missing records are written)."""
        cells, stored = [], 0
        for defense_spec in self.config.defenses:
            for attack_spec in self.config.attacks:
                for cell in self.cells(defense_spec, attack_spec):
                    done = sum(store.has(key) for key in cell.keys)
                    stored += done
                    if done < len(cell.keys):
                        cells.append(cell)
        needed = {cell.defense for cell in cells}
        cleans = tuple(self.clean_evaluation(spec) for spec in self.config.defenses if spec in needed)
        roots = [self.job(spec, self.config.seed) for spec in self.config.defenses if spec in needed]
        roots += [job for cell in cells if (job := self.surrogate_job(self.attack(cell.attack))) is not None]
        return Plan(self._in_dependency_order(roots), cleans, tuple(cells), stored)

    def _in_dependency_order(self, roots: list[TrainingJob]) -> tuple[TrainingJob, ...]:
        ordered: dict[str, TrainingJob] = {}

        def visit(job: TrainingJob) -> None:
            for dependency in job.dependencies:
                visit(dependency)
            ordered.setdefault(job.key, job)

        for root in roots:
            visit(root)
        return tuple(ordered.values())
