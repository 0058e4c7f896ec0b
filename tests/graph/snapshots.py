"""Build small ``Snapshot`` objects by hand for tests.

``make_snapshot`` takes plain lists of keys and pairs, and derives the USED_DEVICE / USED_IP /
SEEN_AT links of each transaction the way a store does, so a test can describe a graph in a few
lines. Node keys are sorted as in a real snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from graph.types import EVENT_KINDS, LabelTable, LinkTable, NodeType, Snapshot, TransactionTable


@dataclass(frozen=True, slots=True)
class Txn:
    """One payment in a hand-written snapshot; ``ts`` defaults to the row's position."""

    user: str
    merchant: str | None = None
    device: str | None = None
    ip: str | None = None
    amount: float = 10.0
    ts: float | None = None


def make_snapshot(
    *,
    users: Iterable[str] = (),
    devices: Iterable[str] = (),
    ips: Iterable[str] = (),
    merchants: Iterable[str] = (),
    user_device: Iterable[tuple[str, str]] = (),
    user_ip: Iterable[tuple[str, str]] = (),
    transactions: Sequence[Txn] = (),
) -> Snapshot:
    """A snapshot holding every key named anywhere in the arguments.

    Links listed in ``user_device`` / ``user_ip`` are added to those derived from transactions.
    """
    user_device = list(user_device)
    user_ip = list(user_ip)
    keys: dict[NodeType, set[str]] = {
        NodeType.USER: set(users) | {u for u, _ in user_device} | {u for u, _ in user_ip},
        NodeType.DEVICE: set(devices) | {d for _, d in user_device},
        NodeType.IP: set(ips) | {i for _, i in user_ip},
        NodeType.MERCHANT: set(merchants),
    }
    for t in transactions:
        keys[NodeType.USER].add(t.user)
        named = ((NodeType.MERCHANT, t.merchant), (NodeType.DEVICE, t.device), (NodeType.IP, t.ip))
        for node_type, key in named:
            if key is not None:
                keys[node_type].add(key)
    nodes = {t: np.array(sorted(k), dtype=object) for t, k in keys.items()}
    pos = {t: {k: i for i, k in enumerate(nodes[t].tolist())} for t in nodes}

    def index(node_type: NodeType, key: str | None) -> int:
        return -1 if key is None else pos[node_type][key]

    txn_ts = [float(i) if t.ts is None else t.ts for i, t in enumerate(transactions)]
    rows = sorted(range(len(transactions)), key=lambda i: (txn_ts[i], f"t{i:08d}"))
    txns = [transactions[i] for i in rows]
    table = TransactionTable(
        txn_id=np.array([f"t{i:08d}" for i in rows], dtype=object),
        ts=np.array([txn_ts[i] for i in rows], dtype=np.float64),
        user=np.array([index(NodeType.USER, t.user) for t in txns], dtype=np.int64),
        merchant=np.array([index(NodeType.MERCHANT, t.merchant) for t in txns], dtype=np.int64),
        device=np.array([index(NodeType.DEVICE, t.device) for t in txns], dtype=np.int64),
        ip=np.array([index(NodeType.IP, t.ip) for t in txns], dtype=np.int64),
        amount=np.array([t.amount for t in txns], dtype=np.float64),
        currency=np.array([None] * len(txns), dtype=object),
        event=np.full(len(txns), EVENT_KINDS.index("payment"), dtype=np.int8),
        status=np.array([None] * len(txns), dtype=object),
    )

    ud = {(index(NodeType.USER, u), index(NodeType.DEVICE, d)) for u, d in user_device}
    ui = {(index(NodeType.USER, u), index(NodeType.IP, i)) for u, i in user_ip}
    di: set[tuple[int, int]] = set()
    for t in txns:
        u = index(NodeType.USER, t.user)
        d, i = index(NodeType.DEVICE, t.device), index(NodeType.IP, t.ip)
        if d >= 0:
            ud.add((u, d))
        if i >= 0:
            ui.add((u, i))
        if d >= 0 and i >= 0:
            di.add((d, i))
    return Snapshot(
        nodes=nodes,
        transactions=table,
        user_device=_links(ud),
        user_ip=_links(ui),
        device_ip=_links(di),
        user_labels=_no_labels(),
        txn_labels=_no_labels(),
    )


def scores_for(snapshot: Snapshot, scores: dict[str, float], default: float = 0.05) -> np.ndarray:
    """Account scores in snapshot user order: ``scores[user]`` where given, else ``default``."""
    return np.array(
        [scores.get(u, default) for u in snapshot.nodes[NodeType.USER].tolist()], dtype=np.float64
    )


def _links(pairs: set[tuple[int, int]]) -> LinkTable:
    ordered = sorted(pairs)
    n = len(ordered)
    return LinkTable(
        src=np.array([p[0] for p in ordered], dtype=np.int64),
        dst=np.array([p[1] for p in ordered], dtype=np.int64),
        first_seen=np.zeros(n, dtype=np.float64),
        last_seen=np.zeros(n, dtype=np.float64),
        count=np.ones(n, dtype=np.int64),
    )


def _no_labels() -> LabelTable:
    return LabelTable(
        index=np.zeros(0, dtype=np.int64),
        is_fraud=np.zeros(0, dtype=bool),
        ts=np.zeros(0, dtype=np.float64),
        source=np.zeros(0, dtype=object),
    )
