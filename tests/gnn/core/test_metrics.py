from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from gnn.core.metrics import (
    BETTER,
    BOOTSTRAP_SEED,
    NO_CLEAR_DIFFERENCE,
    WORSE,
    Comparison,
    Interval,
    SplitMetrics,
    TrainMetrics,
    auprc,
    auroc,
    bootstrap_intervals,
    paired_auprc_difference,
    recall_at_k,
    split_metrics,
)
from graph.errors import ValidationError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(500), 1)  # many ties
    y = rng.random(500) < 0.1 + 0.5 * scores
    assert auprc(scores, y) == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert auroc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_perfect_and_undefined() -> None:
    y = np.array([0, 0, 1, 1], dtype=bool)
    s = np.array([0.1, 0.2, 0.8, 0.9])
    assert auprc(s, y) == 1.0 and auroc(s, y) == 1.0
    assert math.isnan(auprc(s, np.zeros(4, bool)))
    assert math.isnan(auroc(s, np.ones(4, bool)))


def test_recall_at_k() -> None:
    s = np.array([0.9, 0.8, 0.7, 0.1])
    y = np.array([1, 0, 1, 1], dtype=bool)
    assert recall_at_k(s, y, 1) == pytest.approx(1 / 3)
    assert recall_at_k(s, y, 3) == pytest.approx(2 / 3)
    assert recall_at_k(s, y, 10) == 1.0
    with pytest.raises(ValidationError, match="k"):
        recall_at_k(s, y, 0)


def test_shape_mismatch_names_field() -> None:
    with pytest.raises(ValidationError, match="y"):
        auprc(np.zeros(3), np.zeros(4, bool))


def test_split_metrics_and_round_trip() -> None:
    assert split_metrics(np.array([0.1, 0.2]), np.array([False, False])) is None
    m = split_metrics(np.array([0.1, 0.9, 0.5]), np.array([False, True, False]))
    one = Interval(1.0, 1.0)
    assert m == SplitMetrics(auprc=1.0, auroc=1.0, recall_at_k=1.0, k=1, n=3, n_fraud=1, auprc_ci=one, auroc_ci=one)
    tm = TrainMetrics(m, None, m, None, epochs_run=3, seconds=1.5, seed=7)
    assert TrainMetrics.from_dict(tm.to_dict()) == tm
    # Metrics saved before intervals existed load with unknown ones.
    old = {k: v for k, v in m.to_dict().items() if not k.endswith("_ci")}
    assert math.isnan(SplitMetrics.from_dict(old).auprc_ci.low)


def test_bootstrap_matches_a_plain_stratified_resampling_with_sklearn() -> None:
    """The vectorised bootstrap equals resampling frauds and legitimate rows separately and
    scoring each resample with scikit-learn (same draws), ties included."""
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(300), 1)
    y = rng.random(300) < 0.05 + 0.3 * scores
    ap_ci, auc_ci = bootstrap_intervals(scores, y, resamples=60)
    order = np.argsort(-scores, kind="stable")
    pos, neg = scores[order][y[order]], scores[order][~y[order]]
    draw = np.random.default_rng(BOOTSTRAP_SEED)
    p_idx = draw.integers(0, pos.size, (60, pos.size))
    n_idx = draw.integers(0, neg.size, (60, neg.size))
    aps, aucs = [], []
    for i in range(60):
        s = np.r_[pos[p_idx[i]], neg[n_idx[i]]]
        t = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
        aps.append(average_precision_score(t, s))
        aucs.append(roc_auc_score(t, s))
    assert (ap_ci.low, ap_ci.high) == pytest.approx(tuple(np.percentile(aps, [2.5, 97.5])), abs=1e-12)
    assert (auc_ci.low, auc_ci.high) == pytest.approx(tuple(np.percentile(aucs, [2.5, 97.5])), abs=1e-12)


def test_intervals_narrow_with_more_frauds_and_include_the_estimate() -> None:
    rng = np.random.default_rng(3)
    widths = []
    for n_fraud in (20, 400):
        y = np.zeros(8000, dtype=bool)
        y[:n_fraud] = True
        scores = rng.normal(size=y.size) + 1.2 * y
        m = split_metrics(scores, y)
        assert m is not None and m.auprc_ci.contains(m.auprc) and m.auroc_ci.contains(m.auroc)
        widths.append(m.auprc_ci.high - m.auprc_ci.low)
        assert f"({n_fraud} frauds in 8,000)" in m.describe()
    assert widths[1] < widths[0] / 2
    # Same scores, same interval.
    assert bootstrap_intervals(scores, y) == bootstrap_intervals(scores, y)


def _comparison(model: np.ndarray, baseline: np.ndarray, y: np.ndarray) -> Comparison:
    diff, iv = paired_auprc_difference(model, baseline, y)
    return Comparison("accounts", "a", "b", diff, iv, y.size, int(y.sum()))


def test_a_paired_difference_separates_models_whose_own_intervals_overlap() -> None:
    rng = np.random.default_rng(3)
    y = np.zeros(3_000, dtype=bool)
    y[:40] = True
    shared = rng.normal(size=y.size) + 1.5 * y  # what both models see
    model = shared + 0.8 * y + 0.3 * rng.normal(size=y.size)
    baseline = shared + 0.3 * rng.normal(size=y.size)
    a, b = split_metrics(model, y), split_metrics(baseline, y)
    assert a is not None and b is not None
    # Side by side, the two 40-fraud intervals overlap: no claim could be made from them.
    assert a.auprc_ci.low < b.auprc_ci.high
    better = _comparison(model, baseline, y)
    assert better.difference == pytest.approx(a.auprc - b.auprc)
    assert better.interval.contains(better.difference) and better.interval.low > 0
    assert better.verdict == BETTER
    worse = _comparison(baseline, model, y)
    assert worse.verdict == WORSE and worse.difference == pytest.approx(-better.difference)
    # Same scores, same interval.
    assert paired_auprc_difference(model, baseline, y) == paired_auprc_difference(model, baseline, y)


def test_a_model_against_itself_or_noise_is_no_clear_difference() -> None:
    rng = np.random.default_rng(4)
    y = rng.random(2_000) < 0.02
    scores = rng.normal(size=y.size) + y
    same = _comparison(scores, scores.copy(), y)
    assert same.difference == 0.0 and same.interval == Interval(0.0, 0.0)
    assert same.verdict == NO_CLEAR_DIFFERENCE
    noise = _comparison(scores + 0.05 * rng.normal(size=y.size), scores, y)
    assert noise.verdict == NO_CLEAR_DIFFERENCE
    diff, iv = paired_auprc_difference(scores, scores, np.zeros(y.size, dtype=bool))
    assert math.isnan(diff) and math.isnan(iv.low)
    with pytest.raises(ValidationError):
        paired_auprc_difference(scores, scores[:-1], y)
