"""How a shipped model came to be: which candidate won (``Selection``) and whether it replaced
the model in use (``Promotion``). Both are stored in the artefact and its JSON metadata.

Plain records with ``to_dict`` / ``from_dict`` of plain values, so that an artefact holding them
still loads with ``torch.load(weights_only=True)``. Undefined AUPRCs (a split without fraud) are
``nan`` here and ``null`` in JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graph.errors import ModelError

__all__ = ["CandidateScore", "Selection", "Promotion"]


def _f(v: object) -> float:
    return math.nan if v is None else float(v)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One candidate's validation AUPRC for accounts and transactions (``nan``: no fraud in
    that validation split)."""

    name: str
    accounts_val_auprc: float
    transactions_val_auprc: float

    @property
    def total(self) -> float:
        """The selection criterion: accounts + transactions, an undefined part counting 0."""
        return sum(v for v in (self.accounts_val_auprc, self.transactions_val_auprc) if math.isfinite(v))

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "accounts_val_auprc": float(self.accounts_val_auprc),
            "transactions_val_auprc": float(self.transactions_val_auprc),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> CandidateScore:
        return cls(
            name=str(d["name"]),
            accounts_val_auprc=_f(d["accounts_val_auprc"]),
            transactions_val_auprc=_f(d["transactions_val_auprc"]),
        )


@dataclass(frozen=True, slots=True)
class Selection:
    """The candidates compared on the validation split, the ``winner`` shipped, and the ``rule``
    that picked it (in words). ``warning``: why the validation split could not tell the
    candidates apart ("" when it could)."""

    candidates: tuple[CandidateScore, ...]
    winner: str
    rule: str
    warning: str = ""

    def get(self, name: str) -> CandidateScore:
        """One candidate's scores. Raises ``ModelError`` when it was not a candidate."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise ModelError(f"{name!r} was not a candidate ({', '.join(c.name for c in self.candidates)})")

    def to_dict(self) -> dict[str, object]:
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "winner": self.winner,
            "rule": self.rule,
            "warning": self.warning,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Selection:
        return cls(
            candidates=tuple(CandidateScore.from_dict(c) for c in d["candidates"]),  # type: ignore[attr-defined]
            winner=str(d["winner"]),
            rule=str(d["rule"]),
            warning=str(d.get("warning", "")),
        )


@dataclass(frozen=True, slots=True)
class Promotion:
    """The new model against the current one on the same held-out (test) split of the same
    snapshot. ``against`` is the current model's version (``None``: there was none, or it could
    not score this snapshot; ``reason`` says which). ``promoted``: the new model became current;
    ``forced``: it did so because ``--force`` said so, whatever the comparison. AUPRCs are
    ``nan`` where the test split holds no fraud (that part is not compared)."""

    promoted: bool
    forced: bool
    reason: str
    against: str | None
    tolerance: float
    new_accounts_test_auprc: float
    new_transactions_test_auprc: float
    current_accounts_test_auprc: float
    current_transactions_test_auprc: float

    def to_dict(self) -> dict[str, object]:
        return {
            "promoted": self.promoted,
            "forced": self.forced,
            "reason": self.reason,
            "against": self.against,
            "tolerance": float(self.tolerance),
            "new_accounts_test_auprc": float(self.new_accounts_test_auprc),
            "new_transactions_test_auprc": float(self.new_transactions_test_auprc),
            "current_accounts_test_auprc": float(self.current_accounts_test_auprc),
            "current_transactions_test_auprc": float(self.current_transactions_test_auprc),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Promotion:
        return cls(
            promoted=bool(d["promoted"]),
            forced=bool(d["forced"]),
            reason=str(d["reason"]),
            against=None if d.get("against") is None else str(d["against"]),
            tolerance=float(d["tolerance"]),  # type: ignore[arg-type]
            new_accounts_test_auprc=_f(d["new_accounts_test_auprc"]),
            new_transactions_test_auprc=_f(d["new_transactions_test_auprc"]),
            current_accounts_test_auprc=_f(d["current_accounts_test_auprc"]),
            current_transactions_test_auprc=_f(d["current_transactions_test_auprc"]),
        )
