import math

import pytest
import torch

from benchmark.results.statistics import wilson_interval
from benchmark.run.measurements import cell_metrics, robust_predictions


def test_wilson_interval_known_values():
    low, high = wilson_interval(0, 200)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.01884, abs=1e-4)
    low, high = wilson_interval(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-3), pytest.approx(0.5962, abs=1e-3))
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_wilson_interval_is_scipys_to_the_bit():
    """The formula written out (no scipy.stats on the table path) gives SciPy's Wilson interval exactly."""
    from scipy.stats import binomtest

    for n in (1, 7, 200, 1000):
        for k in range(0, n + 1, max(1, n // 50)):
            interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            assert wilson_interval(k, n) == (float(interval.low), float(interval.high))
    interval = binomtest(30, 90).proportion_ci(confidence_level=0.9, method="wilson")
    assert wilson_interval(30, 90, 0.9) == pytest.approx((interval.low, interval.high), abs=1e-15)


def test_robust_predictions_require_every_repeat_to_be_correct():
    y = torch.tensor([0, 1, 2, 3])
    repeats = torch.tensor([[0, 1, 2, 3], [0, 5, 2, 7], [0, 1, 9, 8]])
    assert robust_predictions(repeats, y).tolist() == [0, 5, 9, 7]


def test_cell_metrics():
    y = torch.tensor([0, 1, 2, 3])
    clean_correct = torch.tensor([True, True, True, False])
    adversarial_predictions = torch.tensor([0, 2, 2, 3])
    x = torch.zeros(4, 1, 2, 2)
    x_adv = x.clone()
    x_adv[1] += 0.3
    x_adv[3] += 0.9  # not attacked: norms only count attacked (initially correct) points
    metrics = cell_metrics(y, clean_correct, adversarial_predictions, x, x_adv)
    assert metrics["clean_accuracy"] == 0.75
    assert metrics["robust_accuracy"] == 0.5  # point 3 is right under attack but was wrong clean
    assert metrics["attack_success_rate"] == pytest.approx(1 / 3)
    assert metrics["linf_max"] == pytest.approx(0.3)
    assert metrics["linf_mean"] == pytest.approx(0.1)
    assert metrics["robust_accuracy_ci_low"] < 0.5 < metrics["robust_accuracy_ci_high"]
    assert metrics["f1_macro"] == pytest.approx((1 + 0 + 2 / 3 + 1) / 4)
