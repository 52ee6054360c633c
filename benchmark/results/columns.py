"""The columns of the results: every identity list once, the long format's order, and the dataset default.

Tables, the worst case, sanity flags, paired tests, the regression check and the publishers all say what
makes two rows the same thing with these lists, so that no two of them can disagree.
"""

from __future__ import annotations

import pandas as pd

from benchmark.datasets.base import DEFAULT_DATASET
from benchmark.store.records import STATUSES, WORST

__all__ = [
    "BASELINE_KEY",
    "CELL_IDENTITY",
    "COLUMNS",
    "EVALUATION",
    "GROUP",
    "SAME_POINTS",
    "STATUSES",
    "WORST",
    "WORST_GROUP",
    "with_dataset",
]

#: Long-format columns, in order; provenance columns follow.
COLUMNS = [
    "dataset",
    "defense",
    "attack",
    "backend",
    "threat_model",
    "access",
    "eps",
    "budget",
    "n",
    "status",
    "flags",
    "clean_accuracy",
    "robust_accuracy",
    "robust_accuracy_ci_low",
    "robust_accuracy_ci_high",
    "f1_macro",
    "attack_success_rate",
    "linf_mean",
    "linf_max",
    "l2_mean",
    "reconstruction_loss",
    "train_seconds",
    "trained",
    "train_epochs",
    "attack_seconds",
    "randomized",
    "eot_samples",
    "prediction_repeats",
    "profile",
    "seed",
    "config_hash",
    "weights_sha256",
    "cell_key",
    "device",
    "gradient_masking_share",
    "prediction_flip_share",
    "input_quantizer",
    "quantizer_found",
    "library_versions",
    "created",
    "note",
]

#: What makes two records the same cell of a table; of several, the latest ``created`` is shown.
CELL_IDENTITY = [
    "dataset",
    "threat_model",
    "profile",
    "seed",
    "defense",
    "attack",
    "eps",
    "n",
    "eot_samples",
    "prediction_repeats",
]


#: What identifies one evaluation of one defense: cells in a group share test points and rules.
GROUP = [
    "dataset",
    "threat_model",
    "profile",
    "seed",
    "defense",
    "config_hash",
    "eps",
    "n",
    "eot_samples",
    "prediction_repeats",
]


#: One evaluation of one defense (as the worst case's groups, without ε: one run gives every ε).
EVALUATION = [column for column in GROUP if column != "eps"]
#: What makes cells one worst-case group, less the randomization budgets (the stale check compares models).
WORST_GROUP = [column for column in GROUP if column not in ("eot_samples", "prediction_repeats")]
#: How ``bench check`` matches a run's rows to a baseline leaderboard's (within a dataset).
BASELINE_KEY = ["profile", "defense", "attack", "eps"]
#: Two defenses are compared point by point only on the same test points: the same dataset, profile and seed.
SAME_POINTS = ("dataset", "profile", "seed")


def with_dataset(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``dataset`` column: records from before datasets were registered are MNIST's."""
    if "dataset" in frame:
        return frame.assign(dataset=frame["dataset"].fillna(DEFAULT_DATASET))
    return frame.assign(dataset=DEFAULT_DATASET)
