"""Choosing tier thresholds: operating points, a precision target and a review capacity, costs, intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gnn.core.metrics import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, auprc, auroc, bootstrap_intervals
from gnn.core.thresholds import ReviewQueue, Thresholds, tier_codes
from gnn.training.calibrate import calibrate
from graph.errors import ValidationError
from graph.types import Tier
from ringwatch.analysis.figures import TIER_COLOURS, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OperatingPoint",
    "operating_points",
    "points_frame",
    "TierChoice",
    "choose_thresholds",
    "TierCosts",
    "tier_costs",
    "plot_tradeoff",
    "MetricInterval",
    "metric_interval",
]


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Flagging every score ``>= threshold``: ``flagged`` of ``n`` (share ``flagged_share``),
    ``true_positives`` frauds caught, ``false_positives`` legitimate accounts flagged, ``missed``
    frauds below it. ``precision`` is nan when nothing is flagged, ``recall`` nan without frauds."""

    threshold: float
    n: int
    flagged: int
    flagged_share: float
    true_positives: int
    false_positives: int
    missed: int
    precision: float
    recall: float


def _check_scores(scores: np.ndarray, is_fraud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_fraud).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValidationError("is_fraud", f"shape {y.shape}", f"must match scores shape {s.shape}")
    if s.size == 0:
        raise ValidationError("scores", "[]", "need at least one score")
    return s, y


def operating_points(scores: np.ndarray, is_fraud: np.ndarray, thresholds: Sequence[float] | None = None) -> list[OperatingPoint]:
    """The operating point at each threshold (default: every distinct score), highest first.

    Raises:
        ValidationError: empty or mismatched inputs.
    """
    s, y = _check_scores(scores, is_fraud)
    ths = np.unique(s)[::-1] if thresholds is None else np.asarray(sorted(thresholds, reverse=True), dtype=np.float64)
    order = np.sort(s)
    pos = np.sort(s[y])
    n, n_pos = s.size, int(y.sum())
    flagged = n - np.searchsorted(order, ths, side="left")
    tp = n_pos - np.searchsorted(pos, ths, side="left")
    out = []
    for thr, f, p in zip(ths.tolist(), flagged.tolist(), tp.tolist(), strict=True):
        out.append(
            OperatingPoint(
                threshold=float(thr),
                n=n,
                flagged=int(f),
                flagged_share=f / n,
                true_positives=int(p),
                false_positives=int(f - p),
                missed=n_pos - int(p),
                precision=p / f if f else math.nan,
                recall=p / n_pos if n_pos else math.nan,
            )
        )
    return out


def points_frame(points: Sequence[OperatingPoint]) -> pd.DataFrame:
    """Operating points as a table."""
    return pd.DataFrame([{f: getattr(p, f) for f in OperatingPoint.__slots__} for p in points])



@dataclass(frozen=True, slots=True)
class TierChoice:
    """Tier thresholds chosen for a target precision (HIGH, blocked) and a review capacity
    (MEDIUM: at most ``review_rate`` of all accounts between ``medium`` and ``high``).
    ``high_point`` / ``medium_point`` are the operating points at the two thresholds on the data
    they were chosen on; ``precision_met`` says whether HIGH reached the target (otherwise the
    quantile fallback of ``gnn.training.calibrate`` stands in)."""

    thresholds: Thresholds
    target_precision: float
    review_rate: float
    high_point: OperatingPoint
    medium_point: OperatingPoint
    review_share: float
    precision_met: bool


def choose_thresholds(scores: np.ndarray, is_fraud: np.ndarray, *, target_precision: float, review_rate: float) -> TierChoice:
    """HIGH: the lowest threshold whose precision reaches ``target_precision`` (``gnn.training.calibrate``'s
    rule, the same as training uses). MEDIUM: the lowest threshold that keeps the review queue
    (scores in [medium, high)) within ``review_rate`` of all accounts; never above HIGH.

    Raises:
        ValidationError: empty or mismatched inputs; a target outside (0, 1] or a rate outside [0, 1].
    """
    s, y = _check_scores(scores, is_fraud)
    if not 0.0 <= review_rate <= 1.0:
        raise ValidationError("review_rate", review_rate, "must be in [0, 1]")
    # The review queue is sized below by ``review_rate``; HIGH follows the precision target alone.
    high = calibrate(s, y, target_precision=target_precision, target_recall=1.0, review_capacity=1.0).high
    n = s.size
    n_high = int((s >= high).sum())
    allowed = int(math.floor(review_rate * n + 1e-9))
    distinct = np.unique(s[s < high])  # ascending
    at_or_above = n - np.searchsorted(np.sort(s), distinct, side="left")
    ok = distinct[at_or_above - n_high <= allowed]
    medium = float(ok[0]) if ok.size else float(high)
    th = Thresholds(medium=min(medium, high), high=high)
    hp = operating_points(s, y, [th.high])[0]
    mp = operating_points(s, y, [th.medium])[0]
    review = ReviewQueue.of(s, th).medium
    return TierChoice(
        thresholds=th,
        target_precision=target_precision,
        review_rate=review_rate,
        high_point=hp,
        medium_point=mp,
        review_share=review / n,
        precision_met=bool(hp.flagged and hp.precision >= target_precision),
    )


@dataclass(frozen=True, slots=True)
class TierCosts:
    """What a pair of thresholds does to a set of accounts: ``blocked`` (HIGH) of which
    ``blocked_legit`` are not fraud (customers wrongly blocked), ``reviewed`` (MEDIUM) of which
    ``reviewed_fraud`` are fraud, ``missed_fraud`` frauds left in LOW."""

    n: int
    frauds: int
    blocked: int
    blocked_legit: int
    reviewed: int
    reviewed_fraud: int
    missed_fraud: int

    @property
    def block_precision(self) -> float:
        return (self.blocked - self.blocked_legit) / self.blocked if self.blocked else math.nan

    @property
    def caught_share(self) -> float:
        """Share of frauds in HIGH or MEDIUM (nan without frauds)."""
        return (self.frauds - self.missed_fraud) / self.frauds if self.frauds else math.nan


def tier_costs(scores: np.ndarray, is_fraud: np.ndarray, thresholds: Thresholds) -> TierCosts:
    """Count blocked, reviewed and missed accounts for ``thresholds``.

    Raises:
        ValidationError: empty or mismatched inputs.
    """
    s, y = _check_scores(scores, is_fraud)
    codes = tier_codes(s, thresholds)
    high, medium = codes == 2, codes == 1
    return TierCosts(
        n=int(s.size),
        frauds=int(y.sum()),
        blocked=int(high.sum()),
        blocked_legit=int((high & ~y).sum()),
        reviewed=int(medium.sum()),
        reviewed_fraud=int((medium & y).sum()),
        missed_fraud=int((~high & ~medium & y).sum()),
    )


def plot_tradeoff(points: Sequence[OperatingPoint], choice: TierChoice | None = None, *, title: str = "") -> Figure:
    """Precision, recall and the share of accounts flagged against the threshold, with the chosen
    MEDIUM and HIGH thresholds marked."""
    fig = new_figure(figsize=(11, 5))
    ax = fig.subplots()
    th = np.array([p.threshold for p in points])
    ax.plot(th, [p.precision for p in points], label="precision (flagged that are fraud)", color="#c62828", lw=1.6)
    ax.plot(th, [p.recall for p in points], label="recall (frauds flagged)", color="#1565c0", lw=1.6)
    ax.plot(th, [p.flagged_share for p in points], label="share of accounts flagged", color="#616161", lw=1.4, ls="--")
    if choice is not None:
        t = choice.thresholds
        ax.axvline(t.high, color=TIER_COLOURS[Tier.HIGH], lw=2, label=f"high >= {t.high:.3f} (block)")
        ax.axvline(t.medium, color=TIER_COLOURS[Tier.MEDIUM], lw=2, label=f"medium >= {t.medium:.3f} (review)")
        ax.axhline(choice.target_precision, color="#c62828", lw=0.8, ls=":", label=f"target precision {choice.target_precision:.0%}")
    ax.set_xlabel("score threshold (flag every account scoring at or above it)")
    ax.set_ylabel("precision / recall / share flagged")
    # Scores of a rare class crowd near 0: show the range they use, not all of [0, 1].
    ax.set_xlim(0, min(1.0, max(float(th.max()) if th.size else 1.0, 1e-3) * 1.05))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(title or "What each threshold costs")
    fig.tight_layout()
    return fig


@dataclass(frozen=True, slots=True)
class MetricInterval:
    """A metric on ``n`` items (``n_fraud`` positive) with a bootstrap interval at ``level``."""

    point: float
    low: float
    high: float
    level: float
    n: int
    n_fraud: int


def metric_interval(
    scores: np.ndarray,
    is_fraud: np.ndarray,
    *,
    metric: Callable[[np.ndarray, np.ndarray], float] = auprc,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> MetricInterval:
    """``metric`` (default AUPRC) with a percentile bootstrap interval: how much the number could
    move with another sample of the same size. Frauds and legitimate rows are resampled apart, as
    for every interval ``train`` and ``evaluate`` print; with the defaults, AUPRC and AUROC get
    exactly the report's interval (``gnn.core.metrics.bootstrap_intervals``).

    Raises:
        ValidationError: mismatched inputs, no fraud at all, ``level`` outside (0, 1).
    """
    s, y = _check_scores(scores, is_fraud)
    if not y.any():
        raise ValidationError("is_fraud", 0, "need at least one fraud for an interval")
    if not 0.0 < level < 1.0:
        raise ValidationError("level", level, "must be in (0, 1)")
    if level == 0.95 and metric in (auprc, auroc):
        ap_iv, auc_iv = bootstrap_intervals(s, y, resamples, seed)
        iv = ap_iv if metric is auprc else auc_iv
        lo, hi = iv.low, iv.high
    else:
        rng = np.random.default_rng(seed)
        pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
        values = []
        for _ in range(resamples):
            idx = np.concatenate([pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)]])
            values.append(metric(s[idx], y[idx]))
        lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return MetricInterval(float(metric(s, y)), float(lo), float(hi), level, int(s.size), int(y.sum()))
