"""The ``sparse`` section: the harness's L0 attacks against the libraries' at Schott et al.'s 12 pixels.

All contenders attack the same test images of the trained ``cnn`` in L0 at ε = 12 changed pixels: the harness's
Sparse-RS (score-based random search, Croce et al.; its authors' code is not packaged, so no run of theirs), the
harness's batched Pointwise in L0 (labels only), Foolbox's ``L0FMNAttack`` (gradients; the fast minimum-norm
attack's own L0 code, called directly) and, where adv-lib installs, adv-lib's ``sigma_zero`` (σ-zero, Cinà et al.,
called directly).  Minimisation attacks' examples keep their 12 most changed pixels (``project_l0``).  Points/s
and the robust accuracy at 12 pixels are reported: faster only counts at a robust accuracy no higher.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor, nn

from attacks.base import ATTACKS, project_l0
from benchmark.perf.attack_contenders import robust_accuracy
from benchmark.perf.measurements import SPARSE, Measurement, from_timings
from benchmark.perf.timing import Contender, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from foundation.parameters import frozen_parameters

EPS = 12
SPARSE_RS = "harness sparse-rs (scores)"
POINTWISE = "harness pointwise L0 (labels)"
FOOLBOX_FMN = "foolbox L0FMNAttack (gradients)"
SIGMA_ZERO = "adv-lib sigma_zero (gradients)"
#: Images attacked, and the budgets: Sparse-RS's queries, Pointwise's queries, FMN's and σ-zero's steps.
IMAGES = {False: 64, True: 8}
BUDGETS = {False: (1000, 5000, 100, 1000), True: (100, 300, 10, 50)}


def task_name(quick_check: bool) -> str:
    queries, pointwise, fmn, sigma = BUDGETS[quick_check]
    return (
        f"L0 ε = {EPS} pixels on {IMAGES[quick_check]} images: sparse-rs {queries:,} queries, pointwise "
        f"{pointwise:,} queries, FMN {fmn} steps, σ-zero {sigma} steps"
    )


def _foolbox_fmn(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
    import foolbox

    fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    return project_l0(x, foolbox.attacks.L0FMNAttack(steps=steps)(fmodel, x, y, epsilons=None)[0], EPS)


def _sigma_zero(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
    from adv_lib.attacks import sigma_zero

    return project_l0(x, sigma_zero(model, x, y, num_steps=steps), EPS)


def _contenders(model: nn.Module, x: Tensor, y: Tensor, quick_check: bool) -> list[Contender]:
    queries, pointwise, fmn, sigma = BUDGETS[quick_check]

    def run(spec: str) -> Callable[[], Tensor]:
        attack = ATTACKS.build(spec, "paper").for_threat_model("l0")
        generator = lambda: torch.Generator(device=x.device).manual_seed(0)  # noqa: E731
        return lambda: attack(model, x, y, EPS, generator=generator())

    contenders = [
        Contender(SPARSE_RS, run(f"sparse-rs:queries={queries}"), "all images query together"),
        Contender(
            POINTWISE,
            run(f"pointwise:queries={pointwise}:nearest=3:boundary_queries=0"),
            "pixel resets from the 3 nearest other-class images",
        ),
        Contender(FOOLBOX_FMN, lambda: _foolbox_fmn(model, x, y, fmn), "Foolbox 3, called directly"),
    ]
    if importlib.util.find_spec("adv_lib") is not None:
        contenders.append(Contender(SIGMA_ZERO, lambda: _sigma_zero(model, x, y, sigma), "adv-lib, called directly"))
    return contenders


def sparse_rows(bench: Workbench, section: str = SPARSE) -> list[Measurement]:
    model, origin = bench.cnn
    quick_check = bench.settings.quick_check
    batch = bench.test_batch(IMAGES[quick_check])
    x, y = batch.x, batch.y
    task = task_name(quick_check)
    log(f"{task}: {bench.settings.repeats} rounds")
    with frozen_parameters(model):
        contenders = _contenders(model, x, y, quick_check)
        timings = time_round_robin(contenders, bench.settings.repeats, synchronize=synchronizer(bench.device))
        accuracies = {timing.name: robust_accuracy(model, x, y, timing.output) for timing in timings}
    return from_timings(
        section,
        task,
        timings,
        device=bench.device_name,
        batch=len(x),
        reference=FOOLBOX_FMN,
        robust_accuracy=accuracies,
        note=origin,
    )
