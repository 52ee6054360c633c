"""The layout's import rules hold (``tests/import_rules.py``), fail when broken, and keep torch off the readers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.import_rules import PACKAGES, violations

REPO = Path(__file__).resolve().parents[2]


def test_the_repository_keeps_every_import_rule():
    assert violations(REPO) == []


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.j2"))
    return tmp_path


def test_each_broken_rule_is_named(tmp_path):
    root = _copy(tmp_path)
    (root / "benchmark" / "results" / "bad.py").write_text(
        "import torch\nfrom benchmark.run.runner import run_benchmark\n"
    )
    (root / "benchmark" / "config" / "bad.py").write_text("from benchmark.store.atomic import atomic_write\n")
    (root / "benchmark" / "run" / "executors" / "bad.py").write_text("from benchmark.run.runner import prepare\n")
    (root / "benchmark" / "run" / "late.py").write_text(
        "def f():\n    from benchmark.results.frame import load\n    return load\n"
    )
    (root / "benchmark" / "run" / "shows.py").write_text("from benchmark.publish.site import render_site\n")
    (root / "attacks" / "bad.py").write_text("from defenses.base import Defense\n")
    (root / "benchmark" / "store" / "cycle_a.py").write_text("from benchmark.store import cycle_b\n")
    (root / "benchmark" / "store" / "cycle_b.py").write_text("from benchmark.store import cycle_a\n")
    found = "\n".join(violations(root))
    for expected in (
        "benchmark/results/bad.py:1: results/ imports torch, which imports torch",
        "benchmark/results/bad.py:2: results/ imports run/ (benchmark.run.runner)",
        "benchmark/config/bad.py:1: config/ imports benchmark.store.atomic",
        "benchmark/run/executors/bad.py:1: an executor imports the runner",
        "benchmark/run/late.py:2: function-local import of benchmark.results.frame outside the faces",
        "benchmark/run/shows.py:1: run/ imports publish/ (benchmark.publish.site)",
        "attacks/bad.py:1: attacks imports defenses.base",
        "import cycle: benchmark.store.cycle_a -> benchmark.store.cycle_b -> benchmark.store.cycle_a",
    ):
        assert expected in found
    assert len(found.splitlines()) == 8


def test_reading_a_store_imports_no_torch():
    """What ``bench show``, ``report``, ``compare`` and ``check`` read a store with: no torch on the way."""
    modules = [
        "benchmark.cli",
        "benchmark.results.frame",
        "benchmark.results.leaderboard",
        "benchmark.results.paired",
        "benchmark.results.regression",
        "benchmark.publish.site",
        "benchmark.publish.robustbench_json",
    ]
    script = (
        f"import sys\nimport {', '.join(modules)}\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
