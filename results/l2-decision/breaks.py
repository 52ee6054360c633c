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

from benchmark.publish.published import ABS_PAPER_L2_MEDIAN, ROWS
from benchmark.reports.common import markdown_table
from benchmark.results.frame import load
from benchmark.results.label_only import label_only_gains
from foundation.errors import BenchError

EPS = 1.5
SCHOTT_MEDIAN = {ROWS[label]: median for label, median in ABS_PAPER_L2_MEDIAN.items()}


def main(out: Path) -> None:
    rows = [
        {"defense": defense, **gain.columns(), "Schott et al.'s median": SCHOTT_MEDIAN.get(defense.split(":")[0], "–")}
        for defense, gain in label_only_gains(load(out), "l2", EPS).items()
    ]
    print(markdown_table(rows))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
    except BenchError as error:
        print(f"breaks.py: error: {error}", file=sys.stderr)
        sys.exit(2)
