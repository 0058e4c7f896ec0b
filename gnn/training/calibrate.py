"""Tier thresholds calibrated on held-out scores (DESIGN §6); the thresholds themselves and
scores -> tiers are ``gnn.core.thresholds``.

``high`` is the lowest score threshold at which precision reaches a target (block only what we
are sure of, but as much of it as possible); ``medium`` is the highest threshold at which recall
reaches a target (send enough to review to catch most fraud), never above ``high``. Where a target
cannot be met (no positives, precision never high enough) a quantile stands in: the top 1 % of
scores for ``high`` and the top 5 % for ``medium``. Both respect a review capacity: at most that
share of the scores is MEDIUM or above (a queue people can work), whatever the recall target asks.
"""

from __future__ import annotations

import math

import numpy as np

from gnn.core.thresholds import Thresholds
from graph.errors import ValidationError

#: Fallback share of scores in the HIGH tier when the precision target cannot be met.
HIGH_FALLBACK_TOP = 0.01
#: Fallback share of scores at MEDIUM or above when the recall target cannot be met.
MEDIUM_FALLBACK_TOP = 0.05
#: Default review capacity: the most that MEDIUM and HIGH together may hold, as a share of scores.
REVIEW_CAPACITY = 0.05


def _top_quantile(scores: np.ndarray, top: float) -> float:
    return float(np.quantile(scores, 1.0 - top)) if scores.size else 1.0


def calibrate(
    scores: np.ndarray,
    is_fraud: np.ndarray,
    *,
    target_precision: float = 0.8,
    target_recall: float = 0.8,
    review_capacity: float = REVIEW_CAPACITY,
    population: np.ndarray | None = None,
) -> Thresholds:
    """Pick MEDIUM/HIGH thresholds from held-out scores and their labels.

    Args:
        scores: float [N] in [0, 1], higher = riskier.
        is_fraud: bool [N].
        target_precision: precision wanted at ``high``.
        target_recall: recall wanted at ``medium``.
        review_capacity: the largest share of ``population`` at MEDIUM or above (1 = no limit).
        population: the scores the review queue is drawn from (every account or transaction
            scored); ``scores`` when None.
    Returns:
        ``Thresholds`` with ``medium <= high``.
    Raises:
        ValidationError: empty or mismatched inputs, targets outside (0, 1].
    """
    s = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    y = np.asarray(is_fraud).ravel().astype(bool)
    if s.size == 0:
        raise ValidationError("scores", "[]", "need at least one score to calibrate")
    if s.shape != y.shape:
        raise ValidationError("is_fraud", f"shape {y.shape}", f"must match scores shape {s.shape}")
    for name, v in (("target_precision", target_precision), ("target_recall", target_recall), ("review_capacity", review_capacity)):
        if not 0.0 < v <= 1.0:
            raise ValidationError(name, v, "must be in (0, 1]")

    n_pos = int(y.sum())
    high = _top_quantile(s, HIGH_FALLBACK_TOP)
    medium = _top_quantile(s, MEDIUM_FALLBACK_TOP)
    if n_pos > 0:
        order = np.argsort(-s, kind="stable")
        ss, yy = s[order], y[order]
        tp = np.cumsum(yy)
        last = np.r_[np.flatnonzero(np.diff(ss)), ss.size - 1]  # end of each tied block
        precision = tp[last] / (last + 1)
        ok = np.flatnonzero(precision >= target_precision)
        if ok.size:
            high = float(ss[last[ok[-1]]])  # the lowest threshold that still meets the target
        k = max(1, math.ceil(target_recall * n_pos))
        medium = float(np.sort(s[y])[::-1][k - 1])
    if review_capacity < 1.0:
        # The queue people can work: no threshold below the capacity's quantile.
        pop = s if population is None else np.clip(np.asarray(population, dtype=np.float64).ravel(), 0.0, 1.0)
        floor = float(np.nextafter(_top_quantile(pop, review_capacity), np.inf))
        medium, high = max(medium, floor), max(high, floor)
    return Thresholds(medium=min(medium, high), high=min(high, 1.0))


def quantile_thresholds(scores: np.ndarray, *, medium_top: float, high_top: float) -> Thresholds:
    """Thresholds that put the top ``high_top`` share of ``scores`` in HIGH and the top
    ``medium_top`` share at MEDIUM or above (used when there are no labels to calibrate on)."""
    s = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    high = _top_quantile(s, high_top)
    return Thresholds(medium=min(_top_quantile(s, medium_top), high), high=high)
