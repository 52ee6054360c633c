"""The paper pages' provenance line: every device and library version their cells ran on, not the first's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.reports.common import provenance

VERSIONS = "torch=2.14.1"


def _cells(*devices: str, versions: str = VERSIONS) -> list[dict]:
    return [
        {
            "attack": "fgsm",
            "defense": "cnn",
            "profile": "quick",
            "seed": 0,
            "n": 1000,
            "device": device,
            "library_versions": versions,
        }
        for device in devices
    ]


def test_one_device_and_version_are_named_once():
    generated, versions = provenance(pd.DataFrame(_cells("cpu:x2", "cpu:x2")), "bench report", Path("out"))[:2]
    assert "device `cpu:x2`)." in generated and versions == f"Library versions: `{VERSIONS}`."


def test_mixed_devices_and_versions_are_each_counted_and_derived_worst_rows_are_not_cells():
    rows = _cells("cpu:x2", "cpu:x2", "cpu:x1") + _cells("cpu:x1", versions="torch=2.15.0")
    worst = {**rows[0], "attack": "worst", "device": "cpu:x1"}  # computed from the cells, not a cell
    generated, versions = provenance(pd.DataFrame([*rows, worst]), "bench report", Path("out"))[:2]
    assert "devices `cpu:x2` (2 cells); `cpu:x1` (2 cells))." in generated
    assert versions == f"Library versions: `{VERSIONS}` (3 cells); `torch=2.15.0` (1 cell)."
