"""The tree families' input columns, built from a snapshot's features: one place, ``TreeInputs``,
so that what the trees were fitted on and what is scored later are the same columns in order.

* ``trees_own``: the account's own features (``OWN_USER_FEATURES``, no graph features);
* ``trees_known_fraud``: every user feature (tabular and sharing counts) plus the known-fraud
  neighbourhood features of ``gnn.core.known_fraud`` (earlier verdicts on the same devices, IPs,
  prefixes and merchants);
* ``trees_aggregated``: the columns of ``trees_known_fraud`` plus ``neighbour_aggregates``
  (1–2 hops through devices, IPs and merchants);
* ``hybrid``: the columns of ``trees_aggregated`` plus GraphSAGE's final user embeddings.

Transactions: ``TXN_FEATURES`` + ``velocity_1h`` (+ the transaction's device, IP and merchant
features and its known-fraud features for every family but ``trees_own``) + the score the same
family's account trees give the transaction's account (stacking).

The known-fraud columns depend on the labels (everything else does not): ``TreeInputs.relabel``
recomputes them for a snapshot with other labels, e.g. fewer revealed ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gnn.core.features import DEVICE_FEATURES, IP_FEATURES, MERCHANT_FEATURES, USER_FEATURES, FeatureSet, moves_money
from gnn.core.known_fraud import KnownFraudFeatures, known_fraud_features
from graph.errors import ModelError, ValidationError
from graph.types import EVENT_KINDS, EventKind, NodeType, Snapshot

__all__ = [
    "TREES_OWN",
    "TREES_KNOWN_FRAUD",
    "TREES_AGGREGATED",
    "HYBRID",
    "TREE_FAMILIES",
    "GRAPH_USER_FEATURES",
    "OWN_USER_FEATURES",
    "VELOCITY_WINDOW",
    "TreeInputs",
    "neighbour_aggregates",
    "txn_velocity",
]

TREES_OWN = "trees_own"
TREES_KNOWN_FRAUD = "trees_known_fraud"
TREES_AGGREGATED = "trees_aggregated"
HYBRID = "hybrid"
#: The tree families, by their baseline names (``gnn.evaluation.baselines.BASELINES``).
TREE_FAMILIES: tuple[str, ...] = (TREES_OWN, TREES_KNOWN_FRAUD, TREES_AGGREGATED, HYBRID)
#: User-block columns that look at other accounts (graph features); dropped for ``trees_own``.
GRAPH_USER_FEATURES: tuple[str, ...] = ("max_device_users_log", "max_ip_users_log")
#: The account's own behaviour: every other user-block column. Its own counts of devices, IPs and
#: merchants stay: they describe the account, not its neighbours.
OWN_USER_FEATURES: tuple[str, ...] = tuple(f for f in USER_FEATURES if f not in GRAPH_USER_FEATURES)
#: Window of the velocity rule and the ``velocity_1h`` transaction feature, in seconds.
VELOCITY_WINDOW = 3600.0

_PAY = EVENT_KINDS.index(EventKind.PAYMENT.value)


# -- point-in-time velocity and neighbour aggregates ----------------------------------------------


def txn_velocity(snapshot: Snapshot, window: float = VELOCITY_WINDOW) -> np.ndarray:
    """Per transaction: the same account's payments in ``(ts - window, ts]`` (itself included
    when it is a payment). float64 [T]. Point in time: reads only events at or before ``ts``."""
    t = snapshot.transactions
    n = len(t)
    if n == 0:
        return np.zeros(0)
    ts = t.ts.astype(np.float64)
    u = t.user.astype(np.int64)
    base = ts.min()
    stride = float(ts.max() - base) + 2.0 * window + 1.0  # users' time ranges never overlap
    key = u * stride + (ts - base)
    pay_key = np.sort(key[t.event.astype(np.int64) == _PAY])
    hi = np.searchsorted(pay_key, key, side="right")
    lo = np.searchsorted(pay_key, key - window, side="right")
    return (hi - lo).astype(np.float64)


def _segment_max(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group the column-wise max of ``values`` rows [E, F]; NaN for empty groups."""
    out = np.full((n_groups, values.shape[1]), np.nan)
    if group.size == 0:
        return out
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    out[g[starts]] = np.maximum.reduceat(values[order], starts, axis=0)
    return out


def _mean_rows(mat: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """Row-normalised ``mat @ x``; NaN for rows with no entries."""
    deg = np.asarray(mat.sum(axis=1)).ravel()
    s = np.asarray(mat @ x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(deg[:, None] > 0, s / np.maximum(deg, 1.0)[:, None], np.nan)


def _merchant_pairs(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, merchant) pairs of payments and refunds (the model's ``pays`` relation)."""
    t = snapshot.transactions
    m = t.merchant.astype(np.int64)
    ok = (m >= 0) & moves_money(t.event)
    n_mer = max(snapshot.num_nodes(NodeType.MERCHANT), 1)
    pairs = np.unique(t.user[ok].astype(np.int64) * n_mer + m[ok])
    return pairs // n_mer, pairs % n_mer


def neighbour_aggregates(snapshot: Snapshot, features: FeatureSet) -> tuple[np.ndarray, tuple[str, ...]]:
    """Neighbour-aggregated account features over devices, IPs and merchants.

    For each relation ``r`` in (device, ip, merchant), with ``x`` = the own user features
    (``OWN_USER_FEATURES``, raw):

    * ``{r}_n``: how many distinct ``r`` the account used (hop-1 count);
    * ``{r}_mean_*`` / ``{r}_max_*``: mean / max of those identifiers' own features (hop 1);
    * ``{r}2_mean_*``: mean over its identifiers of the mean ``x`` of the *other* accounts on
      each (hop 2; identifiers it uses alone do not count);
    * ``{r}2_max_*``: max of ``x`` over all accounts on its identifiers (itself included);
    * ``{r}2_n``: sum over its identifiers of the other accounts on each (hop-2 count).

    Absent values (no identifier of that kind, no other account) are NaN, which the trees
    handle natively. Returns float64 [N_user, F_agg] and the column names.
    """
    n_user = snapshot.num_nodes(NodeType.USER)
    x = features.user[:, [USER_FEATURES.index(f) for f in OWN_USER_FEATURES]].astype(np.float64)
    pay_u, pay_m = _merchant_pairs(snapshot)
    relations = (
        ("device", snapshot.user_device.src, snapshot.user_device.dst, features.device, DEVICE_FEATURES),
        ("ip", snapshot.user_ip.src, snapshot.user_ip.dst, features.ip, IP_FEATURES),
        ("merchant", pay_u, pay_m, features.merchant, MERCHANT_FEATURES),
    )
    cols: list[np.ndarray] = []
    names: list[str] = []
    for rel, src, dst, ident_x, ident_names in relations:
        src = src.astype(np.int64)
        dst = dst.astype(np.int64)
        n_ident = ident_x.shape[0]
        b = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n_user, n_ident))
        b.data[:] = 1.0  # links are distinct pairs already; guard against duplicates
        deg_u = np.asarray(b.sum(axis=1)).ravel()
        deg_i = np.asarray(b.sum(axis=0)).ravel()
        fx = ident_x.astype(np.float64)
        # Hop 1: the identifiers themselves.
        mean1 = _mean_rows(b, fx)
        max1 = _segment_max(src, fx[dst], n_user)
        # Hop 2: the other accounts behind them. Per link: mean x of the others on that identifier.
        ident_sum = np.asarray(b.T @ x)
        others = deg_i[dst] - 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            other_mean = (ident_sum[dst] - x[src]) / np.where(others > 0, others, np.nan)[:, None]
        has = others > 0
        w = sp.csr_matrix((np.ones(int(has.sum())), (src[has], np.flatnonzero(has))), shape=(n_user, src.size))
        mean2 = _mean_rows(w, np.nan_to_num(other_mean))
        ident_max = _segment_max(dst, x[src], n_ident)
        max2 = _segment_max(src, ident_max[dst], n_user)
        n2 = np.bincount(src, weights=others, minlength=n_user)[:n_user] if src.size else np.zeros(n_user)
        cols += [deg_u[:, None], mean1, max1, mean2, max2, n2[:, None]]
        names += [f"{rel}_n"]
        names += [f"{rel}_mean_{f}" for f in ident_names] + [f"{rel}_max_{f}" for f in ident_names]
        names += [f"{rel}2_mean_{f}" for f in OWN_USER_FEATURES] + [f"{rel}2_max_{f}" for f in OWN_USER_FEATURES]
        names += [f"{rel}2_n"]
    out = np.concatenate(cols, axis=1)
    if out.shape[1] != len(names):  # a programming error, caught by the tests
        raise ModelError(f"neighbour aggregates: {out.shape[1]} columns vs {len(names)} names")
    return out, tuple(names)


def _gather(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``block[index]``; NaN rows where ``index`` is -1 (absent)."""
    out = np.full((index.shape[0], block.shape[1]), np.nan)
    ok = index >= 0
    out[ok] = block[index[ok]]
    return out


@dataclass(frozen=True, slots=True)
class TreeInputs:
    """The tree families' input columns on one snapshot, built once and shared by the families.

    ``own`` float64 [N_user, F_own]; ``txn_base`` float64 [T, F_txn + 1] (``TXN_FEATURES`` +
    ``velocity_1h``); ``txn_user`` int64 [T]. ``user`` float64 [N_user, F_user] (every user
    feature), ``account_agg`` (``user`` + aggregates) and ``txn_ctx`` (``txn_base`` + device, IP,
    merchant features) are ``None`` when built with ``aggregates=False``; ``aggregate_names``
    names the aggregate columns. ``known``: the known-fraud features of the snapshot's labels
    (``gnn.core.known_fraud``), read by every family but ``trees_own``.
    """

    own: np.ndarray
    txn_base: np.ndarray
    txn_user: np.ndarray
    user: np.ndarray | None
    account_agg: np.ndarray | None
    txn_ctx: np.ndarray | None
    aggregate_names: tuple[str, ...]
    known: KnownFraudFeatures | None = None

    def relabel(self, snapshot: Snapshot, label_delay: float | None = None) -> TreeInputs:
        """The same inputs with the known-fraud columns of ``snapshot``'s labels (the same graph)."""
        known = known_fraud_features(snapshot, label_delay=label_delay) if self.user is not None else None
        return dataclasses.replace(self, known=known)

    @classmethod
    def build(
        cls, snapshot: Snapshot, features: FeatureSet, *, aggregates: bool = True, label_delay: float | None = None
    ) -> TreeInputs:
        """Compute the columns; ``aggregates=False`` skips the (costlier) graph families' ones.
        ``label_delay``: see ``gnn.core.known_fraud.known_labels``."""
        t = snapshot.transactions
        txn_base = np.concatenate([features.txn.astype(np.float64), txn_velocity(snapshot)[:, None]], axis=1)
        own = features.user[:, [USER_FEATURES.index(f) for f in OWN_USER_FEATURES]].astype(np.float64)
        user = account_agg = txn_ctx = None
        known = None
        names: tuple[str, ...] = ()
        if aggregates:
            agg, names = neighbour_aggregates(snapshot, features)
            user = features.user.astype(np.float64)
            account_agg = np.concatenate([user, agg], axis=1)
            known = known_fraud_features(snapshot, label_delay=label_delay)
            txn_ctx = np.concatenate(
                [
                    txn_base,
                    _gather(features.device.astype(np.float64), t.device.astype(np.int64)),
                    _gather(features.ip.astype(np.float64), t.ip.astype(np.int64)),
                    _gather(features.merchant.astype(np.float64), t.merchant.astype(np.int64)),
                ],
                axis=1,
            )
        return cls(
            own=own,
            txn_base=txn_base,
            txn_user=t.user.astype(np.int64),
            user=user,
            account_agg=account_agg,
            txn_ctx=txn_ctx,
            aggregate_names=names,
            known=known,
        )

    def account_x(self, family: str, embeddings: np.ndarray | None = None) -> np.ndarray:
        """Account columns of ``family``; ``hybrid`` needs the GraphSAGE ``embeddings`` [N_user, D].

        Raises:
            ValidationError: unknown family, or ``hybrid`` without embeddings.
            ModelError: the inputs were built without aggregates.
        """
        if family == TREES_OWN:
            return self.own
        if family not in TREE_FAMILIES:
            raise ValidationError("family", family, f"must be one of {TREE_FAMILIES}")
        if self.account_agg is None or self.user is None or self.known is None:
            raise ModelError(f"tree inputs built without aggregates cannot feed {family!r}")
        known = self.known.user.astype(np.float64)
        if family == TREES_KNOWN_FRAUD:
            return np.concatenate([self.user, known], axis=1)
        if family == TREES_AGGREGATED:
            return np.concatenate([self.account_agg, known], axis=1)
        if embeddings is None:
            raise ValidationError("embeddings", None, "the hybrid trees need GraphSAGE's user embeddings")
        return np.concatenate([self.account_agg, known, np.asarray(embeddings, dtype=np.float64)], axis=1)

    def txn_x(self, family: str, account_scores: np.ndarray) -> np.ndarray:
        """Transaction columns of ``family`` with the stacked account score as the last column
        (one column instead of all the account columns, which keeps the fit small). For training
        accounts that score is in-sample, so the transaction trees may trust it a little too
        much; that can only hurt the tree families."""
        if family == TREES_OWN:
            base = self.txn_base
        elif self.txn_ctx is None or self.known is None:
            raise ModelError(f"tree inputs built without aggregates cannot feed {family!r}")
        else:
            base = np.concatenate([self.txn_ctx, self.known.txn.astype(np.float64)], axis=1)
        return np.concatenate([base, np.asarray(account_scores, dtype=np.float64)[self.txn_user][:, None]], axis=1)
