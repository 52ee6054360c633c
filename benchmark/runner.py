"""The matrix runner: train or load each defense, then evaluate every missing (attack, ε) cell.

``run_benchmark`` is the one-function entry point (as RobustBench's ``benchmark()``): it
takes a ``RunConfig`` and returns the leaderboard of everything in the results store.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import torch
from platformdirs import user_cache_dir
from torch import Tensor
from tqdm.auto import tqdm

from attacks.base import ATTACKS, Attack
from attacks.criteria import Criterion, Misclassification, RepeatedMisclassification
from attacks.errors import BenchError
from attacks.library_backends import frozen_parameters
from attacks.registry import Spec
from benchmark.checkpoints import CheckpointCache, CorruptCheckpoint
from benchmark.config import RunConfig, config_hash
from benchmark.data import DataSlices, load_mnist, make_slices, resolve_data_dir
from benchmark.diagnostics import defense_diagnostics
from benchmark.leaderboard import records_to_frame, write_leaderboard
from benchmark.metrics import cell_metrics, robust_predictions
from benchmark.provenance import describe_device, library_versions
from benchmark.seeding import seed_from_key, seeded
from benchmark.store import ResultStore
from defenses.base import DEFENSES, Defense, Split

T = TypeVar("T")
CACHE_DIR_ENV = "BENCH_CACHE_DIR"
#: Surrogates of transfer attacks are trained with the run's seed plus this offset: another data
#: split, initialisation and order, i.e. independently of every defense they are evaluated on.
SURROGATE_SEED_OFFSET = 1000


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BenchError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


def resolve_cache_dir(flag: Path | None) -> Path:
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path(user_cache_dir("bench")) / "checkpoints"


def ensure_writable(directory: Path, flag: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"cannot write to {flag} {directory}: {error.strerror or error}") from None


class Reporter:
    """Progress bars and status lines on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        return tqdm(
            iterable,
            desc=desc,
            total=total,
            disable=not self.enabled or None,
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def log(self, message: str) -> None:
        tqdm.write(message, file=sys.stderr)


@dataclass
class TrainedDefense:
    defense: Defense
    key: str
    train_seconds: float
    cached: bool
    summary: dict[str, float] = field(default_factory=dict)


@dataclass
class _FitContext:
    """The ``FitContext`` the runner hands to ``Defense.fit``."""

    trainer: DefenseTrainer
    device: torch.device
    seed: int

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed)

    def dependency(self, name: str) -> Defense:
        return self.trainer.trained(Spec(name)).defense

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        return self.trainer.reporter.progress(iterable, desc=desc, total=total)

    def log(self, message: str) -> None:
        self.trainer.reporter.log(message)


@dataclass
class DefenseTrainer:
    """Loads defenses from the checkpoint cache or fits them (timed), once per run."""

    config: RunConfig
    load_data: Callable[[], DataSlices]
    cache: CheckpointCache
    device: torch.device
    reporter: Reporter
    _trained: dict[str, TrainedDefense] = field(default_factory=dict)
    _device_data: tuple[Any, Any] | None = None

    def build(self, spec: Spec) -> Defense:
        return DEFENSES.build(spec, self.config.profile.name)

    def key(self, spec: Spec) -> str:
        defense = self.build(spec)
        return config_hash(
            {
                "defense": spec.name,
                "options": defense.options(),
                "profile": self.config.profile.name,
                "data": {"n_train": self.config.profile.n_train, "n_val": self.config.profile.n_val},
                "seed": self.config.seed,
                "dependencies": {name: self.key(Spec(name)) for name in defense.dependencies},
            }
        )

    def trained(self, spec: Spec) -> TrainedDefense:
        if spec.label in self._trained:
            return self._trained[spec.label]
        key = self.key(spec)
        waiting = lambda: self.reporter.log(f"{spec.label}: waiting for another run training checkpoint {key}")  # noqa: E731
        with self.cache.lock(spec.name, key, on_wait=waiting):
            entry = self._load(spec, key) or self._fit(spec, key)
        self._trained[spec.label] = entry
        return entry

    def _load(self, spec: Spec, key: str) -> TrainedDefense | None:
        defense = self.build(spec)
        try:
            checkpoint = self.cache.load(spec.name, key)
            if checkpoint is None:
                return None
            defense.load_state_dict(checkpoint.state)
        except (CorruptCheckpoint, KeyError, RuntimeError) as error:
            self.reporter.log(f"warning: checkpoint of {spec.label} is corrupt ({error}); retraining it")
            self.cache.remove(spec.name, key)
            return None
        defense.to(self.device)
        self.reporter.log(f"{spec.label}: loaded cached checkpoint {key}")
        seconds = float(checkpoint.meta.get("train_seconds", float("nan")))
        return TrainedDefense(defense, key, seconds, True, dict(checkpoint.meta.get("fit_summary", {})))

    def _fit(self, spec: Spec, key: str) -> TrainedDefense:
        if self._device_data is None:
            data = self.load_data()
            self._device_data = (data.train.to(self.device), data.val.to(self.device))
        train, val = self._device_data
        for dependency in DEFENSES.get(spec.name).dependencies:
            self.trained(Spec(dependency))
        self.reporter.log(f"{spec.label}: training ({len(train)} images, profile {self.config.profile.name})")
        # Seeded before building: weight initialisation and the training's own draws come from it.
        with seeded(self.config.seed, self.device):
            defense = self.build(spec).to(self.device)
            context = _FitContext(self, self.device, self.config.seed)
            start = time.perf_counter()
            defense.fit(train, val, context)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
        self.cache.save(
            spec.name,
            key,
            defense.state_dict(),
            {
                "defense": spec.label,
                "options": defense.options(),
                "train_seconds": seconds,
                "fit_summary": defense.fit_summary(),
                "profile": self.config.profile.name,
                "seed": self.config.seed,
                "library_versions": library_versions(),
                "device": describe_device(self.device),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        self.reporter.log(f"{spec.label}: trained in {seconds:.1f} s")
        return TrainedDefense(defense, key, seconds, False, defense.fit_summary())


@dataclass
class CellFailure:
    defense: str
    attack: str
    message: str


@dataclass(frozen=True)
class EvaluationTarget:
    """A trained defense with its test points and its stored clean predictions: what its cells share."""

    spec: Spec
    trained: TrainedDefense
    x: Tensor
    y: Tensor
    clean: Tensor

    @property
    def label(self) -> str:
        return self.spec.label


def attack_access(attack: Attack) -> str:
    """How an attack reaches the defense: white-box (gradients), transfer (a surrogate), query (outputs only),
    or none (input transformations such as GNA and GTA)."""
    if attack.surrogate is not None:
        return "transfer"
    if "gradients" in attack.requires:
        return "white-box"
    return "query" if "queries" in attack.requires else "none"


def prediction_repeats(defense: Defense, repeats: int) -> int:
    """How many predictions the table's rule draws per point: ``repeats`` for a randomized defense, else one."""
    return repeats if defense.randomized else 1


def _repeated_predictions(defense: Defense, x: Tensor, y: Tensor, repeats: int, batch_size: int) -> Tensor:
    repeats = prediction_repeats(defense, repeats)
    predictions = torch.stack([defense.predict(x, batch_size).argmax(dim=1) for _ in range(repeats)])
    return robust_predictions(predictions, y)


class MatrixRunner:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        profile = config.profile.name
        self.defenses = [(spec, DEFENSES.build(spec, profile)) for spec in config.defenses]
        self.attacks = [(spec, ATTACKS.build(spec, profile)) for spec in config.attacks]
        self.device = resolve_device(config.device)
        self.reporter = Reporter(config.progress)
        ensure_writable(Path(config.out_dir), "--out")
        self.cache_dir = resolve_cache_dir(config.cache_dir)
        ensure_writable(self.cache_dir, "--cache-dir")
        self.store = ResultStore(Path(config.out_dir))
        self.failures: list[CellFailure] = []
        self.computed = 0
        self._mnist: tuple[Split, Split] | None = None
        self._diagnostics: dict[str, dict[str, float]] = {}
        self._slices: dict[int, DataSlices] = {}
        cache = CheckpointCache(self.cache_dir)
        self.trainer = DefenseTrainer(config, self.data, cache, self.device, self.reporter)
        surrogate_seed = config.seed + SURROGATE_SEED_OFFSET
        self.surrogate_trainer = DefenseTrainer(
            replace(config, seed=surrogate_seed), lambda: self.data(surrogate_seed), cache, self.device, self.reporter
        )

    def data(self, seed: int | None = None) -> DataSlices:
        """MNIST slices for a seed (the run's by default), loaded on first use: a run whose cells
        are all stored never loads them."""
        cfg, profile = self.config, self.config.profile
        seed = cfg.seed if seed is None else seed
        if self._mnist is None:
            self._mnist = load_mnist(resolve_data_dir(cfg.data_dir), download=cfg.download, cache_dir=self.cache_dir)
        if seed not in self._slices:
            full_train, test = self._mnist
            self._slices[seed] = make_slices(full_train, test, profile.n_train, profile.n_val, profile.n_test, seed)
        return self._slices[seed]

    def run(self) -> pd.DataFrame:
        trainer = self.trainer
        for moved, target in self.store.move_aside():
            self.reporter.log(f"warning: invalid record {moved}; moved to {target}, its cell is computed again")
        plan = [(spec, self._pending_cells(trainer.key(spec), self.n_test(defense))) for spec, defense in self.defenses]
        self._check_plan_size(sum(len(epsilons) for *_, pending in plan for _, _, epsilons in pending))
        deferred: list[Callable[[], None]] = []
        for defense_spec, pending in plan:
            if not pending:
                continue
            target = self._evaluation_target(defense_spec)
            for attack_spec, attack, epsilons in pending:
                deferred += self._evaluate(target, attack_spec, attack, epsilons)
        for finish in deferred:  # cells another run was computing: wait for it, then compute what it left
            finish()
        frame = self.leaderboard()
        frame.attrs["failures"] = self.failures
        frame.attrs["computed"] = self.computed
        return frame

    def leaderboard(self) -> pd.DataFrame:
        """Rewrite the leaderboard files from what is stored (also after an interrupted run)."""
        with self.store.writer_lock():
            frame = records_to_frame(self.store.records())
            write_leaderboard(frame, Path(self.config.out_dir))
        return frame

    def _check_plan_size(self, cells: int) -> None:
        limit = self.config.max_cells
        if cells > limit:
            raise BenchError(
                f"the plan has {cells:,} cells to compute, above the limit of {limit:,}; select fewer defenses, "
                f"attacks or epsilons, or pass --max-cells {cells} to run them all"
            )

    def clean_key(self, trained: TrainedDefense, n_test: int) -> str:
        """Key of a defense's clean evaluation on the test slice: its predictions and diagnostics."""
        cfg = self.config
        return config_hash(
            {
                "clean_of": trained.key,
                "n_test": n_test,
                "seed": cfg.seed,
                "prediction_repeats": prediction_repeats(trained.defense, self.repeats),
                "eot_samples": cfg.effective_eot_samples,
            }
        )

    def _evaluation_target(self, spec: Spec) -> EvaluationTarget:
        trained = self.trainer.trained(spec)
        test, n_test = self.data().test, self.n_test(trained.defense)
        x, y = test.x[:n_test].to(self.device), test.y[:n_test].to(self.device)
        return EvaluationTarget(spec, trained, x, y, self._clean_predictions(spec, trained, x, y))

    def _clean_predictions(self, spec: Spec, trained: TrainedDefense, x: Tensor, y: Tensor) -> Tensor:
        """The defense's clean predictions (all-correct rule), computed once per defense key and test slice
        and stored, with the diagnostics behind the sanity flags, so every cell shares one clean accuracy."""
        key, defense, batch_size = self.clean_key(trained, len(y)), trained.defense, self.config.profile.batch_size
        waiting = lambda: self.reporter.log(f"{spec.label}: waiting for another run's clean evaluation")  # noqa: E731
        with self.store.claim(key, wait=True, on_wait=waiting):
            record = self.store.get_clean(key)
            if record is None:
                with seeded(seed_from_key(key), self.device):
                    clean = _repeated_predictions(defense, x, y, self.repeats, batch_size)
                    diagnostics = defense_diagnostics(defense, x, y, self.config.effective_eot_samples, batch_size)
                record = {
                    "clean_key": key,
                    "defense": spec.label,
                    "defense_key": trained.key,
                    "n": len(y),
                    "seed": self.config.seed,
                    "predictions": clean.tolist(),
                    "diagnostics": diagnostics,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                self.store.write_clean(record)
        self._diagnostics[spec.label] = record["diagnostics"]
        return torch.tensor(record["predictions"], dtype=y.dtype, device=self.device)

    def _pending_cells(self, defense_key: str, n_test: int) -> list[tuple[Spec, Attack, list[float | None]]]:
        """Per attack, the epsilons whose cell has no record yet (attacks with none are left out)."""
        pending = []
        for attack_spec, attack in self.attacks:
            epsilons = [
                eps
                for eps in self.epsilons_of(attack)
                if not self.store.has(self.cell_key(defense_key, attack_spec, attack, eps, n_test))
            ]
            if epsilons:
                pending.append((attack_spec, attack, epsilons))
        return pending

    @property
    def repeats(self) -> int:
        return self.config.effective_prediction_repeats

    def n_test(self, defense: Defense) -> int:
        """Test points for a defense: the profile's, capped by the defense's own budget if it has one."""
        profile = self.config.profile
        return min(profile.n_test, defense.test_points.get(profile.name, profile.n_test))

    def epsilons_of(self, attack: Attack) -> list[float | None]:
        """The run's epsilons; a single ``None`` for attacks bounded by a parameter range instead."""
        return list(self.config.epsilons) if attack.uses_epsilon else [None]

    def cell_key(self, defense_key: str, attack_spec: Spec, attack: Attack, eps: float | None, n_test: int) -> str:
        cfg = self.config
        payload = {
            "defense_key": defense_key,
            "attack": attack_spec.name,
            "attack_options": attack.options(),
            "eps": eps,
            "n_test": n_test,
            "seed": cfg.seed,
            "eot_samples": cfg.effective_eot_samples,
            "prediction_repeats": self.repeats,
        }
        if attack.surrogate is not None:
            payload["surrogate"] = self.surrogate_trainer.key(Spec(attack.surrogate))
        if attack.revision:
            payload["attack_revision"] = attack.revision
        return config_hash(payload)

    def attacked_model(self, defense: Defense, attack: Attack) -> torch.nn.Module:
        """What the attack differentiates or queries: the defense's pipeline, or a transfer attack's surrogate."""
        if attack.surrogate is not None:
            return self.surrogate_trainer.trained(Spec(attack.surrogate)).defense.attack_model()
        return defense.attack_model(self.config.effective_eot_samples)

    def criterion(self, defense: Defense, attack: Attack) -> Criterion | None:
        """Which examples fool the defense, by the table's rule; a transfer attack judges by its surrogate.

        A deterministic defense predicting through its deployed module is judged by one prediction of
        that module, which attacks differentiating the same module can read off their own logits.
        """
        if attack.surrogate is not None:
            return None
        if not defense.randomized and type(defense).predict is Defense.predict:
            return Misclassification(defense.deployed_model())
        batch_size = self.config.profile.batch_size
        predict = lambda x: defense.predict(x, batch_size)  # noqa: E731
        return RepeatedMisclassification(
            predict, prediction_repeats(defense, self.repeats), stochastic=defense.randomized
        )

    def _base_record(
        self, defense_spec: Spec, trained: TrainedDefense, attack_spec: Spec, attack: Attack, eps: float | None
    ) -> dict[str, Any]:
        cfg, defense = self.config, trained.defense
        return {
            "cell_key": self.cell_key(trained.key, attack_spec, attack, eps, self.n_test(defense)),
            "defense": defense_spec.label,
            "attack": attack_spec.label,
            "backend": attack.backend,
            "threat_model": attack.threat_model,
            "access": attack_access(attack),
            "eps": eps,
            "budget": attack.budget() if eps is None else f"ε={eps:g}",
            "profile": cfg.profile.name,
            "seed": cfg.seed,
            "config_hash": trained.key,
            "train_seconds": trained.train_seconds,
            **{f"train_{name}": value for name, value in trained.summary.items()},
            "randomized": defense.randomized,
            "eot_samples": cfg.effective_eot_samples if defense.randomized else 1,
            "prediction_repeats": prediction_repeats(defense, self.repeats),
            **self._diagnostics.get(defense_spec.label, {}),
            "device": describe_device(self.device),
            "library_versions": library_versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _evaluate(
        self, target: EvaluationTarget, attack_spec: Spec, attack: Attack, epsilons: list[float | None]
    ) -> list[Callable[[], None]]:
        """Evaluate the cells of one (defense, attack) pair; returns, for cells another run is computing
        right now, what finishes them (wait for that run, then compute whatever it did not store)."""
        deferred = []
        # Minimisation attacks produce a whole curve from one run; fixed-budget ones run per epsilon.
        for group in [epsilons] if attack.minimization else [[eps] for eps in epsilons]:
            if not self._evaluate_group(target, attack_spec, attack, group, wait=False):
                deferred.append(functools.partial(self._evaluate_group, target, attack_spec, attack, group, wait=True))
        return deferred

    def _evaluate_group(
        self, target: EvaluationTarget, attack_spec: Spec, attack: Attack, group: list[float | None], wait: bool
    ) -> bool:
        """Claim and compute the cells of one attack run (one ε, or a minimisation attack's curve).
        Returns False, computing nothing, when another run holds the claim and ``wait`` is False."""
        defense, label = target.trained.defense, f"{target.label} × {attack_spec.label}"
        keys = [self.cell_key(target.trained.key, attack_spec, attack, eps, len(target.y)) for eps in group]
        waiting = lambda: self.reporter.log(f"{label}: waiting for another run computing this cell")  # noqa: E731
        with self.store.claim(keys[0], wait=wait, on_wait=waiting) as held:
            if not held:
                return False
            group = [eps for eps, key in zip(group, keys, strict=True) if not self.store.has(key)]
            if not group:
                return True
            missing = attack.requires - defense.provides
            if missing:
                reason = f"{attack_spec.label} needs {', '.join(sorted(missing))}, which {target.label} lacks"
                for eps in group:
                    record = self._base_record(target.spec, target.trained, attack_spec, attack, eps)
                    self._write({**record, "status": "skipped", "note": reason})
                self.reporter.log(f"{label}: skipped ({reason})")
                return True
            # Every draw of the cell (the attack's, the defense's sampling, EOT, repeated predictions)
            # comes from its key: the same cell gives the same record in any run, process or order.
            with seeded(seed_from_key(keys[0]), self.device):
                self._attack_and_record(target, attack_spec, attack, group, seed_from_key(keys[0]))
        return True

    def _attack_and_record(
        self, target: EvaluationTarget, attack_spec: Spec, attack: Attack, group: list[float | None], seed: int
    ) -> None:
        defense, label = target.trained.defense, f"{target.label} × {attack_spec.label}"
        x, y, clean = target.x, target.y, target.clean
        clean_correct = clean == y
        attacked = clean_correct.nonzero().squeeze(1)
        model, criterion = self.attacked_model(defense, attack), self.criterion(defense, attack)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        adversarial = [x.clone() for _ in group]
        start = time.perf_counter()
        try:
            with frozen_parameters(model):
                self._attack_batches(attack, model, criterion, x, y, attacked, group, generator, adversarial, label)
        except BenchError as error:
            self.failures.append(CellFailure(target.label, attack_spec.label, str(error)))
            self.reporter.log(f"error: {label}: {error}; no number recorded for this cell")
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        for eps, x_adv in zip(group, adversarial, strict=True):
            predictions = _repeated_predictions(defense, x_adv, y, self.repeats, self.config.profile.batch_size)
            # An input the attack left untouched keeps its clean verdict: drawing a randomized defense
            # again on the same input would count its sampling noise twice (ε = 0 would fall below clean).
            untouched = (x_adv == x).flatten(1).all(dim=1)
            predictions = torch.where(clean_correct & ~untouched, predictions, clean)
            record = self._base_record(target.spec, target.trained, attack_spec, attack, eps)
            record.update(cell_metrics(y, clean_correct, predictions, x, x_adv))
            record.update(defense.evaluation_metrics(x[attacked], x_adv[attacked]))
            record.update(status="ok", attack_seconds=seconds, note=self._note(attack, len(group)))
            self._write(record)
            self.reporter.log(
                f"{label} {record['budget']}: robust accuracy {record['robust_accuracy']:.3f} "
                f"(clean {record['clean_accuracy']:.3f}) in {seconds:.1f} s"
            )

    def _note(self, attack: Attack, curve_length: int) -> str:
        notes = ["one run for the whole ε-curve"] if curve_length > 1 else []
        if attack.surrogate is not None:
            notes.append(f"transfer from surrogate {attack.surrogate} (seed {self.surrogate_trainer.config.seed})")
        return "; ".join(notes)

    def _attack_batches(
        self,
        attack: Attack,
        model: torch.nn.Module,
        criterion: Criterion | None,
        x: Tensor,
        y: Tensor,
        attacked: Tensor,
        epsilons: list[float | None],
        generator: torch.Generator,
        adversarial: list[Tensor],
        label: str,
    ) -> None:
        """Attack the points in ``attacked`` batch by batch, writing into ``adversarial`` (one per ε)."""
        batch_size = self.config.profile.batch_size
        desc = f"{label} {','.join('budget' if e is None else f'ε={e:g}' for e in epsilons)}"
        for first in self.reporter.progress(
            range(0, len(attacked), batch_size), desc=desc, total=-(-len(attacked) // batch_size)
        ):
            index = attacked[first : first + batch_size]
            curve = attack.run_curve(model, x[index], y[index], epsilons, generator=generator, criterion=criterion)
            for target, x_adv in zip(adversarial, curve, strict=True):
                target[index] = x_adv

    def _write(self, record: dict[str, Any]) -> None:
        self.store.write(record)
        self.computed += 1


def run_benchmark(config: RunConfig) -> pd.DataFrame:
    """Run (or resume) the matrix of ``config`` and return the leaderboard of the results store."""
    return MatrixRunner(config).run()
