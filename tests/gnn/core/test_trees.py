"""Fitted trees as plain arrays: the same scores as scikit-learn, stored without pickle."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from gnn.core.trees import TreeConfig, TreeEnsemble, _fit_and_score, fit_trees
from graph.errors import ModelError


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 12))
    x[rng.random(x.shape) < 0.15] = np.nan  # missing values take the learnt side
    y = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 3]) + rng.normal(scale=0.7, size=3000) > 1.8
    return x, y


def test_scores_are_bit_identical_to_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    clf = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(x[:2000], y[:2000])
    trees = TreeEnsemble.from_classifier(clf, shift=0.0)
    probe = x.copy()
    probe[:10] = np.nan  # rows with every value missing
    probe[10:20] = 1e9  # and far outside the training range
    np.testing.assert_array_equal(trees.decision(probe), clf.decision_function(probe))


def test_scores_at_fit_time_equal_the_stored_ensembles(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Training scores come from scikit-learn's predictor, serving scores from the stored arrays:
    they must be the same numbers, or the thresholds calibrated at training would drift."""
    x, y = data
    x = x.copy()
    x[:, 5] = np.nan  # a column with no value at all is filled for the fit only
    ens, scores = _fit_and_score(x, y, np.arange(2000), seed=2, config=TreeConfig(max_iter=40))
    np.testing.assert_array_equal(scores, ens.predict_proba(x))
    const, flat = _fit_and_score(x, np.zeros(3000, dtype=bool), np.arange(50), seed=2, config=TreeConfig())
    np.testing.assert_array_equal(flat, const.predict_proba(x))


def test_fit_shifts_back_the_balanced_odds(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    rows = np.arange(2000)
    trees = fit_trees(x, y, rows, seed=1, config=TreeConfig(max_iter=30))
    n_pos = int(y[rows].sum())
    assert trees.shift == pytest.approx(np.log((2000 - n_pos) / n_pos))
    p = trees.predict_proba(x)
    assert p.shape == (3000,) and p.min() >= 0.0 and p.max() <= 1.0
    # Balanced weights without the shift would put the mean far above the base rate.
    assert abs(p[rows].mean() - y[rows].mean()) < 0.05


def test_round_trip_through_a_weights_only_torch_file(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    trees = fit_trees(x, y, np.arange(2000), seed=1, config=TreeConfig(max_iter=20))
    buf = io.BytesIO()
    torch.save(trees.to_dict(), buf)
    buf.seek(0)
    loaded = TreeEnsemble.from_dict(torch.load(buf, weights_only=True))
    np.testing.assert_array_equal(loaded.predict_proba(x), trees.predict_proba(x))


def test_one_class_gives_a_constant_and_bad_inputs_are_refused(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = data
    const = fit_trees(x, np.zeros(3000, dtype=bool), np.arange(100), seed=1, config=TreeConfig())
    assert const.n_trees == 0 and np.all(const.predict_proba(x) < 1e-6)
    with pytest.raises(ModelError, match="12 columns"):
        const.predict_proba(x[:, :5])
    d = const.to_dict()
    d["left"] = torch.ones((0, 2), dtype=torch.int64)
    with pytest.raises(ModelError, match="shape"):
        TreeEnsemble.from_dict(d)


def test_a_feature_column_with_no_values_does_not_stop_the_fit() -> None:
    """Data without IPs gives all-NaN IP columns (the IEEE-CIS sample); the fit must go on."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    x[:, 1] = np.nan
    y = x[:, 0] > 1.0
    ens = fit_trees(x, y, np.arange(400), seed=0, config=TreeConfig())
    scores = ens.predict_proba(x)
    assert float(np.mean(scores[y])) > float(np.mean(scores[~y]))
