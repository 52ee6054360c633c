"""Attack sections: PGD-40 and FGSM (harness vs hand loop vs torchattacks vs Foolbox vs ART), DeepFool, and
a worst case over several attacks (separate runs vs the cascade).

All contenders attack the same batch of test images at ε = 0.3 with matched budgets (PGD: random start,
40 signed steps of 0.01; DeepFool: L∞, 50 steps, 10 candidates, overshoot 0.02).  The libraries are
called directly, in the plainest efficient way; their wrappers (model, classifier) are built once,
outside the timed calls.  Weight gradients are off throughout (as the runner does while attacking).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.art_backend import DeepFoolConfig
from attacks.base import ATTACKS
from attacks.gradient import PGDConfig
from benchmark.perf.measurements import Measurement, from_timings
from benchmark.perf.timing import Contender, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from foundation.parameters import frozen_parameters

EPS = 0.3
PGD_STEPS = 40
PGD_STEP_SIZE = 0.01
HARNESS, HARNESS_EARLY_STOP, HAND_LOOP = "harness", "harness early-stop", "hand loop"
TORCHATTACKS, FOOLBOX, ART = "torchattacks", "foolbox", "art"
PGD_TASK, FGSM_TASK, DEEPFOOL_TASK = f"pgd-40 ε={EPS}", f"fgsm ε={EPS}", f"deepfool L∞ ε={EPS}"
#: The worst case over these attacks, as separate runs or as one cascade.
WORST_CASE_MEMBERS = ("fgsm", "pgd", "deepfool")
WORST_TASK = f"worst case of {', '.join(WORST_CASE_MEMBERS)} ε={EPS}"
SEPARATE, CASCADE = "separate attacks", "cascade"
#: AutoAttack at its standard budgets (APGD-CE, APGD-T, FAB-T with 100 steps, Square with 5,000 queries).
AUTOATTACK_TASK = f"autoattack standard L∞ ε={EPS}"
STANDARD_STEPS = 100
TORCHATTACKS_STANDARD = "torchattacks, standard budgets"


def hand_pgd(model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
    """The limit: random start, 40 signed steps, projection and clamp; gradients w.r.t. the input only."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_adv = (x + (2 * noise - 1) * EPS).clamp(0.0, 1.0)
    for _ in range(PGD_STEPS):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y, reduction="sum"), x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv.detach() + PGD_STEP_SIZE * grad.sign(), x - EPS), x + EPS)
        x_adv = x_adv.clamp(0.0, 1.0)
    return x_adv


def hand_fgsm(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return (x.detach() + EPS * grad.sign()).clamp(0.0, 1.0)


@torch.no_grad()
def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> float:
    """Share of points classified correctly both clean and under attack (the leaderboard's rule)."""
    correct = (model(x).argmax(dim=1) == y) & (model(x_adv).argmax(dim=1) == y)
    return float(correct.float().mean())


def harness_pgd_specs() -> list[tuple[str, str]]:
    """(contender, spec) of the harness rows: early stopping off and on once PGD has the option."""
    if "early_stop" in {field.name for field in dataclasses.fields(PGDConfig)}:
        return [(HARNESS, "pgd:early_stop=false"), (HARNESS_EARLY_STOP, "pgd:early_stop=true")]
    return [(HARNESS, "pgd")]


def _harness(spec: str, model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], Tensor]:
    attack = ATTACKS.build(spec, "paper")
    return lambda: attack(model, x, y, EPS, generator=torch.Generator(device=x.device).manual_seed(0))


def _art_classifier(model: nn.Module, x: Tensor) -> Any:
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="gpu" if x.device.type == "cuda" else "cpu",
    )


def _art(attack: Any, x: Tensor, y: Tensor) -> Callable[[], Tensor]:
    def run() -> Tensor:
        x_adv = attack.generate(x=x.cpu().numpy(), y=y.cpu().numpy())
        return torch.from_numpy(np.asarray(x_adv, dtype=np.float32)).to(x.device)

    return run


def _foolbox(attack: Any, model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], Tensor]:
    import foolbox

    fmodel = foolbox.PyTorchModel(model, bounds=(0.0, 1.0), device=x.device)
    return lambda: attack(fmodel, x, y, epsilons=EPS)[1]


def pgd_contenders(model: nn.Module, x: Tensor, y: Tensor) -> list[Contender]:
    import foolbox
    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    art_pgd = ProjectedGradientDescentPyTorch(
        _art_classifier(model, x),
        norm=np.inf,
        eps=EPS,
        eps_step=PGD_STEP_SIZE,
        max_iter=PGD_STEPS,
        num_random_init=1,
        batch_size=len(x),
        verbose=False,
    )
    ta_pgd = torchattacks.PGD(model, eps=EPS, alpha=PGD_STEP_SIZE, steps=PGD_STEPS, random_start=True)
    fb_pgd = foolbox.attacks.LinfPGD(steps=PGD_STEPS, abs_stepsize=PGD_STEP_SIZE, random_start=True)
    return [
        *(
            Contender(name, _harness(spec, model, x, y), f"ATTACKS.build({spec!r})")
            for name, spec in harness_pgd_specs()
        ),
        Contender(HAND_LOOP, lambda: hand_pgd(model, x, y, torch.Generator(device=x.device).manual_seed(0))),
        Contender(TORCHATTACKS, lambda: ta_pgd(x, y)),
        Contender(FOOLBOX, _foolbox(fb_pgd, model, x, y)),
        Contender(ART, _art(art_pgd, x, y), "ProjectedGradientDescentPyTorch, numpy round trip"),
    ]


def fgsm_contenders(model: nn.Module, x: Tensor, y: Tensor) -> list[Contender]:
    import foolbox
    import torchattacks
    from art.attacks.evasion import FastGradientMethod

    art_fgsm = FastGradientMethod(_art_classifier(model, x), norm=np.inf, eps=EPS, batch_size=len(x))
    ta_fgsm = torchattacks.FGSM(model, eps=EPS)
    return [
        Contender(HARNESS, _harness("fgsm", model, x, y)),
        Contender(HAND_LOOP, lambda: hand_fgsm(model, x, y)),
        Contender(TORCHATTACKS, lambda: ta_fgsm(x, y)),
        Contender(FOOLBOX, _foolbox(foolbox.attacks.LinfFastGradientAttack(random_start=False), model, x, y)),
        Contender(ART, _art(art_fgsm, x, y), "FastGradientMethod, numpy round trip"),
    ]


def deepfool_contenders(model: nn.Module, x: Tensor, y: Tensor) -> list[Contender]:
    import foolbox
    from art.attacks.evasion import DeepFool

    cfg = DeepFoolConfig()
    fb_deepfool = foolbox.attacks.LinfDeepFoolAttack(
        steps=cfg.steps, candidates=cfg.candidates, overshoot=cfg.overshoot, loss="logits"
    )
    art_deepfool = DeepFool(
        _art_classifier(model, x),
        max_iter=cfg.steps,
        epsilon=cfg.overshoot,
        nb_grads=cfg.candidates,
        batch_size=len(x),
        verbose=False,
    )
    art_run = _art(art_deepfool, x, y)

    def art_projected() -> Tensor:
        return torch.minimum(torch.maximum(art_run(), x - EPS), x + EPS).clamp(0.0, 1.0)

    return [
        Contender(HARNESS, _harness("deepfool", model, x, y)),
        Contender(FOOLBOX, _foolbox(fb_deepfool, model, x, y)),
        Contender(ART, art_projected, "ART's DeepFool is L2; projected onto the L∞ ball"),
    ]


def worst_case_contenders(model: nn.Module, x: Tensor, y: Tensor) -> list[Contender]:
    """Every member on every point (then the per-point worst case) against the cascade of the same members."""
    members = [ATTACKS.build(name, "paper") for name in WORST_CASE_MEMBERS]

    def separately() -> Tensor:
        x_adv = x.clone()
        for attack in reversed(members):  # an earlier member's example wins where several fool a point
            candidates = attack(model, x, y, EPS, generator=torch.Generator(device=x.device).manual_seed(0))
            with torch.no_grad():
                fooled = model(candidates).argmax(dim=1) != y
            x_adv[fooled] = candidates[fooled]
        return x_adv

    spec = f"cascade:members={'+'.join(WORST_CASE_MEMBERS)}"
    return [
        Contender(SEPARATE, separately, "each member on every point, as separate cells run"),
        Contender(CASCADE, _harness(spec, model, x, y), "each member only on the points still standing"),
    ]


def autoattack_contenders(model: nn.Module, x: Tensor, y: Tensor) -> list[Contender]:
    """The harness's ``autoattack`` at the paper profile (the standard budgets: 100 APGD and FAB steps, 5,000
    Square queries) against torchattacks' own ``AutoAttack(version="standard")``, whose APGD, APGD-T and FAB
    run torchattacks' default of 10 steps: as it ships, and with those members set to the standard 100 (the
    reference: the same budgets)."""
    import torchattacks

    def reference(steps: int | None) -> Callable[[], Tensor]:
        attack = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard", n_classes=10, seed=0)
        for member in attack._autoattack.attacks:
            if steps is not None and hasattr(member, "steps"):
                member.steps = steps
        return lambda: attack(x, y)

    return [
        Contender(HARNESS, _harness("autoattack", model, x, y), "ATTACKS.build('autoattack', 'paper')"),
        Contender(TORCHATTACKS_STANDARD, reference(STANDARD_STEPS), "torchattacks.AutoAttack, members at 100 steps"),
        Contender(TORCHATTACKS, reference(None), "torchattacks.AutoAttack as shipped: 10 APGD/APGD-T/FAB steps"),
    ]


#: task -> (contenders, reference)
ATTACK_TASKS = {
    PGD_TASK: (pgd_contenders, HAND_LOOP),
    FGSM_TASK: (fgsm_contenders, HAND_LOOP),
    DEEPFOOL_TASK: (deepfool_contenders, FOOLBOX),
    WORST_TASK: (worst_case_contenders, SEPARATE),
    AUTOATTACK_TASK: (autoattack_contenders, TORCHATTACKS_STANDARD),
}


def attack_rows(bench: Workbench, section: str, tasks: list[str]) -> list[Measurement]:
    """Time ``tasks`` (keys of ``ATTACK_TASKS``) on the trained ``cnn`` and a batch of test images."""
    model, origin = bench.cnn
    batch = bench.test_batch(bench.settings.batch_size)
    x, y = batch.x, batch.y
    rows: list[Measurement] = []
    with frozen_parameters(model):
        for task in tasks:
            build, reference = ATTACK_TASKS[task]
            log(f"{task}: {bench.settings.repeats} rounds on {len(x)} images")
            timings = time_round_robin(
                build(model, x, y), bench.settings.repeats, synchronize=synchronizer(bench.device)
            )
            accuracies = {timing.name: robust_accuracy(model, x, y, timing.output) for timing in timings}
            rows += from_timings(
                section,
                task,
                timings,
                device=bench.device_name,
                batch=len(x),
                reference=reference,
                robust_accuracy=accuracies,
                note=origin,
            )
    return rows
