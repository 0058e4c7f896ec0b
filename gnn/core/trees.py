"""Gradient-boosted trees as plain arrays: their config, the fit, and a fitted family that a
``ModelArtefact`` can hold and score with (``gnn.core.tree_features`` builds their columns).

A fitted ``HistGradientBoostingClassifier`` becomes a ``TreeEnsemble``: its nodes as plain arrays
(feature, threshold, where missing values go, children, leaf value). Why not pickle: the artefact
is read with ``torch.load(weights_only=True)`` so that loading a model cannot run code, and a
pickled estimator would break that. ``TreeEnsemble.decision`` walks the same nodes with the same
comparisons (``x <= threshold``, NaN to the stored side) and adds the leaves in the same order as
scikit-learn's ``decision_function``, so the scores are bit-identical (a test checks it).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from gnn.core.tree_features import TREE_FAMILIES, TreeInputs
from graph.errors import ModelError, ValidationError

__all__ = [
    "TreeConfig",
    "TreeEnsemble",
    "TreeScorer",
    "fit_trees",
    "fit_tree_scorer",
]

log = logging.getLogger(__name__)

#: Rows scored per block: bounds the [rows, trees] traversal state to a few MB.
_PREDICT_BLOCK = 4096


@dataclass(frozen=True, slots=True)
class TreeConfig:
    """Knobs of the gradient-boosted trees (``sklearn.ensemble.HistGradientBoostingClassifier``);
    no early stopping, so the fit is a pure function of the data and the seed.

    Raises:
        ValidationError: a value out of range (names the field).
    """

    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_iter", "max_leaf_nodes", "min_samples_leaf"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValidationError(f"TreeConfig.{name}", v, "must be an integer >= 1")
        if not self.learning_rate > 0:
            raise ValidationError("TreeConfig.learning_rate", self.learning_rate, "must be > 0")
        if self.l2_regularization < 0:
            raise ValidationError("TreeConfig.l2_regularization", self.l2_regularization, "must be >= 0")


# -- a fitted ensemble as plain arrays -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeEnsemble:
    """A fitted binary ``HistGradientBoostingClassifier`` as arrays, padded to [n_trees, M] nodes.

    Node ``j`` of tree ``i``: ``feature[i, j]`` and ``threshold[i, j]`` (go left when
    ``x <= threshold``), ``missing_left[i, j]`` (where NaN goes), children ``left`` / ``right``
    (a leaf and padding point at themselves), ``value[i, j]`` (the leaf's raw score). The
    probability is ``sigmoid(baseline + sum of leaves - shift)``: ``shift`` undoes the odds
    inflation of balanced class weights (``log(n_neg / n_pos)``). ``n_features`` is the width
    the trees were fitted on; ``depth`` the longest root-to-leaf path.
    """

    feature: np.ndarray  # int64 [n_trees, M]
    threshold: np.ndarray  # float64 [n_trees, M]
    missing_left: np.ndarray  # bool [n_trees, M]
    left: np.ndarray  # int64 [n_trees, M]
    right: np.ndarray  # int64 [n_trees, M]
    value: np.ndarray  # float64 [n_trees, M]
    baseline: float
    shift: float
    n_features: int
    depth: int

    @property
    def n_trees(self) -> int:
        return int(self.feature.shape[0])

    @classmethod
    def constant(cls, probability: float, n_features: int) -> TreeEnsemble:
        """No trees: every row gets ``probability`` (a fit with one class only)."""
        p = min(max(float(probability), 1e-12), 1.0 - 1e-12)
        z = np.zeros((0, 1))
        return cls(
            feature=z.astype(np.int64),
            threshold=z.copy(),
            missing_left=z.astype(bool),
            left=z.astype(np.int64),
            right=z.astype(np.int64),
            value=z.copy(),
            baseline=math.log(p / (1.0 - p)),
            shift=0.0,
            n_features=int(n_features),
            depth=0,
        )

    @classmethod
    def from_classifier(cls, clf: object, shift: float) -> TreeEnsemble:
        """Copy the nodes out of a fitted binary classifier without categorical features.

        Raises:
            ModelError: not a fitted binary ``HistGradientBoostingClassifier``, or it uses
                categorical splits (not supported here).
        """
        predictors = getattr(clf, "_predictors", None)
        baseline = getattr(clf, "_baseline_prediction", None)
        if predictors is None or baseline is None or getattr(clf, "n_trees_per_iteration_", 0) != 1:
            raise ModelError("expected a fitted binary HistGradientBoostingClassifier")
        nodes = [it[0].nodes for it in predictors]
        if any(n["is_categorical"].any() for n in nodes):
            raise ModelError("categorical tree splits cannot be stored in an artefact")
        n_trees = len(nodes)
        m = max((n.shape[0] for n in nodes), default=1)
        own = np.broadcast_to(np.arange(m, dtype=np.int64), (n_trees, m))
        feature = np.zeros((n_trees, m), dtype=np.int64)
        threshold = np.zeros((n_trees, m))
        missing_left = np.zeros((n_trees, m), dtype=bool)
        left = own.copy()
        right = own.copy()
        value = np.zeros((n_trees, m))
        depth = 0
        for i, n in enumerate(nodes):
            k = n.shape[0]
            leaf = n["is_leaf"].astype(bool)
            feature[i, :k] = np.where(leaf, 0, n["feature_idx"])
            threshold[i, :k] = n["num_threshold"]
            missing_left[i, :k] = n["missing_go_to_left"].astype(bool)
            left[i, :k] = np.where(leaf, np.arange(k), n["left"])
            right[i, :k] = np.where(leaf, np.arange(k), n["right"])
            value[i, :k] = n["value"]
            depth = max(depth, int(n["depth"].max()))
        return cls(
            feature=feature,
            threshold=threshold,
            missing_left=missing_left,
            left=left,
            right=right,
            value=value,
            baseline=float(np.asarray(baseline).ravel()[0]),
            shift=float(shift),
            n_features=int(getattr(clf, "n_features_in_")),
            depth=depth,
        )

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds before ``shift``), float64 [N]; equal to the classifier's
        ``decision_function(x)``.

        Raises:
            ModelError: ``x`` is not [N, n_features].
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ModelError(f"tree inputs have shape {x.shape}; the trees were fitted on {self.n_features} columns")
        out = np.full(x.shape[0], self.baseline, dtype=np.float64)
        if self.n_trees == 0:
            return out
        m = self.feature.shape[1]
        # One flat node table; a row's position in each tree is a global node number.
        feat, thr = self.feature.ravel(), self.threshold.ravel()
        miss = self.missing_left.ravel()
        offset = (np.arange(self.n_trees, dtype=np.int64) * m)[None, :]
        left, right = (self.left + offset.T).ravel(), (self.right + offset.T).ravel()
        value = self.value.ravel()
        for lo in range(0, x.shape[0], _PREDICT_BLOCK):
            xb = x[lo : lo + _PREDICT_BLOCK]
            node = np.repeat(offset, xb.shape[0], axis=0)  # [rows, trees], all at their roots
            for _ in range(self.depth):
                xv = np.take_along_axis(xb, feat[node], axis=1)
                go_left = np.where(np.isnan(xv), miss[node], xv <= thr[node])
                node = np.where(go_left, left[node], right[node])
            leaves = value[node]
            acc = out[lo : lo + _PREDICT_BLOCK]
            for i in range(self.n_trees):  # tree by tree, like scikit-learn: identical sums
                acc += leaves[:, i]
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of fraud, float64 [N] in [0, 1]."""
        logit = self.decision(x) - self.shift
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict[str, object]:
        """Tensors and plain values only (``torch.load(weights_only=True)`` can read it)."""
        return {
            "feature": torch.from_numpy(np.ascontiguousarray(self.feature, dtype=np.int64)),
            "threshold": torch.from_numpy(np.ascontiguousarray(self.threshold, dtype=np.float64)),
            "missing_left": torch.from_numpy(np.ascontiguousarray(self.missing_left, dtype=bool)),
            "left": torch.from_numpy(np.ascontiguousarray(self.left, dtype=np.int64)),
            "right": torch.from_numpy(np.ascontiguousarray(self.right, dtype=np.int64)),
            "value": torch.from_numpy(np.ascontiguousarray(self.value, dtype=np.float64)),
            "baseline": float(self.baseline),
            "shift": float(self.shift),
            "n_features": int(self.n_features),
            "depth": int(self.depth),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TreeEnsemble:
        """Inverse of ``to_dict``; checks that the node table is consistent.

        Raises:
            ModelError: arrays of different shapes, or children outside their tree.
        """
        arrays = {k: d[k].numpy() for k in ("feature", "threshold", "missing_left", "left", "right", "value")}  # type: ignore[attr-defined]
        shape = arrays["feature"].shape
        if any(a.shape != shape for a in arrays.values()) or len(shape) != 2:
            raise ModelError(f"tree ensemble arrays disagree in shape ({ {k: a.shape for k, a in arrays.items()} })")
        m = shape[1]
        for k in ("left", "right"):
            if arrays[k].size and (arrays[k].min() < 0 or arrays[k].max() >= m):
                raise ModelError(f"tree ensemble: a {k} child points outside its tree")
        n_features = int(d["n_features"])  # type: ignore[call-overload]
        if arrays["feature"].size and (arrays["feature"].min() < 0 or arrays["feature"].max() >= n_features):
            raise ModelError("tree ensemble: a split reads a column outside the inputs")
        return cls(
            feature=arrays["feature"].astype(np.int64),
            threshold=arrays["threshold"].astype(np.float64),
            missing_left=arrays["missing_left"].astype(bool),
            left=arrays["left"].astype(np.int64),
            right=arrays["right"].astype(np.int64),
            value=arrays["value"].astype(np.float64),
            baseline=float(d["baseline"]),  # type: ignore[arg-type]
            shift=float(d["shift"]),  # type: ignore[arg-type]
            n_features=n_features,
            depth=int(d["depth"]),  # type: ignore[call-overload]
        )


@functools.lru_cache(maxsize=1)
def _classifier() -> type:
    """``HistGradientBoostingClassifier`` whose feature bins are unweighted quantiles of the fit
    rows, as scikit-learn computed them up to 1.5 (``pyproject`` allows >= 1.4). From 1.6 on, with
    class weights, each bin edge is a separate weighted-percentile pass over the column, which
    then takes most of a fit's time. The class weights still weight the loss."""
    # Imported here: scikit-learn's estimators are only needed to fit, not to score.
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not hasattr(HistGradientBoostingClassifier, "_bin_data"):  # another layout: its own binning
        return HistGradientBoostingClassifier

    class _UnweightedBins(HistGradientBoostingClassifier):
        def _bin_data(self, X: np.ndarray, sample_weight: np.ndarray | None, is_training_data: bool) -> np.ndarray:
            return super()._bin_data(X, None, is_training_data)

    return _UnweightedBins


def fit_trees(x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, seed: int, config: TreeConfig) -> TreeEnsemble:
    """Fit balanced trees on rows ``fit_rows`` of ``x`` against ``y`` (bool [N]).

    Trees are weighted to balance the classes; the ensemble's ``shift`` moves the probabilities
    back by the class-weight ratio (like GraphSAGE's prior shift). A single class in the fit rows
    gives a constant ensemble (logged).
    """
    return _fit_and_score(x, y, fit_rows, seed, config)[0]


def _fit_and_score(
    x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, seed: int, config: TreeConfig
) -> tuple[TreeEnsemble, np.ndarray]:
    """``fit_trees`` and the fitted ensemble's probabilities on every row of ``x``, from
    scikit-learn's compiled predictor (equal to ``TreeEnsemble.predict_proba``, and faster than
    its numpy walk on large tables)."""
    yy = y[fit_rows].astype(bool)
    n_pos = int(yy.sum())
    n_neg = int(yy.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        log.warning("trees: the training rows hold only one class (%d fraud of %d); constant scores", n_pos, yy.size)
        const = TreeEnsemble.constant(n_pos / max(yy.size, 1), x.shape[1])
        return const, const.predict_proba(x)
    clf = _classifier()(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    )
    # One OpenMP thread: on a busy machine with few cores (torch beside us, other jobs) the
    # threads' spin-waits at every barrier make a fit slower than single-threaded.
    xf = x[fit_rows]
    empty = np.isnan(xf).all(axis=0)
    if empty.any():
        # scikit-learn fails on a column with no value at all (e.g. IP features on data without
        # IPs); a constant column is never split on, so 0 there changes nothing else.
        xf = xf.copy()
        xf[:, empty] = 0.0
    # Balanced weights inflate the odds by n_neg / n_pos; the shift takes that back.
    shift = math.log(n_neg / n_pos)
    with threadpool_limits(limits=1, user_api="openmp"):
        clf.fit(xf, yy)
        decision = clf.decision_function(np.asarray(x, dtype=np.float64))
    return TreeEnsemble.from_classifier(clf, shift=shift), 1.0 / (1.0 + np.exp(-(decision - shift)))


# -- one family: account trees + stacked transaction trees ----------------------------------------


@dataclass(frozen=True, slots=True)
class TreeScorer:
    """One fitted tree family (``family`` in ``TREE_FAMILIES``): the account trees and the
    transaction trees stacked on their account scores."""

    family: str
    account: TreeEnsemble
    txn: TreeEnsemble

    def __post_init__(self) -> None:
        if self.family not in TREE_FAMILIES:
            raise ValidationError("family", self.family, f"must be one of {TREE_FAMILIES}")

    def predict(self, inputs: TreeInputs, embeddings: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Account scores float64 [N_user] and transaction scores float64 [T], in [0, 1].
        ``embeddings``: GraphSAGE's user embeddings, needed by ``hybrid`` only."""
        account = self.account.predict_proba(inputs.account_x(self.family, embeddings))
        txn = self.txn.predict_proba(inputs.txn_x(self.family, account))
        return account, txn

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every array as a named tensor (for the artefact's version digest)."""
        out: dict[str, torch.Tensor] = {}
        for part, ens in (("account", self.account), ("txn", self.txn)):
            for k, v in ens.to_dict().items():
                out[f"trees.{self.family}.{part}.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(float(v))
        return out

    def to_dict(self) -> dict[str, object]:
        return {"family": self.family, "account": self.account.to_dict(), "txn": self.txn.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TreeScorer:
        return cls(
            family=str(d["family"]),
            account=TreeEnsemble.from_dict(d["account"]),  # type: ignore[arg-type]
            txn=TreeEnsemble.from_dict(d["txn"]),  # type: ignore[arg-type]
        )


def fit_tree_scorer(
    family: str,
    inputs: TreeInputs,
    y_user: np.ndarray,
    y_txn: np.ndarray,
    user_rows: np.ndarray,
    txn_rows: np.ndarray,
    seed: int,
    config: TreeConfig,
    embeddings: np.ndarray | None = None,
) -> tuple[TreeScorer, np.ndarray, np.ndarray]:
    """Fit ``family`` on the training accounts ``user_rows`` and transactions ``txn_rows``;
    returns the scorer and its account [N_user] and transaction [T] scores on every row."""
    ax = inputs.account_x(family, embeddings)
    account_trees, account = _fit_and_score(ax, y_user, user_rows, seed, config)
    txn_trees, txn = _fit_and_score(inputs.txn_x(family, account), y_txn, txn_rows, seed, config)
    return TreeScorer(family, account_trees, txn_trees), account, txn
