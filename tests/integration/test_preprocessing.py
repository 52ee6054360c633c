"""A model trained on normalised CIFAR-10-shaped images: `mean=`/`std=` give the numbers of the normalisation
written into its forward, through `bench run` and through `benchmark.evaluate`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.datasets.cifar10 import Cifar10
from benchmark.results.statistics import unpack_mask
from benchmark.store.result_store import ResultStore
from tests.integration.test_datasets import cifar_checksums_substituted, write_cifar10

pytestmark = pytest.mark.integration
__all__ = ["cifar_checksums_substituted"]  # the fixture, used by name

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
NET = """
import torch
from torch import nn

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))

    def forward(self, x):
        return self.net({inputs})


def build():
    return Net()
"""
PLAIN, NORMALISING = NET.format(inputs="x"), NET.format(inputs="(x - MEAN.to(x)) / STD.to(x)")


def _namespace(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "<net>", "exec"), namespace)
    return namespace


@pytest.fixture
def files(tmp_path, cifar_checksums_substituted) -> tuple[Path, Path, Path, nn.Module]:
    """The fixture dataset, the two model files, and weights trained on normalised images (the plain module)."""
    data = write_cifar10(tmp_path / "data")
    train, _ = Cifar10().load(data, download=False, cache_dir=None)
    normalising = _namespace(NORMALISING)["build"]()
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(normalising.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(normalising(train.x), train.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = tmp_path / "net.pt"
    torch.save(normalising.state_dict(), weights)
    (tmp_path / "plain.py").write_text(PLAIN)
    (tmp_path / "normalising.py").write_text(NORMALISING)
    plain = _namespace(PLAIN)["build"]()
    plain.load_state_dict(normalising.state_dict())
    return data, weights, tmp_path, plain.eval()


def _numbers(records: list[dict], defense: str) -> dict[tuple[str, float | None], tuple]:
    return {
        (r["attack"], r["eps"]): (r["n"], r["clean_accuracy"], r["robust_accuracy"], r.get("robust_points"))
        for r in records
        if r["defense"] == defense
    }


def _assert_same_numbers(first: dict, second: dict) -> None:
    """The same cells, points and clean accuracy; the robust points may differ on one point per cell.

    The two pipelines run the same arithmetic, but a CPU's matrix kernels may sum in an order that depends on
    where a tensor sits in memory: a PGD step that ends exactly on the decision boundary can flip one point.
    A missing or wrong normalisation moves the clean accuracy and many points at once."""
    assert first.keys() == second.keys()
    for cell, (n, clean, robust, points) in first.items():
        other_n, other_clean, other_robust, other_points = second[cell]
        assert (n, clean) == (other_n, other_clean), cell
        differing = int((unpack_mask(points, n) != unpack_mask(other_points, n)).sum())
        assert differing <= 1 and abs(robust - other_robust) <= 1 / n + 1e-12, (cell, robust, other_robust)


def test_mean_and_std_give_the_numbers_of_the_normalisation_in_the_forward(files, capsys):
    data, weights, root, plain = files
    mean, std = "+".join(map(str, MEAN)), "+".join(map(str, STD))
    specs = (
        f"model:source={root / 'plain.py'}:weights={weights}:mean={mean}:std={std}:name=wrapped,"
        f"model:source={root / 'normalising.py'}:weights={weights}:name=inline"
    )
    out, cache = root / "out", root / "cache"
    argv = ["run", "--defenses", specs, "--attacks", "fgsm,pgd", "--dataset", "cifar10", "--profile", "smoke"]
    argv += ["--no-progress", "--data-dir", str(data), "--no-download", "--out", str(out), "--cache-dir", str(cache)]
    assert main(argv) == 0, capsys.readouterr().err
    records = ResultStore(out).records()
    wrapped, inline = _numbers(records, "wrapped"), _numbers(records, "inline")
    assert len(wrapped) == 4  # fgsm and pgd at 2/255 and 8/255
    _assert_same_numbers(wrapped, inline)
    clean = {numbers[1] for numbers in inline.values()}
    assert len(clean) == 1 and clean.pop() > 0.5  # a model that learned the fixture's bands
    assert min(numbers[2] for numbers in inline.values()) < max(numbers[2] for numbers in inline.values())

    from benchmark import evaluate

    rows = evaluate(
        plain,
        dataset="cifar10",
        attacks=("fgsm", "pgd"),
        mean=MEAN,
        std=STD,
        name="api",
        profile="smoke",
        out_dir=out,
        cache_dir=cache,
        data_dir=data,
        download=False,
    )
    assert len(rows) == 6  # and the worst case at each ε
    _assert_same_numbers(_numbers(ResultStore(out).records(), "api"), inline)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (f"mean=0.5:std={'+'.join(map(str, STD))}", "option mean of defense 'model' has 1 value(s), but the dataset's"),
        ("mean=0.5+0.5+0.5", "needs both mean= and std="),
        ("mean=0.5+0.5+0.5:std=0.2+0+0.2", "option std of defense 'model' must hold positive numbers"),
    ],
)
def test_wrong_normalisation_exits_2_in_one_line(files, capsys, options, message):
    data, weights, root, _ = files
    spec = f"model:source={root / 'plain.py'}:weights={weights}:{options}"
    argv = ["run", "--defenses", spec, "--attacks", "fgsm", "--dataset", "cifar10", "--profile", "smoke"]
    argv += ["--data-dir", str(data), "--no-download", "--out", str(root / "out"), "--cache-dir", str(root / "c")]
    assert main(argv) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("bench: error: ") and message in stderr, stderr
