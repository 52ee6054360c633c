"""``model``: evaluate any PyTorch model as a defense, from a Python file or module plus a weights file.

``--defenses model:source=net.py:entry=build:weights=net.pt`` (or ``module=my_pkg.net`` instead of
``source``) imports the code, calls ``build()`` and loads the weights into what it returns: an
``nn.Module`` mapping [0, 1] images of the dataset's shape to logits.  ``fit`` trains nothing; it
loads and checks the model (one forward pass on random images: the logits' shape, finiteness).

The key: ``options()`` adds the sha256 of the weights file and of the code's file to the options,
so changing one weight or one line of the model file is a new defense key (a new checkpoint and new
cells); the paths, ``entry``, ``randomized`` and ``name`` are options and enter it as well.

``scripted=model.pt`` (a TorchScript archive, ``torch.jit.save``) replaces ``source``/``module``: the
archive is the model, and its sha256 enters the key.  The weights file may be laid out as the ecosystem
saves them (``defenses.checkpoint_formats``: a state dict, a checkpoint nesting one, ``module.``
prefixes, safetensors, a TorchScript archive); they are loaded as ``load_state_dict(strict=True)``
loads them, and the layout found is recorded (``train_weights_layout``).

Trust: ``source=`` and ``module=`` *run the user's code* (as ``torch.hub.load`` does); the weights
never run Python code: pickles are read with ``torch.load(weights_only=True)``, safetensors hold
tensors only, and a TorchScript archive holds TorchScript, which runs when the model is called.

The user's module is built in ``__init__`` rather than lazily: the planner builds every defense
before anything trains, so a missing file, an import error, a missing ``entry`` or an ``entry`` that
returns no module stops the run at once (exit 2) instead of after other defenses have trained; and
``TrainedDefense.restore`` (build from the spec, then ``load_state_dict``) needs the module's
structure, which only the user's ``entry`` can make.  Building is cheap: the file is imported once
per process (cached under a name derived from its path and content) and ``entry()`` constructs the
module; the weights file is read only by ``fit`` (a restore loads the checkpoint instead).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

from defenses.base import Defense, FitContext, register_defense
from defenses.checkpoint_formats import load_scripted, load_weights
from defenses.checkpoint_formats import one_line as _one_line
from defenses.preprocessing import Normalized, channel_values, check_channels
from foundation.errors import BenchError, did_you_mean
from foundation.quantizers import Quantizer
from foundation.registry import added_option
from foundation.splits import Split

#: The shape and classes checked when the fit context does not say (MNIST's).
DEFAULT_IMAGE_SHAPE = (1, 28, 28)
DEFAULT_NUM_CLASSES = 10
_WHO = "defense 'model'"
#: The layout a ``scripted=`` archive without ``weights=`` is recorded under.
SCRIPTED_LAYOUT = "TorchScript archive, the model with its weights"
_EXAMPLE = "e.g. model:source=net.py:entry=build:weights=net.pt"


@dataclass(frozen=True)
class ModelConfig:
    #: A Python file defining ``entry`` (run as code, like ``torch.hub``).
    source: str = ""
    #: Or an importable module (an installed package or one on ``PYTHONPATH``) defining ``entry``.
    module: str = ""
    #: The callable that returns the ``nn.Module``; called with no arguments.
    entry: str = "build"
    #: The weights: a state dict (``torch.save(model.state_dict(), path)``, a checkpoint nesting one, with
    #: ``module.`` prefixes, a ``.safetensors`` file or a TorchScript archive); omitted: the module as built.
    weights: str = ""
    #: Whether the model's forward pass is stochastic (then EOT and repeated predictions apply).
    randomized: bool = False
    #: A label for the row.
    name: str = ""
    #: Or a TorchScript archive (``torch.jit.save``) instead of ``source``/``module``: the archive is the model.
    scripted: str = added_option("")
    #: The model's input normalisation, per channel (``mean=0.4914+0.4822+0.4465:std=…``): applied inside
    #: the model, so attacks and ε stay in [0, 1] pixel space.  Both or neither.
    mean: str = added_option("")
    std: str = added_option("")
    #: The elementwise quantiser the model applies to its input first, declared for threshold-aware attacks:
    #: ``binary`` (x ≥ 0.5), ``binary@T``, ``levels@K`` or ``thresholds@A+B+…`` (``foundation.quantizers``).
    quantizer: str = added_option("")


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
    description = (
        "Any PyTorch model: model:source=FILE.py (or module=PKG.MOD, or scripted=ARCHIVE.pt):weights=FILE, "
        "optionally mean=…:std=…"
    )
    Config = ModelConfig
    #: ``fit`` loads weights and checks the model; nothing is trained (the harness records "not trained").
    trains: ClassVar[bool] = False
    #: It needs its options (a file or module): ``all`` does not select it.
    selected_by_all = False

    def __init__(self, config: Any = None, live: nn.Module | None = None, live_sha256: str = "") -> None:
        super().__init__(config)
        cfg: ModelConfig = self.config
        #: ``benchmark.evaluate``'s model: (its class, the sha256 of its weights) when the module is given itself.
        self.live: tuple[str, str] | None = None
        if live is not None:
            self._take(live, live_sha256)
            return
        given = sum(map(bool, (cfg.source, cfg.module, cfg.scripted)))
        if given != 1:
            raise BenchError(
                f"{_WHO} needs exactly one of source=FILE.py or module=PACKAGE.MODULE or scripted=ARCHIVE.pt, got "
                f"{('neither', '', 'both', 'all three')[given]} ({_EXAMPLE})"
            )
        self.source_file: Path | None = None
        if cfg.scripted:
            path = _existing_file(cfg.scripted, "scripted")
            self.where = f"TorchScript archive {path}"
        elif cfg.source:
            path = _existing_file(cfg.source, "source")
            code, self.source_file, self.where = _import_source(path), path, str(path)
        else:
            code = _import_module(cfg.module)
            self.source_file = _module_file(code)
            self.where = f"module {cfg.module} ({self.source_file})"
        if cfg.weights:
            _existing_file(cfg.weights, "weights")  # said now, at planning, rather than after other defenses trained
        #: How the weights were laid out (``fit`` finds a weights file's); recorded as the ``train_weights_layout``
        #: column.
        self.weights_layout = SCRIPTED_LAYOUT if cfg.scripted else ""
        self._deploy((load_scripted(path, f"option scripted of {_WHO}") if cfg.scripted else self._build(code)).eval())
        self.input_quantizer()  # a malformed quantizer= is said at planning

    def _deploy(self, model: nn.Module) -> None:
        """``model`` as the defense's: deployed behind its input normalisation when ``mean``/``std`` are given."""
        self.model = model
        #: ``mean`` and ``std`` per channel, empty without them; the deployed model normalises its input.
        self.normalization = self._normalization()
        self.deployed = Normalized(self.model, **self.normalization) if self.normalization else self.model

    @classmethod
    def of_module(
        cls,
        module: nn.Module,
        weights_sha256: str,
        *,
        name: str,
        randomized: bool = False,
        mean: str = "",
        std: str = "",
    ) -> ModelDefense:
        """``module`` itself as the defense (``benchmark.evaluate``'s model, no file): a copy on the CPU in eval
        mode, keyed by the sha256 of its weights (computed by the caller, over its state dict) and its class."""
        return cls(ModelConfig(name=name, randomized=randomized, mean=mean, std=std), module, weights_sha256)

    def _take(self, live: nn.Module, weights_sha256: str) -> None:
        cfg: ModelConfig = self.config
        if cfg.source or cfg.module or cfg.scripted or cfg.weights:
            raise BenchError(f"{_WHO} given a module takes no source, module, scripted or weights option")
        kind = type(live)
        self.live = (f"{kind.__module__}.{kind.__qualname__}", weights_sha256)
        self.source_file, self.where, self.weights_layout = None, f"the model given ({kind.__qualname__})", ""
        self._deploy(copy.deepcopy(live).cpu().eval())

    def _normalization(self) -> dict[str, tuple[float, ...]]:
        cfg: ModelConfig = self.config
        if bool(cfg.mean) != bool(cfg.std):
            raise BenchError(f"{_WHO} needs both mean= and std= (one value per channel each), or neither")
        return {name: channel_values(getattr(cfg, name), name, _WHO) for name in ("mean", "std") if cfg.mean}

    def for_dataset(self, input_shape: tuple[int, int, int], classes: int) -> None:
        check_channels(self.normalization, input_shape, _WHO)

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
        """The options plus the sha256 of the weights file and of the code's file (or of the TorchScript
        archive): the defense key covers the model's content, not only its paths."""
        cfg: ModelConfig = self.config
        if self.live is not None:
            model_class, weights_sha256 = self.live
            return {**super().options(), "model_class": model_class, "weights_sha256": weights_sha256}
        weights = sha256_of(_existing_file(cfg.weights, "weights"), "weights") if cfg.weights else None
        if cfg.scripted:
            archive = sha256_of(_existing_file(cfg.scripted, "scripted"), "scripted")
            return {**super().options(), "weights_sha256": weights, "scripted_sha256": archive}
        source_option = "source" if cfg.source else "module"
        source = sha256_of(_existing_file(str(self.source_file), source_option), source_option)
        return {**super().options(), "weights_sha256": weights, "source_sha256": source}

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        """Load the weights (if any) and check the model on random images; nothing is trained."""
        cfg: ModelConfig = self.config
        if cfg.weights:
            path = _existing_file(cfg.weights, "weights")
            self.weights_layout = load_weights(self.model, path, f"option weights of {_WHO}", self.where)
            ctx.log(f"{self.where}: weights from {path} ({self.weights_layout})")
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

    def fit_summary(self) -> dict[str, float | str]:
        return {"weights_layout": self.weights_layout} if self.weights_layout else {}

    def input_quantizer(self) -> Quantizer | None:
        text = self.config.quantizer
        if not text:
            return None
        try:
            return Quantizer.parse(text, source="declared in the spec")
        except BenchError as error:
            raise BenchError(f"option quantizer of {_WHO}: {error}") from None

    def deployed_model(self) -> nn.Module:
        return FiniteLogits(self.deployed, self.where)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}
