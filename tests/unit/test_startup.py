"""`bench --help` and `bench list` stay light: the static catalog, lazy imports and the perf startup section."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from attacks.base import ATTACKS
from benchmark.perf import startup
from benchmark.perf.measurements import FAILED, to_frame
from benchmark.perf.targets import MET, NOT_MEASURED, NOT_MET, evaluate_targets
from benchmark.perf.workbench import PerfSettings, Workbench
from defenses.base import DEFENSES
from foundation.catalog import REGISTRIES, Entry, read_catalog

HEAVY = ("torch", "pandas", "art", "foolbox", "torchattacks", "matplotlib", "scipy")


@pytest.mark.parametrize("registry", [DEFENSES, ATTACKS], ids=["defenses", "attacks"])
def test_the_static_catalog_is_what_the_imported_registry_reports(registry):
    imported = [Entry(name, cls.description, cls.name) for name, cls in registry.items()]
    assert registry.catalog() == imported
    assert read_catalog(registry.kind, *REGISTRIES[registry.kind]) == imported  # what `bench list` reads


def test_the_catalog_follows_aliases_and_inherited_descriptions(tmp_path, monkeypatch):
    package = tmp_path / "catalog_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text(
        textwrap.dedent("""
        from foundation.registry import Plugin, Registry

        THINGS = Registry("thing", Plugin, "catalog_probe", "bench.none")
        register_thing = THINGS.register

        class Described(Plugin):
            description = "from the base"
    """)
    )
    (package / "things.py").write_text(
        textwrap.dedent("""
        from catalog_probe import base
        from catalog_probe.base import Described, register_thing

        class Middle(Described):
            pass

        @register_thing("heir", aliases=("old-heir", "older-heir"))
        class Heir(Middle):
            pass

        @register_thing("own")
        class Own(base.Described):
            description = ("its own, "
                           "in two parts")

        @register_thing("plain")
        class Plain(base.Plugin):
            pass

        @register_thing("second")
        @register_thing("first")
        class Twice(Plain):
            pass
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from catalog_probe.base import THINGS

        catalog = THINGS.catalog()
        assert catalog == [Entry(name, cls.description, cls.name) for name, cls in THINGS.items()]
        assert catalog == [
            Entry("first", "", "first"),
            Entry("heir", "from the base", "heir"),
            Entry("old-heir", "from the base", "heir"),
            Entry("older-heir", "from the base", "heir"),
            Entry("own", "its own, in two parts", "own"),
            Entry("plain", "", "plain"),
            Entry("second", "", "first"),
        ]
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] == "catalog_probe"]:
            del sys.modules[name]


def test_help_and_list_import_no_heavy_library():
    code = textwrap.dedent(f"""
        import sys
        import benchmark.cli
        benchmark.cli.build_parser()
        try:
            benchmark.cli.main(["--help"])
        except SystemExit:
            pass
        assert benchmark.cli.main(["list"]) == 0
        print(sorted(name for name in {HEAVY!r} if name in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Defenses:" in result.stdout and "fgsm" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_lazy_package_still_exports_its_names():
    import benchmark

    assert benchmark.get_profile("quick").name == "quick"
    assert callable(benchmark.run_benchmark) and "run_benchmark" in benchmark.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = benchmark.nope


def test_startup_section_times_fresh_processes_after_a_warm_up_round(tmp_path):
    calls: list[list[str]] = []
    show = ["show", "--out", str(startup.COMMITTED_STORE)]

    def spawn(argv: list[str], log_path: Path) -> tuple[float, int]:
        calls.append(argv)
        log_path.write_text("bench: error: plugin 'x' failed to load\n")
        return float(len(calls)), 2 if argv == ["list"] and len(calls) == 5 else 0

    settings = PerfSettings(device=torch.device("cpu"), cache_dir=tmp_path, repeats=3)
    help_row, list_row, show_row = startup.startup_rows(Workbench(settings), "startup", spawn)
    assert calls == [["--help"], ["list"], show] * 4  # a warm-up round, then three timed rounds, in turn
    assert (help_row.task, list_row.task, show_row.task) == ("bench --help", "bench list", "bench show")
    assert (help_row.seconds_median, help_row.repeats) == (7.0, 3)  # calls 4, 7, 10
    assert help_row.note == "" and list_row.note == f"{FAILED} (exit 2): bench: error: plugin 'x' failed to load"

    def statuses(rows) -> dict[str, str]:
        targets = evaluate_targets(to_frame(rows))
        return {t: s for t, s in zip(targets["target"], targets["status"], strict=True) if "fresh process" in t}

    assert statuses([help_row, list_row, show_row]) == {
        "`bench --help` in a fresh process < 2 s": NOT_MET,  # 7 s
        "`bench list` in a fresh process < 2 s": NOT_MET,  # failed
        "`bench show` in a fresh process < 2 s": NOT_MET,  # 9 s
    }
    fast = [replace(row, seconds_median=0.5, note="") for row in (help_row, list_row, show_row)]
    assert set(statuses(fast).values()) == {MET}
    assert set(statuses([]).values()) == {NOT_MEASURED}
