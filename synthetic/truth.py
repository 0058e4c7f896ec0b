"""The planted truth of a synthetic dataset: ``load_truth`` reads the truth files that
``synthetic.generator.generate`` writes, and ``PlantedTruth`` aligns them with a snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from graph.errors import ValidationError
from graph.types import NodeType, Snapshot

__all__ = ["PlantedTruth", "load_truth"]


def load_truth(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``truth_users.csv`` (user_id, is_fraud, ring_id, ring_kind, ...) and
    ``truth_transactions.csv`` (txn_id, is_fraud, ...) from ``data_dir``, ids as text."""
    users = pd.read_csv(data_dir / "truth_users.csv", dtype={"user_id": str, "ring_id": str, "ring_kind": str})
    txns = pd.read_csv(data_dir / "truth_transactions.csv", dtype={"txn_id": str})
    return users, txns


@dataclass(frozen=True, slots=True)
class PlantedTruth:
    """Planted truth aligned with a snapshot: ``user_*`` arrays [N_user] in
    ``snapshot.nodes[USER]`` order, ``txn_is_fraud`` [T] in transaction order.
    ``user_graph_only`` marks fraud accounts whose own behaviour is ordinary (only the graph
    reveals them); ``user_ring`` / ``user_ring_kind`` are "" outside planted rings;
    ``txn_scenario`` names how each fraudulent transaction came about ("" for legitimate ones and
    when the truth file has no ``scenario`` column)."""

    user_is_fraud: np.ndarray
    user_ring: np.ndarray
    user_ring_kind: np.ndarray
    user_graph_only: np.ndarray
    txn_is_fraud: np.ndarray
    txn_scenario: np.ndarray

    @classmethod
    def from_frames(cls, snapshot: Snapshot, users: pd.DataFrame, txns: pd.DataFrame) -> PlantedTruth:
        """From ``truth_users.csv`` / ``truth_transactions.csv`` frames (``synthetic.generator``).
        Accounts or transactions missing from the truth count as legitimate; a truth file without
        ``graph_only`` marks nobody.

        Raises:
            ValidationError: a required column is missing.
        """
        for frame, cols in ((users, ("user_id", "is_fraud", "ring_id", "ring_kind")), (txns, ("txn_id", "is_fraud"))):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValidationError("truth", missing, "truth file lacks these columns")
        keys = pd.Index(snapshot.nodes[NodeType.USER], dtype=object)
        u = users.set_index(users["user_id"].astype(str))
        u = u[~u.index.duplicated(keep="last")].reindex(keys)

        def col(name: str, default: object) -> pd.Series:
            return u[name] if name in u.columns else pd.Series(default, index=keys)

        t = txns.set_index(txns["txn_id"].astype(str))
        t = t[~t.index.duplicated(keep="last")].reindex(pd.Index(snapshot.transactions.txn_id, dtype=object))
        return cls(
            user_is_fraud=col("is_fraud", 0).fillna(0).astype(int).to_numpy() == 1,
            user_ring=col("ring_id", "").fillna("").astype(str).to_numpy(dtype=object),
            user_ring_kind=col("ring_kind", "").fillna("").astype(str).to_numpy(dtype=object),
            user_graph_only=col("graph_only", 0).fillna(0).astype(int).to_numpy() == 1,
            txn_is_fraud=t["is_fraud"].fillna(0).astype(int).to_numpy() == 1,
            txn_scenario=(t["scenario"] if "scenario" in t.columns else pd.Series("", index=t.index))
            .fillna("")
            .astype(str)
            .to_numpy(dtype=object),
        )
