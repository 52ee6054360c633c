"""ABS inference throughput: ``predict`` of the ``abs`` defense on a batch, its latent bank decoded beforehand;
and the cost of PGD on ABS with its verdict read off the attacked module's logits (what the harness does) or
judged by ``deployed_model()``, a second module that runs a second latent search per step (what it did).

The weights are random (ABS is not trained for perf): inference costs the same whatever they are.  The
budget is the ``quick`` profile's (bank 2,000, 10 steps; ``smoke`` under ``--quick-check``), on at
most one inference chunk of images.
"""

from __future__ import annotations

import torch

from attacks.base import ATTACKS
from attacks.criteria import Criterion, Misclassification
from benchmark.perf.measurements import Measurement, from_timings
from benchmark.perf.timing import Contender, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from benchmark.run.evaluation import criterion
from defenses.abs import ABSConfig, AnalysisBySynthesis
from defenses.base import DEFENSES

HARNESS = "harness"
TASK = "abs predict"
PGD_TASK = "abs PGD-3, ε 0.3"
PGD_SPEC = "pgd:steps=3"
OWN_LOGITS, DEPLOYED = "harness (verdict from the attacked logits)", "verdict from deployed_model()"
PGD_IMAGES = 4


def abs_rows(bench: Workbench, section: str) -> list[Measurement]:
    profile = "smoke" if bench.settings.quick_check else "quick"
    torch.manual_seed(bench.settings.seed)
    defense = DEFENSES.build("abs", profile).to(bench.device)
    cfg: ABSConfig = defense.config
    batch = bench.test_batch(min(bench.settings.batch_size, cfg.chunk_size))
    defense.bank.decoded(defense.vaes, cfg.chunk_size)  # the bank is decoded once per weights: not timed
    log(f"{TASK}: {bench.settings.repeats} rounds on {len(batch)} images")
    timings = time_round_robin(
        [Contender(HARNESS, lambda: defense.predict(batch.x, batch_size=len(batch)))],
        bench.settings.repeats,
        synchronize=synchronizer(bench.device),
    )
    note = (
        f"untrained (random weights; throughput only); profile {profile}: bank {cfg.bank_size}, "
        f"{cfg.steps} steps; bank decoding excluded"
    )
    rows = from_timings(section, TASK, timings, device=bench.device_name, batch=len(batch), note=note)
    return rows + _pgd_rows(bench, section, defense, batch.x[:PGD_IMAGES], note)


def _pgd_rows(
    bench: Workbench, section: str, defense: AnalysisBySynthesis, x: torch.Tensor, note: str
) -> list[Measurement]:
    """PGD-3 on ``x`` judged by the attacked module's own logits vs by ``deployed_model()``, with the decoder
    calls each makes (the labels are the defense's own predictions, so every point starts correct)."""
    y = defense.predict(x).argmax(dim=1)
    attack = ATTACKS.build(PGD_SPEC, "quick")
    model = defense.attack_model()
    judges = {
        OWN_LOGITS: criterion(defense, attack, model, repeats=1, batch_size=len(x)),
        DEPLOYED: Misclassification(defense.deployed_model()),
    }
    calls: list[int] = []
    hook = defense.vaes.decoder.register_forward_hook(lambda *_: calls.append(1))

    def run(judge: Criterion | None) -> torch.Tensor:
        calls.clear()
        return attack(model, x, y, 0.3, generator=torch.Generator(device=x.device).manual_seed(0), criterion=judge)

    try:
        decoder_calls = {}
        for name, judge in judges.items():
            run(judge)
            decoder_calls[name] = len(calls)
        contenders = [
            Contender(name, lambda judge=judge: run(judge), note=f"{decoder_calls[name]} decoder calls")
            for name, judge in judges.items()
        ]
        log(f"{PGD_TASK}: {bench.settings.repeats} rounds on {len(x)} images")
        timings = time_round_robin(contenders, bench.settings.repeats, synchronize=synchronizer(bench.device))
    finally:
        hook.remove()
    return from_timings(
        section, PGD_TASK, timings, device=bench.device_name, batch=len(x), reference=DEPLOYED, note=note
    )
