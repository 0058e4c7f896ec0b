"""What a model learns from and is judged on: targets from the verdicts, and the time-ordered split.

Targets (positive-unlabelled, PU), from whatever verdicts the store has (``gnn.core.known_fraud``):
an account is positive when its winning verdict is ``fraud``, or, without an account verdict,
when one of its transactions has a ``fraud`` verdict (card teams label chargebacks only).
Accounts labelled ``legit`` and unlabelled accounts are negatives. Most unlabelled accounts are
legitimate, so this is a fair approximation, but some negatives are undiscovered fraud: scores
rank well and the held-out metrics are a lower bound of the true ones. Transactions: when the
store holds any transaction ``fraud`` verdict, exactly the transactions with one are positive.
Only without any does a payment/refund of a fraud account count as positive
(``Targets.txn_from_accounts``, which reports say); signups and logins stay negative.

Split (time-ordered, so that the metrics say how the model does on *later* data): accounts in
order of their first event, the earliest ``1 - val - test`` share trains, the next share
validates (early stopping, tier calibration), the latest share tests. Transactions likewise by
time. ``targets_and_splits`` is the setup that training, candidate fitting, promotion and the
few-labels table start from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gnn.core.features import moves_money
from gnn.core.known_fraud import known_labels
from graph.types import NodeType, Snapshot

if TYPE_CHECKING:
    from gnn.training.train import TrainConfig

__all__ = ["Targets", "Split", "targets", "user_split", "txn_split", "time_splits", "targets_and_splits"]


@dataclass(frozen=True, slots=True)
class Targets:
    """Training targets: ``user`` bool [N_user], ``txn`` bool [T] (see the module docstring).
    ``txn_from_accounts``: the store has no transaction fraud verdict, so the payments of fraud
    accounts stand in for them (metrics on transactions then say so)."""

    user: np.ndarray
    txn: np.ndarray
    txn_from_accounts: bool = False


@dataclass(frozen=True, slots=True)
class Split:
    """Row indices (int64, ascending in time) of the train, validation and test parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def targets(snapshot: Snapshot) -> Targets:
    """Account and transaction targets from the snapshot's winning verdicts (module docstring)."""
    t = snapshot.transactions
    known = known_labels(snapshot)
    user = known.user_fraud.copy()
    if known.txn_rows.size:
        txn = np.zeros(len(t), dtype=bool)
        txn[known.txn_rows] = True
        return Targets(user=user, txn=txn, txn_from_accounts=False)
    txn = user[t.user.astype(np.int64)] & moves_money(t.event)
    tl = snapshot.txn_labels
    txn[tl.index.astype(np.int64)] = False  # only legit transaction verdicts remain here
    return Targets(user=user, txn=txn, txn_from_accounts=True)


def _ordered_split(order: np.ndarray, val_fraction: float, test_fraction: float) -> Split:
    n = order.shape[0]
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    n_train = n - n_val - n_test
    return Split(
        train=np.sort(order[:n_train]),
        val=np.sort(order[n_train : n_train + n_val]),
        test=np.sort(order[n_train + n_val :]),
    )


def user_split(snapshot: Snapshot, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Split:
    """Accounts split by their first event's time (ties by position; no events -> last)."""
    n_user = snapshot.num_nodes(NodeType.USER)
    first = np.full(n_user, np.inf)
    np.minimum.at(first, snapshot.transactions.user.astype(np.int64), snapshot.transactions.ts.astype(np.float64))
    order = np.lexsort((np.arange(n_user), first))
    return _ordered_split(order, val_fraction, test_fraction)


def time_splits(snapshot: Snapshot, config: TrainConfig) -> tuple[Split, Split]:
    """The time-ordered (accounts, transactions) split of ``config``'s fractions."""
    return (
        user_split(snapshot, config.val_fraction, config.test_fraction),
        txn_split(snapshot, config.val_fraction, config.test_fraction),
    )


def txn_split(snapshot: Snapshot, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Split:
    """Transactions split by time (ties by row)."""
    t = snapshot.transactions
    order = np.lexsort((np.arange(len(t)), t.ts.astype(np.float64)))
    return _ordered_split(order, val_fraction, test_fraction)


def targets_and_splits(
    snapshot: Snapshot, config: TrainConfig, splits: tuple[Split, Split] | None = None
) -> tuple[Targets, Split, Split]:
    """The targets of ``snapshot`` and its (accounts, transactions) split: ``splits`` when given
    (cross-validation's folds), else the time-ordered split of ``config``'s fractions."""
    users, txns = splits if splits is not None else time_splits(snapshot, config)
    return targets(snapshot), users, txns
