"""The checkpoint layouts of the ecosystem, read without running Python code, and loaded as torch loads them.

A weights file may be what ``torch.save`` wrote (a state dict, or a training checkpoint holding one under
``state_dict``, ``model``, ``model_state_dict`` or ``net``), a ``.safetensors`` file, or a TorchScript
archive (``torch.jit.save``).  DataParallel / DDP prefix every key with ``module.``.  ``load_weights``
recognises each, loads the first state dict that ``load_state_dict(strict=True)`` accepts (so torch's own
allowances hold, e.g. BatchNorm state dicts from before ``num_batches_tracked``) and names the layout it
found; only when torch refuses every candidate is the misfit described (missing, unexpected, size).

Trust: pickles are read with ``torch.load(weights_only=True)`` and safetensors files hold tensors only.
A TorchScript archive holds TorchScript (not Python): ``torch.jit.load`` compiles it, and its code runs
when the model is called, as it does wherever the archive is used.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from foundation.errors import BenchError

#: The keys under which training scripts nest the state dict in a checkpoint, in the order tried.
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net")
#: The prefix DataParallel and DistributedDataParallel put before every key.
PARALLEL_PREFIX = "module."
_SAVE_HINT = "save only the tensors: torch.save(model.state_dict(), path)"


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` of an exception."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip with a ``constants.pkl`` record, as torch checks)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` is a safetensors file: named so, or starting as one (a little-endian header length,
    then the header's JSON)."""
    if path.suffix == ".safetensors":
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
        return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < path.stat().st_size
    except OSError:
        return False


def load_scripted(path: Path, what: str) -> nn.Module:
    """The module a TorchScript archive holds, on the CPU; anything else is a one-line ``BenchError``."""
    if not is_torchscript(path):
        raise BenchError(
            f"{what}: {path} is not a TorchScript archive (save one with torch.jit.save(torch.jit.script(model), "
            "path)); for a state dict give weights= with source= or module="
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript, users still ship it
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise BenchError(f"{what}: {path} cannot be read by torch.jit.load: {one_line(error)}") from None


def _read_pickle(path: Path, what: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is a page of advice (including to load with weights_only=False); keep its reason
        found = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed global|\.\s|\n|$)", str(error))
        reason = f" ({found.group(1).strip()})" if found else ""
        raise BenchError(
            f"{what}: {path} holds objects other than tensors{reason}, which the harness does not unpickle "
            f"(weights_only=True); {_SAVE_HINT}"
        ) from None
    except Exception as error:
        raise BenchError(
            f"{what}: {path} cannot be read by torch.load(weights_only=True) (is it a file torch.save wrote?): "
            f"{one_line(error)}"
        ) from None


def _read_safetensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:
        raise BenchError(f"{what}: {path} cannot be read as a safetensors file: {one_line(error)}") from None


def read_weights(path: Path, what: str) -> tuple[Any, str]:
    """What a weights file holds and the name of its format (``torch.save``, ``safetensors``, ``TorchScript``)."""
    if is_safetensors(path):
        return _read_safetensors(path, what), "safetensors"
    if is_torchscript(path):
        return load_scripted(path, what).state_dict(), "TorchScript archive"
    return _read_pickle(path, what), "torch.save file"


def is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def state_dicts(content: Any, path: Path, what: str) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The state dicts a file's content holds, each with where it was found: the content itself, or the
    entries of a checkpoint under ``NESTED_KEYS``; none is a one-line ``BenchError`` naming the top-level keys."""
    if is_state_dict(content):
        return [("a state dict", content)]
    if not isinstance(content, dict):
        raise BenchError(f"{what}: {path} holds a {type(content).__name__}, not a state dict of tensors; {_SAVE_HINT}")
    found = [(f"a checkpoint's {key!r} entry", content[key]) for key in NESTED_KEYS if is_state_dict(content.get(key))]
    if not found:
        nested = ", ".join(repr(key) for key in NESTED_KEYS)
        raise BenchError(
            f"{what}: {path} holds a dict with top-level keys {_top_keys(content)} but no state dict of tensors, "
            f"at the top or under {nested}; {_SAVE_HINT}"
        )
    return found


def _top_keys(content: dict[Any, Any]) -> str:
    return (", ".join(repr(key) for key in list(content)[:8]) + (", …" if len(content) > 8 else "")) or "(none)"


def _variants(state: dict[str, torch.Tensor]) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """The state dict as it is, then without DataParallel's ``module.`` prefix when every key has it."""
    yield "", state
    if all(key.startswith(PARALLEL_PREFIX) for key in state):
        yield f", {PARALLEL_PREFIX!r} prefixes removed", {k[len(PARALLEL_PREFIX) :]: v for k, v in state.items()}


def describe_misfit(model: nn.Module, state: dict[str, torch.Tensor], refusal: BaseException) -> str:
    """Why torch refused ``state``: the first missing or unexpected key or size mismatch, as torch counts them
    (its allowances, like BatchNorm's ``num_batches_tracked``, are not misfits).  Loads what fits into
    ``model``: call it only for a model that is then discarded."""
    expected = model.state_dict()
    sizes = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    try:
        result = model.load_state_dict({k: v for k, v in state.items() if k not in sizes}, strict=False)
    except Exception:
        return one_line(refusal)
    missing = [key for key in result.missing_keys if key not in sizes]
    more = lambda keys: f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""  # noqa: E731
    if missing:
        return f"missing key {missing[0]!r}{more(missing)}"
    if result.unexpected_keys:
        return f"unexpected key {result.unexpected_keys[0]!r}{more(result.unexpected_keys)}"
    if sizes:
        found, wanted = tuple(state[sizes[0]].shape), tuple(expected[sizes[0]].shape)
        return f"size mismatch for {sizes[0]!r}: {found} in the file, {wanted} in the model"
    return one_line(refusal)


def load_weights(model: nn.Module, path: Path, what: str, builder: str) -> str:
    """Load the weights file ``path`` into ``model`` strictly, as torch does; returns the layout found (e.g.
    ``torch.save file, a checkpoint's 'state_dict' entry, 'module.' prefixes removed``).  A file that holds
    no state dict, or none that fits, is a one-line ``BenchError`` (``builder`` says what built the model)."""
    content, kind = read_weights(path, what)
    candidates = state_dicts(content, path, what)
    refusals: list[tuple[dict[str, torch.Tensor], BaseException]] = []
    for where, state in candidates:
        for prefix, variant in _variants(state):
            try:
                model.load_state_dict(variant, strict=True)
            except Exception as error:
                refusals.append((variant, error))
                continue
            return f"{kind}, {where}{prefix}"
    # The first state dict found, without its prefixes if it had them: its keys say the most about the misfit.
    where, state = candidates[0]
    problem = describe_misfit(model, *refusals[len(list(_variants(state))) - 1])
    nested = "" if content is state else f" (in {where}; the checkpoint's top-level keys: {_top_keys(content)})"
    raise BenchError(f"{what}: {path} does not fit the model that {builder} builds: {problem}{nested}")
