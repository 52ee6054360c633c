"""The ``quantized`` section: the threshold-aware attack against the Pointwise Attacks on a binarised model.

All contenders attack the same test images of the trained ``cnn`` behind ``x ≥ 0.5`` in L2, as Schott et al.'s
"binary CNN": the harness's ``quantized`` through score queries on the hard threshold (no gradient path) and
through the input gradient of its straight-through twin, the harness's batched ``pointwise`` and Foolbox's
``PointwiseAttack`` (its default salt-and-pepper start), both label-only on the hard threshold.  Points/s and
the median ε* over all points (∞ where not broken) are reported: faster only counts at a median no larger.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from attacks.base import ATTACKS
from benchmark.perf.decision import timed_minimal, with_perturbations
from benchmark.perf.measurements import QUANTIZED, Measurement, from_timings
from benchmark.perf.timing import Contender
from benchmark.perf.workbench import Workbench, log
from foundation.adaptive import BPDA
from foundation.quantizers import Quantizer

SCORES = "harness quantized (score queries, hard threshold)"
GRADIENT = "harness quantized (gradient, straight-through twin)"
POINTWISE = "harness pointwise (batched, labels)"
FOOLBOX = "foolbox PointwiseAttack (labels)"
#: Images attacked: Foolbox's Pointwise Attack walks pixel by pixel, so a small batch.
IMAGES = {False: 64, True: 8}
#: The harness Pointwise's budget (queries per image, one start from the nearest other-class image).
POINTWISE_SPEC = {False: "pointwise:queries=5000:nearest=1:boundary_queries=0", True: "pointwise:queries=500:nearest=1"}


def task_name(quick_check: bool) -> str:
    return f"L2 minimal adversarials of the binarised cnn (x ≥ 0.5), {IMAGES[quick_check]} images"


class Binarised(nn.Module):
    """``model`` behind ``x ≥ 0.5``: a hard threshold, or straight-through (BPDA) in the backward pass."""

    def __init__(self, model: nn.Module, straight_through: bool) -> None:
        super().__init__()
        self.model = model
        self.binarize = BPDA(self._hard) if straight_through else self._hard

    @staticmethod
    def _hard(x: Tensor) -> Tensor:
        return (x >= 0.5).to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.binarize(x))


def _foolbox_pointwise(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    import foolbox

    fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    return foolbox.attacks.PointwiseAttack()(fmodel, x, y, epsilons=None)[0]


def _contenders(hard: nn.Module, twin: nn.Module, x: Tensor, y: Tensor, quick_check: bool) -> list[Contender]:
    binary = Quantizer.binary(0.5)

    def run(spec: str, model: nn.Module) -> Callable[[], Tensor]:
        attack = ATTACKS.build(spec, "quick").for_threat_model("l2").with_quantizer(binary)
        generator = lambda: torch.Generator(device=x.device).manual_seed(0)  # noqa: E731
        return lambda: attack.run_minimal_curve(model, x, y, [1.5], generator=generator())[1]

    return [
        Contender(SCORES, run("quantized:gradients=false", hard), "every single crossing measured, re-swept"),
        Contender(GRADIENT, run("quantized", twin), "crossings ranked by the straight-through gradient"),
        Contender(POINTWISE, run(POINTWISE_SPEC[quick_check], hard), "label-only, all images step together"),
        Contender(FOOLBOX, lambda: _foolbox_pointwise(hard, x, y), "Foolbox 3, salt-and-pepper start"),
    ]


def quantized_rows(bench: Workbench, section: str = QUANTIZED) -> list[Measurement]:
    cnn, origin = bench.cnn
    hard, twin = Binarised(cnn, straight_through=False).eval(), Binarised(cnn, straight_through=True).eval()
    quick_check = bench.settings.quick_check
    batch = bench.test_batch(IMAGES[quick_check])
    x, y = batch.x, batch.y
    task = task_name(quick_check)
    log(f"{task}: {bench.settings.repeats} rounds")
    timings, sizes = timed_minimal(bench, _contenders(hard, twin, x, y, quick_check), hard, x, y)
    better = min((t for t in timings if t.name in (POINTWISE, FOOLBOX)), key=lambda t: t.median).name
    rows = from_timings(section, task, timings, device=bench.device_name, batch=len(x), reference=better, note=origin)
    return with_perturbations(rows, sizes, "median ε*", "; reference: the faster Pointwise")
