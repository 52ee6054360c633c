"""Move every defense whose row is fully recomputed here into the committed store (``results/``).

    python results/recompute/swap.py [--dry-run]

A defense's row moves when every one of its old cells (less the superseded ones, see ``rerun.py``) has been
recomputed here: its old cell records are deleted from ``results/cells``, every record of it here is copied
in, and its clean-evaluation record replaces the old one in ``results/clean``.  A row is moved whole or not
at all, so that no row mixes cells computed on two sets of weights; cells of ``results/`` already on the
recomputed weights stay.  Rows already moved are moved again unchanged (the script is idempotent);
``rerun.py`` then finds nothing missing for them.
"""

from __future__ import annotations

import argparse
import sys

from rerun import HERE, RESULTS, missing_cells

from benchmark.store.result_store import ResultStore
from foundation.errors import BenchError


def complete_defenses(new: ResultStore) -> list[str]:
    """The defenses recomputed here that have no old cell left to recompute."""
    incomplete = set(missing_cells()["defense"])
    return sorted({record["defense"] for record in new.records()} - incomplete)


def swap(defenses: list[str], new: ResultStore, old: ResultStore, *, dry_run: bool) -> None:
    invalid = new.invalid()
    if invalid:
        raise BenchError(f"{invalid[0]}: rerun rerun.py, which recomputes it, before moving rows")
    moving = [record for record in new.records() if record["defense"] in defenses]
    cleans = [new.get_clean(path.stem) for path in sorted(new.clean.glob("*.json"))]
    cleans = [clean for clean in cleans if clean["defense"] in defenses]
    weights = {(record["defense"], record.get("weights_sha256")) for record in moving}
    # the old weights' cells (older records name no weights); cells on the new weights stay, whoever ran them
    retired = [
        record
        for record in old.records()
        if record["defense"] in defenses and (record["defense"], record.get("weights_sha256")) not in weights
    ]
    for defense in defenses:
        count = sum(record["defense"] == defense for record in moving)
        gone = sum(record["defense"] == defense for record in retired)
        print(f"{defense}: {gone} old cells out, {count} recomputed cells in")
    if dry_run:
        return
    with old.writer_lock():
        for record in retired:
            old.remove(record["cell_key"])
        for record in moving:
            old.write(record)
        for clean in cleans:
            old.write_clean(clean)


def main(dry_run: bool) -> None:
    new, old = ResultStore(HERE), ResultStore(RESULTS)
    defenses = complete_defenses(new)
    if not defenses:
        print("no defense is fully recomputed yet")
        return
    swap(defenses, new, old, dry_run=dry_run)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="swap.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    arguments = parser.parse_args()  # nonsense: one usage line and exit 2, as argparse does
    try:
        main(arguments.dry_run)
    except BenchError as error:
        print(f"swap.py: error: {error}", file=sys.stderr)
        sys.exit(2)
