"""What the label-only attacks add in this store, per defense (L2, ε = 1.5), from its records.

    python results/l2-decision/breaks.py [OUT]      # OUT defaults to this folder

Prints a markdown table: the gradient attacks' per-point worst case, the points the label-only attacks
(``boundary``, ``hsj``, ``pointwise``) break that every gradient attack left standing, the worst case over
all, and the median per-point minimal perturbation ε* over the gradient minimisation attacks alone and over
all of them, beside Schott et al.'s median perturbations (their Table 1, L2).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmark.results.frame import load
from benchmark.results.minimal_perturbations import format_eps_star, minimal_perturbations
from benchmark.results.statistics import unpack_mask
from foundation.errors import BenchError

EPS = 1.5
LABEL_ONLY = {"boundary", "hsj", "pointwise"}
#: Schott et al. (ICLR 2019), Table 1: median L2 perturbation size over all their attacks.
SCHOTT_MEDIAN = {"cnn": 1.1, "madry": 1.4, "binary-abs": 1.3, "abs": 2.2}


def _median(cells) -> str:
    """The median per-point minimal perturbation over the minimisation attacks among ``cells``."""
    found = minimal_perturbations(cells)
    return "–" if found.empty else format_eps_star(found["median_eps_star"].iloc[0])


def main(out: Path) -> None:
    frame = load(out)
    cells = frame[(frame["threat_model"] == "l2") & (frame["eps"] == EPS) & (frame["status"] == "ok")]
    cells = cells[cells["attack"] != "worst"]
    print(
        "| defense | n | gradient attacks, worst case | label-only attacks break | worst case, all | "
        "median ε*, gradient | median ε*, all | Schott et al.'s median |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for defense, group in cells.groupby("defense", sort=False):
        n = int(group["n"].iloc[0])
        label_only = group["attack"].str.split(":").str[0].isin(LABEL_ONLY)
        masks = {
            attack: unpack_mask(text, n) for attack, text in zip(group["attack"], group["robust_points"], strict=True)
        }
        gradient = np.logical_and.reduce([masks[a] for a in group[~label_only]["attack"]])
        everything = np.logical_and.reduce(list(masks.values()))
        broken = int((gradient & ~everything).sum())
        print(
            f"| {defense} | {n} | {100 * gradient.mean():.1f} % | {broken} of {int(gradient.sum())} | "
            f"{100 * everything.mean():.1f} % | {_median(group[~label_only])} | {_median(group)} | "
            f"{SCHOTT_MEDIAN.get(defense.split(':')[0], '–')} |"
        )


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
    except BenchError as error:
        print(f"breaks.py: error: {error}", file=sys.stderr)
        sys.exit(2)
