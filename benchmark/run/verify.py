"""``bench verify``: re-check the adversarial examples a run stored with ``--save-adversarials``.

For each stored cell with saved examples: the file is there and its sha256 is the record's; the
defense is rebuilt from its cached checkpoint and the record's test points are reloaded; every example
passes the threat-model guard (finite, in the [0, 1] box, inside the ε ball); and predicting the
examples again under the table's rule (all repeats correct; an untouched point keeps its clean
verdict) gives a robust accuracy inside the record's Wilson interval.  Anyone holding the store, the
checkpoint cache and the dataset can so re-check a number without rerunning the attack.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attacks.base import check_threat_model
from benchmark.config.profiles import get_profile
from benchmark.datasets.files import resolve_data_dir
from benchmark.run.build import Build
from benchmark.run.environment import Environment, resolve_cache_dir, resolve_device
from benchmark.run.evaluation import repeated_predictions
from benchmark.store.checkpoints import CheckpointCache, CorruptCheckpoint, load_failure
from benchmark.store.result_store import ResultStore
from defenses.base import Defense
from foundation.errors import BenchError, ThreatModelViolation
from foundation.registry import Spec
from foundation.seeding import seed_from_key, seeded
from foundation.threat_models import DEFAULT_NORM

#: Slack on the interval's ends (the stored bounds are floats).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Verdict:
    """One cell's re-check: ``problem`` is ``None`` when it passed."""

    key: str
    label: str
    problem: str | None

    def line(self) -> str:
        return f"{self.key} {self.label}: " + ("ok" if self.problem is None else f"FAILED: {self.problem}")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _label(record: dict[str, Any]) -> str:
    return f"{record['defense']} × {record['attack']} {record['budget']}"


def saved_records(store: ResultStore, cell: str | None) -> list[dict[str, Any]]:
    """The stored ok records with saved adversarial examples (or the one ``cell``); raises when there is none."""
    records = [r for r in store.records() if r["status"] == "ok" and r.get("adversarials_sha256")]
    if cell is not None:
        records = [r for r in records if r["cell_key"] == cell]
        if not records:
            raise BenchError(
                f"cell {cell} has no valid ok record with saved adversarial examples in {store.cells}; "
                f"run it with `bench run ... --save-adversarials --out {store.root}` into a fresh store"
            )
    if not records:
        raise BenchError(
            f"no cell in {store.root} has saved adversarial examples; run `bench run ... --save-adversarials "
            f"--out {store.root}` first"
        )
    return records


class Verifier:
    """Re-checks cells, loading each checkpoint and test slice once."""

    def __init__(self, cache_dir: Path, data_dir: Path, device: torch.device, download: bool) -> None:
        self.cache_dir, self.data_dir, self.device, self.download = cache_dir, data_dir, device, download
        self._defenses: dict[tuple[str, str, str], tuple[Defense, str]] = {}
        self._builds: dict[tuple[str, str], Build] = {}

    def _build(self, profile: str, dataset: str) -> Build:
        """The defenses of one profile and dataset, each built once however many records name it."""
        if (profile, dataset) not in self._builds:
            self._builds[(profile, dataset)] = Build(profile, dataset, DEFAULT_NORM)
        return self._builds[(profile, dataset)]

    def defense(self, record: dict[str, Any]) -> tuple[Defense, str]:
        """The record's defense, rebuilt from its cached checkpoint (the record's ``config_hash``), and the
        checkpoint's weights sha256."""
        key, profile, dataset = record["config_hash"], record["profile"], record.get("dataset") or "mnist"
        if (key, profile, dataset) not in self._defenses:
            try:
                checkpoint = CheckpointCache(self.cache_dir).load_key(key)
            except CorruptCheckpoint as error:
                raise BenchError(str(error)) from None
            if checkpoint is None:
                raise BenchError(
                    f"no checkpoint {key} of {record['defense']} in {self.cache_dir}; pass the --cache-dir the run used"
                )
            spec = checkpoint.meta["defense"]
            defense = self._build(profile, dataset).restorable(Spec.parse(spec))
            try:
                defense.load_state_dict(checkpoint.state)
            except (KeyError, RuntimeError) as error:
                raise BenchError(f"checkpoint {key} does not fit {spec} ({error})") from None
            self._defenses[(key, profile, dataset)] = (defense.to(self.device), checkpoint.weights_sha256)
        return self._defenses[(key, profile, dataset)]

    def environment(self, record: dict[str, Any]) -> Environment:
        profile, dataset = get_profile(record["profile"]), record.get("dataset") or "mnist"
        larger = record["n"] if record["n"] > profile.n_test else None  # a run's --n-test above the profile's
        return Environment(str(self.device), profile, dataset, self.data_dir, self.cache_dir, self.download, larger)

    def check(self, store: ResultStore, record: dict[str, Any]) -> Verdict:
        key = record["cell_key"]
        verdict = lambda problem: Verdict(key, _label(record), problem)  # noqa: E731
        path = store.adversarials_path(key)
        if not path.is_file():
            return verdict(f"{path} is missing")
        digest = sha256_of(path)
        if digest != record["adversarials_sha256"]:
            recorded = record["adversarials_sha256"]
            return verdict(f"sha256 of {path.name} is {digest[:12]}…, the record says {recorded[:12]}…")
        try:
            x_adv = torch.load(path, map_location="cpu", weights_only=True)["x_adv"]
        except Exception as error:
            return verdict(f"{path.name} cannot be read ({load_failure(error)})")
        (defense, digest), env = self.defense(record), self.environment(record)
        recorded = record.get("weights_sha256")  # absent from records that predate weight digests
        if recorded is not None and recorded != digest:
            return verdict(
                f"checkpoint {record['config_hash']} holds other weights than the cell was computed on "
                f"(sha256 {digest[:12]}…, the record says {recorded[:12]}…)"
            )
        x, y = (tensor.to(self.device) for tensor in env.test_points(record["seed"], record["n"]))
        if not isinstance(x_adv, torch.Tensor):
            return verdict(f"{path.name} holds no tensor")
        x_adv = x_adv.to(self.device, x.dtype)
        try:
            check_threat_model(x, x_adv, record["threat_model"], record["eps"], attack=record["attack"])
        except ThreatModelViolation as error:
            return verdict(f"threat model: {error}")
        repeats, batch_size = record["prediction_repeats"], env.profile.batch_size
        with seeded(seed_from_key(key), self.device):
            clean = repeated_predictions(defense, x, y, repeats, batch_size)
            predictions = repeated_predictions(defense, x_adv, y, repeats, batch_size)
        clean_correct = clean == y
        untouched = (x_adv == x).flatten(1).all(dim=1)
        predictions = torch.where(clean_correct & ~untouched, predictions, clean)
        robust = float((clean_correct & (predictions == y)).float().mean())
        low, high = record["robust_accuracy_ci_low"], record["robust_accuracy_ci_high"]
        if not low - TOLERANCE <= robust <= high + TOLERANCE:
            return verdict(
                f"robust accuracy recomputed from the examples is {robust:.3f}, outside the record's interval "
                f"[{low:.3f}, {high:.3f}] (recorded {record['robust_accuracy']:.3f})"
            )
        return verdict(None)


def verify_store(
    store: ResultStore,
    cell: str | None = None,
    cache_dir: Path | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    download: bool = True,
) -> list[Verdict]:
    """Re-check every stored valid cell with saved adversarial examples (or the one ``cell``); the invalid records
    left out are in ``store.skipped``."""
    records = saved_records(store, cell)
    verifier = Verifier(resolve_cache_dir(cache_dir), resolve_data_dir(data_dir), resolve_device(device), download)
    return [verifier.check(store, record) for record in records]
