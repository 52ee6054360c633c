"""`bench run --save-adversarials` stores each cell's examples; `bench verify` re-checks them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.results.statistics import unpack_mask
from benchmark.run.verify import sha256_of

pytestmark = pytest.mark.integration


@pytest.fixture
def saved(bench, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    code, _, err = bench(
        "run", "--defenses", "cnn", "--attacks", "fgsm,pgd", "--eps", "0.1", "--save-adversarials", "--out", str(out)
    )
    assert code == 0, err
    return out


def _records(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in (out / "cells").glob("*.json")}


def _verify(bench, out: Path, cache: Path, mnist_dir: Path, *extra: str) -> tuple[int, str, str]:
    return bench("verify", "--out", str(out), "--cache-dir", str(cache), "--data-dir", str(mnist_dir), *extra)


def _rewrite(out: Path, key: str, x_adv: torch.Tensor, *, update_record: bool) -> None:
    path = out / "adversarials" / f"{key}.pt"
    torch.save({"x_adv": x_adv}, path)
    if update_record:
        record_path = out / "cells" / f"{key}.json"
        record = json.loads(record_path.read_text())
        record["adversarials_sha256"] = sha256_of(path)
        record_path.write_text(json.dumps(record))


def test_saved_examples_verify(bench, saved: Path, shared_cache: Path, mnist_dir: Path) -> None:
    records = _records(saved)
    assert len(records) == 2
    for key, record in records.items():
        path = saved / "adversarials" / f"{key}.pt"
        assert record["adversarials_sha256"] == sha256_of(path)
        x_adv = torch.load(path, weights_only=True)["x_adv"]
        assert x_adv.dtype == torch.float32 and len(x_adv) == record["n"]
    code, out, err = _verify(bench, saved, shared_cache, mnist_dir)
    assert code == 0, out + err
    assert out.count(": ok") == 2 and "2 cells verified, 0 failed" in out
    key = next(iter(records))
    code, out, _ = _verify(bench, saved, shared_cache, mnist_dir, "--cell", key)
    assert code == 0 and key in out and "1 cells verified" in out


def test_tampered_example_fails(bench, saved: Path, shared_cache: Path, mnist_dir: Path) -> None:
    key = next(iter(_records(saved)))
    path = saved / "adversarials" / f"{key}.pt"
    x_adv = torch.load(path, weights_only=True)["x_adv"]
    x_adv[0] = (x_adv[0] + 0.5).clamp(0, 1) if x_adv[0].mean() < 0.5 else (x_adv[0] - 0.5).clamp(0, 1)
    _rewrite(saved, key, x_adv, update_record=False)
    code, out, _ = _verify(bench, saved, shared_cache, mnist_dir)
    assert code == 1
    assert f"{key} cnn" in out and "FAILED: sha256" in out and out.count(": ok") == 1
    # The deeper check: with the record's hash updated too, the threat-model guard catches the image.
    _rewrite(saved, key, x_adv, update_record=True)
    code, out, _ = _verify(bench, saved, shared_cache, mnist_dir)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith(key))
    assert "FAILED: threat model" in line and "outside the L∞ ball" in line


def test_undone_attack_fails_the_robust_accuracy(bench, saved: Path, shared_cache: Path, mnist_dir: Path) -> None:
    from benchmark.run.verify import Verifier

    key, record = next(iter(_records(saved).items()))
    env = Verifier(shared_cache, mnist_dir, torch.device("cpu"), False).environment(record)
    x, _ = env.test_points(record["seed"], record["n"])
    path = saved / "adversarials" / f"{key}.pt"
    x_adv = torch.load(path, weights_only=True)["x_adv"]
    robust = torch.from_numpy(unpack_mask(record["robust_points"], record["n"]))
    broken = (~robust).nonzero().squeeze(1)
    changed = broken[(x_adv[broken] != x[broken]).flatten(1).any(dim=1)]  # points the attack broke
    assert len(changed) > 0
    x_adv[changed] = x[changed]  # the attack undone: their clean images, which the defense classifies right
    _rewrite(saved, key, x_adv, update_record=True)
    code, out, _ = _verify(bench, saved, shared_cache, mnist_dir)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith(key))
    assert "FAILED: robust accuracy recomputed" in line and "outside the record's interval" in line


def test_verify_without_saved_examples_is_a_usage_error(bench, tmp_path: Path, shared_cache: Path) -> None:
    out = tmp_path / "plain"
    assert bench("run", "--defenses", "cnn", "--attacks", "fgsm", "--eps", "0.1", "--out", str(out))[0] == 0
    assert "adversarials_sha256" not in next(iter(_records(out).values()))
    assert not (out / "adversarials").exists()
    code, _, err = bench("verify", "--out", str(out), "--cache-dir", str(shared_cache))
    assert code == 2 and "no cell" in err and "--save-adversarials" in err


def test_verify_without_the_checkpoint_is_a_usage_error(bench, saved: Path, tmp_path: Path, mnist_dir: Path) -> None:
    code, _, err = _verify(bench, saved, tmp_path / "empty-cache", mnist_dir)
    assert code == 2 and "no checkpoint" in err


def test_ray_saves_examples_that_verify(bench, tmp_path: Path, shared_cache: Path, mnist_dir: Path) -> None:
    pytest.importorskip("ray", reason="the Ray extra is not installed (pip install -e '.[ray]')")
    out = tmp_path / "ray"
    matrix = ["--defenses", "cnn", "--attacks", "fgsm,pgd", "--eps", "0.1", "--save-adversarials"]
    code, _, err = bench("run", *matrix, "--out", str(out), "--executor", "ray", "--workers", "1")
    assert code == 0, err
    # Workers return the examples; the driver writes them (bytes may differ from a local run's in the last digits,
    # which follow the worker's thread count, so each store is checked against its own records).
    for key, record in _records(out).items():
        assert record["adversarials_sha256"] == sha256_of(out / "adversarials" / f"{key}.pt")
    code, stdout, _ = _verify(bench, out, shared_cache, mnist_dir)
    assert code == 0 and "2 cells verified, 0 failed" in stdout
