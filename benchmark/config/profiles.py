"""Profiles: the budgets of a run.  A profile changes budgets, never the method."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.errors import BenchError, did_you_mean


@dataclass(frozen=True)
class Profile:
    """Budgets of a run: data slice sizes and evaluation effort.  Defenses and attacks carry
    their own per-profile budgets (epochs, steps) in ``profile_overrides``."""

    name: str
    n_train: int
    n_val: int
    n_test: int
    eot_samples: int  # gradient samples per step for randomized defenses
    prediction_repeats: int  # a point is robust only if all repeated predictions are correct
    batch_size: int = 500  # evaluation batch for attacks and predictions
    epsilons: tuple[float, ...] = (0.1, 0.2, 0.3)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", n_train=5000, n_val=1000, n_test=200, eot_samples=2, prediction_repeats=3, epsilons=(0.1, 0.3)
    ),
    "quick": Profile("quick", n_train=50_000, n_val=10_000, n_test=1000, eot_samples=4, prediction_repeats=5),
    "paper": Profile("paper", n_train=50_000, n_val=10_000, n_test=10_000, eot_samples=16, prediction_repeats=10),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BenchError(
            f"unknown profile {name!r}; {did_you_mean(name, PROFILES)}valid: {', '.join(PROFILES)}"
        ) from None
