"""`bench perf --sections attacks` on a real MNIST slice with a tiny budget: every contender is timed."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.perf import abs_inference
from benchmark.perf import attack_contenders as attacks

pytestmark = pytest.mark.integration


@pytest.fixture
def one_thread():
    """Batches of 8 gain nothing from intra-op threads, which cost several times the work on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_perf_attacks_times_every_contender_and_pgd_matches_the_hand_loop(mnist_dir, shared_cache, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["perf", "--sections", "attacks,worst", "--repeats", "1", "--batch-size", "8", "--quick-check"]
    argv += ["--device", "cpu", "--data-dir", str(mnist_dir), "--no-download", "--cache-dir", str(shared_cache)]
    assert main([*argv, "--out", str(out)]) == 0
    assert f"wrote {out / 'perf.csv'}" in capsys.readouterr().out
    frame = pd.read_csv(out / "perf.csv")
    assert set(frame["section"]) == {"attacks", "worst"} and (frame["batch"] == 8).all()
    assert (frame["images_per_s_median"] > 0).all() and (frame["repeats"] == 1).all()
    harness = [name for name, _ in attacks.harness_pgd_specs()]
    libraries = [attacks.HAND_LOOP, attacks.TORCHATTACKS, attacks.FOOLBOX, attacks.ART]
    assert frame[frame["task"] == attacks.PGD_TASK]["contender"].tolist() == [*harness, *libraries]
    assert frame[frame["task"] == attacks.FGSM_TASK]["contender"].tolist() == [attacks.HARNESS, *libraries]
    pgd = frame[frame["task"] == attacks.PGD_TASK].set_index("contender")
    assert pgd.loc[attacks.HAND_LOOP, "ratio_to_reference"] == 1.0
    for name in harness:
        assert abs(pgd.loc[name, "robust_accuracy"] - pgd.loc[attacks.HAND_LOOP, "robust_accuracy"]) <= 0.01
    worst = frame[frame["task"] == attacks.WORST_TASK].set_index("contender")["robust_accuracy"]
    assert worst.index.tolist() == [attacks.SEPARATE, attacks.CASCADE]
    assert worst[attacks.CASCADE] == worst[attacks.SEPARATE]  # the same per-point worst case
    text = (out / "perf.md").read_text()
    assert "## Targets" in text and "## attacks" in text and "CPU:" in text


@pytest.mark.usefixtures("one_thread")
def test_perf_abs_times_the_paper_budget_search_against_the_plain_decoder(mnist_dir, shared_cache, tmp_path):
    """The folded decoder (BatchNorm folded, ELU through exp) predicts what the plain decoder predicts; the row
    names its reference and its target is evaluated from it."""
    out = tmp_path / "out"
    argv = ["perf", "--sections", "abs", "--repeats", "1", "--quick-check", "--device", "cpu"]
    argv += ["--data-dir", str(mnist_dir), "--no-download", "--cache-dir", str(shared_cache), "--out", str(out)]
    assert main(argv) == 0
    frame = pd.read_csv(out / "perf.csv")
    paper = frame[frame["task"] == abs_inference.PAPER_TASK].set_index("contender")
    assert paper.index.tolist() == [abs_inference.HARNESS, abs_inference.PLAIN]
    assert (paper["batch"] == abs_inference.QUICK_CHECK_IMAGES).all() and (paper["images_per_s_median"] > 0).all()
    assert paper.loc[abs_inference.PLAIN, "ratio_to_reference"] == 1.0
    assert (paper["identical_predictions"] == 1.0).all()
    text = (out / "perf.md").read_text()
    assert "ABS inference at the paper budget" in text and "same predictions %" in text
