"""Helpers shared by the adapters over third-party attack libraries (ART, Foolbox, torchattacks, adv-lib)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from attacks.base import Attack
from foundation.errors import BenchError
from foundation.parameters import frozen_parameters
from foundation.seeding import seeded

#: Our norm-ball threat models as each library spells them, where it has them: torchattacks' ``norm=`` (L∞ and
#: L2 only), the prefix of Foolbox's attack classes (``LinfPGD``, ``L2PGD``, ``L1FMNAttack``, ``L0FMNAttack``), ART's
#: ``norm=`` (no ART attack takes an L0 ``norm``), adv-lib's ``norm=`` and torch's ``p=`` (``torch.cdist``).  Foolbox,
#: adv-lib and torch count L0 over values, the harness over pixel positions: the same on one-channel images.
LIBRARY_NORMS: dict[str, dict[str, Any]] = {
    "torch": {"linf": float("inf"), "l2": 2.0, "l1": 1.0, "l0": 0.0},
    "torchattacks": {"linf": "Linf", "l2": "L2"},
    "foolbox": {"linf": "Linf", "l2": "L2", "l1": "L1", "l0": "L0"},
    "art": {"linf": float("inf"), "l2": 2, "l1": 1},
    "adv_lib": {"linf": float("inf"), "l2": 2.0, "l1": 1.0, "l0": 0.0},
}


def library_norm(library: str, threat_model: str) -> Any:
    """``threat_model`` in ``library``'s spelling (see ``LIBRARY_NORMS``)."""
    return LIBRARY_NORMS[library][threat_model]


def derived_seed(generator: torch.Generator) -> int:
    """A seed drawn from the cell's generator, for libraries that use global RNGs."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())


def number_of_classes(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1]).shape[-1])


def within_ball(attack: Attack, x: Tensor, x_adv: Tensor, eps: float) -> Tensor:
    """A library's examples as the guard wants them: under L∞ exactly as the library returned them; in the other
    norms projected onto the ε ball and the box (the libraries stop on the L2 sphere or the L1 ball's surface up to
    their own rounding; an example inside keeps its values)."""
    return x_adv if attack.threat_model == "linf" else attack.project(x, x_adv, eps)


def check_options(
    config: Any, *, counts: tuple[str, ...] = (), positive: tuple[str, ...] = (), fractions: tuple[str, ...] = ()
) -> None:
    """Raise ``ValueError`` unless the ``counts`` are at least 1, the ``positive`` ones are, and the
    ``fractions`` lie in (0, 1)."""
    for name in counts:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be positive")
    for name in fractions:
        if not 0 < getattr(config, name) < 1:
            raise ValueError(f"{name} must lie in (0, 1)")


class DeployedModeModel(nn.Module):
    """The attacked model with its train/eval modes locked as deployed.

    torchattacks calls ``model.eval()`` before every attack (and ``model.train()`` after it when the
    model was training), and ART's ``predict`` calls ``model.train(False)``.  Either would change the
    modes of submodules a defense keeps on purpose, and the library would attack another model than
    the deployed one.  This wrapper ignores ``train``/``eval``, so the libraries see the model as is.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.training = False

    def train(self, mode: bool = True) -> DeployedModeModel:
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


@contextlib.contextmanager
def deployed_model(model: nn.Module) -> Iterator[DeployedModeModel]:
    """``model`` for a library attack: modes locked, parameter gradients off (both as before afterwards).

    FAB back-propagates with ``Tensor.backward``, which would accumulate weight gradients into any
    parameter that requires them; the runner already freezes them, this covers direct callers.
    """
    with frozen_parameters(model):
        yield DeployedModeModel(model)


@contextlib.contextmanager
def library_session(model: nn.Module, x: Tensor, generator: torch.Generator) -> Iterator[tuple[nn.Module, int]]:
    """``(locked model, seed)`` for attacks from a library that draws from torch's global RNGs.

    The seed comes from the cell's generator; the model's modes are locked as deployed, its parameter
    gradients are off, and the global RNG states are restored afterwards.
    """
    seed = derived_seed(generator)
    with deployed_model(model) as locked, seeded(seed, x.device):
        yield locked, seed


def run_torchattacks(
    build: Callable[[nn.Module, int], Any], model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator
) -> Tensor:
    """Build a torchattacks attack with ``build(model, seed)`` and run it on ``(x, y)``.

    torchattacks reseeds torch's global RNGs with the attack's seed (``torch.manual_seed``) and draws
    its random starts, squares and restarts from them (see ``library_session``).
    """
    if x.ndim != 4:
        raise BenchError(f"torchattacks attacks need (N, C, H, W) images; got shape {tuple(x.shape)}")
    with library_session(model, x, generator) as (locked, seed):
        x_adv = run_member(build(locked, seed), x, y)
    return x_adv


def run_member(attack: Any, x: Tensor, y: Tensor) -> Tensor:
    """Run a built torchattacks attack on the inputs' device."""
    attack.set_device(x.device)
    return attack(x.detach(), y.detach()).detach()


def square(
    model: nn.Module, threat_model: str, eps: float, queries: int, p_init: float, rescale: bool, seed: int
) -> Any:
    """torchattacks' Square attack in the ``threat_model`` ball (margin loss, one restart); AutoAttack's member
    keeps the square-size schedule unrescaled, the stand-alone attack rescales it to its query budget (as the
    Square paper's code)."""
    import torchattacks

    return torchattacks.Square(
        model,
        norm=library_norm("torchattacks", threat_model),
        eps=eps,
        n_queries=queries,
        n_restarts=1,
        p_init=p_init,
        loss="margin",
        resc_schedule=rescale,
        seed=seed,
    )
