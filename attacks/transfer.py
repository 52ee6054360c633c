"""``transfer``: a transfer (black-box) attack — PGD on an independently trained surrogate CNN.

The adversarial examples are crafted on the surrogate alone (the runner trains it with another
seed: another data split, initialisation and order) and then evaluated on the target defense,
which the attack never queries.  Paper 001 argues from black-box conditions; a defense that
resists white-box PGD but not this, or resists this far better than white-box PGD, deserves a
closer look.
"""

from __future__ import annotations

from attacks.base import register_attack
from attacks.gradient import PGD


@register_attack("transfer")
class TransferPGD(PGD):
    description = "Transfer attack: PGD on an independently trained surrogate CNN, evaluated on the target"
    surrogate = "cnn"
    requires = frozenset()
