"""Cross-validation over connected components: selection when the validation split is noise.

``train`` picks the shipped model on the time-ordered validation split (``gnn.selection``). When
that split cannot tell the candidates apart (too few frauds, or no signal), selection falls back
to K-fold cross-validation here:

- **Groups.** Accounts are grouped by the connected component they sit in, through the devices
  and IPs they share (``account_components``). A device or IP used by more than
  ``max_identifier_users`` accounts (office NAT, carrier) does not join components, as in ring
  detection: otherwise one carrier IP would make the whole graph one group. Merchants never join
  them. Ring members share devices and IPs, so a ring falls in one fold, never on both sides.
- **Folds.** The accounts of the training and validation parts (the test part stays untouched)
  go into ``n_folds`` folds by scikit-learn's ``GroupKFold`` (deterministic: groups by size into
  the lightest fold). A transaction of those parts goes with its account.
- **Scores.** Each fold trains every candidate on the other folds (``gnn.baselines.run_baselines``
  with the fold as its split; same seed and config) and scores its own accounts and
  transactions. The out-of-fold scores of all folds are pooled and each candidate gets the
  pooled AUPRC of accounts plus transactions, the quantity of the validation rule.

Cost: ``n_folds`` trainings of every candidate, so this runs only when the validation split is
noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import GroupKFold

from gnn.baselines import run_baselines
from gnn.features import FeatureSet
from gnn.lineage import CandidateScore
from gnn.metrics import SplitMetrics, auprc, split_metrics
from gnn.train import Split, TrainConfig, targets, txn_split, user_split
from gnn.trees import TreeConfig
from graph.types import NodeType, Snapshot

__all__ = ["CV_FOLDS", "CrossValidation", "account_components", "cross_validate", "grouped_folds"]

log = logging.getLogger(__name__)

#: Folds of the fallback cross-validation.
CV_FOLDS = 3
#: A device or IP with more accounts than this does not join their components (as in rings).
MAX_IDENTIFIER_USERS = 40


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Pooled out-of-fold result: per candidate, AUPRC of accounts and of transactions (NaN where
    the pooled part holds no fraud); the winner's pooled metrics; the groups and frauds behind it."""

    candidates: tuple[CandidateScore, ...]
    n_folds: int
    n_groups: int
    accounts: dict[str, SplitMetrics | None]
    transactions: dict[str, SplitMetrics | None]
    account_frauds: int
    transaction_frauds: int


def account_components(snapshot: Snapshot, max_identifier_users: int = MAX_IDENTIFIER_USERS) -> np.ndarray:
    """Component label per account (int64 [users]) of the account--device/IP graph, leaving out
    devices and IPs used by more than ``max_identifier_users`` accounts."""
    n_user = snapshot.num_nodes(NodeType.USER)
    txn = snapshot.transactions
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    base = n_user
    for link, col, node_type in ((snapshot.user_device, txn.device, NodeType.DEVICE), (snapshot.user_ip, txn.ip, NodeType.IP)):
        n = snapshot.num_nodes(node_type)
        user = np.concatenate([link.src, txn.user]).astype(np.int64)
        ident = np.concatenate([link.dst, col]).astype(np.int64)
        ok = ident >= 0
        user, ident = user[ok], ident[ok]
        pairs = np.unique(user * max(n, 1) + ident)
        user, ident = pairs // max(n, 1), pairs % max(n, 1)
        small = np.bincount(ident, minlength=n) <= max_identifier_users
        keep = small[ident]
        src.append(user[keep])
        dst.append(ident[keep] + base)
        base += n
    s, d = np.concatenate(src), np.concatenate(dst)
    adj = coo_matrix((np.ones(s.shape[0], dtype=np.int8), (s, d)), shape=(base, base)).tocsr()
    _, labels = connected_components(adj, directed=False)
    return labels[:n_user].astype(np.int64)


def grouped_folds(
    snapshot: Snapshot, config: TrainConfig, n_folds: int = CV_FOLDS
) -> tuple[list[tuple[Split, Split]], int]:
    """``n_folds`` (accounts, transactions) splits over the training and validation parts of the
    time-ordered split, accounts grouped by component; each split's ``test`` is the original
    test part. Returns the folds and the number of groups."""
    users = user_split(snapshot, config.val_fraction, config.test_fraction)
    txns = txn_split(snapshot, config.val_fraction, config.test_fraction)
    pool = np.sort(np.concatenate([users.train, users.val]))
    txn_pool = np.sort(np.concatenate([txns.train, txns.val]))
    groups = account_components(snapshot)[pool]
    n_groups = int(np.unique(groups).shape[0])
    k = max(2, min(n_folds, n_groups))
    fold_of_user = np.full(snapshot.num_nodes(NodeType.USER), -1, dtype=np.int64)
    for f, (_, held) in enumerate(GroupKFold(n_splits=k).split(pool, groups=groups)):
        fold_of_user[pool[held]] = f
    txn_fold = fold_of_user[snapshot.transactions.user[txn_pool].astype(np.int64)]
    folds = []
    for f in range(k):
        folds.append(
            (
                Split(train=pool[fold_of_user[pool] != f], val=pool[fold_of_user[pool] == f], test=users.test),
                Split(train=txn_pool[txn_fold != f], val=txn_pool[txn_fold == f], test=txns.test),
            )
        )
    return folds, n_groups


def cross_validate(
    snapshot: Snapshot,
    config: TrainConfig,
    candidates: Sequence[str],
    *,
    trees: TreeConfig = TreeConfig(),
    features: FeatureSet | None = None,
    n_folds: int = CV_FOLDS,
) -> CrossValidation:
    """Pooled out-of-fold AUPRCs of ``candidates`` over component-grouped folds (module docstring).

    Raises:
        ModelError: the snapshot has no users.
    """
    y = targets(snapshot)
    folds, n_groups = grouped_folds(snapshot, config, n_folds)
    oof_acc = {c: np.full(y.user.shape[0], np.nan) for c in candidates}
    oof_txn = {c: np.full(y.txn.shape[0], np.nan) for c in candidates}
    for f, (users, txns) in enumerate(folds, start=1):
        log.info("cross-validation fold %d/%d: %d accounts held out", f, len(folds), users.val.shape[0])
        run = run_baselines(snapshot, config, trees=trees, names=tuple(candidates), features=features, splits=(users, txns))
        for c in candidates:
            oof_acc[c][users.val] = run.get(c).account[users.val]
            oof_txn[c][txns.val] = run.get(c).txn[txns.val]
    acc_rows = np.sort(np.concatenate([u.val for u, _ in folds]))
    txn_rows = np.sort(np.concatenate([t.val for _, t in folds]))

    def pooled(scores: np.ndarray, yy: np.ndarray, rows: np.ndarray) -> float:
        return auprc(scores[rows], yy[rows]) if rows.size and yy[rows].any() else math.nan

    return CrossValidation(
        candidates=tuple(
            CandidateScore(
                name=c,
                accounts_val_auprc=pooled(oof_acc[c], y.user, acc_rows),
                transactions_val_auprc=pooled(oof_txn[c], y.txn, txn_rows),
            )
            for c in candidates
        ),
        n_folds=len(folds),
        n_groups=n_groups,
        accounts={c: split_metrics(oof_acc[c][acc_rows], y.user[acc_rows]) for c in candidates},
        transactions={c: split_metrics(oof_txn[c][txn_rows], y.txn[txn_rows]) for c in candidates},
        account_frauds=int(y.user[acc_rows].sum()),
        transaction_frauds=int(y.txn[txn_rows].sum()),
    )
