"""A small hand-made graph for the API tests, and a fake ``GraphStore`` that serves it.

The graph (10 accounts):
- ring-0001 (high): u01..u05 share device d01 and IP 10.0.0.1 and pay merchant m01; u01 makes
  6 payments in one hour and is a confirmed fraud (chargeback).
- ring-0002 (medium): u06, u07 share device d02.
- u08 pays m01 too (so it is two hops from u01 through the merchant); u09 and u10 share IP
  10.0.0.9; u10 signed up but never paid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graph.store import GraphStore
from graph.types import (
    EVENT_KINDS,
    EntityScore,
    Event,
    EventKind,
    Label,
    LabelEntity,
    LabelTable,
    LinkTable,
    NodeType,
    Ring,
    ScoreWriteback,
    Snapshot,
    StoreStats,
    Subgraph,
    Tier,
    TransactionTable,
    UpsertResult,
    Verdict,
)

T0 = 1_700_000_000.0  # 2023-11-14, UTC
HOUR = 3600.0
DAY = 86400.0
RING_USERS = ("u01", "u02", "u03", "u04", "u05")
MODEL_VERSION = "sage-test-1"


def events() -> list[Event]:
    """The events of the module docstring's graph."""
    out: list[Event] = []

    def pay(user: str, ts: float, device: str | None, ip: str | None, merchant: str, amount: float) -> None:
        out.append(Event(f"t{len(out):03d}", ts, user, device, ip, merchant, amount, "EUR"))

    for i in range(6):  # u01: 6 payments within the first hour
        pay("u01", T0 + i * 60.0, "d01", "10.0.0.1", "m01", 99.0)
    for j, user in enumerate(RING_USERS[1:]):
        pay(user, T0 + HOUR * (j + 2), "d01", "10.0.0.1", "m01", 50.0)
    pay("u01", T0 + 2 * DAY, "d01", "10.0.0.1", "m01", 10.0)  # u01 active for 2 days
    pay("u06", T0 + DAY, "d02", "10.0.0.6", "m02", 20.0)
    pay("u07", T0 + DAY + HOUR, "d02", "10.0.0.7", "m02", 21.0)
    pay("u08", T0 + 3 * DAY, "d03", "10.0.0.8", "m01", 15.0)
    pay("u09", T0 + 4 * DAY, "d04", "10.0.0.9", "m02", 30.0)
    pay("u09", T0 + 40 * DAY, "d04", "10.0.0.9", "m02", 31.0)
    out.append(Event("t900", T0 + 5 * DAY, "u10", "d05", "10.0.0.9", None, None, None, EventKind.SIGNUP))
    return out


def labels() -> list[Label]:
    return [Label(LabelEntity.USER, "u01", Verdict.FRAUD, T0 + 3 * DAY, "chargeback")]


def scores() -> ScoreWriteback:
    """Ring members high, ring-0002 medium, everyone else low; one transaction scored."""
    tiers = {u: (0.95 - 0.01 * i, Tier.HIGH) for i, u in enumerate(RING_USERS)}
    tiers |= {"u06": (0.5, Tier.MEDIUM), "u07": (0.45, Tier.MEDIUM)}
    tiers |= {u: (0.05, Tier.LOW) for u in ("u08", "u09", "u10")}
    rings = (
        Ring("ring-0002", ("u06", "u07"), ("d02",), (), ("m02",), 0.47, Tier.MEDIUM),
        Ring("ring-0001", RING_USERS, ("d01",), ("10.0.0.1",), ("m01",), 0.93, Tier.HIGH),
    )
    return ScoreWriteback(
        model_version=MODEL_VERSION,
        scored_at=T0 + 50 * DAY,
        accounts=tuple(EntityScore(u, s, t) for u, (s, t) in sorted(tiers.items())),
        transactions=(EntityScore("t000", 0.9, Tier.HIGH),),
        rings=rings,
    )


def _links(pairs: dict[tuple[int, int], list[float]]) -> LinkTable:
    keys = sorted(pairs)
    return LinkTable(
        src=np.array([k[0] for k in keys], dtype=np.int64),
        dst=np.array([k[1] for k in keys], dtype=np.int64),
        first_seen=np.array([min(pairs[k]) for k in keys], dtype=np.float64),
        last_seen=np.array([max(pairs[k]) for k in keys], dtype=np.float64),
        count=np.array([len(pairs[k]) for k in keys], dtype=np.int64),
    )


def make_snapshot(evs: Sequence[Event], lbls: Sequence[Label] = (), taken_at: float = 0.0) -> Snapshot:
    """Build the snapshot a store holding ``evs`` and ``lbls`` would return (DESIGN §4)."""
    evs = sorted(evs, key=lambda e: (e.ts, e.txn_id))
    keys = {
        NodeType.USER: sorted({e.user_id for e in evs}),
        NodeType.DEVICE: sorted({e.device_id for e in evs if e.device_id}),
        NodeType.IP: sorted({e.ip for e in evs if e.ip}),
        NodeType.MERCHANT: sorted({e.merchant_id for e in evs if e.merchant_id}),
    }
    pos = {t: {k: i for i, k in enumerate(ks)} for t, ks in keys.items()}

    def at(t: NodeType, key: str | None) -> int:
        return pos[t][key] if key else -1

    txns = TransactionTable(
        txn_id=np.array([e.txn_id for e in evs], dtype=object),
        ts=np.array([e.ts for e in evs], dtype=np.float64),
        user=np.array([at(NodeType.USER, e.user_id) for e in evs], dtype=np.int64),
        merchant=np.array([at(NodeType.MERCHANT, e.merchant_id) for e in evs], dtype=np.int64),
        device=np.array([at(NodeType.DEVICE, e.device_id) for e in evs], dtype=np.int64),
        ip=np.array([at(NodeType.IP, e.ip) for e in evs], dtype=np.int64),
        amount=np.array([np.nan if e.amount is None else e.amount for e in evs], dtype=np.float64),
        currency=np.array([e.currency for e in evs], dtype=object),
        event=np.array([EVENT_KINDS.index(e.event.value) for e in evs], dtype=np.int8),
        status=np.array([e.status for e in evs], dtype=object),
    )
    user_device: dict[tuple[int, int], list[float]] = {}
    user_ip: dict[tuple[int, int], list[float]] = {}
    device_ip: dict[tuple[int, int], list[float]] = {}
    for e in evs:
        u, d, i = at(NodeType.USER, e.user_id), at(NodeType.DEVICE, e.device_id), at(NodeType.IP, e.ip)
        if d >= 0:
            user_device.setdefault((u, d), []).append(e.ts)
        if i >= 0:
            user_ip.setdefault((u, i), []).append(e.ts)
        if d >= 0 and i >= 0:
            device_ip.setdefault((d, i), []).append(e.ts)
    latest: dict[str, Label] = {}
    for lbl in lbls:
        if lbl.entity is LabelEntity.USER and (lbl.entity_id not in latest or lbl.ts >= latest[lbl.entity_id].ts):
            latest[lbl.entity_id] = lbl
    won = sorted(latest.values(), key=lambda lbl: pos[NodeType.USER][lbl.entity_id])
    user_labels = LabelTable(
        index=np.array([pos[NodeType.USER][lbl.entity_id] for lbl in won], dtype=np.int64),
        is_fraud=np.array([lbl.label is Verdict.FRAUD for lbl in won], dtype=bool),
        ts=np.array([lbl.ts for lbl in won], dtype=np.float64),
        source=np.array([lbl.source for lbl in won], dtype=object),
    )
    empty_labels = LabelTable(
        index=np.zeros(0, dtype=np.int64),
        is_fraud=np.zeros(0, dtype=bool),
        ts=np.zeros(0, dtype=np.float64),
        source=np.zeros(0, dtype=object),
    )
    return Snapshot(
        nodes={t: np.array(ks, dtype=object) for t, ks in keys.items()},
        transactions=txns,
        user_device=_links(user_device),
        user_ip=_links(user_ip),
        device_ip=_links(device_ip),
        user_labels=user_labels,
        txn_labels=empty_labels,
        taken_at=taken_at,
    )


class FakeGraphStore(GraphStore):
    """Serves one fixed snapshot and scoring run; records whether it was closed."""

    backend = "fake"

    def __init__(self, snapshot: Snapshot, writeback: ScoreWriteback | None) -> None:
        self._snap = snapshot
        self._writeback = writeback
        self.closed = False
        self.snapshots_taken = 0
        self.labels: list[Label] = []

    def _upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        raise NotImplementedError("the API never writes events")

    def _upsert_labels(self, labels: Sequence[Label]) -> int:
        self.labels.extend(labels)
        return len(labels)

    def _write_scores(self, writeback: ScoreWriteback) -> None:
        self._writeback = writeback

    def _snapshot(self) -> Snapshot:
        self.snapshots_taken += 1
        return self._snap

    def _neighbourhood(self, node_type: NodeType, key: str, hops: int, limit: int) -> Subgraph:
        raise AssertionError("the API must answer neighbourhoods from memory, not from the store")

    def _stored_events(self, txn_ids: list[str]) -> dict[str, Event]:
        return {}

    def _has_events(self) -> bool:
        return len(self._snap.transactions) > 0

    def _rings(self) -> list[Ring]:
        return list(self._writeback.rings) if self._writeback else []

    def _last_scores(self) -> ScoreWriteback | None:
        return self._writeback

    def _stats(self) -> StoreStats:
        return StoreStats()

    def _close(self) -> None:
        self.closed = True
