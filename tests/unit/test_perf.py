"""The perf suite's timer, ratios, targets, report files and run-section sequence (no real measurement)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.perf import attack_contenders as attacks
from benchmark.perf import run_wall, suite, training_speed
from benchmark.perf.measurements import COLUMNS, FAILED, Measurement, from_timings, to_frame
from benchmark.perf.report import write_report
from benchmark.perf.targets import MET, NOT_MEASURED, NOT_MET, evaluate_targets
from benchmark.perf.timing import Contender, Timing, time_round_robin
from benchmark.perf.workbench import PerfSettings, Workbench
from foundation.errors import BenchError

CPU = torch.device("cpu")


class FakeClock:
    """A clock that only moves when a fake contender says how long its call took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timer_warms_up_then_alternates_round_robin_and_takes_the_median():
    clock, calls, syncs = FakeClock(), [], []
    durations = {"a": iter([9.0, 1.0, 5.0, 3.0]), "b": iter([7.0, 2.0, 2.0, 8.0])}  # first value: warm-up

    def contender(name: str) -> Contender:
        def run() -> str:
            calls.append(name)
            clock.now += next(durations[name])
            return f"{name}{len(calls)}"

        return Contender(name, run)

    timings = time_round_robin(
        [contender("a"), contender("b")], 3, synchronize=lambda: syncs.append(len(calls)), clock=clock
    )
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert [t.seconds for t in timings] == [[1.0, 5.0, 3.0], [2.0, 2.0, 8.0]]  # warm-up not timed
    assert [t.median for t in timings] == [3.0, 2.0]
    assert [t.output for t in timings] == ["a7", "b8"]  # the last call's output
    assert len(syncs) == 2 + 2 * 6  # after each warm-up, before and after each timed call


def test_timer_rejects_zero_repeats_and_duplicate_names():
    with pytest.raises(ValueError, match="repeats"):
        time_round_robin([Contender("a", lambda: None)], 0)
    with pytest.raises(ValueError, match="unique"):
        time_round_robin([Contender("a", lambda: None), Contender("a", lambda: None)], 1)


def test_measurements_report_images_per_second_and_ratio_to_the_reference():
    timings = [
        Timing(Contender("fast", lambda: None, "n1"), [1.0, 0.5, 9.0]),
        Timing(Contender("ref", lambda: None), [2.0, 2.0, 1.0]),
    ]
    rows = from_timings(
        "attacks", "t", timings, device="cpu", batch=10, reference="ref", robust_accuracy={"fast": 0.25}, note="m"
    )
    fast, ref = rows
    assert fast.images_per_s_median == 10.0 and ref.images_per_s_median == 5.0
    assert fast.ratio_to_reference == 2.0 and ref.ratio_to_reference == 1.0
    assert fast.note == "m; n1" and fast.robust_accuracy == 0.25 and math.isnan(ref.robust_accuracy)
    per_call = from_timings("training", "t", timings, device="cpu", batch=8, images=40)
    assert per_call[0].images_per_s_median == 40.0 and per_call[0].batch == 8
    assert math.isnan(per_call[0].ratio_to_reference)
    with pytest.raises(ValueError, match="reference"):
        from_timings("attacks", "t", timings, device="cpu", batch=1, reference="missing")


def row(section: str, task: str, contender: str, ips: float = math.nan, **fields) -> Measurement:
    values = dict(device="cpu", batch=256, seconds_median=1.0, repeats=5, ratio_to_reference=math.nan)
    return Measurement(section, task, contender, images_per_s_median=ips, **{**values, **fields})


def measured_frame(
    early_stop: float = 0.0, fc_clean_ratio: float = 0.95, cold_seconds: float = 600, cascade_accuracy: float = 0.1
) -> pd.DataFrame:
    """Measurements of some targets' rows (robust accuracy ``early_stop`` for the early-stopping harness)."""
    pgd, deepfool = attacks.PGD_TASK, attacks.DEEPFOOL_TASK
    rows = [
        row("attacks", pgd, attacks.HARNESS, 100, ratio_to_reference=0.97, robust_accuracy=0.0),
        row("attacks", pgd, attacks.HARNESS_EARLY_STOP, 400, ratio_to_reference=3.9, robust_accuracy=early_stop),
        row("attacks", pgd, attacks.HAND_LOOP, 103, ratio_to_reference=1.0, robust_accuracy=0.0),
        row("deepfool", deepfool, attacks.HARNESS, 30, ratio_to_reference=1.5),
        row("deepfool", deepfool, attacks.FOOLBOX, 20, ratio_to_reference=1.0),
        row("deepfool", deepfool, attacks.ART, 12, ratio_to_reference=0.6),
        row("worst", attacks.WORST_TASK, attacks.SEPARATE, 10, ratio_to_reference=1.0, robust_accuracy=0.1),
        row("worst", attacks.WORST_TASK, attacks.CASCADE, 25, ratio_to_reference=2.5, robust_accuracy=cascade_accuracy),
        row(
            "training",
            training_speed.task_name("fc", "clean"),
            training_speed.HARNESS,
            90,
            ratio_to_reference=fc_clean_ratio,
        ),
        row("training", training_speed.task_name("fc", "clean"), training_speed.HAND_LOOP, 100, ratio_to_reference=1.0),
        row("run", run_wall.TASK, "cold", seconds_median=cold_seconds),
        row("run", run_wall.TASK, "warm", seconds_median=200.0, note=f"{FAILED} (exit 1): boom"),
        row("run", run_wall.TASK, "stored", seconds_median=4.0),
    ]
    return pd.DataFrame([r.__dict__ for r in rows])


def statuses(frame: pd.DataFrame) -> dict[str, str]:
    targets = evaluate_targets(frame)
    return dict(zip(targets["target"], targets["status"], strict=True))


def find(table: dict[str, str], *words: str) -> str:
    (match,) = [status for target, status in table.items() if all(word in target for word in words)]
    return match


def test_targets_are_computed_from_the_measurements():
    table = statuses(measured_frame())
    assert find(table, "stopping off") == MET  # 0.97 ≥ 0.95
    assert find(table, "stopping on") == MET  # 3.9 ≥ 3 at the same robust accuracy
    assert find(table, "DeepFool", "foolbox") == MET  # 30 ≥ 20
    assert find(table, "DeepFool", "art") == NOT_MET  # 30 / 12 = 2.5 < 3
    assert find(table, "cascade") == MET  # 2.5× at the same robust accuracy
    assert find(table, "vae-fc clean") == MET  # 1 / 0.95 ≤ 1.1
    assert find(table, "vae-cnn pgd") == NOT_MEASURED
    assert find(table, "cold") == MET and find(table, "stored") == MET
    assert find(table, "warm") == NOT_MET  # the run failed, whatever its time


def test_targets_turn_not_met_when_the_measurements_miss_them():
    table = statuses(measured_frame(early_stop=0.05, fc_clean_ratio=0.85, cold_seconds=2000, cascade_accuracy=0.2))
    assert find(table, "cascade") == NOT_MET  # faster, but it leaves more points standing
    assert find(table, "stopping on") == NOT_MET  # fast, but robust accuracy differs by 5 points
    assert find(table, "vae-fc clean") == NOT_MET  # 1 / 0.85 > 1.1
    assert find(table, "cold") == NOT_MET  # > 30 min
    everything_missing = statuses(measured_frame().iloc[0:0])
    assert set(everything_missing.values()) == {NOT_MEASURED}


def test_the_autoattack_target_compares_against_torchattacks_at_the_standard_budgets():
    task, target = attacks.AUTOATTACK_TASK, "autoattack"

    def frame(ratio: float, accuracy: float) -> pd.DataFrame:
        return to_frame(
            [
                row("autoattack", task, attacks.HARNESS, 2, ratio_to_reference=ratio, robust_accuracy=accuracy),
                row("autoattack", task, attacks.TORCHATTACKS_STANDARD, 1, ratio_to_reference=1.0, robust_accuracy=0.5),
                row("autoattack", task, attacks.TORCHATTACKS, 9, ratio_to_reference=9.0, robust_accuracy=0.6),
            ]
        )

    assert find(statuses(frame(2.0, 0.5)), target) == MET
    assert find(statuses(frame(0.5, 0.5)), target) == NOT_MET  # slower than the same budgets
    assert find(statuses(frame(2.0, 0.6)), target) == NOT_MET  # faster, but weaker
    assert find(statuses(measured_frame()), target) == NOT_MEASURED


def test_the_quantized_target_compares_with_the_faster_pointwise_at_a_median_no_larger():
    from benchmark.perf import quantized

    task, target = quantized.task_name(False), "quantized (score queries)"

    def frame(ips: float, median: float) -> pd.DataFrame:
        return to_frame(
            [
                row("quantized", task, quantized.SCORES, ips, median_perturbation=median),
                row("quantized", task, quantized.POINTWISE, 2.0, median_perturbation=1.7),
                row("quantized", task, quantized.FOOLBOX, 1.0, median_perturbation=2.0),
            ]
        )

    assert find(statuses(frame(20.0, 1.0)), target) == MET  # 10× the faster (2.0 points/s)
    assert find(statuses(frame(15.0, 1.0)), target) == NOT_MET  # 7.5× only
    assert find(statuses(frame(30.0, 1.8)), target) == NOT_MET  # fast, but larger perturbations
    assert find(statuses(measured_frame()), target) == NOT_MEASURED


def test_the_sparse_target_compares_sparse_rs_with_foolbox_l0_fmn_at_a_robust_accuracy_no_higher():
    from benchmark.perf import sparse

    task, target = sparse.task_name(False), "sparse-rs ≥ 1×"

    def frame(ratio: float, accuracy: float) -> pd.DataFrame:
        return to_frame(
            [
                row("sparse", task, sparse.SPARSE_RS, 10 * ratio, ratio_to_reference=ratio, robust_accuracy=accuracy),
                row("sparse", task, sparse.FOOLBOX_FMN, 10.0, ratio_to_reference=1.0, robust_accuracy=0.30),
                row("sparse", task, sparse.POINTWISE, 5.0, ratio_to_reference=0.5, robust_accuracy=0.60),
            ]
        )

    assert find(statuses(frame(1.5, 0.20)), target) == MET
    assert find(statuses(frame(0.8, 0.20)), target) == NOT_MET  # stronger, but slower
    assert find(statuses(frame(3.0, 0.40)), target) == NOT_MET  # faster, but weaker
    assert find(statuses(measured_frame()), target) == NOT_MEASURED


def test_report_writes_csv_and_markdown_with_machine_header_and_targets(tmp_path):
    frame = measured_frame()
    rows = [Measurement(**record) for record in frame.to_dict("records")]
    csv_path, md_path = write_report(rows, tmp_path / "out", CPU, "bench perf --test", 5)
    written = pd.read_csv(csv_path)
    assert tuple(written.columns) == COLUMNS and len(written) == len(rows)
    text = md_path.read_text()
    for expected in ("# Performance suite", "`bench perf --test`", "CPU:", "logical cores", "torch threads:"):
        assert expected in text
    assert "device: `cpu:" in text and "torch=" in text and "foolbox=" in text
    assert "## Targets" in text and "| not met" in text and "## deepfool" in text and "## abs" not in text
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temporary file


def test_run_section_runs_cold_warm_and_stored_on_one_cache(tmp_path):
    calls: list[list[str]] = []

    def spawn(argv: list[str], log_path: Path) -> tuple[float, int]:
        calls.append(argv)
        log_path.write_text("bench: error: something broke\n")
        return float(len(calls)), 0 if len(calls) < 3 else 2

    settings = PerfSettings(device=CPU, cache_dir=tmp_path, data_dir=tmp_path / "mnist", download=False)
    rows = run_wall.run_rows(Workbench(settings), "run", spawn)
    assert [r.contender for r in rows] == ["cold", "warm", "stored"] and [r.seconds_median for r in rows] == [1, 2, 3]

    def flag(argv: list[str], name: str) -> str:
        return argv[argv.index(name) + 1]

    assert all(argv[: len(run_wall.RUN_ARGS)] == list(run_wall.RUN_ARGS) for argv in calls)
    assert len({flag(argv, "--cache-dir") for argv in calls}) == 1  # one cache: cold, then warm
    cold, warm, stored = (flag(argv, "--out") for argv in calls)
    assert cold != warm == stored  # warm computes every cell in a fresh directory, stored reruns it
    assert all("--no-download" in argv and flag(argv, "--data-dir") == str(tmp_path / "mnist") for argv in calls)
    assert rows[0].note == "" and rows[2].note == f"{FAILED} (exit 2): bench: error: something broke"


def test_run_section_times_runs_on_n_test_points_and_says_so(tmp_path):
    calls: list[list[str]] = []

    def spawn(argv: list[str], log_path: Path) -> tuple[float, int]:
        calls.append(argv)
        return 1.0, 0

    settings = PerfSettings(device=CPU, cache_dir=tmp_path, n_test=50)
    rows = run_wall.run_rows(Workbench(settings), "run", spawn)
    assert all(argv[argv.index("--n-test") + 1] == "50" for argv in calls) and len(calls) == 3
    assert {row.task for row in rows} == {f"{run_wall.TASK} --n-test 50"}  # not the target's full quick run
    assert "--n-test" not in PerfSettings(device=CPU, cache_dir=tmp_path).run_flags()


def test_sections_parse_in_suite_order_and_run_is_opt_in():
    assert "run" not in suite.parse_sections(None)
    assert suite.parse_sections("run, attacks") == ("attacks", "run")
    with pytest.raises(BenchError, match="unknown perf section 'pgd'; valid: attacks, deepfool"):
        suite.parse_sections("attacks,pgd")
    with pytest.raises(BenchError, match="no perf section"):
        suite.parse_sections(",")


def test_a_section_run_alone_keeps_the_other_sections_of_perf_csv(tmp_path, monkeypatch):
    def fake(section: str, contender: str):
        return lambda bench, name: [row(name, f"{section} task", contender, 1.0)]

    monkeypatch.setitem(suite.SECTION_RUNNERS, "abs", fake("abs", "first"))
    monkeypatch.setitem(suite.SECTION_RUNNERS, "run", fake("run", "only"))
    settings = PerfSettings(device=CPU, cache_dir=tmp_path / "cache")
    suite.run_perf(settings, ("abs", "run"), tmp_path, "bench perf")
    monkeypatch.setitem(suite.SECTION_RUNNERS, "abs", fake("abs", "second"))
    _, md_path = suite.run_perf(settings, ("abs",), tmp_path, "bench perf")
    frame = pd.read_csv(tmp_path / "perf.csv")
    assert frame["contender"].tolist() == ["second", "only"]  # abs measured again, run kept, suite order
    assert "kept from an earlier run in this directory: run" in md_path.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sections", "attacks,nope"], "unknown perf section 'nope'"),
        (["--repeats", "0"], "--repeats must be between 1 and 1,000"),
        (["--batch-size", "-3"], "--batch-size must be between 1 and 100,000"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_perf_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main(["perf", *args, "--out", str(tmp_path), "--cache-dir", str(tmp_path)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("bench: error: ") and message in stderr and stderr.count("\n") == 1


def test_sections_of_mnist_only_defenses_are_left_out_or_refused_on_other_datasets():
    from benchmark.perf.suite import parse_sections

    assert parse_sections(None, "cifar10") == ("attacks", "deepfool", "worst", "decision", "startup")
    assert parse_sections("attacks,scale", "fashion-mnist") == ("attacks", "scale")
    with pytest.raises(BenchError, match="perf section 'abs' times MNIST-only defenses"):
        parse_sections("attacks,abs", "cifar10")
    with pytest.raises(BenchError, match="unknown dataset 'cifar'"):
        parse_sections(None, "cifar")
