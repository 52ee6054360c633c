"""Paper 000's RANDOM attack: per batch, one of FGSM, PGD, GNA, GTA with equal probability.

Two forms: the registered attack ``random`` (evaluation: the gradient members attack the classifier
loss of the model under test, each member through its own guarded call), and ``attack_inputs``
for adversarial training, where the caller supplies the gradient members (during VAE training they
maximise the reconstruction loss, not a classifier's).  The member index order is ``ATTACK_TYPES``,
fixed, so stored attack types (e.g. in a replay buffer) stay meaningful.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from attacks.base import Attack, register_attack
from attacks.gradient import FGSM, PGD, PGD_PROFILE_OVERRIDES, RestartsPGDConfig
from attacks.semantic import GNA, GTA, GNAConfig, GTAConfig, gaussian_noise, geometric_transform

#: Member order of every RANDOM draw; an index into this tuple is the "attack type".
ATTACK_TYPES: tuple[str, ...] = ("fgsm", "pgd", "gna", "gta")

#: A gradient member for training: a batch in, its adversarial batch out (the objective and ε are bound in).
InputAttack = Callable[[Tensor], Tensor]


def choose_attack_type(generator: torch.Generator) -> int:
    """An index into ``ATTACK_TYPES``, uniformly at random."""
    return int(torch.randint(len(ATTACK_TYPES), (), generator=generator, device=generator.device))


def attack_inputs(
    attack_type: int,
    x: Tensor,
    generator: torch.Generator,
    fgsm_fn: InputAttack,
    pgd_fn: InputAttack,
    *,
    gna: GNAConfig | None = None,
    gta: GTAConfig | None = None,
) -> Tensor:
    """The adversarial batch of one given attack type (e.g. to regenerate a stored entry's attack)."""
    if attack_type == 0:
        return fgsm_fn(x)
    if attack_type == 1:
        return pgd_fn(x)
    if attack_type == 2:
        gna = gna or GNAConfig()
        return gaussian_noise(x, generator, **gna.ranges())
    if attack_type == 3:
        gta = gta or GTAConfig()
        return geometric_transform(x, generator, **gta.ranges())
    raise ValueError(f"attack type must be an index into {ATTACK_TYPES}; got {attack_type!r}")


@register_attack("random")
class RandomMix(Attack):
    """RANDOM: one member per batch; the same member serves every epsilon of a curve.

    Options are the PGD member's (same defaults and profile budgets as ``pgd``); GNA and GTA use
    the paper's ranges.  Each member runs through its own guarded call, so FGSM/PGD picks are
    checked against the L∞ ball and GNA/GTA picks ignore epsilon (epsilon 0 included).
    """

    description = "RANDOM (paper 000): FGSM, PGD, GNA or GTA with equal probability per batch"
    Config = RestartsPGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES
    threat_model = "semantic"
    uses_epsilon = True
    requires = frozenset({"gradients"})

    def __init__(self, config: RestartsPGDConfig | None = None) -> None:
        super().__init__(config)
        self.members: tuple[Attack, ...] = (FGSM(), PGD(self.config), GNA(), GTA())

    def budget(self) -> str:
        return f"ε for FGSM/PGD; GNA {self.members[2].budget()}; GTA {self.members[3].budget()}"

    def _run_curve(
        self, model: nn.Module, x: Tensor, y: Tensor, epsilons: list[float], generator: torch.Generator
    ) -> list[Tensor]:
        member = self.members[choose_attack_type(generator)]
        return member.run_curve(model, x, y, epsilons, generator=generator)

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return self._run_curve(model, x, y, [eps], generator)[0]
