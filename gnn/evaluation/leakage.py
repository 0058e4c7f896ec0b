"""Leakage audit: which features may look past the event they score, checked on the data.

A feature is *point in time* when its value for a transaction at time ``t`` depends only on
events at or before ``t``. ``audit_leakage`` checks every declared point-in-time feature the
only way that cannot fool us: it drops every event from a cut time ``T`` on, recomputes the
features, and requires identical values for the transactions before ``T``.

Everything else is declared a *whole-history aggregate* (``WHOLE_HISTORY``): account, device,
IP and merchant features, the neighbour aggregates and GraphSAGE's message passing are computed
over the whole snapshot. For an account scored at snapshot time that is its own past, but a
transaction scored by a model that reads them sees its account's and neighbours' later events,
and training accounts' features include events of the validation/test period (never their
labels). The audit measures how many accounts active before ``T`` change when later events are
added, so the report can state it with numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gnn.core.features import (
    DEVICE_FEATURES,
    IP_FEATURES,
    MERCHANT_FEATURES,
    TXN_FEATURES,
    USER_FEATURES,
    build_features,
)
from gnn.core.tree_features import txn_velocity
from graph.errors import ValidationError
from graph.types import EVENT_KINDS, LabelTable, LinkTable, NodeType, Snapshot, TransactionTable

#: Transaction features whose value reads only events at or before the transaction.
POINT_IN_TIME_TXN_FEATURES: tuple[str, ...] = (*TXN_FEATURES, "velocity_1h")
#: Feature groups computed over the whole snapshot (they may read events after a transaction).
WHOLE_HISTORY: dict[str, tuple[str, ...]] = {
    "user": USER_FEATURES,
    "device": DEVICE_FEATURES,
    "ip": IP_FEATURES,
    "merchant": MERCHANT_FEATURES,
    "neighbour aggregates (gnn.core.tree_features)": ("all",),
    "GraphSAGE message passing and embeddings": ("all",),
}


@dataclass(frozen=True, slots=True)
class LeakageAudit:
    """Result of ``audit_leakage``.

    ``leaking``: point-in-time features whose value changed for some transaction before the cut
    (must be empty); ``user_features_changed``: per whole-history user feature, how many accounts
    with events before the cut have a different value once later events are added.
    """

    cut_ts: float
    n_txn_before: int
    n_txn_total: int
    n_users_before: int
    point_in_time: tuple[str, ...]
    leaking: tuple[str, ...]
    user_features_changed: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.leaking


def link_table(src: np.ndarray, dst: np.ndarray, ts: np.ndarray) -> LinkTable:
    """Links (first seen, last seen, count) of the (src, dst) pairs of events; -1 means absent."""
    keep = (src >= 0) & (dst >= 0)
    df = pd.DataFrame({"src": src[keep], "dst": dst[keep], "ts": ts[keep]})
    g = df.groupby(["src", "dst"], sort=True)["ts"].agg(["min", "max", "count"]).reset_index()
    return LinkTable(
        src=g["src"].to_numpy(np.int64),
        dst=g["dst"].to_numpy(np.int64),
        first_seen=g["min"].to_numpy(np.float64),
        last_seen=g["max"].to_numpy(np.float64),
        count=g["count"].to_numpy(np.int64),
    )


def snapshot_from_frames(events: pd.DataFrame, labels: pd.DataFrame, *, taken_at: float = 0.0) -> Snapshot:
    """A ``Snapshot`` of in-memory frames, derived the way a store derives it, for code that has
    frames rather than a store (tests, ``bench/scale_bench.py``).

    ``events``: ``txn_id``, ``ts`` (UTC epoch seconds), ``user_id``, ``device_id``, ``ip``,
    ``merchant_id``, ``amount``, ``event``, ``status`` and optionally ``currency``; None, NaN or
    "" where absent. Rows are ordered by (ts, txn_id), node keys sorted, links from
    ``link_table``. ``labels``: ``entity``, ``entity_id``, ``label``, ``ts`` and optionally
    ``source``; the latest verdict per entity wins. Text columns with few distinct values
    (currency, status) share one ``str`` per value, as a store's snapshot holds them.
    """
    ev = events.sort_values(["ts", "txn_id"], kind="stable").reset_index(drop=True)
    nodes: dict[NodeType, np.ndarray] = {}
    idx: dict[NodeType, np.ndarray] = {}
    for node_type, col in (
        (NodeType.USER, "user_id"),
        (NodeType.DEVICE, "device_id"),
        (NodeType.IP, "ip"),
        (NodeType.MERCHANT, "merchant_id"),
    ):
        codes, uniques = pd.factorize(ev[col].replace("", None), sort=True)
        nodes[node_type] = np.asarray(uniques, dtype=object)
        idx[node_type] = codes.astype(np.int64)
    ts = ev["ts"].to_numpy(np.float64)
    kinds = {k: i for i, k in enumerate(EVENT_KINDS)}
    table = TransactionTable(
        txn_id=ev["txn_id"].to_numpy(object),
        ts=ts,
        user=idx[NodeType.USER],
        merchant=idx[NodeType.MERCHANT],
        device=idx[NodeType.DEVICE],
        ip=idx[NodeType.IP],
        amount=ev["amount"].to_numpy(np.float64),
        currency=_interned(ev["currency"]) if "currency" in ev else np.full(len(ev), None, dtype=object),
        event=ev["event"].map(kinds).to_numpy(np.int8),
        status=_interned(ev["status"]),
    )
    return Snapshot(
        nodes=nodes,
        transactions=table,
        user_device=link_table(table.user, table.device, ts),
        user_ip=link_table(table.user, table.ip, ts),
        device_ip=link_table(table.device, table.ip, ts),
        user_labels=_winning_labels(labels, "user", nodes[NodeType.USER]),
        txn_labels=_winning_labels(labels, "transaction", table.txn_id),
        taken_at=taken_at,
    )


def _interned(col: pd.Series) -> np.ndarray:
    """An object column whose equal values share one ``str`` (None where missing)."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    values = np.asarray(list(uniques) + [None], dtype=object)
    return values[codes]  # code -1 (missing) picks the trailing None


def _winning_labels(labels: pd.DataFrame, entity: str, keys: np.ndarray) -> LabelTable:
    sel = labels[labels["entity"] == entity].copy()
    sel["index"] = pd.Index(keys, dtype=object).get_indexer(sel["entity_id"])
    sel = sel[sel["index"] >= 0].sort_values(["index", "ts"], kind="stable").groupby("index").tail(1)
    source = sel["source"].to_numpy(object) if "source" in sel else np.full(len(sel), "unknown", dtype=object)
    return LabelTable(
        index=sel["index"].to_numpy(np.int64),
        is_fraud=(sel["label"] == "fraud").to_numpy(bool),
        ts=sel["ts"].to_numpy(np.float64),
        source=source,
    )


def truncate(snapshot: Snapshot, before: float) -> Snapshot:
    """The snapshot as it was just before time ``before``: transactions with ``ts < before``
    and the links they make; node lists are kept whole, so indices stay aligned (nodes with no
    event left get zero features). Labels are kept for kept rows only (features never read them).
    """
    t = snapshot.transactions
    keep = t.ts < before
    n = int(keep.sum())
    if not np.all(keep[:n]):  # rows are sorted by time, so the kept rows are a prefix
        raise ValidationError("snapshot", "transactions", "rows must be sorted by ts")
    sel = slice(0, n)
    table = TransactionTable(**{name: getattr(t, name)[sel] for name in t.__slots__})
    ts = table.ts.astype(np.float64)
    tl = snapshot.txn_labels
    tkeep = tl.index < n
    return Snapshot(
        nodes=snapshot.nodes,
        transactions=table,
        user_device=link_table(table.user, table.device, ts),
        user_ip=link_table(table.user, table.ip, ts),
        device_ip=link_table(table.device, table.ip, ts),
        user_labels=snapshot.user_labels,
        txn_labels=LabelTable(index=tl.index[tkeep], is_fraud=tl.is_fraud[tkeep], ts=tl.ts[tkeep], source=tl.source[tkeep]),
        taken_at=snapshot.taken_at,
    )


def _txn_point_in_time(snapshot: Snapshot) -> np.ndarray:
    f = build_features(snapshot)
    return np.concatenate([f.txn.astype(np.float64), txn_velocity(snapshot)[:, None]], axis=1)


def audit_leakage(snapshot: Snapshot, cut_ts: float) -> LeakageAudit:
    """Compare features of the snapshot truncated at ``cut_ts`` with the full snapshot's.

    Raises:
        ValidationError: no transaction before ``cut_ts``.
    """
    cut = truncate(snapshot, cut_ts)
    n = len(cut.transactions)
    if n == 0:
        raise ValidationError("cut_ts", cut_ts, "no transaction before the cut")
    full_txn = _txn_point_in_time(snapshot)[:n]
    cut_txn = _txn_point_in_time(cut)
    differs = ~np.isclose(full_txn, cut_txn, rtol=0.0, atol=1e-6, equal_nan=True)
    leaking = tuple(name for j, name in enumerate(POINT_IN_TIME_TXN_FEATURES) if differs[:, j].any())

    active = np.zeros(snapshot.num_nodes(NodeType.USER), dtype=bool)
    active[cut.transactions.user.astype(np.int64)] = True
    full_user = build_features(snapshot).user[active]
    cut_user = build_features(cut).user[active]
    changed = ~np.isclose(full_user, cut_user, rtol=0.0, atol=1e-6)
    return LeakageAudit(
        cut_ts=float(cut_ts),
        n_txn_before=n,
        n_txn_total=len(snapshot.transactions),
        n_users_before=int(active.sum()),
        point_in_time=POINT_IN_TIME_TXN_FEATURES,
        leaking=leaking,
        user_features_changed={name: int(changed[:, j].sum()) for j, name in enumerate(USER_FEATURES)},
    )
