"""The demo's scores and rings against the planted truth of a synthetic dataset, over the whole
graph: ``compare_with_truth`` gives a ``TruthReport``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gnn.core.metrics import auprc, auroc
from graph.types import NodeType, Ring, Snapshot
from synthetic.ring_recovery import RingKindRecovery, ring_recovery

__all__ = ["TruthReport", "compare_with_truth"]


@dataclass(frozen=True, slots=True)
class TruthReport:
    """Scores and rings measured against planted truth over the whole graph."""

    accounts_auprc: float
    accounts_auroc: float
    transactions_auprc: float
    transactions_auroc: float
    fraud_base_rate: float
    ring_member_precision: float  # share of detected ring members that are truly fraud
    ring_member_recall: float  # share of planted ring members inside some detected ring
    ring_purity: float  # mean over detected rings of the share of the dominant planted ring
    rings_detected: int
    rings_planted: int
    rings_recovered: int
    by_kind: tuple[RingKindRecovery, ...]

    def render(self) -> str:
        lines = [
            "Against planted truth (all accounts/transactions; labels were only partly revealed):",
            f"  accounts      AUPRC {self.accounts_auprc:.3f}  AUROC {self.accounts_auroc:.3f}"
            f"  (fraud base rate {self.fraud_base_rate:.3f})",
            f"  transactions  AUPRC {self.transactions_auprc:.3f}  AUROC {self.transactions_auroc:.3f}",
            f"  rings         precision {self.ring_member_precision:.3f}  recall {self.ring_member_recall:.3f}"
            f"  purity {self.ring_purity:.3f}",
            f"  planted rings recovered {self.rings_recovered}/{self.rings_planted}"
            f" (detected {self.rings_detected})",
        ]
        for k in self.by_kind:
            lines.append(f"    {k.kind:<20} {k.recovered}/{k.planted}")
        return "\n".join(lines)


def compare_with_truth(
    snapshot: Snapshot,
    account_scores: np.ndarray,
    txn_scores: np.ndarray,
    rings: Sequence[Ring],
    truth_users: pd.DataFrame,
    truth_txns: pd.DataFrame,
) -> TruthReport:
    """Measure scores and rings against the planted truth."""
    users = snapshot.nodes[NodeType.USER]
    is_fraud_user = pd.Series(truth_users["is_fraud"].astype(bool).values, index=truth_users["user_id"])
    y_user = is_fraud_user.reindex(users).fillna(False).to_numpy(dtype=bool)
    is_fraud_txn = pd.Series(truth_txns["is_fraud"].astype(bool).values, index=truth_txns["txn_id"])
    y_txn = is_fraud_txn.reindex(snapshot.transactions.txn_id).fillna(False).to_numpy(dtype=bool)

    planted = truth_users.dropna(subset=["ring_id"])
    planted = planted[planted["ring_id"] != ""]
    planted_of = dict(zip(planted["user_id"], planted["ring_id"], strict=True))
    kind_of = dict(zip(planted["ring_id"], planted["ring_kind"], strict=False))
    fraud_set = set(truth_users.loc[truth_users["is_fraud"].astype(bool), "user_id"])
    rec = ring_recovery(rings, planted_of, kind_of, fraud_set)
    return TruthReport(
        accounts_auprc=auprc(account_scores, y_user),
        accounts_auroc=auroc(account_scores, y_user),
        transactions_auprc=auprc(txn_scores, y_txn),
        transactions_auroc=auroc(txn_scores, y_txn),
        fraud_base_rate=float(y_user.mean()) if len(y_user) else 0.0,
        ring_member_precision=rec.member_precision,
        ring_member_recall=rec.member_recall,
        ring_purity=rec.purity,
        rings_detected=rec.detected,
        rings_planted=rec.planted,
        rings_recovered=rec.recovered,
        by_kind=rec.by_kind,
    )
