"""``--attacks adaptive``: the attacks a defense's declared properties and measured diagnostics call for.

Carlini et al. ("On Evaluating Adversarial Robustness") and Tramèr et al. ("On Adaptive Attacks to
Adversarial Example Defenses") ask for gradient-free attacks wherever gradients may mislead.  Which
defenses mislead cannot be read off their declarations: a straight-through binarisation has gradients
that are neither zero nor NaN, so no diagnostic fires on it.  So the protocol always probes:

1. **First stage**, for every defense: standard AutoAttack (through the defense's BPDA or envelope
   gradient where it declares one, with EOT when it is randomized; in L1 its L1 version, APGD-CE and
   APGD-T; in L0, where there is none, Sparse-RS); in L2 also the minimum-norm gradient attacks DDN and
   FMN, in L1 and L0 FMN; and the label-only attacks that run in the norm (``boundary``, ``hsj``,
   ``pointwise``; in L1 and L0 ``pointwise``) plus ``transfer`` from an independently trained undefended
   CNN (L∞, L2), the label-only ones at a small probe budget.
2. **Second stage**, the label-only attacks at the profile's full budget on every point, when a probe
   breaks a point every gradient attack left standing or finds a smaller median perturbation than
   they did, the ``masked`` or ``blackbox`` flag fires, or the defense declares a non-differentiable
   step; and the threshold-aware ``quantized`` attack whenever the defense declares an input quantiser
   or the diagnostics found one (ranking its crossings by score queries where the model has no input
   gradient at all).

Each record's note says why its attack was chosen; the per-point worst case over everything that ran
is the headline, as always.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from attacks.base import ATTACKS
from benchmark.config.run_config import RunConfig
from benchmark.results.label_only import LABEL_ONLY
from benchmark.results.minimal_perturbations import minimal_perturbations
from benchmark.results.sanity import MASKED_LIMIT
from benchmark.results.statistics import unpack_mask
from benchmark.run.build import Build
from benchmark.run.runner import RunResult, run_benchmark
from defenses.base import Defense
from foundation.registry import Spec
from foundation.threat_models import NORM_SYMBOLS

ADAPTIVE = "adaptive"
#: Queries per image of the label-only probes, per profile (the full budgets are the attacks' own).
PROBE_QUERIES = {"smoke": 300, "quick": 1000, "paper": 2500}


@dataclass(frozen=True)
class Choice:
    """An attack the protocol runs on a defense, and why."""

    spec: Spec
    reason: str


def declares_non_differentiable(defense: Defense) -> bool:
    """Whether the defense substitutes a gradient for a step of its deployed path (BPDA, an envelope)."""
    return type(defense).differentiable_model is not Defense.differentiable_model


def label_only_spec(name: str, queries: int) -> Spec:
    """A label-only attack at a small budget of ``queries`` per image; Pointwise then runs from the nearest
    other-class image only (its Boundary start would spend the whole budget)."""
    text = f"{name}:queries={queries}" + (":nearest=1:boundary_queries=0" if name == "pointwise" else "")
    return Spec.parse(text)


def probe_spec(name: str, profile: str) -> Spec:
    return label_only_spec(name, PROBE_QUERIES.get(profile, PROBE_QUERIES["quick"]))


#: Minimum-norm gradient attacks the first stage adds per threat model (L∞ has AutoAttack's FAB-T).
MINIMUM_NORM = {"l2": ("foolbox.ddn", "foolbox.fmn"), "l1": ("foolbox.fmn",), "l0": ("foolbox.fmn",)}


def label_only_in(norm: str) -> tuple[str, ...]:
    """The label-only attacks that run in ``norm`` (in L1 and L0: ``pointwise``)."""
    return tuple(name for name in LABEL_ONLY if ATTACKS.get(name).runs_in(norm))


def first_stage(defense: Defense, norm: str, profile: str) -> list[Choice]:
    """The attacks every defense gets, with their reasons."""
    how = ""
    if declares_non_differentiable(defense):
        how += "; through the defense's declared BPDA/envelope gradient"
    if defense.randomized:
        how += "; with EOT (the defense is randomized)"
    if norm == "l0":  # no AutoAttack in L0: the field's strongest black-box L0 attack (Croce et al.) instead
        choices = [Choice(Spec("sparse-rs"), "L0: Sparse-RS, score-based random search over pixel sets, always")]
    else:
        version = "AutoAttack's L1 version (APGD-CE, APGD-T)" if norm == "l1" else "standard AutoAttack"
        choices = [Choice(Spec("autoattack"), f"{version}, always{how}")]
    symbol = NORM_SYMBOLS[norm]
    choices += [
        Choice(Spec(name), f"{symbol}: a minimum-norm gradient attack{how}") for name in MINIMUM_NORM.get(norm, ())
    ]
    probe = f"label-only probe at {PROBE_QUERIES.get(profile, PROBE_QUERIES['quick'])} queries per image, always"
    choices += [Choice(probe_spec(name, profile), probe) for name in label_only_in(norm)]
    if ATTACKS.get("transfer").runs_in(norm):
        choices.append(Choice(Spec("transfer"), "transfer from an independently trained undefended CNN, always"))
    return choices


def escalation_reasons(frame: pd.DataFrame, defense: Defense, label: str, norm: str, first: list[Choice]) -> list[str]:
    """Why the label-only attacks must run at full budget on ``label`` after the first stage (empty: no need)."""
    rows = frame[(frame["defense"] == label) & (frame["threat_model"] == norm) & (frame["status"] == "ok")]
    reasons = []
    if declares_non_differentiable(defense):
        reasons.append("the defense declares a non-differentiable step")
    share = rows["gradient_masking_share"].dropna()
    if not share.empty and float(share.max()) > MASKED_LIMIT:
        reasons.append(f"the masked flag fires (gradient_masking_share {100 * float(share.max()):.0f} %)")
    if rows["flags"].fillna("").str.contains("blackbox").any():
        reasons.append("the blackbox flag fires")
    probes = {choice.spec.label for choice in first if choice.spec.name in LABEL_ONLY}
    broken = _probe_breaks(rows, probes)
    if broken:
        reasons.append(f"a probe broke {broken} point(s) every gradient attack left standing")
    smaller = _probe_is_smaller(rows, probes)
    if smaller:
        reasons.append(smaller)
    return reasons


def _probe_breaks(rows: pd.DataFrame, probes: set[str]) -> int:
    """Points (summed over ε) that a probe broke and every white-box attack left standing."""
    cells = rows[rows["eps"].notna() & rows["robust_points"].apply(lambda value: isinstance(value, str))]
    total = 0
    for _, group in cells.groupby(["eps", "n"]):
        n = int(group["n"].iloc[0])
        white = group[group["access"] == "white-box"]
        probe = group[group["attack"].isin(probes)]
        if white.empty or probe.empty:
            continue
        standing = np.logical_and.reduce([unpack_mask(text, n) for text in white["robust_points"]])
        survived_probes = np.logical_and.reduce([unpack_mask(text, n) for text in probe["robust_points"]])
        total += int((standing & ~survived_probes).sum())
    return total


def _probe_is_smaller(rows: pd.DataFrame, probes: set[str]) -> str | None:
    minimal = rows[rows["attack"].isin(probes) | (rows["access"] == "white-box")]
    probe_rows = minimal_perturbations(minimal[minimal["attack"].isin(probes)])
    gradient_rows = minimal_perturbations(minimal[~minimal["attack"].isin(probes)])
    if probe_rows.empty or gradient_rows.empty:
        return None
    probe, gradient = probe_rows["median_eps_star"].min(), gradient_rows["median_eps_star"].min()
    if probe < gradient:
        return f"a probe found a smaller median perturbation ({probe:.3g}) than the gradient attacks ({gradient:.3g})"
    return None


def quantizer_choice(frame: pd.DataFrame, label: str, norm: str) -> Choice | None:
    """The threshold-aware attack, where the first stage's records say the defense has an input quantiser
    (declared or found); through score queries where its input gradients are missing on every point."""
    rows = frame[(frame["defense"] == label) & (frame["threat_model"] == norm)]
    if "input_quantizer" not in rows or rows["input_quantizer"].dropna().empty:
        return None
    quantizer = str(rows["input_quantizer"].dropna().iloc[0])
    share = rows["gradient_masking_share"].dropna()
    no_gradients = not share.empty and float(share.max()) >= 1.0
    spec = Spec.parse("quantized:gradients=false" if no_gradients else "quantized")
    how = "ranked by score queries (no input gradients)" if no_gradients else "ranked by its input gradient"
    return Choice(spec, f"threshold-aware, {how}: input quantiser {quantizer}")


def second_stage(norm: str, reasons: list[str], quantized: Choice | None = None) -> list[Choice]:
    why = "label-only at full budget: " + "; ".join(reasons)
    label_only = [Choice(Spec(name), why) for name in label_only_in(norm)] if reasons else []
    return label_only + ([quantized] if quantized is not None else [])


def with_choices(config: RunConfig, defense: Spec, choices: list[Choice]) -> RunConfig:
    """``config`` for one defense and the chosen attacks (plus the run's other attacks), reasons attached."""
    extra = tuple(spec for spec in config.attacks if spec.label not in {choice.spec.label for choice in choices})
    return replace(
        config,
        defenses=(defense,),
        attacks=tuple(choice.spec for choice in choices) + extra,
        attack_reasons=tuple((choice.spec.label, choice.reason) for choice in choices),
    )


def run_adaptive(config: RunConfig, given: Mapping[Spec, Defense] | None = None) -> RunResult:
    """Run the protocol on every defense of ``config`` (its other attacks run too); the result's ``lines`` say
    what ran on each defense and why."""
    build = Build.of(config, given)
    lines, computed, failures = [], 0, []
    result = RunResult(pd.DataFrame())
    for spec in config.defenses:
        defense = build.defense(spec)
        first = first_stage(defense, config.norm, config.profile.name)
        result = run_benchmark(with_choices(config, spec, first), given)
        computed, failures = computed + result.computed, [*failures, *result.failures]
        reasons = escalation_reasons(result.frame, defense, spec.label, config.norm, first)
        quantized = quantizer_choice(result.frame, spec.label, config.norm)
        ran = ", ".join(choice.spec.label for choice in first)
        if not reasons and quantized is None:
            lines.append(f"adaptive: {spec.label}: ran {ran}; no probe, flag or quantiser called for more")
            continue
        second = second_stage(config.norm, reasons, quantized)
        result = run_benchmark(with_choices(config, spec, second), given)
        computed, failures = computed + result.computed, [*failures, *result.failures]
        said = []
        if reasons:
            added = ", ".join(label_only_in(config.norm))
            said.append(f"added {added} at full budget because {'; '.join(reasons)}")
        if quantized is not None:
            said.append(f"added {quantized.spec.label} ({quantized.reason})")
        lines.append(f"adaptive: {spec.label}: ran {ran}; {'; '.join(said)}")
    return RunResult(result.frame, computed, tuple(failures), tuple(lines))
