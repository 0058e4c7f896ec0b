from __future__ import annotations

import numpy as np
import pytest

from gnn.training.calibrate import calibrate, quantile_thresholds
from graph.errors import ValidationError


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(2000) < 0.05
    s = np.clip(np.where(y, rng.normal(0.75, 0.15, y.size), rng.normal(0.3, 0.15, y.size)), 0, 1)
    return s, y


@pytest.mark.parametrize("target", [0.6, 0.8, 0.95])
def test_precision_at_high_meets_target(target: float) -> None:
    s, y = _scores()
    th = calibrate(s, y, target_precision=target, review_capacity=1.0)
    flagged = s >= th.high
    assert flagged.any()
    assert y[flagged].mean() >= target
    # The lowest such threshold: one step lower (the next distinct score) misses the target.
    below = s[s < th.high].max()
    assert y[s >= below].mean() < target or (s >= below).sum() == s.size


def test_medium_reaches_recall_and_not_above_high() -> None:
    s, y = _scores(1)
    th = calibrate(s, y, target_precision=0.8, target_recall=0.9, review_capacity=1.0)
    assert th.medium <= th.high
    assert y[s >= th.medium].sum() / y.sum() >= 0.9


@pytest.mark.parametrize("capacity", [0.01, 0.03, 0.05])
def test_tiers_respect_the_review_capacity(capacity: float) -> None:
    # Weak scores: reaching 80 % recall would send a third of everything to review.
    rng = np.random.default_rng(5)
    y = rng.random(5000) < 0.05
    s = np.clip(rng.normal(0.4, 0.2, y.size) + 0.1 * y, 0, 1)
    unlimited = calibrate(s, y, review_capacity=1.0)
    assert (s >= unlimited.medium).mean() > 0.2
    th = calibrate(s, y, review_capacity=capacity)
    assert (s >= th.medium).mean() <= capacity
    assert (s >= th.high).mean() <= capacity and th.medium <= th.high
    # The capacity counts the population the queue is drawn from, not the calibration sample.
    population = np.concatenate([s, np.zeros(5 * s.size)])
    th_pop = calibrate(s, y, review_capacity=capacity, population=population)
    assert (population >= th_pop.medium).mean() <= capacity
    assert th_pop.medium <= th.medium
    with pytest.raises(ValidationError, match="review_capacity"):
        calibrate(s, y, review_capacity=0.0)


def test_fallbacks_without_positives() -> None:
    s = np.linspace(0, 1, 1001)
    th = calibrate(s, np.zeros_like(s, dtype=bool))
    assert (s >= th.high).mean() == pytest.approx(0.01, abs=0.002)
    assert (s >= th.medium).mean() == pytest.approx(0.05, abs=0.002)


def test_unreachable_precision_falls_back_to_top_one_percent() -> None:
    rng = np.random.default_rng(3)
    s = rng.random(1000)
    y = rng.random(1000) < 0.05  # labels unrelated to scores
    th = calibrate(s, y, target_precision=0.99)
    assert (s >= th.high).mean() == pytest.approx(0.01, abs=0.002)


def test_quantile_thresholds() -> None:
    s = np.linspace(0, 1, 10001)
    th = quantile_thresholds(s, medium_top=0.08, high_top=0.02)
    assert (s >= th.high).mean() == pytest.approx(0.02, abs=0.001)
    assert (s >= th.medium).mean() == pytest.approx(0.08, abs=0.001)


def test_calibrate_validation_names_field() -> None:
    with pytest.raises(ValidationError, match="scores"):
        calibrate(np.zeros(0), np.zeros(0, bool))
