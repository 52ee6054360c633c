"""The schemas of stored records: what a cell record and a clean-evaluation record must hold.

The store trusts nothing it reads: a record that is not a JSON object, lacks a field, holds a value
of the wrong type or outside its range, or is filed under another key is invalid.  ``problem``
names the first thing wrong in one phrase, or returns ``None`` for a valid record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

HEX_KEY = re.compile(r"[0-9a-f]{16}")
STATUSES = ("ok", "skipped")
#: The attack label of the derived per-point worst-case rows (``benchmark.results.worst_case``): never a stored cell's.
WORST = "worst"

Check = Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _share(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _optional_share(value: Any) -> bool:
    return value is None or _share(value)


def _optional_number(value: Any) -> bool:
    return value is None or (_is_number(value) and not math.isnan(value))


def _hex(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"(?:[0-9a-f]{2})*", value) is not None


def _sha256(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


#: Field -> (check, what a valid value is).  Fields of every cell record (the tables read them all).
CELL_FIELDS: dict[str, tuple[Check, str]] = {
    "cell_key": (lambda v: isinstance(v, str) and HEX_KEY.fullmatch(v) is not None, "a 16-digit hex key"),
    "defense": (_text, "a defense label"),
    "attack": (_text, "an attack label"),
    "backend": (_text, "a backend name"),
    "threat_model": (_text, "a threat model"),
    "access": (_text, "an access kind"),
    "budget": (_text, "a budget"),
    "profile": (_text, "a profile name"),
    "status": (lambda v: v in STATUSES, "ok or skipped"),
    "seed": (_seed, "a non-negative integer"),
    "eps": (lambda v: v is None or (_number(v) and v >= 0), "a non-negative number or null"),
    "config_hash": (_text, "the defense's config hash"),
    "randomized": (_flag, "true or false"),
    "eot_samples": (_count, "a positive integer"),
    "prediction_repeats": (_count, "a positive integer"),
    "device": (_text, "a device"),
    "library_versions": (_text, "library versions"),
    "created": (_text, "a timestamp"),
}
#: Fields of cells with ``status: ok`` (a number was measured).
OK_FIELDS: dict[str, tuple[Check, str]] = {
    "n": (_count, "a positive integer"),
    "clean_accuracy": (_share, "a number in [0, 1]"),
    "robust_accuracy": (_share, "a number in [0, 1]"),
    "robust_accuracy_ci_low": (_share, "a number in [0, 1]"),
    "robust_accuracy_ci_high": (_share, "a number in [0, 1]"),
    "robust_points": (_hex, "a hex string"),
    "f1_macro": (_share, "a number in [0, 1]"),
    "attack_success_rate": (_optional_share, "a number in [0, 1] or null"),
    "linf_mean": (_number, "a number"),
    "linf_max": (_number, "a number"),
    "l2_mean": (_number, "a number"),
    "attack_seconds": (_number, "a number"),
    "gradient_masking_share": (_share, "a number in [0, 1]"),
    "prediction_flip_share": (_share, "a number in [0, 1]"),
}
#: Fields that may be absent (or null), but hold the right kind of value when present.
OPTIONAL_FIELDS: dict[str, tuple[Check, str]] = {
    "train_seconds": (_optional_number, "a number or null"),
    "trained": (_flag, "true or false"),
    "note": (lambda v: v is None or isinstance(v, str), "text or null"),
    "adversarials_sha256": (_sha256, "a sha256 hex digest"),
    "weights_sha256": (_sha256, "a sha256 hex digest"),
    "minimal_norms": (_hex, "a hex string"),
    "forward_passes": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "input_quantizer": (lambda v: v is None or isinstance(v, str), "text or null"),
    "quantizer_found": (_flag, "true or false"),
    "backward_passes": (lambda v: _is_number(v) and v >= 0, "a non-negative number"),
    "l1_mean": (_number, "a number"),
    "l0_mean": (_number, "a number"),
}
_QUANTIZER: tuple[Check, str] = (
    lambda v: (
        v is None
        or (isinstance(v, dict) and all(isinstance(v.get(side), list) and v[side] for side in ("below", "above")))
    ),
    "null or a quantizer (below, above thresholds)",
)
#: Fields of a clean-evaluation record (a defense's clean predictions on a test slice).
CLEAN_FIELDS: dict[str, tuple[Check, str]] = {
    "clean_key": (lambda v: isinstance(v, str) and HEX_KEY.fullmatch(v) is not None, "a 16-digit hex key"),
    "defense_key": (_text, "the defense's config hash"),
    "n": (_count, "a positive integer"),
    "predictions": (lambda v: isinstance(v, list) and all(isinstance(p, int) and p >= 0 for p in v), "class indices"),
    "diagnostics": (lambda v: isinstance(v, dict) and all(_share(x) for x in v.values()), "shares in [0, 1]"),
}


def _field_problem(record: dict[str, Any], fields: dict[str, tuple[Check, str]], required: bool) -> str | None:
    for name, (check, expected) in fields.items():
        if name not in record:
            if required:
                return f"missing field {name!r}"
            continue
        if not check(record[name]):
            return f"{name} is {record[name]!r}, not {expected}"
    return None


def cell_problem(record: Any, key: str) -> str | None:
    """What is wrong with a cell record filed under ``key``, or ``None``."""
    if not isinstance(record, dict):
        return f"holds a JSON {type(record).__name__}, not a record"
    problem = _field_problem(record, CELL_FIELDS, True) or _field_problem(record, OPTIONAL_FIELDS, False)
    if problem:
        return problem
    if record["cell_key"] != key:
        return f"is filed under {key} but holds cell {record['cell_key']}"
    if record["attack"] == WORST:
        return f"attack is {WORST!r}, the label of the derived worst-case rows, which are never stored"
    if record["eps"] is not None and record["eps"] > 1 and record["threat_model"] in ("linf", "semantic"):
        return f"eps is {record['eps']!r}, not a number in [0, 1] (only L2, L1 and L0 budgets exceed 1)"
    if record["status"] != "ok":
        return None
    problem = _field_problem(record, OK_FIELDS, True)
    if problem:
        return problem
    low, robust, high = (record[f] for f in ("robust_accuracy_ci_low", "robust_accuracy", "robust_accuracy_ci_high"))
    if not low - 1e-9 <= robust <= high + 1e-9:
        return f"robust_accuracy {robust} lies outside its interval [{low}, {high}]"
    if robust > record["clean_accuracy"] + 1e-9:
        return f"robust_accuracy {robust} exceeds clean_accuracy {record['clean_accuracy']}"
    problem = _mask_problem(record["robust_points"], record["n"], robust)
    if problem:
        return problem
    norms = record.get("minimal_norms")
    if norms is not None and len(norms) != 4 * record["n"]:
        return f"minimal_norms holds {len(norms) // 4} sizes, not {record['n']} points"
    return None


def _mask_problem(points: str, n: int, robust_accuracy: float) -> str | None:
    """What makes a cell's per-point mask disagree with its size or its robust accuracy, or ``None``: the mask's
    robust points are what the worst case and paired comparisons count, so they must be the record's number."""
    if len(points) != 2 * math.ceil(n / 8):
        return f"robust_points holds {len(points) * 4} bits, not {n} points"
    survivors = sum(bin(byte).count("1") for byte in bytes.fromhex(points))
    padding = int(points[-2:], 16) & ((1 << (-n % 8)) - 1) if points else 0
    if padding:
        return f"robust_points sets bits beyond its {n} points"
    if abs(survivors - robust_accuracy * n) > 1e-6 * n:
        return (
            f"robust_points marks {survivors} of {n} points robust, but robust_accuracy {robust_accuracy} "
            f"means {robust_accuracy * n:g}"
        )
    return None


def clean_problem(record: Any, key: str) -> str | None:
    """What is wrong with a clean-evaluation record filed under ``key``, or ``None``."""
    if not isinstance(record, dict):
        return f"holds a JSON {type(record).__name__}, not a record"
    problem = _field_problem(record, CLEAN_FIELDS, True) or _field_problem(
        record, {"weights_sha256": OPTIONAL_FIELDS["weights_sha256"], "input_quantizer": _QUANTIZER}, False
    )
    if problem:
        return problem
    if record["clean_key"] != key:
        return f"is filed under {key} but holds clean evaluation {record['clean_key']}"
    if len(record["predictions"]) != record["n"]:
        return f"holds {len(record['predictions'])} predictions, not n = {record['n']}"
    return None
