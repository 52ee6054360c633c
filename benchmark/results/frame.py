"""The store as a table: records to the long-format frame every table, report and page reads.

``load(out)`` is the one reader of a store for the faces (``bench show``, ``report``, ``compare``,
``check``) and the publishers; ``records_to_frame`` derives the latest record per cell, the per-point
worst-case rows and the sanity flags.  No torch is imported on this path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.results.columns import CELL_IDENTITY, COLUMNS, with_dataset
from benchmark.results.sanity import sanity_flags
from benchmark.results.worst_case import worst_case_rows
from benchmark.store.result_store import ResultStore
from foundation.errors import BenchError


def latest_records(frame: pd.DataFrame) -> pd.DataFrame:
    """One record per table cell: the latest computed.

    A store keeps records of earlier code (an attack's new option or revision changes its cell key,
    and the cell is recomputed under the new key); tables show the newest and drop what it superseded.
    """
    if "created" not in frame or frame.empty:
        return frame
    identity = [column for column in CELL_IDENTITY if column in frame]
    return frame.sort_values("created", kind="stable").drop_duplicates(identity, keep="last").sort_index()


def records_to_frame(records: list[dict]) -> pd.DataFrame:
    """The store's latest record of every cell plus the derived per-sample worst-case rows, with sanity flags."""
    frame = latest_records(with_dataset(pd.DataFrame.from_records(records)))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    worst = worst_case_rows(frame)
    if not worst.empty:
        frame = pd.concat([frame, worst], ignore_index=True)
    frame = frame[COLUMNS + [c for c in frame.columns if c not in COLUMNS]]
    order = ["dataset", "profile", "defense", "attack", "eps"]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    frame["flags"] = sanity_flags(frame) if not frame.empty else pd.Series(dtype=object)
    return frame


def load(out: Path, store: ResultStore | None = None, *, allow_empty: bool = False) -> pd.DataFrame:
    """The leaderboard frame of the store in ``out`` (``store``: one already open on it, whose ``skipped``
    records the caller reports); an empty store is a ``BenchError`` saying how to fill it, unless
    ``allow_empty``."""
    store = store or ResultStore(Path(out))
    records = store.records()
    if not records and not allow_empty:
        raise BenchError(f"no results in {out}/cells; run `bench run --out {out}` first")
    return records_to_frame(records)
