import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Literal

import pytest

from attacks.base import ATTACKS
from benchmark.config.profiles import get_profile
from defenses.base import DEFENSES
from foundation.errors import BenchError
from foundation.registry import Plugin, Registry, Spec


def test_spec_parsing_and_label():
    spec = Spec.parse("vae:arch=cnn:deterministic=true")
    assert spec == Spec("vae", (("arch", "cnn"), ("deterministic", "true")))
    assert spec.label == "vae:arch=cnn:deterministic=true"
    with pytest.raises(BenchError, match="key=value"):
        Spec.parse("vae:arch")


def test_build_applies_profile_then_user_options():
    assert ATTACKS.build("pgd", "smoke").config.steps == 10
    assert ATTACKS.build("pgd", "quick").config.steps == 40
    assert ATTACKS.build("pgd:steps=7", "smoke").config.steps == 7
    vae = DEFENSES.build("vae:arch=cnn:deterministic=yes", "quick")
    assert vae.config.arch == "cnn" and vae.config.deterministic and not vae.randomized


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pgd:stepz=3", r"no option 'stepz'; did you mean 'steps'\? valid options: early_stop, l2_step_scale, random"),
        ("pgd:steps=many", "must be a number"),
        ("pgd:steps=0", "steps must be at least 1"),
        ("vae:arch=resnet", "must be one of fc, cnn"),
        ("vae:deterministic=maybe", "true or false"),
    ],
)
def test_bad_options_are_explained(spec, message):
    registry = ATTACKS if spec.startswith("pgd") else DEFENSES
    with pytest.raises(BenchError, match=message):
        registry.build(spec, "quick")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(BenchError, match=r"unknown attack 'fgsn'; did you mean 'fgsm'\? valid: .*fgsm.*pgd"):
        ATTACKS.expand("fgsm,fgsn")
    with pytest.raises(BenchError, match="no defense selected"):
        DEFENSES.expand(" , ")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ATTACKS.get("fgms"), "unknown attack 'fgms'; did you mean 'fgsm'? valid: advlib.alma, "),
        (lambda: DEFENSES.get("madri"), "unknown defense 'madri'; did you mean 'madry'? valid: abs, "),
        (lambda: ATTACKS.get("cw"), "unknown attack 'cw'; valid: advlib.alma, "),  # nothing close: no guess
        (lambda: ATTACKS.build("pgd:step=3", "quick"), "has no option 'step'; did you mean 'steps'? valid options: "),
        (lambda: get_profile("quik"), "unknown profile 'quik'; did you mean 'quick'? valid: smoke, quick, paper"),
        (lambda: get_profile("huge"), "unknown profile 'huge'; valid: smoke, quick, paper"),
    ],
)
def test_typos_get_a_suggestion_on_one_line(call, message):
    with pytest.raises(BenchError) as raised:
        call()
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_all_selects_every_primary_name_once():
    assert [s.name for s in DEFENSES.expand("all")] == DEFENSES.primary_names()
    assert {"cnn", "vae"} <= set(DEFENSES.primary_names())
    assert [s.name for s in ATTACKS.expand("fgsm,fgsm,pgd")] == ["fgsm", "pgd"]


def test_aliases_resolve_but_are_not_selected_by_all():
    @dataclass(frozen=True)
    class Options:
        mode: Literal["a", "b"] = "a"

    class Thing(Plugin):
        Config = Options

    registry = Registry("thing", Plugin, "attacks", "bench.none")
    registry._loaded = True
    registry.register("thing", aliases=("old-thing",))(Thing)
    assert registry.get("old-thing") is Thing
    assert registry.primary_names() == ["thing"]
    assert registry.build("old-thing:mode=b", "quick").config.mode == "b"


def test_third_party_plugins_register_through_entry_points(tmp_path):
    """A dummy installed package (a dist-info with entry points) shows up in `bench list` and builds."""
    (tmp_path / "dummy_bench_plugin.py").write_text(
        textwrap.dedent("""
        from torch import nn
        from attacks.base import Attack
        from defenses.base import Defense

        class DummyDefense(Defense):
            description = "a dummy defense from a plugin"
            def fit(self, train, val, ctx): pass
            def deployed_model(self): return nn.Flatten()
            def modules(self): return {}

        class DummyAttack(Attack):
            description = "a dummy attack from a plugin"
            def _run(self, model, x, y, eps, generator): return x.clone()
    """)
    )
    dist_info = tmp_path / "dummy_bench_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: dummy-bench-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[bench.defenses]\nmy-defense = dummy_bench_plugin:DummyDefense\n\n"
        "[bench.attacks]\nmy-attack = dummy_bench_plugin:DummyAttack\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run([sys.executable, "-m", "benchmark", "list"], env=env, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"my-defense +a dummy defense from a plugin", listing.stdout)
    assert "my-attack" in listing.stdout and "a dummy attack from a plugin" in listing.stdout
    check = (
        "from defenses.base import DEFENSES; from attacks.base import ATTACKS;"
        "print(type(DEFENSES.build('my-defense','smoke')).__name__, ATTACKS.get('my-attack').name)"
    )
    built = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert built.stdout.split() == ["DummyDefense", "my-attack"], built.stderr


def test_a_broken_plugin_is_reported_not_crashed(tmp_path):
    dist_info = tmp_path / "broken_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[bench.attacks]\nbroken = no_such_module:Nothing\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "benchmark", "list"], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "plugin 'broken'" in result.stderr and "Traceback" not in result.stderr
