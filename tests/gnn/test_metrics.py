from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from gnn.metrics import SplitMetrics, TrainMetrics, auprc, auroc, recall_at_k, split_metrics
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
    assert m == SplitMetrics(auprc=1.0, auroc=1.0, recall_at_k=1.0, k=1, n=3, n_fraud=1)
    tm = TrainMetrics(m, None, m, None, epochs_run=3, seconds=1.5, seed=7)
    assert TrainMetrics.from_dict(tm.to_dict()) == tm
