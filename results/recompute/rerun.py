"""Recompute the committed quick store (``results/cells``) on the committed checkpoints, into this folder.

    python results/recompute/rerun.py [--dry-run] [--defenses cnn,madry]

Runs paper 001's matrix (``bench report paper001``), then paper 000's, then every other (defense, threat
model, attack) of ``results/cells`` not yet stored here, cheapest first by the attack time recorded there.
``--defenses`` runs only the named defenses' remaining cells (no report: each spans other defenses), so
that their rows can be completed and moved into ``results/`` by ``swap.py`` first.
Every step is a ``bench`` command with ``--cache-dir results/checkpoints/quick`` (checkpoints not there yet
are trained into it, to be committed with the cells); each resumes where an interrupted one stopped, so the
script can be stopped and rerun at any time.  ``--dry-run`` prints the commands still to run.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

from benchmark.results.frame import load
from foundation.errors import BenchError
from foundation.threat_models import NORMS

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
COMMON = ["--profile", "quick", "--cache-dir", str(RESULTS / "checkpoints" / "quick"), "--out", str(HERE)]
CELL = ["defense", "threat_model", "attack", "eps"]
#: Old cells not recomputed: ART's HopSkipJump at ~150 queries on the ABS rows, which paper 001's matrix
#: replaced by the batched ``hsj`` at 500 queries per image (ART's stays on the other rows, to cross-check).
SUPERSEDED = {"art.hsj:max_iter=3:max_eval=100:init_eval=20:init_size=20"}


def _cells(out: Path) -> pd.DataFrame:
    frame = load(out, allow_empty=True)
    if frame.empty:
        return pd.DataFrame(columns=[*CELL, "attack_seconds"])
    frame = frame[(frame["profile"] == "quick") & (frame["attack"] != "worst")]
    return frame[[*CELL, "attack_seconds"]]


def missing_cells() -> pd.DataFrame:
    """The old store's cells (less the superseded ones) not yet recomputed here."""
    old, new = _cells(RESULTS), _cells(HERE)
    done = set(map(tuple, new[CELL].astype(str).to_numpy()))
    old = old[~old["attack"].isin(SUPERSEDED)]
    return old[[tuple(row) not in done for row in old[CELL].astype(str).to_numpy()]]


def remaining_runs(defenses: set[str] | None = None) -> list[list[str]]:
    """The ``bench run`` commands for the old store's cells not yet recomputed here, cheapest first
    (only ``defenses``' when given)."""
    missing = missing_cells()
    if defenses is not None:
        missing = missing[missing["defense"].isin(defenses)]
    commands = []
    groups = missing.groupby(["defense", "threat_model", "attack"], dropna=False)
    for (defense, threat_model, attack), group in sorted(groups, key=lambda item: item[1]["attack_seconds"].sum()):
        eps = sorted(group["eps"].dropna().unique())
        command = ["bench", "run", "--defenses", defense, "--attacks", attack]
        command += ["--norm", threat_model] if threat_model in NORMS else []  # semantic attacks take no ε ball
        commands.append(command + (["--eps", ",".join(f"{value:g}" for value in eps)] if eps else []) + COMMON)
    return commands


def main(dry_run: bool, defenses: set[str] | None) -> None:
    known = set(_cells(RESULTS)["defense"]) | set(_cells(HERE)["defense"])
    if defenses is not None and "" in defenses:
        raise BenchError("--defenses: an empty name; give comma-separated defense specs, e.g. --defenses cnn,madry")
    if defenses is not None and defenses - known:
        unknown = ", ".join(sorted(defenses - known))
        raise BenchError(f"--defenses: no stored row {unknown}; rows: {', '.join(sorted(known))}")
    reports = [] if defenses is not None else [["bench", "report", name, *COMMON] for name in ("paper001", "paper000")]
    if dry_run:
        for command in reports + remaining_runs(defenses):
            print(shlex.join(command))
        return
    for command in reports:
        subprocess.run(command, check=True)
    for command in remaining_runs(defenses):  # read once the reports' cells are stored
        subprocess.run(command, check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="rerun.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the commands still to run")
    parser.add_argument("--defenses", help="comma-separated defense specs: only their remaining cells, no report")
    arguments = parser.parse_args()  # nonsense: one usage line and exit 2, as argparse does
    try:
        main(arguments.dry_run, None if arguments.defenses is None else set(arguments.defenses.split(",")))
    except BenchError as error:
        print(f"rerun.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except subprocess.CalledProcessError as error:
        print(f"rerun.py: error: {shlex.join(error.cmd)} exited {error.returncode}; rerun to resume", file=sys.stderr)
        sys.exit(2)
