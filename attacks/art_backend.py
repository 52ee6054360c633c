"""Adapters over the Adversarial Robustness Toolbox (ART): ``art.fgsm``, ``art.pgd``, ``art.deepfool`` (L∞ or
L2; ART's ``norm=np.inf`` or ``norm=2``) and the L1 minimisation attack ``art.ead`` (ElasticNet).

ART works on numpy arrays, so each call crosses to numpy once on the way in and once on the
way out; the model itself stays on its device through ART's ``PyTorchClassifier``, locked in its
deployed modes (``library_session``: ART's ``predict`` would switch every submodule to eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from attacks.base import Attack, ThreatModel, register_attack
from attacks.gradient import PGD_PROFILE_OVERRIDES, PGDConfig
from attacks.library_backends import check_options, library_norm, library_session, number_of_classes, within_ball

ART_BATCH_SIZE = 256


def art_classifier(model: nn.Module, x: Tensor) -> Any:
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=number_of_classes(model, x),
        clip_values=(0.0, 1.0),
        device_type="gpu" if x.device.type == "cuda" else "cpu",
    )


class ArtAttack(Attack):
    backend = "art"
    norms = frozenset({"linf", "l2"})

    def _run(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        return within_ball(self, x, self._generate(model, x, y, eps, generator), eps)

    def _generate(self, model: nn.Module, x: Tensor, y: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        """ART's examples for budget ``eps``, as ART returns them."""
        with library_session(model, x, generator) as (locked, _):
            attack = self._art_attack(art_classifier(locked, x), eps)
            x_adv = attack.generate(x=x.detach().cpu().numpy(), y=y.detach().cpu().numpy())
        return torch.from_numpy(np.asarray(x_adv, dtype=np.float32)).to(x.device)

    @property
    def art_norm(self) -> Any:
        """This instance's threat model as ART's ``norm=``."""
        return library_norm("art", self.threat_model)

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        raise NotImplementedError


@register_attack("art.fgsm")
class ArtFGSM(ArtAttack):
    description = "Fast gradient method, L∞ (sign) or L2 (ART FastGradientMethod)"

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import FastGradientMethod

        return FastGradientMethod(classifier, norm=self.art_norm, eps=eps, eps_step=eps, batch_size=ART_BATCH_SIZE)


@register_attack("art.pgd")
class ArtPGD(ArtAttack):
    description = "Projected gradient descent, L∞ or L2, random start (ART ProjectedGradientDescent)"
    Config = PGDConfig
    profile_overrides = PGD_PROFILE_OVERRIDES

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import ProjectedGradientDescent

        cfg: PGDConfig = self.config
        return ProjectedGradientDescent(
            classifier,
            norm=self.art_norm,
            eps=eps,
            eps_step=cfg.step_size(eps, self.threat_model),
            max_iter=cfg.steps,
            num_random_init=int(cfg.random_start),
            batch_size=ART_BATCH_SIZE,
            verbose=False,
        )


@dataclass(frozen=True)
class DeepFoolConfig:
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02


#: Smoke runs cap DeepFool's iterations (a budget, not a change of method).
DEEPFOOL_PROFILE_OVERRIDES = {"smoke": {"steps": 10}}


@register_attack("art.deepfool")
class ArtDeepFool(ArtAttack):
    """ART's DeepFool is the L2 variant; its minimal perturbation is projected onto each ε ball (L∞ or L2)."""

    description = "DeepFool (ART, L2 minimal perturbation projected onto the ε ball, L∞ or L2)"
    Config = DeepFoolConfig
    profile_overrides = DEEPFOOL_PROFILE_OVERRIDES
    minimization = True

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import DeepFool

        cfg: DeepFoolConfig = self.config
        return DeepFool(
            classifier,
            max_iter=cfg.steps,
            epsilon=cfg.overshoot,
            nb_grads=cfg.candidates,
            batch_size=ART_BATCH_SIZE,
            verbose=False,
        )

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return self._generate(model, x, y, 1.0, generator)  # DeepFool has no budget: 1.0 is ignored


@dataclass(frozen=True)
class ElasticNetConfig:
    """EAD (Chen et al., AAAI 2018): ``binary_search_steps`` searches of the loss constant (from ``initial_const``),
    each ``max_iter`` FISTA steps of learning rate ``learning_rate`` (square-root decay to 0) with the L1 weight
    ``beta``; ``confidence`` is the logit margin asked for.  ART's defaults (the reference code's) but for the
    iterations: the paper's experiments' 1,000 (ART's default is 100; the reference code's 10,000 abort early, which
    ART does not)."""

    max_iter: int = 1000
    binary_search_steps: int = 9
    learning_rate: float = 0.01
    beta: float = 0.001
    initial_const: float = 0.001
    confidence: float = 0.0

    def __post_init__(self) -> None:
        check_options(
            self, counts=("max_iter", "binary_search_steps"), positive=("learning_rate", "beta", "initial_const")
        )
        if self.confidence < 0:
            raise ValueError("confidence must not be negative")


@register_attack("art.ead")
class ArtElasticNet(ArtAttack):
    """EAD with the L1 decision rule: each point keeps its smallest-L1 adversarial iterate (the clean input where none
    fools the model), which the harness projects onto each ε ball.  ART runs its batches of ``ART_BATCH_SIZE`` points
    one after another, each batch vectorised (with a Python loop over its points for the bookkeeping only)."""

    description = "Elastic-net attack (EAD), L1 minimisation (L1 decision rule), projected onto each ε (ART ElasticNet)"
    Config = ElasticNetConfig
    #: Smoke: a short search of short runs; quick: the full search of ART's default 100 iterations each.
    profile_overrides = {
        "smoke": {"binary_search_steps": 5, "max_iter": 50},
        "quick": {"binary_search_steps": 9, "max_iter": 100},
    }
    norms = frozenset({"l1"})
    threat_model: ThreatModel = "l1"
    minimization = True

    def _art_attack(self, classifier: Any, eps: float) -> Any:
        from art.attacks.evasion import ElasticNet

        cfg: ElasticNetConfig = self.config
        return ElasticNet(
            classifier,
            confidence=cfg.confidence,
            learning_rate=cfg.learning_rate,
            binary_search_steps=cfg.binary_search_steps,
            max_iter=cfg.max_iter,
            beta=cfg.beta,
            initial_const=cfg.initial_const,
            batch_size=ART_BATCH_SIZE,
            decision_rule="L1",
            verbose=False,
        )

    def _run_minimal(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return self._generate(model, x, y, 1.0, generator)  # EAD has no budget: 1.0 is ignored
