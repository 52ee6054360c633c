"""Parameter flags around an attack: input gradients only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Attacks need input gradients only: switch weight gradients off, then restore the flags."""
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:  # each parameter: TorchScript modules refuse Module.requires_grad_
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
