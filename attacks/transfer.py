"""``transfer``: a transfer (black-box) attack — PGD on an independently trained surrogate defense.

The adversarial examples are crafted on the surrogate alone (the runner trains it with another
seed: another data split, initialisation and order) and then evaluated on the target defense,
which the attack never queries.  The surrogate is the undefended ``cnn`` by default, or any
registered defense (``transfer:surrogate=abs``: Schott et al. attacked binary ABS through the
non-binarised ABS this way).  Paper 001 argues from black-box conditions; a defense that resists
white-box PGD but not this, or resists this far better than white-box PGD, deserves a closer look.
"""

from __future__ import annotations

from dataclasses import dataclass

from attacks.base import register_attack
from attacks.gradient import PGD, RestartsPGDConfig
from foundation.registry import added_option


@dataclass(frozen=True)
class TransferConfig(RestartsPGDConfig):
    """PGD's options plus the registered defense whose attack model PGD differentiates."""

    surrogate: str = added_option("cnn")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.surrogate:
            raise ValueError("surrogate must name a registered defense")


@register_attack("transfer")
class TransferPGD(PGD):
    description = "Transfer attack: PGD on an independently trained surrogate (cnn, or surrogate=<defense>)"
    Config = TransferConfig
    requires = frozenset()

    @property
    def surrogate(self) -> str:  # type: ignore[override]
        return self.config.surrogate
