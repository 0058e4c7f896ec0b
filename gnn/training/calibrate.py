"""Tier thresholds calibrated on held-out scores, and scores -> tiers (DESIGN §6).

``high`` is the lowest score threshold at which precision reaches a target (block only what we
are sure of, but as much of it as possible); ``medium`` is the highest threshold at which recall
reaches a target (send enough to review to catch most fraud), never above ``high``. Where a target
cannot be met (no positives, precision never high enough) a quantile stands in: the top 1 % of
scores for ``high`` and the top 5 % for ``medium``. Both respect a review capacity: at most that
share of the scores is MEDIUM or above (a queue people can work), whatever the recall target asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graph.errors import ValidationError
from graph.types import Tier

#: Fallback share of scores in the HIGH tier when the precision target cannot be met.
HIGH_FALLBACK_TOP = 0.01
#: Fallback share of scores at MEDIUM or above when the recall target cannot be met.
MEDIUM_FALLBACK_TOP = 0.05
#: Default review capacity: the most that MEDIUM and HIGH together may hold, as a share of scores.
REVIEW_CAPACITY = 0.05

_TIERS = np.array([Tier.LOW, Tier.MEDIUM, Tier.HIGH], dtype=object)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``score >= high`` -> HIGH, ``score >= medium`` -> MEDIUM, else LOW.

    Raises:
        ValidationError: a threshold outside [0, 1] or ``medium > high``.
    """

    medium: float
    high: float

    def __post_init__(self) -> None:
        for name in ("medium", "high"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0):
                raise ValidationError(name, v, "threshold must be a number in [0, 1]")
        if self.medium > self.high:
            raise ValidationError("medium", self.medium, f"must not exceed high={self.high}")

    def to_dict(self) -> dict[str, float]:
        return {"medium": float(self.medium), "high": float(self.high)}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Thresholds:
        return cls(medium=float(d["medium"]), high=float(d["high"]))


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


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    """How many of ``total`` scores a set of thresholds puts at HIGH and at MEDIUM: the queue
    investigators get."""

    high: int
    medium: int
    total: int

    @classmethod
    def of(cls, scores: np.ndarray, thresholds: Thresholds) -> ReviewQueue:
        codes = tier_codes(scores, thresholds)
        return cls(high=int((codes == 2).sum()), medium=int((codes == 1).sum()), total=int(codes.size))

    @property
    def share(self) -> float:
        """HIGH and MEDIUM together, as a share of ``total``."""
        return (self.high + self.medium) / self.total if self.total else 0.0

    def describe(self, noun: str = "accounts") -> str:
        return (
            f"high {self.high:,} + medium {self.medium:,} = {self.high + self.medium:,} of {self.total:,} {noun} "
            f"({100 * self.share:.1f} %)"
        )

    def to_dict(self) -> dict[str, int]:
        return {"high": self.high, "medium": self.medium, "total": self.total}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> ReviewQueue:
        return cls(high=int(d["high"]), medium=int(d["medium"]), total=int(d["total"]))


def tier_codes(scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """int8 [N]: 0 = LOW, 1 = MEDIUM, 2 = HIGH (``Tier.rank``)."""
    s = np.asarray(scores, dtype=np.float64)
    return ((s >= thresholds.medium).astype(np.int8) + (s >= thresholds.high).astype(np.int8)).astype(np.int8)


def tier_of(score: float, thresholds: Thresholds) -> Tier:
    """The tier of one score, as ``tier_codes`` (without the arrays: one checkout call)."""
    return _TIERS[int(score >= thresholds.medium) + int(score >= thresholds.high)]


def assign_tiers(scores: np.ndarray, thresholds: Thresholds) -> list[Tier]:
    """One ``Tier`` per score, as a list aligned with ``scores``."""
    return _TIERS[tier_codes(scores, thresholds)].tolist()
