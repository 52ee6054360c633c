"""Per-cell measurements on tensors: robust predictions, accuracies with Wilson intervals, macro-F1, success rate,
perturbation sizes (the statistics and codecs they use, which tables read too, are ``results.statistics``)."""

from __future__ import annotations

import math

import torch
from sklearn.metrics import f1_score
from torch import Tensor, nn

from attacks.base import perturbation_size
from benchmark.results.statistics import pack_mask, wilson_interval
from foundation.threat_models import NORMS


def robust_predictions(predictions: Tensor, y: Tensor) -> Tensor:
    """Collapse repeated predictions (R, N) to one per point under the all-correct rule.

    A point keeps its label only if every repeat is correct; otherwise it takes its first
    wrong prediction.  Accuracy of the result is the robust accuracy, and F1 uses it too.
    """
    wrong = predictions != y
    first_wrong = predictions.gather(0, wrong.to(torch.int8).argmax(dim=0, keepdim=True)).squeeze(0)
    return torch.where(wrong.any(dim=0), first_wrong, y)


def cell_metrics(y: Tensor, clean_correct: Tensor, adv_predictions: Tensor, x: Tensor, x_adv: Tensor) -> dict:
    """Metrics of one cell; a point is robust only if it is correct both clean and attacked."""
    n = len(y)
    robust = clean_correct & (adv_predictions == y)
    n_clean, n_robust = int(clean_correct.sum()), int(robust.sum())
    ci_low, ci_high = wilson_interval(n_robust, n)
    attacked = clean_correct
    sizes = {norm: perturbation_size(x[attacked], x_adv[attacked], norm) for norm in NORMS}
    y_cpu, pred_cpu = y.cpu().numpy(), adv_predictions.cpu().numpy()
    return {
        "robust_points": pack_mask(robust.cpu()),
        "n": n,
        "clean_accuracy": n_clean / n,
        "robust_accuracy": n_robust / n,
        "robust_accuracy_ci_low": ci_low,
        "robust_accuracy_ci_high": ci_high,
        "f1_macro": float(f1_score(y_cpu, pred_cpu, average="macro", zero_division=0)),
        "attack_success_rate": (n_clean - n_robust) / n_clean if n_clean else math.nan,
        **{f"{norm}_mean": float(size.mean()) if len(size) else 0.0 for norm, size in sizes.items()},
        "linf_max": float(sizes["linf"].max()) if n_clean else 0.0,
    }


class PropagationCounter(nn.Module):
    """The attacked model, counting the images it propagates forward and back (AttackBench's budget view).

    A forward call adds its batch size; a backward pass through the output adds it again (a hook on the output,
    so gradients taken with ``torch.autograd.grad`` count too).  Wrapped as ``model``, so attacks that look
    through wrappers (``find_purifier_pipeline``) still find what is inside; a pass the attack makes through a
    part of the model directly (the VAE attacks' purifier) is not counted.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.training = model.training  # the mode the attack sees (Foolbox warns on a model in training mode)
        self.forwards = 0
        self.backwards = 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        self.forwards += int(x.shape[0])
        if out.requires_grad:
            images = int(x.shape[0])
            out.register_hook(lambda grad: self._backward(images, grad))
        return out

    def _backward(self, images: int, grad: Tensor) -> Tensor:
        self.backwards += images
        return grad

    def per_point(self, points: int) -> dict[str, float]:
        """Forward and backward passes per attacked point."""
        return {"forward_passes": self.forwards / max(points, 1), "backward_passes": self.backwards / max(points, 1)}
