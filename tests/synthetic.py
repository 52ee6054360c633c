"""Tiny synthetic data and a FitContext for unit tests of defenses."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from foundation.splits import Split


@dataclass
class TinyContext:
    """A FitContext for tests; ``dependency`` returns ``provided`` (a trained defense) if given."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    provided: object = None
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def dependency(self, name: str):
        if self.provided is None:
            raise AssertionError(f"unexpected dependency {name!r}")
        return self.provided

    def progress(self, iterable, *, desc, total=None):
        return iterable

    def log(self, message: str) -> None:
        pass


def blobs(n: int = 256) -> Split:
    """Two easy classes of 28x28 images: a bright top half or a bright bottom half, plus noise."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 28, 28, generator=generator) * 0.3
    x[y == 0, :, :14] += 0.6
    x[y == 1, :, 14:] += 0.6
    return Split(x.clamp(0, 1), y)


def cell_record(key: str = "0123456789abcdef", **changes: object) -> dict:
    """A valid stored cell record (8 points, 4 robust), with ``changes`` applied."""
    record = {
        "cell_key": key,
        "defense": "cnn",
        "attack": "fgsm",
        "backend": "native",
        "threat_model": "linf",
        "access": "white-box",
        "budget": "ε=0.1",
        "profile": "smoke",
        "status": "ok",
        "seed": 0,
        "eps": 0.1,
        "config_hash": "c0ffee",
        "randomized": False,
        "eot_samples": 1,
        "prediction_repeats": 1,
        "device": "cpu",
        "library_versions": "python=3.11",
        "created": "2026-11-29T00:00:00+00:00",
        "n": 8,
        "clean_accuracy": 1.0,
        "robust_accuracy": 0.5,
        "robust_accuracy_ci_low": 0.2,
        "robust_accuracy_ci_high": 0.8,
        "robust_points": "f0",
        "f1_macro": 0.5,
        "attack_success_rate": 0.5,
        "linf_mean": 0.1,
        "linf_max": 0.1,
        "l2_mean": 1.0,
        "attack_seconds": 1.5,
        "gradient_masking_share": 0.0,
        "prediction_flip_share": 0.0,
        "train_seconds": 3.0,
    }
    return {**record, **changes}


def masked_cell_record(index: int, defense: str, attack: str, eps: float | None, robust: list[bool], **changes) -> dict:
    """A valid record of ``len(robust)`` points whose per-point mask is ``robust``, keyed by ``index``."""
    from benchmark.results.statistics import pack_mask, wilson_interval

    n, count = len(robust), sum(robust)
    low, high = wilson_interval(count, n)
    fields = {
        "defense": defense,
        "attack": attack,
        "eps": eps,
        "budget": "semantic" if eps is None else f"ε={eps:g}",
        "config_hash": f"hash-{defense}",
        "n": n,
        "robust_points": pack_mask(torch.tensor(robust)),
        "robust_accuracy": count / n,
        "robust_accuracy_ci_low": low,
        "robust_accuracy_ci_high": high,
        "attack_success_rate": (n - count) / n,
    }
    return cell_record(f"{index:016x}", **(fields | changes))


def small_matrix() -> list[dict]:
    """Seven cells of 8 points: cnn under fgsm and pgd at 0.1 and 0.3 (points 0-3 survive fgsm at 0.3, 2-5
    survive pgd: the worst case keeps 2 and 3); madry under fgsm and autoattack at 0.3 and a semantic gta cell."""
    return [
        masked_cell_record(1, "cnn", "fgsm", 0.1, [True] * 6 + [False] * 2),
        masked_cell_record(2, "cnn", "pgd", 0.1, [True] * 5 + [False] * 3),
        masked_cell_record(3, "cnn", "fgsm", 0.3, [True] * 4 + [False] * 4),
        masked_cell_record(4, "cnn", "pgd", 0.3, [False] * 2 + [True] * 4 + [False] * 2),
        masked_cell_record(5, "madry", "fgsm", 0.3, [True] * 7 + [False]),
        masked_cell_record(6, "madry", "autoattack", 0.3, [True] * 5 + [False] * 3, backend="autoattack"),
        masked_cell_record(7, "madry", "gta", 0.0, [True] * 8, threat_model="semantic", access="black-box"),
    ]
