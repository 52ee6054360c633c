"""Evaluating a cell: the one copy of the logic that turns a defense, an attack and ε into records.

Both executors call ``evaluate_clean`` and ``evaluate_cell``; they return records (plain dicts) and
write nothing: the driver owns the store.  Every draw inside them is seeded from the evaluation's
key, so the same cell gives the same record in any process, on any worker, in any order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch
from torch import Tensor, nn

from attacks.base import Attack, perturbation_size
from attacks.criteria import Criterion, Misclassification, RepeatedMisclassification
from benchmark.results.statistics import pack_norms
from benchmark.run.diagnostics import defense_diagnostics
from benchmark.run.environment import Environment
from benchmark.run.measurements import PropagationCounter, cell_metrics, robust_predictions
from benchmark.run.plan import SURROGATE_SEED_OFFSET, Cell, CleanEvaluation
from benchmark.run.provenance import describe_device, library_versions
from benchmark.run.quantizer_search import find_input_quantizer
from benchmark.run.training import TrainedDefense
from defenses.base import Defense
from foundation.errors import BenchError
from foundation.parameters import frozen_parameters
from foundation.quantizers import Quantizer
from foundation.seeding import seed_from_key, seeded

#: Wraps the batch loop of an attack in a progress bar (``Reporter.progress``), or leaves it as it is.
Progress = Callable[..., Iterable[int]]


def _no_progress(iterable: Iterable[int], **_: Any) -> Iterable[int]:
    return iterable


@dataclass
class CellOutcome:
    """What evaluating a cell gives the driver: its records, or the reason it failed (nothing recorded)."""

    cell: Cell
    records: list[dict[str, Any]] = field(default_factory=list)
    failure: str | None = None
    skipped: str | None = None
    #: Cell key -> that ε's adversarial examples (all test points, CPU, float32), when asked to keep them.
    adversarials: dict[str, Tensor] = field(default_factory=dict)


def attack_access(attack: Attack) -> str:
    """How an attack reaches the defense: white-box (gradients), transfer (a surrogate), query (outputs only),
    or none (input transformations such as GNA and GTA)."""
    if attack.surrogate is not None:
        return "transfer"
    if "gradients" in attack.requires:
        return "white-box"
    return "query" if "queries" in attack.requires else "none"


def repeated_predictions(defense: Defense, x: Tensor, y: Tensor, repeats: int, batch_size: int) -> Tensor:
    """One prediction per point under the all-correct rule over ``repeats`` draws."""
    predictions = torch.stack([defense.predict(x, batch_size).argmax(dim=1) for _ in range(repeats)])
    return robust_predictions(predictions, y)


def criterion(defense: Defense, attack: Attack, attacked: nn.Module, repeats: int, batch_size: int) -> Criterion | None:
    """Which examples fool the defense, by the table's rule; a transfer attack judges by its surrogate.

    A deterministic defense predicting through its deployed module is judged by one prediction of
    that module.  Where the ``attacked`` module computes exactly the deployed logits (its BPDA or
    envelope gradient changes only the backward pass), it is the judge itself, so attacks read the
    verdict off their own logits instead of paying a second forward pass (for ABS, a second latent
    search) per step.
    """
    if attack.surrogate is not None:
        return None
    if not defense.randomized and type(defense).predict is Defense.predict:
        return Misclassification(attacked if defense.attack_logits_are_deployed() else defense.deployed_model())
    predict = lambda x: defense.predict(x, batch_size)  # noqa: E731
    return RepeatedMisclassification(predict, repeats, stochastic=defense.randomized)


def input_quantizer(defense: Defense, clean_record: dict[str, Any]) -> Quantizer | None:
    """The defense's declared input quantiser, else the one its diagnostics found (stored with its clean record)."""
    declared = defense.input_quantizer()
    if declared is not None:
        return declared
    found = clean_record.get("input_quantizer")
    return Quantizer.from_json(found) if found else None


def missing_capability(cell: Cell, attack: Attack, defense: Defense, clean_record: dict[str, Any]) -> str | None:
    """Why the cell's attack cannot run on its defense, or ``None``.

    Besides what the defense declares it lacks, a defense whose input gradients were measured zero or
    missing on every test point (``gradient_masking_share`` 1) has none to offer: a gradient attack
    would only report its clean accuracy, a number that looks robust and means nothing.
    """
    if attack.uses_quantizer and input_quantizer(defense, clean_record) is None:
        return (
            f"{cell.attack.label} attacks an input quantiser, and {cell.defense.label} neither declares one nor has "
            "logits piecewise constant along pixel axes (the diagnostics found none)"
        )
    missing = attack.requires - defense.provides
    if missing:
        members = attack.requirers(frozenset(missing))
        whose = f" (for its member {', '.join(members)})" if members else ""
        return f"{cell.attack.label} needs {', '.join(sorted(missing))}{whose}, which {cell.defense.label} lacks"
    if "gradients" in attack.requires and clean_record["diagnostics"].get("gradient_masking_share", 0.0) >= 1.0:
        instead = (
            f"{attack.name}:gradients=false ranks its crossings by score queries"
            if attack.uses_quantizer
            else ("query, transfer and label-only attacks measure it, or add BPDA")
        )
        return (
            f"{cell.attack.label} needs input gradients, and those of {cell.defense.label} are zero or missing "
            f"on every test point (masked); {instead}"
        )
    return None


#: A defense's test points: images and labels (on any device; moved to the environment's).
Points = tuple[Tensor, Tensor]


def _found_quantizer(defense: Defense, x: Tensor, batch_size: int) -> Quantizer | None:
    """The input quantiser the diagnostics find on a deterministic defense; none where its logits on the probing
    images are not finite (the search is a diagnostic: the cells that query such images fail, saying so)."""
    if defense.randomized:
        return None
    try:
        return find_input_quantizer(lambda images: defense.predict(images, batch_size), x)
    except BenchError:
        return None


def evaluate_clean(job: CleanEvaluation, trained: TrainedDefense, points: Points, env: Environment) -> dict[str, Any]:
    """The defense's clean predictions on its test points and the diagnostics behind the sanity flags,
    as a clean-evaluation record (every draw seeded from the job's key)."""
    x, y = (tensor.to(env.torch_device) for tensor in points)
    defense, batch_size = trained.defense, env.profile.batch_size
    with seeded(seed_from_key(job.key), env.torch_device):
        clean = repeated_predictions(defense, x, y, job.prediction_repeats, batch_size)
        diagnostics = defense_diagnostics(defense, x, y, job.eot_samples, batch_size)
        quantizer = defense.input_quantizer() or _found_quantizer(defense, x, batch_size)
    return {
        "clean_key": job.key,
        "defense": job.defense.label,
        "defense_key": job.defense_key,
        "weights_sha256": trained.weights_sha256,
        "n": len(y),
        "seed": job.seed,
        "predictions": clean.tolist(),
        "diagnostics": diagnostics,
        "input_quantizer": None if quantizer is None else quantizer.to_json(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def evaluate_cell(
    cell: Cell,
    attack: Attack,
    trained: TrainedDefense,
    clean_record: dict[str, Any],
    points: Points,
    env: Environment,
    surrogate: Defense | None = None,
    progress: Progress = _no_progress,
    keep_adversarials: bool = False,
) -> CellOutcome:
    """Attack the cell's defense at each of its ε and measure the result, with every draw (the attack's,
    the defense's sampling, EOT, repeated predictions) seeded from the cell's key.  ``attack`` is the cell's, from
    the run's ``Build`` (in the cell's threat model).  With
    ``keep_adversarials`` the outcome also holds each ε's adversarial examples (for ``--save-adversarials``)."""
    reason = missing_capability(cell, attack, trained.defense, clean_record)
    if reason:
        records = [
            {**base_record(cell, key, eps, attack, trained, clean_record, env), "status": "skipped", "note": reason}
            for key, eps in zip(cell.keys, cell.epsilons, strict=True)
        ]
        return CellOutcome(cell, records, skipped=reason)
    other_weights = clean_record.get("weights_sha256", trained.weights_sha256) != trained.weights_sha256
    if other_weights:
        return CellOutcome(
            cell,
            failure=f"the stored clean evaluation {cell.clean_key} was made on other weights of {cell.defense.label} "
            f"(sha256 {clean_record['weights_sha256'][:12]}…, the checkpoint's is {trained.weights_sha256[:12]}…); "
            f"delete clean/{cell.clean_key}.json in the results directory and rerun",
        )
    quantizer = input_quantizer(trained.defense, clean_record)
    if quantizer is not None:
        attack = attack.with_quantizer(quantizer)
    with seeded(cell.random_seed, env.torch_device):
        try:
            return _attack_and_measure(
                cell, attack, trained, clean_record, points, env, surrogate, progress, keep_adversarials
            )
        except BenchError as error:
            return CellOutcome(cell, failure=str(error))


def _attack_and_measure(
    cell: Cell,
    attack: Attack,
    trained: TrainedDefense,
    clean_record: dict[str, Any],
    points: Points,
    env: Environment,
    surrogate: Defense | None,
    progress: Progress,
    keep_adversarials: bool = False,
) -> CellOutcome:
    defense, device, batch_size = trained.defense, env.torch_device, env.profile.batch_size
    x, y = (tensor.to(device) for tensor in points)
    clean = torch.tensor(clean_record["predictions"], dtype=y.dtype, device=device)
    clean_correct = clean == y
    attacked = clean_correct.nonzero().squeeze(1)
    if attack.surrogate is not None:
        if surrogate is None:
            raise ValueError(f"{cell.label}: a transfer attack needs its trained surrogate")
        model: nn.Module = surrogate.attack_model()
    else:
        model = defense.attack_model(cell.eot_samples)
    model = counter = PropagationCounter(model)
    judge = criterion(defense, attack, model, cell.prediction_repeats, batch_size)
    generator = torch.Generator(device=device).manual_seed(cell.random_seed)
    adversarial = [x.clone() for _ in cell.epsilons]
    minimal = x.clone() if attack.minimization else None
    epsilons = list(cell.epsilons)
    desc = f"{cell.label} {','.join('budget' if e is None else f'ε={e:g}' for e in epsilons)}"
    start = time.perf_counter()
    with frozen_parameters(model):
        batches = range(0, len(attacked), batch_size)
        for first in progress(batches, desc=desc, total=len(batches)):
            index = attacked[first : first + batch_size]
            if minimal is None:
                curve = attack.run_curve(model, x[index], y[index], epsilons, generator=generator, criterion=judge)
            else:
                curve, minimal[index] = attack.run_minimal_curve(
                    model, x[index], y[index], epsilons, generator=generator, criterion=judge
                )
            for target, x_adv in zip(adversarial, curve, strict=True):
                target[index] = x_adv
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, passes = time.perf_counter() - start, counter.per_point(len(attacked))
    smallest = (
        {}
        if minimal is None
        else {"minimal_norms": pack_norms(minimal_norms(defense, cell, attack, minimal, x, y, clean, batch_size).cpu())}
    )
    records, kept = [], {}
    for key, eps, x_adv in zip(cell.keys, epsilons, adversarial, strict=True):
        predictions = repeated_predictions(defense, x_adv, y, cell.prediction_repeats, batch_size)
        # An input the attack left untouched keeps its clean verdict: drawing a randomized defense
        # again on the same input would count its sampling noise twice (ε = 0 would fall below clean).
        untouched = (x_adv == x).flatten(1).all(dim=1)
        predictions = torch.where(clean_correct & ~untouched, predictions, clean)
        record = base_record(cell, key, eps, attack, trained, clean_record, env)
        record.update(cell_metrics(y, clean_correct, predictions, x, x_adv))
        record.update(defense.evaluation_metrics(x[attacked], x_adv[attacked]))
        record.update(status="ok", attack_seconds=seconds, note=_note(cell, attack), **passes, **smallest)
        records.append(record)
        if keep_adversarials:
            kept[key] = x_adv.detach().to("cpu", torch.float32)
    return CellOutcome(cell, records, adversarials=kept)


def minimal_norms(
    defense: Defense, cell: Cell, attack: Attack, minimal: Tensor, x: Tensor, y: Tensor, clean: Tensor, batch_size: int
) -> Tensor:
    """Each point's smallest adversarial perturbation ε* that the minimisation attack found, in its threat
    model's norm, judged by the table's rule: 0 for points the defense gets wrong clean, infinity where
    the attack's unbounded example does not fool the defense."""
    predictions = repeated_predictions(defense, minimal, y, cell.prediction_repeats, batch_size)
    untouched = (minimal == x).flatten(1).all(dim=1)
    fooled = (predictions != y) & ~untouched
    sizes = perturbation_size(x, minimal, attack.threat_model)
    infinite = torch.full_like(sizes, float("inf"))
    return torch.where(clean != y, torch.zeros_like(sizes), torch.where(fooled, sizes, infinite))


def base_record(
    cell: Cell,
    key: str,
    eps: float | None,
    attack: Attack,
    trained: TrainedDefense,
    clean_record: dict[str, Any],
    env: Environment,
) -> dict[str, Any]:
    """The fields every record of a cell carries: what was evaluated, how, and its provenance."""
    return {
        "cell_key": key,
        "dataset": cell.dataset,
        "defense": cell.defense.label,
        "attack": cell.attack.label,
        "backend": attack.backend,
        "threat_model": attack.threat_model,
        "access": attack_access(attack),
        "eps": eps,
        "budget": attack.budget() if eps is None else f"ε={eps:g}",
        "profile": cell.profile,
        "seed": cell.seed,
        "config_hash": trained.key,
        "weights_sha256": trained.weights_sha256,
        "train_seconds": trained.train_seconds,
        "trained": type(trained.defense).trains,
        **{f"train_{name}": value for name, value in trained.summary.items()},
        "randomized": trained.defense.randomized,
        "eot_samples": cell.eot_samples,
        "prediction_repeats": cell.prediction_repeats,
        **clean_record["diagnostics"],
        **_quantizer_fields(trained.defense, clean_record),
        "device": describe_device(env.torch_device),
        "library_versions": library_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _quantizer_fields(defense: Defense, clean_record: dict[str, Any]) -> dict[str, Any]:
    """The input quantiser a record's defense declares or was found to have, and whether it was found."""
    quantizer = input_quantizer(defense, clean_record)
    if quantizer is None:
        return {}
    return {"input_quantizer": quantizer.describe(), "quantizer_found": defense.input_quantizer() is None}


def _note(cell: Cell, attack: Attack) -> str:
    notes = ["one run for the whole ε-curve"] if len(cell.epsilons) > 1 else []
    if attack.surrogate is not None:
        notes.append(f"transfer from surrogate {attack.surrogate} (seed {cell.seed + SURROGATE_SEED_OFFSET})")
    if cell.reason:
        notes.append(f"adaptive: {cell.reason}")
    return "; ".join(notes)
