"""The defense contract: an estimator with ``fit`` / ``predict`` plus what attacks differentiate.

``predict`` is the deployed path (it may be randomized or non-differentiable).
``attack_model`` is what white-box attacks differentiate: the same deployed path end to end,
with BPDA for non-differentiable steps (in ``differentiable_model``) and EOT over the
defense's randomness.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import Tensor, nn

from foundation.adaptive import ExpectationOverTransformation
from foundation.quantizers import Quantizer
from foundation.registry import Plugin, Registry
from foundation.splits import Split

T = TypeVar("T")


class FitContext(Protocol):
    """What the runner hands a defense while it trains."""

    device: torch.device
    seed: int
    #: The dataset's image shape (channels, height, width) and number of classes.
    image_shape: tuple[int, int, int]
    num_classes: int

    def generator(self) -> torch.Generator:
        """A fresh generator on the device, seeded from the run's seed."""

    def dependency(self, name: str) -> Defense:
        """Another registered defense, trained (or loaded from the cache) with this run's settings."""

    def progress(self, iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterable[T]:
        """Wrap a loop in a progress bar."""

    def log(self, message: str) -> None:
        """Report a line of training progress."""


class Defense(Plugin, ABC):
    """A trainable defense; subclasses set ``name`` via ``@register_defense`` and a ``Config``."""

    #: Names of defenses this one builds on (e.g. the shared classifier); they enter the config hash.
    dependencies: ClassVar[tuple[str, ...]] = ()
    #: The datasets a defense runs on (``None``: every registered image dataset).
    datasets: ClassVar[frozenset[str] | None] = None
    #: False for defenses that train nothing (a user's model): their records say "not trained", not 0 s.
    trains: ClassVar[bool] = True
    #: Capabilities offered to attacks (matched against ``Attack.requires``).
    provides: ClassVar[frozenset[str]] = frozenset({"gradients", "queries"})
    #: Per-profile cap on the number of test points (a budget for defenses with costly inference);
    #: the first points of the profile's seeded test slice are used, and each record's ``n`` says how many.
    test_points: ClassVar[Mapping[str, int]] = {}
    #: Bumped when a defense's behaviour changes while its options stay the same; it enters the defense
    #: key, so its checkpoints and cells of an older revision are recomputed instead of being reused.
    revision: ClassVar[int] = 0

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.device = torch.device("cpu")

    def for_dataset(self, input_shape: tuple[int, int, int], classes: int) -> None:
        """Size the defense's networks to a dataset's images and classes (called right after it is built;
        defenses built for one dataset need do nothing)."""

    @property
    def randomized(self) -> bool:
        """Whether ``predict`` is stochastic (then it is evaluated with EOT and repeated predictions)."""
        return False

    @abstractmethod
    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        """Train on ``train``; ``val`` is for early stopping and model selection only."""

    @abstractmethod
    def deployed_model(self) -> nn.Module:
        """The deployed path as a module mapping [0, 1] images to logits, in eval mode."""

    def differentiable_model(self) -> nn.Module:
        """The deployed path with BPDA substituted for non-differentiable steps."""
        return self.deployed_model()

    #: True where ``differentiable_model()``'s forward pass computes exactly the deployed logits (its BPDA
    #: or envelope gradient changes only the backward pass), so its logits are the deployed verdict.
    differentiable_forward_is_deployed: ClassVar[bool] = False

    def attack_logits_are_deployed(self) -> bool:
        """Whether the logits of ``attack_model()`` are the deployed verdict (deterministic defenses only)."""
        same_forward = type(self).differentiable_model is Defense.differentiable_model
        return not self.randomized and (same_forward or self.differentiable_forward_is_deployed)

    def attack_model(self, eot_samples: int = 1) -> nn.Module:
        """What white-box attacks differentiate: the whole pipeline, with EOT when randomized."""
        model = self.differentiable_model()
        if self.randomized and eot_samples > 1:
            model = ExpectationOverTransformation(model, eot_samples)
        return model.eval()

    def input_quantizer(self) -> Quantizer | None:
        """The elementwise quantiser the deployed path applies to its input first (e.g. binarisation), if the
        defense declares one: threshold-aware attacks search the crossings of its thresholds.  Undeclared, the
        diagnostics look for one (``benchmark.run.quantizer_search``)."""
        return None

    def fit_summary(self) -> dict[str, float | str]:
        """A few numbers about the finished training (e.g. epochs run), stored with the checkpoint and
        reported as ``train_<name>`` columns; none by default."""
        return {}

    def evaluation_metrics(self, x: Tensor, x_adv: Tensor) -> dict[str, float]:
        """Defense-specific columns of a cell, computed on the attacked points (e.g. a purifier's
        reconstruction loss); none by default."""
        return {}

    @torch.inference_mode()
    def predict(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Logits of the deployed path, computed in batches."""
        model = self.deployed_model().eval()
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The trainable parts by name; their weights make up the checkpoint."""

    def to(self, device: torch.device | str) -> Defense:
        self.device = torch.device(device)
        for module in self.modules().values():
            module.to(self.device)
        return self

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return {name: module.state_dict() for name, module in self.modules().items()}

    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        modules = self.modules()
        if set(state) != set(modules):
            raise KeyError(f"checkpoint holds {sorted(state)}, expected {sorted(modules)}")
        for name, module in modules.items():
            module.load_state_dict(state[name])
            module.eval()


DEFENSES: Registry[Defense] = Registry("defense", Defense, "defenses", "bench.defenses")
register_defense = DEFENSES.register
