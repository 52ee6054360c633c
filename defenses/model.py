"""``model``: evaluate any PyTorch model as a defense, from a Python file or module plus a weights file.

``--defenses model:source=net.py:entry=build:weights=net.pt`` (or ``module=my_pkg.net`` instead of
``source``) imports the code, calls ``build()`` and loads the weights into what it returns: an
``nn.Module`` mapping [0, 1] images of the dataset's shape to logits.  ``fit`` trains nothing; it
loads and checks the model (one forward pass on random images: the logits' shape, finiteness).

The key: ``options()`` adds the sha256 of the weights file and of the code's file to the options,
so changing one weight or one line of the model file is a new defense key (a new checkpoint and new
cells); the paths, ``entry``, ``randomized`` and ``name`` are options and enter it as well.

Trust: ``source=`` and ``module=`` *run the user's code* (as ``torch.hub.load`` does); the weights
never run code: they are read with ``torch.load(weights_only=True)``.

The user's module is built in ``__init__`` rather than lazily: the planner builds every defense
before anything trains, so a missing file, an import error, a missing ``entry`` or an ``entry`` that
returns no module stops the run at once (exit 2) instead of after other defenses have trained; and
``TrainedDefense.restore`` (build from the spec, then ``load_state_dict``) needs the module's
structure, which only the user's ``entry`` can make.  Building is cheap: the file is imported once
per process (cached under a name derived from its path and content) and ``entry()`` constructs the
module; the weights file is read only by ``fit`` (a restore loads the checkpoint instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

from defenses.base import Defense, FitContext, Split, register_defense
from foundation.errors import BenchError, did_you_mean

#: The shape and classes checked when the fit context does not say (MNIST's).
DEFAULT_IMAGE_SHAPE = (1, 28, 28)
DEFAULT_NUM_CLASSES = 10
_WHO = "defense 'model'"
_EXAMPLE = "e.g. model:source=net.py:entry=build:weights=net.pt"


@dataclass(frozen=True)
class ModelConfig:
    #: A Python file defining ``entry`` (run as code, like ``torch.hub``).
    source: str = ""
    #: Or an importable module (an installed package or one on ``PYTHONPATH``) defining ``entry``.
    module: str = ""
    #: The callable that returns the ``nn.Module``; called with no arguments.
    entry: str = "build"
    #: A state dict saved with ``torch.save(model.state_dict(), path)``; omitted: the module as built.
    weights: str = ""
    #: Whether the model's forward pass is stochastic (then EOT and repeated predictions apply).
    randomized: bool = False
    #: A label for the row.
    name: str = ""


def _one_line(error: BaseException) -> str:
    """``Type: first line of the message`` of an exception."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _existing_file(text: str, option: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise BenchError(f"option {option} of {_WHO}: {path} {what}")
    return path


def sha256_of(path: Path, option: str) -> str:
    """The sha256 of a file's bytes; a file that cannot be read is a ``BenchError`` naming it and the option."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise BenchError(f"option {option} of {_WHO}: {path} cannot be read ({error.strerror or error})") from None
    return digest.hexdigest()


def _import_source(path: Path) -> ModuleType:
    """Import a Python file under a name unique to its path and content (imported once per process)."""
    resolved = path.resolve()
    tag = hashlib.sha256(f"{resolved}\0{sha256_of(path, 'source')}".encode()).hexdigest()[:16]
    name = f"_bench_user_model_{tag}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise BenchError(f"option source of {_WHO}: {path} cannot be imported as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: dataclasses and pickling inside the file look it up
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # sys.exit() in the user's file is a failed import, not an exit
        del sys.modules[name]
        raise BenchError(f"importing {path} (option source of {_WHO}) failed: {_one_line(error)}") from error
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name == error.name or name.startswith(f"{error.name}.")):
            raise BenchError(
                f"option module of {_WHO}: no module named {name!r} (install its package or add its "
                "directory to PYTHONPATH)"
            ) from None
        raise BenchError(f"importing module {name} (option module of {_WHO}) failed: {_one_line(error)}") from error
    except (Exception, SystemExit) as error:
        raise BenchError(f"importing module {name} (option module of {_WHO}) failed: {_one_line(error)}") from error


def _module_file(module: ModuleType) -> Path:
    """The file whose sha256 identifies a ``module=`` model (a package's ``__init__.py``)."""
    file = getattr(module, "__file__", None)
    if not file:
        raise BenchError(f"option module of {_WHO}: {module.__name__} has no file to hash (a namespace package?)")
    return Path(file)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a weights file, read without running code (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is a page of advice (including to load with weights_only=False); keep its reason
        found = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed global|\.\s|\n|$)", str(error))
        reason = f" ({found.group(1).strip()})" if found else ""
        raise BenchError(
            f"option weights of {_WHO}: {path} holds objects other than tensors{reason}, which the harness does "
            "not unpickle (weights_only=True); save only the tensors: torch.save(model.state_dict(), path)"
        ) from None
    except Exception as error:
        raise BenchError(
            f"option weights of {_WHO}: {path} cannot be read by torch.load(weights_only=True) (is it a file "
            f"torch.save wrote?): {_one_line(error)}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise BenchError(
            f"option weights of {_WHO}: {path} holds a {type(state).__name__}, not a state dict of tensors; "
            "save it with torch.save(model.state_dict(), path)"
        )
    return state


def _misfit(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> str | None:
    """What keeps a state dict from loading strictly: the first missing or unexpected key or size mismatch."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    more = lambda keys: f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""  # noqa: E731
    if missing:
        return f"missing key {missing[0]!r}{more(missing)}"
    if unexpected:
        return f"unexpected key {unexpected[0]!r}{more(unexpected)}"
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            found, wanted = tuple(state[key].shape), tuple(tensor.shape)
            return f"size mismatch for {key!r}: {found} in the file, {wanted} in the model"
    return None


class FiniteLogits(nn.Module):
    """The user's model, refusing non-finite logits on every batch it is given: the check at load sees two
    random images, and a model that is NaN elsewhere must stop the evaluation, not be scored."""

    def __init__(self, model: nn.Module, where: str) -> None:
        super().__init__()
        self.model, self.where = model, where
        self.training = model.training  # in the mode of the model it wraps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if isinstance(logits, torch.Tensor) and not torch.isfinite(logits).all():
            bad = int((~torch.isfinite(logits)).any(dim=-1).sum()) if logits.dim() > 1 else len(logits)
            raise BenchError(
                f"{self.where}: the model's logits are not all finite (nan or inf) on {bad} of {len(x)} images "
                "of a batch it was given; fix the model (its forward pass must give finite logits on [0, 1] images)"
            )
        return logits


@register_defense("model")
class ModelDefense(Defense):
    description = "Any PyTorch model: model:source=FILE.py (or module=PKG.MOD):entry=build:weights=FILE.pt"
    Config = ModelConfig
    #: ``fit`` loads weights and checks the model; nothing is trained (the harness records "not trained").
    trains: ClassVar[bool] = False
    #: It needs its options (a file or module): ``all`` does not select it.
    selected_by_all = False

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg: ModelConfig = self.config
        if bool(cfg.source) == bool(cfg.module):
            given = "both" if cfg.source else "neither"
            raise BenchError(
                f"{_WHO} needs exactly one of source=FILE.py or module=PACKAGE.MODULE, got {given} ({_EXAMPLE})"
            )
        if cfg.source:
            path = _existing_file(cfg.source, "source")
            code, self.source_file, self.where = _import_source(path), path, str(path)
        else:
            code = _import_module(cfg.module)
            self.source_file = _module_file(code)
            self.where = f"module {cfg.module} ({self.source_file})"
        if cfg.weights:
            _existing_file(cfg.weights, "weights")  # said now, at planning, rather than after other defenses trained
        self.model = self._build(code).eval()

    def _build(self, code: ModuleType) -> nn.Module:
        entry = self.config.entry
        function = getattr(code, entry, None)
        if not callable(function):
            names = [n for n in vars(code) if not n.startswith("_") and callable(getattr(code, n))]
            raise BenchError(
                f"{self.where} has no function {entry!r} (option entry of {_WHO}); {did_you_mean(entry, names)}"
                "it should return the torch.nn.Module to evaluate"
            )
        try:
            model = function()
        except (Exception, SystemExit) as error:
            raise BenchError(f"{self.where}: {entry}() raised {_one_line(error)}") from error
        if not isinstance(model, nn.Module):
            raise BenchError(
                f"{self.where}: {entry}() returned an object of type {type(model).__name__}, not a torch.nn.Module"
            )
        return model

    @property
    def randomized(self) -> bool:
        return self.config.randomized

    def options(self) -> dict[str, Any]:
        """The options plus the sha256 of the weights file and of the code's file: the defense key covers
        the model's content, not only its paths."""
        cfg: ModelConfig = self.config
        weights = sha256_of(_existing_file(cfg.weights, "weights"), "weights") if cfg.weights else None
        source_option = "source" if cfg.source else "module"
        source = sha256_of(_existing_file(str(self.source_file), source_option), source_option)
        return {**dataclasses.asdict(cfg), "weights_sha256": weights, "source_sha256": source}

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        """Load the weights (if any) and check the model on random images; nothing is trained."""
        cfg: ModelConfig = self.config
        if cfg.weights:
            path = _existing_file(cfg.weights, "weights")
            state = load_state(path)
            problem = _misfit(state, self.model.state_dict())
            if problem is None:
                try:
                    self.model.load_state_dict(state, strict=True)
                except Exception as error:
                    problem = _one_line(error)
            if problem is not None:
                raise BenchError(
                    f"option weights of {_WHO}: {path} does not fit the model that {self.where} builds: {problem}"
                )
        self.model.eval()
        # ``image_shape`` / ``num_classes`` come with dataset-aware fit contexts; else the data says the shape.
        shape = tuple(getattr(ctx, "image_shape", None) or tuple(train.x.shape[1:]) or DEFAULT_IMAGE_SHAPE)
        classes = int(getattr(ctx, "num_classes", None) or DEFAULT_NUM_CLASSES)
        self.check(shape, classes, ctx.device)

    @torch.no_grad()
    def check(self, shape: tuple[int, ...], classes: int, device: torch.device | str) -> None:
        """One forward pass on two random [0, 1] images of ``shape``: logits of shape (2, classes), all finite."""
        x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)).to(device)
        batch = f"a batch of shape {tuple(x.shape)} ([0, 1] images)"
        try:
            logits = self.model(x)
        except Exception as error:
            raise BenchError(f"{self.where}: the model failed on {batch}: {_one_line(error)}") from error
        if not isinstance(logits, torch.Tensor):
            raise BenchError(
                f"{self.where}: the model returned an object of type {type(logits).__name__} on {batch}, "
                "not a tensor of logits"
            )
        if tuple(logits.shape) != (2, classes):
            raise BenchError(
                f"{self.where}: the model maps {batch} to logits of shape {tuple(logits.shape)}; "
                f"expected (2, {classes}), one logit per class"
            )
        if not torch.isfinite(logits).all():
            raise BenchError(f"{self.where}: the model's logits on {batch} are not all finite (nan or inf)")

    def deployed_model(self) -> nn.Module:
        return FiniteLogits(self.model, self.where)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}
