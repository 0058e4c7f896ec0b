"""``ringwatch.analysis.thresholds``: operating points, chosen thresholds, their costs, intervals."""

from __future__ import annotations

import numpy as np
import pytest

from gnn.core.metrics import auroc, split_metrics
from gnn.core.thresholds import Thresholds
from graph.errors import ValidationError
from ringwatch.analysis.thresholds import choose_thresholds, metric_interval, operating_points, tier_costs
from tests.ringwatch.analysis.world import random_scores


def test_operating_points_count_what_each_threshold_flags() -> None:
    s, y = random_scores()
    points = operating_points(s, y)
    assert [p.threshold for p in points] == sorted(set(s.tolist()), reverse=True)
    for p in points[::50]:
        flag = s >= p.threshold
        assert p.flagged == flag.sum() and p.true_positives == (flag & y).sum()
        assert p.precision == pytest.approx((flag & y).sum() / flag.sum())
        assert p.recall == pytest.approx((flag & y).sum() / y.sum())
        assert p.missed == (~flag & y).sum()


@pytest.mark.parametrize(("target", "rate"), [(0.8, 0.05), (0.6, 0.02), (0.9, 0.1)])
def test_choose_thresholds_meets_the_target_precision_and_review_capacity(target: float, rate: float) -> None:
    s, y = random_scores()
    choice = choose_thresholds(s, y, target_precision=target, review_rate=rate)
    th = choice.thresholds
    blocked = s >= th.high
    precision = (blocked & y).sum() / blocked.sum()
    assert choice.precision_met
    assert choice.high_point.precision == pytest.approx(precision) and precision >= target
    # HIGH is the lowest threshold that meets the target: every lower score misses it.
    for lower in np.unique(s[s < th.high])[-20:]:
        flag = s >= lower
        assert (flag & y).sum() / flag.sum() < target
    review = ((s >= th.medium) & ~blocked).sum()
    assert review / s.size == pytest.approx(choice.review_share) and choice.review_share <= rate
    below = np.unique(s[s < th.medium])
    if below.size:  # one step lower would overflow the review queue
        assert ((s >= below[-1]) & ~blocked).sum() > int(rate * s.size)
    costs = tier_costs(s, y, th)
    assert costs.blocked + costs.reviewed + (s < th.medium).sum() == s.size
    assert costs.block_precision == pytest.approx(precision)
    assert costs.missed_fraud == (y & (s < th.medium)).sum()


def test_choose_thresholds_says_when_the_precision_target_cannot_be_met() -> None:
    rng = np.random.default_rng(0)
    s, y = rng.random(500), rng.random(500) < 0.05  # scores that know nothing
    choice = choose_thresholds(s, y, target_precision=0.99, review_rate=0.05)
    assert not choice.precision_met
    with pytest.raises(ValidationError):
        choose_thresholds(s, y, target_precision=0.8, review_rate=1.5)


def test_metric_interval_brackets_the_point_and_is_reproducible() -> None:
    s, y = random_scores(400)
    a = metric_interval(s, y, resamples=200, seed=5)
    assert a.low <= a.point <= a.high and a.n == 400 and a.n_fraud == y.sum()
    assert a == metric_interval(s, y, resamples=200, seed=5)
    perfect = metric_interval(y.astype(float), y, resamples=50)
    assert perfect.point == perfect.low == perfect.high == 1.0
    big_s, big_y = random_scores(4000, seed=9)
    small = metric_interval(big_s[:300], big_y[:300], resamples=200, seed=5)
    big = metric_interval(big_s, big_y, resamples=200, seed=5)
    assert small.high - small.low > big.high - big.low  # fewer items, wider interval


def test_metric_interval_is_the_interval_the_reports_print() -> None:
    """A notebook's interval and the evaluation report's for the same scores are the same numbers."""
    s, y = random_scores(600, seed=3)
    report = split_metrics(s, y)
    assert report is not None
    mine = metric_interval(s, y)
    assert (mine.level, mine.low, mine.high) == (0.95, report.auprc_ci.low, report.auprc_ci.high)
    auc = metric_interval(s, y, metric=auroc)
    assert (auc.low, auc.high) == (report.auroc_ci.low, report.auroc_ci.high)
    other = metric_interval(s, y, level=0.9, resamples=100)  # the generic path keeps every fraud too
    assert other.low <= other.point <= other.high and other.level == 0.9


def test_thresholds_chosen_are_thresholds_the_artefact_accepts() -> None:
    s, y = random_scores()
    th = choose_thresholds(s, y, target_precision=0.8, review_rate=0.05).thresholds
    assert isinstance(th, Thresholds) and 0.0 <= th.medium <= th.high <= 1.0
