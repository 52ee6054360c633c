"""ABS inference throughput: ``predict`` of the ``abs`` defense on a batch, its latent bank decoded beforehand.

The weights are random (ABS is not trained for perf): inference costs the same whatever they are.  The
budget is the ``quick`` profile's (bank 2,000, 10 steps; ``smoke`` under ``--quick-check``), on at
most one inference chunk of images.
"""

from __future__ import annotations

import torch

from benchmark.perf.measurements import Measurement, from_timings
from benchmark.perf.timing import Contender, synchronizer, time_round_robin
from benchmark.perf.workbench import Workbench, log
from defenses.abs import ABSConfig
from defenses.base import DEFENSES

HARNESS = "harness"
TASK = "abs predict"


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
    return from_timings(section, TASK, timings, device=bench.device_name, batch=len(batch), note=note)
