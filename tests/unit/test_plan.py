"""Planning: keys once, stored cells left out, jobs in dependency order, picklable parts, dry-run estimates."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from benchmark.config.profiles import get_profile
from benchmark.config.run_config import RunConfig
from benchmark.run.dry_run import Timings, _critical_path
from benchmark.run.plan import SURROGATE_SEED_OFFSET, Planner
from benchmark.store.result_store import ResultStore
from foundation.registry import Spec
from tests.synthetic import cell_record

REPO = Path(__file__).resolve().parents[2]


def config(defenses: str, attacks: str, epsilons=(0.1, 0.3), profile="smoke", **extra) -> RunConfig:
    return RunConfig(
        defenses=tuple(Spec.parse(d) for d in defenses.split(",")),
        attacks=tuple(Spec.parse(a) for a in attacks.split(",")),
        epsilons=epsilons,
        profile=get_profile(profile),
        **extra,
    )


def test_the_committed_results_are_found_under_the_planners_keys():
    """Keys did not change when planning became its own step: the committed quick cells count as stored."""
    plan = Planner(config("cnn,vae", "fgsm,pgd,deepfool", (0.1, 0.2, 0.3), "quick")).plan(ResultStore(REPO / "results"))
    assert plan.cells == () and plan.stored == 18 and plan.jobs == ()


def test_a_plan_lists_jobs_in_dependency_order_and_every_pending_cell(tmp_path):
    plan = Planner(config("vae", "fgsm,deepfool,transfer")).plan(ResultStore(tmp_path))
    assert [job.label for job in plan.jobs] == ["cnn", "vae", f"cnn (surrogate, seed {SURROGATE_SEED_OFFSET})"]
    assert plan.jobs[1].dependencies == (plan.jobs[0],)
    # fgsm and transfer: one cell per ε; deepfool (a minimisation attack): one run for the curve
    assert [(cell.attack.name, cell.epsilons) for cell in plan.cells] == [
        ("fgsm", (0.1,)),
        ("fgsm", (0.3,)),
        ("deepfool", (0.1, 0.3)),
        ("transfer", (0.1,)),
        ("transfer", (0.3,)),
    ]
    assert plan.pending_records == 6 and len({key for cell in plan.cells for key in cell.keys}) == 6
    transfer = plan.cells[-1]
    assert transfer.surrogate_key == plan.jobs[2].key and transfer.prediction_repeats == 3 and transfer.eot_samples == 2
    assert pickle.loads(pickle.dumps(plan)) == plan  # what an executor ships to its workers


def test_stored_cells_are_left_out_and_a_curve_with_a_missing_record_stays(tmp_path):
    store, planner = ResultStore(tmp_path), Planner(config("cnn", "fgsm,deepfool"))
    fgsm, _, deepfool = planner.plan(store).cells
    store.write(cell_record(fgsm.keys[0]))
    store.write(cell_record(deepfool.keys[0]))
    plan = planner.plan(store)
    assert plan.stored == 2 and [(cell.attack.name, cell.epsilons) for cell in plan.cells] == [
        ("fgsm", (0.3,)),
        ("deepfool", (0.1, 0.3)),
    ]


def test_keys_depend_on_what_changes_the_numbers():
    base = Planner(config("vae", "pgd")).plan(ResultStore(Path("/nonexistent"))).cells[0]
    for changed in (
        config("vae", "pgd:steps=20"),
        config("vae", "pgd", seed=1),
        config("vae", "pgd", eot_samples=8),
        config("vae", "pgd", prediction_repeats=7),
        config("vae:deterministic=true", "pgd"),
    ):
        other = Planner(changed).plan(ResultStore(Path("/nonexistent"))).cells[0]
        assert other.keys[0] != base.keys[0]


def test_estimates_use_measured_timings_and_say_unknown_otherwise(tmp_path):
    plan = Planner(config("vae", "fgsm")).plan(ResultStore(tmp_path))
    seconds = {"cnn": 10.0, "vae": 20.0}
    records = [cell_record(defense="vae", attack="fgsm", profile="smoke", attack_seconds=5.0)]
    timings = Timings(records, [{"defense": d, "profile": "smoke", "train_seconds": s} for d, s in seconds.items()])
    job_seconds = {job.key: timings.train(job, "smoke") for job in plan.jobs}
    assert _critical_path(plan, job_seconds, timings) == pytest.approx(20 + 10 + 5)  # vae after cnn, then a cell
    unknown = Timings([], [])
    assert _critical_path(plan, {job.key: None for job in plan.jobs}, unknown) is None
