"""Ranking metrics for fraud scores: AUPRC (average precision), AUROC and Recall@K, their bootstrap
intervals, and the records training and evaluation keep them in (``SplitMetrics``, ``TrainMetrics``,
``Comparison``).

Plain numpy so that they are fast on a million scores and behave the same everywhere. Ties in
the scores are handled the way scikit-learn does (a tied block counts as one threshold), so the
numbers match ``sklearn.metrics.average_precision_score`` / ``roc_auc_score``.

When a metric is undefined (no positives, or for AUROC no negatives) it returns ``nan`` rather
than raising: a split without frauds is an ordinary situation in a small time window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from gnn.core.thresholds import ReviewQueue
from gnn.core.timing import StageTime
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


# -- evaluation records -------------------------------------------------------------------------


#: Resamples behind every interval, and their seed (same scores, same interval).
BOOTSTRAP_RESAMPLES = 300
BOOTSTRAP_SEED = 0


@dataclass(frozen=True, slots=True)
class Interval:
    """A 95 % bootstrap interval (``nan`` bounds when it cannot be computed)."""

    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def __str__(self) -> str:
        return "[n/a]" if not (np.isfinite(self.low) and np.isfinite(self.high)) else f"[{self.low:.3f}, {self.high:.3f}]"


_NO_INTERVAL = Interval(float("nan"), float("nan"))


def _resampled_block_counts(rng: np.random.Generator, blocks: np.ndarray, b: int, n_block: int) -> np.ndarray:
    """``b`` resamples (with replacement) of rows whose tied-score blocks are ``blocks``: rows
    drawn per block, float [b, n_block]."""
    n = blocks.size
    if n == 0:
        return np.zeros((b, n_block))
    draw = blocks[rng.integers(0, n, (b, n))] + (np.arange(b) * n_block)[:, None]
    return np.bincount(draw.ravel(), minlength=b * n_block).reshape(b, n_block).astype(np.float64)


def bootstrap_intervals(
    scores: np.ndarray, y: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[Interval, Interval]:
    """95 % percentile intervals of AUPRC and AUROC by a stratified bootstrap: frauds and
    legitimate rows are resampled separately, so every resample holds as many frauds as the data.

    Written here rather than with ``scipy.stats.bootstrap``: that resamples without strata and
    would call a metric per resample; this sorts once and scores all resamples with
    ``bincount`` / ``cumsum`` (ties handled as in ``auprc`` / ``auroc``).
    """
    s, t = _check(scores, y)
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    if n_pos == 0:
        return _NO_INTERVAL, _NO_INTERVAL
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    block = np.r_[0, np.cumsum(np.diff(s) != 0)]  # tied-score block of each sorted row
    n_block = int(block[-1]) + 1
    pos_block, neg_block = block[t], block[~t]
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(t.size, 1))
    aps: list[np.ndarray] = []
    aucs: list[np.ndarray] = []
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        tp_b = _resampled_block_counts(rng, pos_block, b, n_block)
        fp_b = _resampled_block_counts(rng, neg_block, b, n_block)
        tp, fp = np.cumsum(tp_b, axis=1), np.cumsum(fp_b, axis=1)
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        aps.append((tp_b * precision).sum(axis=1) / n_pos)
        if n_neg:
            aucs.append((fp_b * (tp - tp_b / 2.0)).sum(axis=1) / (n_pos * n_neg))
    ap = np.concatenate(aps)
    auc_iv = _NO_INTERVAL
    if aucs:
        lo, hi = np.percentile(np.concatenate(aucs), [2.5, 97.5])
        auc_iv = Interval(float(lo), float(hi))
    lo, hi = np.percentile(ap, [2.5, 97.5])
    return Interval(float(lo), float(hi)), auc_iv


@dataclass(frozen=True, slots=True)
class SplitMetrics:
    """Ranking quality on one split. ``k`` = number of frauds in the split (Recall@K);
    ``auprc_ci`` / ``auroc_ci``: 95 % bootstrap intervals (``bootstrap_intervals``)."""

    auprc: float
    auroc: float
    recall_at_k: float
    k: int
    n: int
    n_fraud: int
    auprc_ci: Interval = _NO_INTERVAL
    auroc_ci: Interval = _NO_INTERVAL

    @property
    def base_rate(self) -> float:
        """The AUPRC of a random ranking: the share of frauds."""
        return self.n_fraud / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SplitMetrics:
        def iv(key: str) -> Interval:
            v = d.get(key)
            return _NO_INTERVAL if not isinstance(v, dict) else Interval(float(v["low"]), float(v["high"]))

        return cls(
            auprc=float(d["auprc"]),  # type: ignore[arg-type]
            auroc=float(d["auroc"]),  # type: ignore[arg-type]
            recall_at_k=float(d["recall_at_k"]),  # type: ignore[arg-type]
            k=int(d["k"]),  # type: ignore[call-overload]
            n=int(d["n"]),  # type: ignore[call-overload]
            n_fraud=int(d["n_fraud"]),  # type: ignore[call-overload]
            auprc_ci=iv("auprc_ci"),
            auroc_ci=iv("auroc_ci"),
        )

    def describe(self) -> str:
        """One line: each metric with its interval, and the count behind them."""
        return (
            f"AUPRC {self.auprc:.3f} {self.auprc_ci}  AUROC {self.auroc:.3f} {self.auroc_ci}  "
            f"Recall@{self.k} {self.recall_at_k:.3f}  ({self.n_fraud} frauds in {self.n:,})"
        )


@dataclass(frozen=True, slots=True)
class TrainMetrics:
    """Held-out quality of a trained model. A split is ``None`` when it has no fraud label.
    ``stages``: where the training time went, in order."""

    accounts_val: SplitMetrics | None
    accounts_test: SplitMetrics | None
    transactions_val: SplitMetrics | None
    transactions_test: SplitMetrics | None
    epochs_run: int
    seconds: float
    seed: int
    stages: tuple[StageTime, ...] = ()
    account_queue: ReviewQueue | None = None  # what the account thresholds put in review

    _SPLITS: ClassVar[tuple[str, ...]] = ("accounts_val", "accounts_test", "transactions_val", "transactions_test")

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "epochs_run": self.epochs_run,
            "seconds": self.seconds,
            "seed": self.seed,
            "stages": [[st.stage, st.seconds] for st in self.stages],
            "account_queue": None if self.account_queue is None else self.account_queue.to_dict(),
        }
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
            stages=tuple(StageTime(str(n), float(v)) for n, v in d.get("stages", [])),  # type: ignore[attr-defined]
            account_queue=None if d.get("account_queue") is None else ReviewQueue.from_dict(d["account_queue"]),  # type: ignore[arg-type]
        )


#: Verdicts of ``Comparison``: the paired interval of the difference lies above 0, below 0, or holds 0.
BETTER = "better"
WORSE = "worse"
NO_CLEAR_DIFFERENCE = "no clear difference"


@dataclass(frozen=True, slots=True)
class Comparison:
    """AUPRC of ``model`` minus that of ``baseline`` on the same rows (``n_fraud`` frauds of ``n``),
    with its 95 % paired bootstrap interval (``paired_auprc_difference``)."""

    entity: str  # accounts or transactions
    model: str
    baseline: str
    difference: float
    interval: Interval
    n: int
    n_fraud: int

    @property
    def verdict(self) -> str:
        """``better`` or ``worse`` only when the whole interval is on one side of 0."""
        if self.interval.low > 0:
            return BETTER
        if self.interval.high < 0:
            return WORSE
        return NO_CLEAR_DIFFERENCE


def paired_auprc_difference(
    model: np.ndarray,
    baseline: np.ndarray,
    y: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, Interval]:
    """AUPRC(model) - AUPRC(baseline) and its 95 % percentile interval, both scored on the same
    stratified resamples. Which frauds are easy is shared by the two models and cancels, so this
    interval decides "A beats B"; two separate intervals that overlap do not.

    Raises:
        ValidationError: shapes differ or a score is not finite.
    """
    a, t = _check(model, y)
    b, _ = _check(baseline, y)
    pos, neg = np.flatnonzero(t), np.flatnonzero(~t)
    point = auprc(a, t) - auprc(b, t)
    if pos.size == 0:
        return point, _NO_INTERVAL
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        drawn_neg = neg[rng.integers(0, neg.size, neg.size)] if neg.size else neg
        idx = np.concatenate([pos[rng.integers(0, pos.size, pos.size)], drawn_neg])
        diffs[i] = auprc(a[idx], t[idx]) - auprc(b[idx], t[idx])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return point, Interval(float(lo), float(hi))

def split_metrics(scores: np.ndarray, y: np.ndarray) -> SplitMetrics | None:
    """AUPRC, AUROC and Recall@K (K = frauds in the split) or ``None`` without any fraud."""
    t = np.asarray(y).astype(bool)
    n_fraud = int(t.sum())
    if n_fraud == 0:
        return None
    ap_ci, auc_ci = bootstrap_intervals(scores, t)
    return SplitMetrics(
        auprc=auprc(scores, t),
        auroc=auroc(scores, t),
        recall_at_k=recall_at_k(scores, t, n_fraud),
        k=n_fraud,
        n=int(t.size),
        n_fraud=n_fraud,
        auprc_ci=ap_ci,
        auroc_ci=auc_ci,
    )


def split_metrics_at(scores: np.ndarray, y: np.ndarray, idx: np.ndarray) -> SplitMetrics | None:
    """``split_metrics`` of the rows ``idx`` (a split's indices); ``None`` when ``idx`` is empty."""
    return split_metrics(scores[idx], y[idx]) if idx.size else None


def auprc_at(scores: np.ndarray, y: np.ndarray, idx: np.ndarray) -> float:
    """AUPRC of the rows ``idx``; ``nan`` when they hold no fraud (or there are none)."""
    return auprc(scores[idx], y[idx]) if idx.size and y[idx].any() else math.nan
