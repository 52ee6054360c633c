"""``benchmark.evaluate`` checks every argument first: a bad one is a ``BenchError`` with the CLI's message,
raised before the model's weights are saved or any data is read."""

from __future__ import annotations

import pytest
from torch import nn

import benchmark
from benchmark.select import checked_arguments

GOOD = {
    "dataset": "mnist",
    "out_dir": "results",
    "data_dir": None,
    "attacks": ("fgsm",),
    "epsilons": (0.1, 0.3),
    "randomized": False,
    "name": "model",
    "profile": "smoke",
    "seed": 0,
    "device": "cpu",
    "cache_dir": None,
    "download": False,
    "progress": False,
    "norm": "linf",
}


def test_benchmark_exports_the_error_the_api_raises():
    from foundation.errors import BenchError

    assert benchmark.BenchError is BenchError and "BenchError" in benchmark.__all__


def test_strings_are_read_as_the_cli_reads_its_flags():
    texts = checked_arguments(**GOOD | {"attacks": "fgsm,pgd:steps=5", "epsilons": "0:0.3:0.1"})
    assert texts == (("fgsm", "pgd:steps=5"), (0.0, 0.1, 0.2, 0.3))
    assert checked_arguments(**GOOD | {"epsilons": None})[1] is None


BAD = {
    "epsilon not a number": ({"epsilons": ("x",)}, "epsilon 'x' is not a number"),
    "epsilon text not a number": ({"epsilons": "x"}, "epsilon 'x' is not a number"),
    "no epsilon": ({"epsilons": ()}, "no epsilon given"),
    "epsilon 5": ({"epsilons": (5,)}, "epsilon 5 is outside [0, 1]"),
    "negative epsilon": ({"epsilons": (-0.1,)}, "epsilon -0.1 is outside [0, 1]"),
    "epsilon nan": ({"epsilons": (float("nan"),)}, "epsilon nan is not a finite number"),
    "epsilon 1e9 in l2": ({"epsilons": (1e9,), "norm": "l2"}, "an L2 epsilon must lie in [0, 28]"),
    "epsilons a number": ({"epsilons": 0.3}, "epsilons must be a sequence of numbers"),
    "attack typo": ({"attacks": ("fgms",)}, "unknown attack 'fgms'; did you mean 'fgsm'?"),
    "attacks not texts": ({"attacks": (1,)}, "attacks must be attack specs"),
    "no attack": ({"attacks": ()}, "no attack selected"),
    "name with a colon": ({"name": "a:b"}, "name 'a:b' contains ':'"),
    "empty name": ({"name": " "}, "name must be a non-empty text"),
    "cache_dir with a colon": ({"cache_dir": "/tmp/a:b"}, "cache_dir (or $BENCH_CACHE_DIR) '/tmp/a:b' contains ':'"),
    "unknown profile": ({"profile": "smok"}, "unknown profile 'smok'; did you mean 'smoke'?"),
    "unknown dataset": ({"dataset": "mnistt"}, "mnistt"),
    "unknown norm": ({"norm": "l3"}, "unknown norm 'l3'"),
    "negative seed": ({"seed": -1}, "seed must be between 0 and"),
    "unknown device": ({"device": "tpu"}, "unknown device 'tpu'"),
    "randomized not a flag": ({"randomized": "yes"}, "randomized must be True or False"),
    "out_dir not a path": ({"out_dir": 3}, "out_dir must be a path"),
}


@pytest.mark.parametrize(("changes", "message"), BAD.values(), ids=BAD.keys())
def test_evaluate_refuses_a_bad_argument_before_saving_or_loading_anything(tmp_path, changes, message):
    arguments = GOOD | {"cache_dir": tmp_path / "cache", "out_dir": tmp_path / "out"} | changes
    del arguments["data_dir"]
    with pytest.raises(benchmark.BenchError) as error:
        benchmark.evaluate(nn.Linear(784, 10), data_dir=tmp_path / "no-data", **arguments)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()
