"""Tier thresholds and what they do to scores: scores -> tiers (DESIGN §6), the review queue.

``Thresholds`` ship in the model artefact and tier every score served; how they are chosen from
held-out scores is ``gnn.training.calibrate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph.errors import ValidationError
from graph.types import Tier

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
