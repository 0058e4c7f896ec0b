"""Ranking metrics for fraud scores: AUPRC (average precision), AUROC and Recall@K.

Plain numpy so that they are fast on a million scores and behave the same everywhere. Ties in
the scores are handled the way scikit-learn does (a tied block counts as one threshold), so the
numbers match ``sklearn.metrics.average_precision_score`` / ``roc_auc_score``.

When a metric is undefined (no positives, or for AUROC no negatives) it returns ``nan`` rather
than raising: a split without frauds is an ordinary situation in a small time window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from graph.errors import ValidationError


def _check(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(y).ravel().astype(bool)
    if s.shape != t.shape:
        raise ValidationError("y", f"shape {t.shape}", f"must match scores shape {s.shape}")
    if s.size and not np.all(np.isfinite(s)):
        raise ValidationError("scores", "non-finite values", "scores must be finite")
    return s, t


def auprc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the precision–recall curve as average precision (step-wise, no interpolation).

    Args:
        scores: float [N], higher = more suspicious.
        y: bool-like [N], True for fraud.
    Returns:
        AP in [0, 1], or ``nan`` when ``y`` has no positives.
    """
    s, t = _check(scores, y)
    n_pos = int(t.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    tp = np.cumsum(t)
    # Last index of each block of tied scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp_at = tp[last].astype(np.float64)
    precision = tp_at / (last + 1)
    recall = tp_at / n_pos
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(d_recall * precision))


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with average ranks for ties).

    Returns ``nan`` when ``y`` is all positive or all negative.
    """
    s, t = _check(scores, y)
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    # Average rank (1-based) of each tied block.
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    ends = np.r_[starts[1:], s.size]
    block_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat(block_rank, ends - starts)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def recall_at_k(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of all positives found among the ``k`` highest scores (ties broken by position).

    Returns ``nan`` when ``y`` has no positives. ``k`` larger than N means all of them.

    Raises:
        ValidationError: ``k`` < 1.
    """
    if k < 1:
        raise ValidationError("k", k, "must be at least 1")
    s, t = _check(scores, y)
    n_pos = int(t.sum())
    if n_pos == 0:
        return float("nan")
    top = np.argsort(-s, kind="stable")[:k]
    return float(t[top].sum() / n_pos)


# -- evaluation records (re-exported by ``gnn.train``) -------------------------------------------


@dataclass(frozen=True, slots=True)
class SplitMetrics:
    """Ranking quality on one split. ``k`` = number of frauds in the split (Recall@K)."""

    auprc: float
    auroc: float
    recall_at_k: float
    k: int
    n: int
    n_fraud: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, float | int]) -> SplitMetrics:
        return cls(
            auprc=float(d["auprc"]),
            auroc=float(d["auroc"]),
            recall_at_k=float(d["recall_at_k"]),
            k=int(d["k"]),
            n=int(d["n"]),
            n_fraud=int(d["n_fraud"]),
        )


@dataclass(frozen=True, slots=True)
class TrainMetrics:
    """Held-out quality of a trained model. A split is ``None`` when it has no fraud label."""

    accounts_val: SplitMetrics | None
    accounts_test: SplitMetrics | None
    transactions_val: SplitMetrics | None
    transactions_test: SplitMetrics | None
    epochs_run: int
    seconds: float
    seed: int

    _SPLITS: ClassVar[tuple[str, ...]] = ("accounts_val", "accounts_test", "transactions_val", "transactions_test")

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"epochs_run": self.epochs_run, "seconds": self.seconds, "seed": self.seed}
        for name in self._SPLITS:
            m = getattr(self, name)
            d[name] = None if m is None else m.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> TrainMetrics:
        splits = {n: None if d.get(n) is None else SplitMetrics.from_dict(d[n]) for n in cls._SPLITS}  # type: ignore[arg-type]
        return cls(
            **splits,
            epochs_run=int(d["epochs_run"]),  # type: ignore[arg-type]
            seconds=float(d["seconds"]),  # type: ignore[arg-type]
            seed=int(d["seed"]),  # type: ignore[arg-type]
        )


def split_metrics(scores: np.ndarray, y: np.ndarray) -> SplitMetrics | None:
    """AUPRC, AUROC and Recall@K (K = frauds in the split) or ``None`` without any fraud."""
    t = np.asarray(y).astype(bool)
    n_fraud = int(t.sum())
    if n_fraud == 0:
        return None
    return SplitMetrics(
        auprc=auprc(scores, t),
        auroc=auroc(scores, t),
        recall_at_k=recall_at_k(scores, t, n_fraud),
        k=n_fraud,
        n=int(t.size),
        n_fraud=n_fraud,
    )
