"""Cross-validation over connected components: selection when the validation split is noise.

``train`` picks the shipped model on the time-ordered validation split
(``gnn.training.selection``). When that split cannot tell the candidates apart (too few frauds,
or no signal), selection falls back to ``cross_validate``: K folds of the training and
validation parts with accounts grouped by the component they share devices and IPs in
(``grouped_folds``), so a ring falls in one fold, never on both sides. It costs ``n_folds``
trainings of every candidate, so it runs only then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold

from gnn.artefact.lineage import CandidateScore
from gnn.core.features import FeatureSet
from gnn.core.metrics import auprc_at
from gnn.core.trees import TreeConfig
from gnn.training.candidates import fit_candidates
from gnn.training.split import Split, targets, time_splits
from gnn.training.train import TrainConfig
from graph.rings import account_components
from graph.types import NodeType, Snapshot

__all__ = ["CV_FOLDS", "CrossValidation", "cross_validate", "grouped_folds"]

log = logging.getLogger(__name__)

#: Folds of the fallback cross-validation.
CV_FOLDS = 3


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Pooled out-of-fold result over ``n_folds`` folds of ``n_groups`` components: per
    candidate its AUPRCs (NaN where the pooled part holds no fraud) and its out-of-fold scores
    of the held-out accounts and transactions, whose targets are ``account_labels`` and
    ``txn_labels``."""

    candidates: tuple[CandidateScore, ...]
    n_folds: int
    n_groups: int
    account_scores: dict[str, np.ndarray]
    txn_scores: dict[str, np.ndarray]
    account_labels: np.ndarray
    txn_labels: np.ndarray


def grouped_folds(
    snapshot: Snapshot, config: TrainConfig, n_folds: int = CV_FOLDS
) -> tuple[list[tuple[Split, Split]], int]:
    """``n_folds`` (accounts, transactions) splits over the training and validation parts of the
    time-ordered split, accounts grouped by component; each split's ``test`` is the original
    test part. Returns the folds and the number of groups.

    Components come from ``graph.rings.account_components``: a device or IP used by more than
    ``RingConfig.max_identifier_users`` accounts (office NAT, carrier) does not join them, as in
    ring detection, or one carrier IP would make the whole graph one group; merchants never join
    them. Folds are scikit-learn's ``GroupKFold`` (deterministic: groups by size into the
    lightest fold); a transaction goes with its account."""
    users, txns = time_splits(snapshot, config)
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
    """Pooled out-of-fold AUPRCs of ``candidates`` over component-grouped folds (``grouped_folds``).

    Each fold trains every candidate on the other folds (``gnn.training.candidates.fit_candidates``
    with the fold as its split; same seed and config) and scores its own accounts and
    transactions. The out-of-fold scores of all folds are pooled, and each candidate gets the
    pooled AUPRC of accounts plus transactions, the quantity of the validation rule.

    Raises:
        ModelError: the snapshot has no users.
    """
    y = targets(snapshot)
    folds, n_groups = grouped_folds(snapshot, config, n_folds)
    oof_acc = {c: np.full(y.user.shape[0], np.nan) for c in candidates}
    oof_txn = {c: np.full(y.txn.shape[0], np.nan) for c in candidates}
    for f, (users, txns) in enumerate(folds, start=1):
        log.info("cross-validation fold %d/%d: %d accounts held out", f, len(folds), users.val.shape[0])
        run = fit_candidates(snapshot, config, trees=trees, names=tuple(candidates), features=features, splits=(users, txns))
        for c in candidates:
            oof_acc[c][users.val] = run.get(c).account[users.val]
            oof_txn[c][txns.val] = run.get(c).txn[txns.val]
    acc_rows = np.sort(np.concatenate([u.val for u, _ in folds]))
    txn_rows = np.sort(np.concatenate([t.val for _, t in folds]))

    return CrossValidation(
        candidates=tuple(
            CandidateScore(
                name=c,
                accounts_val_auprc=auprc_at(oof_acc[c], y.user, acc_rows),
                transactions_val_auprc=auprc_at(oof_txn[c], y.txn, txn_rows),
            )
            for c in candidates
        ),
        n_folds=len(folds),
        n_groups=n_groups,
        account_scores={c: oof_acc[c][acc_rows] for c in candidates},
        txn_scores={c: oof_txn[c][txn_rows] for c in candidates},
        account_labels=y.user[acc_rows],
        txn_labels=y.txn[txn_rows],
    )
