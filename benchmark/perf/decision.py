"""The ``decision`` section: the harness's batched HopSkipJump against ART's one-image-at-a-time HopSkipJump.

Both attack the same test images of the trained ``cnn`` in L2 from the same kind of start (the cell
generator's random images, else the nearest other-class image, moved to the boundary) with matched
budgets: ART's ``max_iter`` iterations of at most ``init_eval·√t`` gradient queries against the
harness's total query budget of about the same size.  Images/s and the median L2 perturbation of the
points each breaks are reported: faster only counts at a perturbation no larger.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from attacks.base import ATTACKS
from benchmark.perf.measurements import DECISION, Measurement, from_timings
from benchmark.perf.timing import Contender, Timing, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from foundation.parameters import frozen_parameters

HARNESS, ART = "harness hsj (batched)", "art.hsj (one image at a time)"
#: (ART iterations, initial gradient queries); the harness gets the queries ART's schedule spends.
BUDGETS = {False: (10, 100), True: (2, 20)}
#: Images attacked: ART walks them one by one, so fewer than the gradient sections' batch.
IMAGES = {False: 64, True: 8}


def task_name(quick_check: bool) -> str:
    iterations, init_eval = BUDGETS[quick_check]
    return f"hsj L2, {iterations} iterations (init_eval {init_eval}), ~{_queries(quick_check):,} queries per image"


def _queries(quick_check: bool) -> int:
    """ART's gradient queries over its iterations plus a bisection (~15 queries) per iteration and the start."""
    iterations, init_eval = BUDGETS[quick_check]
    return int(sum(init_eval * np.sqrt(t) for t in range(1, iterations + 1)) + 15 * (iterations + 1))


def _contenders(model: nn.Module, x: Tensor, y: Tensor, quick_check: bool) -> list[Contender]:
    iterations, init_eval = BUDGETS[quick_check]
    harness = ATTACKS.build(f"hsj:queries={_queries(quick_check)}:init_eval={init_eval}", "paper")
    art = ATTACKS.build(f"art.hsj:max_iter={iterations}:max_eval=10000:init_eval={init_eval}", "paper")

    def run(attack) -> Callable[[], Tensor]:
        attack = attack.for_threat_model("l2")
        generator = lambda: torch.Generator(device=x.device).manual_seed(0)  # noqa: E731
        return lambda: attack.run_minimal_curve(model, x, y, [1.5], generator=generator())[1]

    return [
        Contender(HARNESS, run(harness), "all images step together; queries through the table's rule"),
        Contender(ART, run(art), "ART HopSkipJump, numpy round trip per image"),
    ]


@torch.no_grad()
def median_perturbation(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> tuple[float, float]:
    """The median L2 size over all points (∞ where not broken; 0 where wrong clean) and the share broken."""
    clean_wrong = model(x).argmax(dim=1) != y
    broken = model(x_adv).argmax(dim=1) != y
    sizes = (x_adv - x).flatten(1).norm(dim=1)
    sizes = torch.where(
        clean_wrong, torch.zeros_like(sizes), torch.where(broken, sizes, torch.full_like(sizes, np.inf))
    )
    return float(sizes.median()), float(broken.float().mean())


def decision_rows(bench: Workbench, section: str = DECISION) -> list[Measurement]:
    model, origin = bench.cnn
    quick_check = bench.settings.quick_check
    batch = bench.test_batch(IMAGES[quick_check])
    x, y = batch.x, batch.y
    task = task_name(quick_check)
    log(f"{task}: {bench.settings.repeats} rounds on {len(x)} images")
    timings, sizes = timed_minimal(bench, _contenders(model, x, y, quick_check), model, x, y)
    rows = from_timings(section, task, timings, device=bench.device_name, batch=len(x), reference=ART, note=origin)
    return with_perturbations(rows, sizes, "median L2 perturbation")


def timed_minimal(
    bench: Workbench, contenders: list[Contender], judge: nn.Module, x: Tensor, y: Tensor
) -> tuple[list[Timing], dict[str, tuple[float, float]]]:
    """The contenders timed round-robin, and per contender the median size of its examples and the share broken
    as ``judge`` classifies them."""
    with frozen_parameters(judge):
        timings = time_round_robin(contenders, bench.settings.repeats, synchronize=synchronizer(bench.device))
        sizes = {timing.name: median_perturbation(judge, x, y, timing.output) for timing in timings}
    return timings, sizes


def with_perturbations(
    rows: list[Measurement], sizes: dict[str, tuple[float, float]], measure: str, tail: str = ""
) -> list[Measurement]:
    """The rows with each contender's median perturbation (``median_perturbation`` and the note) and share broken."""
    return [
        Measurement(
            **{
                **row.__dict__,
                "note": f"{row.note}; {measure} {sizes[row.contender][0]:.3f}, "
                f"{100 * sizes[row.contender][1]:.0f} % broken{tail}",
                "median_perturbation": sizes[row.contender][0],
            }
        )
        for row in rows
    ]
