"""Detected rings measured against planted rings: member precision, recall, purity, recovery.

One definition, beside the planted truth, for the evaluation and the demo's truth report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

import numpy as np

from graph.types import Ring

#: A planted ring counts as recovered when one detected ring holds at least this share of it...
RECOVERY_COVERAGE = 0.5
#: ...and at least this share of that detected ring's members belong to the planted ring.
RECOVERY_PURITY = 0.5


@dataclass(frozen=True, slots=True)
class RingKindRecovery:
    """Planted and recovered ring counts for one ring kind."""

    kind: str
    planted: int
    recovered: int


@dataclass(frozen=True, slots=True)
class RingRecovery:
    """How detected rings match planted ones.

    ``member_precision``: share of detected ring members (counted once per ring) that are fraud;
    ``member_recall``: share of planted ring members inside some detected ring;
    ``purity``: mean over detected rings of the share of the dominant planted ring (0 for a
    ring with no planted member); ``recovered``: planted rings matched at
    ``RECOVERY_COVERAGE`` / ``RECOVERY_PURITY``.
    """

    member_precision: float
    member_recall: float
    purity: float
    detected: int
    planted: int
    recovered: int
    by_kind: tuple[RingKindRecovery, ...]


def ring_recovery(
    rings: Sequence[Ring],
    planted_ring_of: Mapping[str, str],
    ring_kind_of: Mapping[str, str],
    fraud_users: Set[str],
) -> RingRecovery:
    """Compare ``rings`` with the planted truth.

    Args:
        rings: detected rings (``Ring.members`` are user ids).
        planted_ring_of: user id -> planted ring id, for planted ring members only.
        ring_kind_of: planted ring id -> ring kind.
        fraud_users: every truly fraudulent user id (ring members and lone fraudsters).
    Returns:
        ``RingRecovery``; precision, recall and purity are 0.0 when there is nothing to measure.
    """
    planted_sizes = Counter(planted_ring_of.values())
    members = [m for r in rings for m in r.members]
    precision = float(np.mean([m in fraud_users for m in members])) if members else 0.0
    recall = len(set(members) & set(planted_ring_of)) / len(planted_ring_of) if planted_ring_of else 0.0

    purities: list[float] = []
    recovered: set[str] = set()
    for ring in rings:
        counts = Counter(planted_ring_of.get(m) for m in ring.members)
        counts.pop(None, None)
        if not counts:
            purities.append(0.0)
            continue
        _, n = counts.most_common(1)[0]
        purities.append(n / ring.size)
        for pid, c in counts.items():
            if c / planted_sizes[pid] >= RECOVERY_COVERAGE and c / ring.size >= RECOVERY_PURITY:
                recovered.add(pid)
    by_kind = tuple(
        RingKindRecovery(
            kind=kind,
            planted=sum(1 for p in planted_sizes if ring_kind_of.get(p) == kind),
            recovered=sum(1 for p in recovered if ring_kind_of.get(p) == kind),
        )
        for kind in sorted(set(ring_kind_of[p] for p in planted_sizes if p in ring_kind_of))
    )
    return RingRecovery(
        member_precision=precision,
        member_recall=recall,
        purity=float(np.mean(purities)) if purities else 0.0,
        detected=len(rings),
        planted=len(planted_sizes),
        recovered=len(recovered),
        by_kind=by_kind,
    )
