"""``cnn``: the undefended CNN (Madry's MNIST architecture; C&W's small CNN on CIFAR-10), the reference row.

It is also the one shared classifier behind every purifier defense, trained once on clean
MNIST so that purifier rows differ only in the purifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from defenses.base import Defense, FitContext, register_defense
from defenses.networks import MadryCNN, classifier_for
from defenses.training_loops import History, train_classifier
from foundation.splits import Split


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128


class ClassifierDefense(Defense):
    """A defense that is a single Madry-architecture classifier (its training is what differs)."""

    def __init__(self, config: object = None) -> None:
        super().__init__(config)
        self.model = MadryCNN()
        self.history = History()

    def for_dataset(self, input_shape: tuple[int, int, int], classes: int) -> None:
        self.model = classifier_for(input_shape, classes)

    def fit_summary(self) -> dict[str, float]:
        history = self.history
        if not history.train_loss:
            return {}
        return {"epochs": float(len(history.train_loss)), "val_accuracy": history.val_accuracy[-1]}

    def deployed_model(self) -> nn.Module:
        return self.model

    def modules(self) -> dict[str, nn.Module]:
        return {"classifier": self.model}


@register_defense("cnn")
class UndefendedCNN(ClassifierDefense):
    description = "Undefended Madry-architecture CNN, clean training (reference row; shared classifier)"
    Config = ClassifierConfig
    profile_overrides = {"smoke": {"epochs": 1}, "quick": {"epochs": 3}}

    def fit(self, train: Split, val: Split, ctx: FitContext) -> None:
        cfg: ClassifierConfig = self.config
        self.history = train_classifier(
            self.model, train, val, ctx, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, desc="cnn"
        )
