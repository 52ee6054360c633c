"""Sanity checks run on every result, shown as flags beside the rows (and failing ``bench check --strict``).

A flag marks a number that should not be trusted as it stands:

- ``eps0``: at ε = 0 the robust accuracy of an attack differs from the clean accuracy by more than its
  interval (not checked on derived ``worst`` rows: for a randomized defense they require every repeated
  prediction of every cell to be correct, so sampling noise compounds across cells even without a perturbation);
- ``rises``: accuracy rises with ε for the same defense and attack beyond the intervals;
- ``unbroken``: an unbounded budget (L∞ ε ≥ 1) leaves more than 10 % accuracy;
- ``blackbox``: a transfer or query attack beats every white-box attack at the same ε beyond the
  intervals (the white-box evaluation is too weak, often because of gradient masking);
- ``masked``: more than 10 % of points have zero or NaN input gradients through the attacked model;
- ``random``: predictions change between identical calls on a defense not declared randomized
  (it was evaluated without EOT and repeated predictions);
- ``quantized``: the diagnostics found an input quantiser the defense does not declare (its logits are piecewise
  constant along pixel axes, ``benchmark.run.quantizer_search``): gradient attacks search the wrong space, the
  threshold-aware ``quantized`` attack searches the crossings the model sees;
- ``stale``: the cell's weights (``weights_sha256``, where both records carry it) or its clean accuracy
  differ from those of the latest cell of the same defense key and test slice: it was computed on other
  weights (a checkpoint trained again, e.g. before training was seeded) or on other clean draws of a
  randomized defense (before clean predictions were stored once), so it does not measure the same model
  as the rest of its row; delete its record and rerun to recompute.
"""

from __future__ import annotations

import pandas as pd

from benchmark.results.columns import WORST_GROUP, with_dataset

UNBROKEN_LIMIT = 0.10
MASKED_LIMIT = 0.10


def _half_width(frame: pd.DataFrame) -> pd.Series:
    return (frame["robust_accuracy_ci_high"] - frame["robust_accuracy_ci_low"]) / 2


def sanity_flags(frame: pd.DataFrame) -> pd.Series:
    """A ``;``-joined string of flags per row ('' when sound)."""
    frame = with_dataset(frame)
    flags: dict[int, list[str]] = {index: [] for index in frame.index}
    ok = frame[frame["status"] == "ok"]
    bounded = ok[ok["eps"].notna()]

    for index in bounded.index[
        (bounded["eps"] == 0)
        & (bounded["attack"] != "worst")
        & ((bounded["clean_accuracy"] - bounded["robust_accuracy"]).abs() > _half_width(bounded) + 1e-9)
    ]:
        flags[index].append("eps0")

    for _, curve in bounded.groupby(["dataset", "threat_model", "profile", "seed", "defense", "attack"], sort=False):
        curve = curve.sort_values("eps")
        best_upper = curve["robust_accuracy_ci_high"].cummin().shift()
        for index in curve.index[curve["robust_accuracy_ci_low"] > best_upper]:
            flags[index].append("rises")

    unbounded = (bounded["eps"] >= 1) & (bounded["threat_model"] == "linf")  # an L∞ ball of 1 holds every image
    for index in bounded.index[unbounded & (bounded["robust_accuracy"] > UNBROKEN_LIMIT)]:
        flags[index].append("unbroken")

    if "access" in bounded:
        for _, group in bounded.groupby(["dataset", "threat_model", "profile", "seed", "defense", "eps"], sort=False):
            white = group[group["access"] == "white-box"]
            others = group[group["access"].isin(["transfer", "query"])]
            if white.empty or others.empty:
                continue
            best_white_low = white["robust_accuracy_ci_low"].min()
            for index in others.index[others["robust_accuracy_ci_high"] < best_white_low]:
                flags[index].append("blackbox")

    if "created" in ok and ok["created"].notna().any():
        cells = ok[ok["attack"] != "worst"]
        same_model = ["dataset", "profile", "seed", "config_hash", "n", "eot_samples", "prediction_repeats"]
        for _, group in cells.groupby(same_model, sort=False, dropna=False):
            latest = group.sort_values("created", kind="stable").iloc[-1]
            other_clean = (group["clean_accuracy"] - latest["clean_accuracy"]).abs() > 1e-9
            other_weights = pd.Series(False, index=group.index)
            if "weights_sha256" in group and pd.notna(latest["weights_sha256"]):
                other_weights = group["weights_sha256"].notna() & (group["weights_sha256"] != latest["weights_sha256"])
            for index in group.index[other_clean | other_weights]:
                flags[index].append("stale")
        # A worst case over a stale cell mixes models: it carries the flag too.
        stale = cells.loc[[index for index in cells.index if "stale" in flags[index]], WORST_GROUP]
        stale_groups = set(stale.itertuples(index=False, name=None))
        worst = ok[ok["attack"] == "worst"]
        for index, key in zip(worst.index, worst[WORST_GROUP].itertuples(index=False, name=None), strict=True):
            if key in stale_groups:
                flags[index].append("stale")

    if "gradient_masking_share" in ok:
        for index in ok.index[ok["gradient_masking_share"] > MASKED_LIMIT]:
            flags[index].append("masked")
    if "quantizer_found" in ok:
        for index in ok.index[ok["quantizer_found"].fillna(False).astype(bool)]:
            flags[index].append("quantized")
    if "prediction_flip_share" in ok:
        undeclared = (ok["prediction_flip_share"] > 0) & ~ok["randomized"].astype(bool)
        for index in ok.index[undeclared]:
            flags[index].append("random")
    return pd.Series({index: ";".join(values) for index, values in flags.items()}, dtype=object)
