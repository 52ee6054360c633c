"""The ``model`` defense (any PyTorch model from a file or module plus weights) on tiny synthetic files."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.config.profiles import get_profile
from benchmark.config.run_config import RunConfig
from benchmark.run.plan import Planner
from defenses.base import DEFENSES
from defenses.model import ModelDefense
from foundation.errors import BenchError
from foundation.registry import Spec
from foundation.splits import Split
from tests.synthetic import TinyContext

LINEAR = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
"""


def linear(out_features: int = 10) -> nn.Module:
    """The module ``LINEAR`` builds (same parameter names), with seeded weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, out_features))


def write(path: Path, code: str) -> Path:
    path.write_text(textwrap.dedent(code))
    return path


def save(path: Path, state: object) -> Path:
    torch.save(state, path)
    return path


def data(n: int = 8) -> Split:
    generator = torch.Generator().manual_seed(1)
    return Split(torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator))


def fitted(spec: str) -> ModelDefense:
    defense = DEFENSES.build(spec, "smoke")
    defense.fit(data(), data(), TinyContext())
    return defense


def key(spec: str) -> str:
    parsed = Spec.parse(spec)
    config = RunConfig(defenses=(parsed,), attacks=(Spec("fgsm"),), epsilons=(0.1,), profile=get_profile("smoke"))
    return Planner(config).job(parsed, 0).key


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A model file and weights that fit it."""
    return write(tmp_path / "net.py", LINEAR), save(tmp_path / "net.pt", linear().state_dict())


def test_a_model_file_with_weights_is_loaded_checked_and_round_trips(files):
    source, weights = files
    defense = fitted(f"model:source={source}:weights={weights}")
    x = data().x
    assert torch.allclose(defense.predict(x), linear()(x))
    assert not defense.deployed_model().training and not defense.randomized
    assert set(defense.modules()) == {"model"} and ModelDefense.trains is False
    # what TrainedDefense.restore does: build from the spec (no weights read), then load the checkpoint
    restored = DEFENSES.build(f"model:source={source}:weights={weights}", "smoke")
    restored.load_state_dict(defense.state_dict())
    assert torch.equal(restored.predict(x), defense.predict(x))
    assert "model" not in DEFENSES.primary_names()  # `all` cannot select it: it needs its options


def test_weights_may_be_omitted_and_the_module_is_evaluated_as_built(tmp_path):
    source = write(tmp_path / "net.py", LINEAR)
    defense = fitted(f"model:source={source}:entry=build")
    assert defense.predict(data().x).shape == (8, 10)
    assert defense.options()["weights_sha256"] is None


def test_the_context_says_the_image_shape_and_classes(tmp_path):
    @dataclass
    class ColourContext(TinyContext):
        image_shape: tuple[int, ...] = (3, 8, 8)
        num_classes: int = 4

    source = write(
        tmp_path / "colour.py",
        """
        from torch import nn

        def make():
            return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
        """,
    )
    defense = DEFENSES.build(f"model:source={source}:entry=make", "smoke")
    defense.fit(data(), data(), ColourContext())  # the context's shape and classes, not the split's
    with pytest.raises(BenchError, match=r"failed on a batch of shape \(2, 1, 28, 28\)"):
        defense.fit(data(), data(), TinyContext())  # without them, the split's shape


BROKEN = 'import torch\nraise ValueError("no GPU here")\n'
TYPO = "def build(:\n"
RAISES = 'def build():\n    raise RuntimeError("bad config")\n'
NUMBER = "def build():\n    return 3\n"
PAIR = """
from torch import nn

class Pair(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10], x

def build():
    return Pair()
"""
DIVIDE = """
from torch import nn

class Divide(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10] / 0

def build():
    return Divide()
"""


def errors(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Each user error: (spec, part of its one-line message)."""
    net = write(tmp_path / "net.py", LINEAR)
    fits = save(tmp_path / "fits.pt", linear().state_dict())
    state = linear().state_dict()

    def model(name: str, code: str) -> str:
        return f"model:source={write(tmp_path / f'{name}.py', code)}"

    def weights(name: str, content: object) -> str:
        saved = write(tmp_path / name, content) if isinstance(content, str) else save(tmp_path / name, content)
        return f"model:source={net}:weights={saved}"

    return {
        "missing source": (f"model:source={tmp_path / 'nope.py'}", f"option source of defense 'model': {tmp_path}"),
        "source is a directory": (f"model:source={tmp_path}", "is not a file"),
        "missing weights": (f"model:source={net}:weights={tmp_path / 'nope.pt'}", "option weights of defense 'model'"),
        "import error": (
            model("broken", BROKEN),
            "broken.py (option source of defense 'model') failed: ValueError: no GPU here",
        ),
        "syntax error": (model("typo", TYPO), "typo.py (option source of defense 'model') failed: SyntaxError"),
        "no entry": (f"model:source={net}:entry=buidl", "has no function 'buidl' (option entry of defense 'model')"),
        "entry raises": (model("raises", RAISES), "build() raised RuntimeError: bad config"),
        "not a module": (model("number", NUMBER), "build() returned an object of type int, not a torch.nn.Module"),
        "wrong logits shape": (
            model("five", LINEAR.replace("784, 10", "784, 5")),
            "logits of shape (2, 5); expected (2, 10)",
        ),
        "wrong input shape": (
            model("small", LINEAR.replace("784, 10", "64, 10")),
            "the model failed on a batch of shape (2, 1, 28, 28) ([0, 1] images): RuntimeError",
        ),
        "not a tensor": (model("pair", PAIR), "returned an object of type tuple on a batch of shape (2, 1, 28, 28)"),
        "non-finite logits": (model("divide", DIVIDE), "are not all finite"),
        "missing key": (weights("m.pt", {"1.weight": state["1.weight"]}), "m.pt does not fit the model that"),
        "unexpected key": (weights("u.pt", {**state, "extra": torch.zeros(1)}), ": unexpected key 'extra'"),
        "size mismatch": (
            weights("s.pt", linear(5).state_dict()),
            "size mismatch for '1.weight': (5, 784) in the file, (10, 784) in the model",
        ),
        "a whole pickled model": (
            weights("whole.pt", linear()),
            "holds objects other than tensors (Unsupported global: GLOBAL torch.nn.modules.container.Sequential)",
        ),
        "not a torch file": (weights("text.pt", "hello"), "cannot be read by torch.load(weights_only=True)"),
        "both source and module": (f"model:source={net}:module=os.path:weights={fits}", "got both"),
        "neither source nor module": ("model:weights=x.pt", "exactly one of source=FILE.py or module=PACKAGE.MODULE"),
        "module not found": ("model:module=no_such_package_xyz.net", "no module named 'no_such_package_xyz.net'"),
        "bad quantizer": (f"model:source={net}:quantizer=ternary", "option quantizer of defense 'model': quantizer"),
    }


CASES = [
    "missing source",
    "source is a directory",
    "missing weights",
    "import error",
    "syntax error",
    "no entry",
    "entry raises",
    "not a module",
    "wrong logits shape",
    "wrong input shape",
    "not a tensor",
    "non-finite logits",
    "missing key",
    "unexpected key",
    "size mismatch",
    "a whole pickled model",
    "not a torch file",
    "both source and module",
    "neither source nor module",
    "module not found",
    "bad quantizer",
]


def test_every_error_case_is_listed(tmp_path):
    assert list(errors(tmp_path)) == CASES


@pytest.mark.parametrize("case", CASES)
def test_each_user_error_is_a_one_line_bench_error(tmp_path, case):
    spec, message = errors(tmp_path)[case]
    with pytest.raises(BenchError) as caught:
        fitted(spec)
    text = str(caught.value)
    assert "\n" not in text and "\x1b" not in text
    assert message in text
    assert "weights_only=False" not in text  # torch's advice to load untrusted files with code is not passed on


def test_missing_key_names_the_first_one(tmp_path):
    source = write(tmp_path / "net.py", LINEAR)
    weights = save(tmp_path / "w.pt", {"1.weight": linear().state_dict()["1.weight"]})
    with pytest.raises(BenchError, match=r"missing key '1\.bias'$"):
        fitted(f"model:source={source}:weights={weights}")


def test_the_key_covers_the_weights_and_the_source(files):
    source, weights = files
    spec = f"model:source={source}:weights={weights}"
    first = key(spec)
    assert key(spec) == first  # stable
    model = linear()
    with torch.no_grad():
        model[1].weight[0, 0] += 1e-3  # one weight
    save(weights, model.state_dict())
    changed = key(spec)
    assert changed != first
    save(weights, linear().state_dict())
    assert key(spec) == first  # the content decides, not the file's time
    source.write_text(LINEAR + "# a comment\n")
    assert key(spec) not in (first, changed)
    options = DEFENSES.build(spec, "smoke").options()
    assert set(options) == {
        "source",
        "module",
        "entry",
        "weights",
        "randomized",
        "name",
        "weights_sha256",
        "source_sha256",
    }
    assert len(options["weights_sha256"]) == len(options["source_sha256"]) == 64


def test_randomized_and_name_are_options(files):
    source, weights = files
    spec = f"model:source={source}:weights={weights}"
    randomized = DEFENSES.build(f"{spec}:randomized=true", "smoke")
    assert randomized.randomized and not DEFENSES.build(spec, "smoke").randomized
    assert len({key(spec), key(f"{spec}:randomized=true"), key(f"{spec}:name=mine")}) == 3
    with pytest.raises(BenchError, match=r"option randomized of defense .model. must be true or false"):
        DEFENSES.build(f"{spec}:randomized=maybe", "smoke")


@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package ``bench_test_models`` in tmp_path, forgotten by ``sys.modules`` afterwards."""
    root = tmp_path / "bench_test_models"
    root.mkdir()
    write(root / "__init__.py", "")
    write(root / "net.py", LINEAR)
    write(root / "needs_dep.py", "import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [name for name in sys.modules if name.split(".")[0] == "bench_test_models"]:
        del sys.modules[name]


def test_a_module_on_the_path_works_and_its_file_enters_the_key(package, tmp_path):
    weights = save(tmp_path / "net.pt", linear().state_dict())
    spec = f"model:module=bench_test_models.net:entry=build:weights={weights}"
    defense = fitted(spec)
    assert torch.allclose(defense.predict(data().x), linear()(data().x))
    first = key(spec)
    (package / "net.py").write_text(LINEAR + "# changed\n")
    assert key(spec) != first


def test_a_module_whose_dependency_is_missing_says_so(package):
    with pytest.raises(BenchError) as caught:
        fitted("model:module=bench_test_models.needs_dep")
    assert str(caught.value) == (
        "importing module bench_test_models.needs_dep (option module of defense 'model') failed: "
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    )


def test_a_source_file_is_imported_once_per_content(tmp_path):
    source = write(tmp_path / "counted.py", LINEAR + "import builtins\nbuiltins._bench_imports += 1\n")
    import builtins

    builtins._bench_imports = 0
    try:
        for _ in range(3):
            DEFENSES.build(f"model:source={source}", "smoke")
        assert builtins._bench_imports == 1
        source.write_text(source.read_text() + "# edited\n")
        DEFENSES.build(f"model:source={source}", "smoke")
        assert builtins._bench_imports == 2
    finally:
        del builtins._bench_imports


def test_a_declared_quantizer_is_the_defenses_and_enters_its_key(tmp_path):
    source = write(tmp_path / "net.py", LINEAR)
    declared = DEFENSES.build(f"model:source={source}:quantizer=levels@4", "smoke")
    assert declared.input_quantizer().describe() == "4 levels, thresholds 0.1667, 0.5, 0.8333 (declared in the spec)"
    assert DEFENSES.build(f"model:source={source}", "smoke").input_quantizer() is None
    assert key(f"model:source={source}:quantizer=binary") != key(f"model:source={source}")
