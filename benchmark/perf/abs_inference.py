"""ABS inference throughput: ``predict`` of the ``abs`` defense on a batch, its latent bank decoded beforehand;
the cost of PGD on ABS with its verdict read off the attacked module's logits (what the harness does) or
judged by ``deployed_model()``, a second module that runs a second latent search per step (what it did); and
inference at the paper budget through the harness's folded decoder against the plain decoder it replaced.

The first two use random weights (inference costs the same whatever they are) at the ``quick`` profile's
budget (bank 2,000, 10 steps; ``smoke`` under ``--quick-check``), on at most one inference chunk of images.
The paper-budget row uses trained weights (the cached ``abs`` checkpoint, else one trained now at ``smoke``;
random weights under ``--quick-check``), so that its count of identical predictions means something.
"""

from __future__ import annotations

import dataclasses

import torch

from attacks.base import ATTACKS
from attacks.criteria import Criterion, Misclassification
from benchmark.perf.measurements import Measurement, from_timings
from benchmark.perf.timing import Contender, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from benchmark.run.evaluation import criterion
from defenses.abs import (
    ABSConfig,
    ABSInference,
    AnalysisBySynthesis,
    ClassConditionalVAEs,
    FoldedDecoder,
    LatentBank,
    latent_bank,
)
from defenses.base import DEFENSES

HARNESS = "harness"
TASK = "abs predict"
PGD_TASK = "abs PGD-3, ε 0.3"
PGD_SPEC = "pgd:steps=3"
OWN_LOGITS, DEPLOYED = "harness (verdict from the attacked logits)", "verdict from deployed_model()"
PGD_IMAGES = 4
PAPER_TASK = "abs predict, paper budget"
PLAIN = "plain decoder (before: BatchNorm passes, F.elu)"
#: Points of the paper-budget row (one inference chunk; 4 under ``--quick-check``).
PAPER_IMAGES, QUICK_CHECK_IMAGES = 100, 4


class PlainDecoder(FoldedDecoder):
    """The search's decoder as the harness ran it before ``FoldedDecoder``: the VAEs' own decoder, BatchNorm and
    ``F.elu`` included (the reference of the paper-budget row)."""

    def refreshed(self, vaes: ClassConditionalVAEs) -> PlainDecoder:
        self._decode = vaes.decode
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._decode(z).flatten(2)


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
    return rows + _pgd_rows(bench, section, defense, batch.x[:PGD_IMAGES], note) + _paper_rows(bench, section)


def _paper_rows(bench: Workbench, section: str) -> list[Measurement]:
    """The harness's inference at the paper budget (bank 8,000 of 8,888, 50 Adam steps) against the same search
    through ``PlainDecoder``, on the same weights and points, with the share of identical predictions."""
    if bench.settings.quick_check:
        torch.manual_seed(bench.settings.seed)
        vaes, origin = ClassConditionalVAEs().to(bench.device).eval(), "random weights (--quick-check)"
        cfg: ABSConfig = DEFENSES.build("abs", "smoke").config
        images = QUICK_CHECK_IMAGES
    else:
        trained, origin = bench.trained("abs")
        vaes, cfg, images = trained.vaes.to(bench.device).eval(), DEFENSES.build("abs", "paper").config, PAPER_IMAGES
    bank = LatentBank(latent_bank(cfg.bank_size, cfg.bank_draws, cfg.latent_dim, cfg.bank_seed))
    bank.decoded(vaes, cfg.chunk_size)  # decoded once per weights: not timed
    models = {HARNESS: ABSInference(vaes, bank, cfg), PLAIN: ABSInference(vaes, bank, cfg, folded=PlainDecoder())}
    x = bench.test_batch(images).x
    log(f"{PAPER_TASK}: {bench.settings.repeats} rounds on {len(x)} images")
    contenders = [Contender(name, lambda model=model: model(x).argmax(dim=1)) for name, model in models.items()]
    timings = time_round_robin(contenders, bench.settings.repeats, synchronize=synchronizer(bench.device))
    predictions = {timing.name: timing.output for timing in timings}
    note = f"{origin}; bank {cfg.bank_size} of {cfg.bank_draws}, {cfg.steps} steps; bank decoding excluded"
    rows = from_timings(
        section, PAPER_TASK, timings, device=bench.device_name, batch=len(x), reference=PLAIN, note=note
    )
    same = {name: (predicted == predictions[PLAIN]).float().mean().item() for name, predicted in predictions.items()}
    return [dataclasses.replace(row, identical_predictions=same[row.contender]) for row in rows]


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
    hook = defense.folded.register_forward_hook(lambda *_: calls.append(1))  # the search's decoder

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
