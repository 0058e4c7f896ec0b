"""The GraphStore conformance suite: every backend must pass it, through the interface only.

Driven by the parametrised ``store`` fixture in ``conftest.py`` (SQLite today, Neo4j later).
The expected snapshot is built here in plain Python from the events, independently of any store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from graph.errors import NotFoundError, ValidationError
from graph.store import GraphStore
from graph.types import (
    EVENT_KINDS,
    EdgeType,
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
    Tier,
    TransactionTable,
    Verdict,
)
from ingestion.loader import load_events
from ingestion.quarantine import read_quarantine

T0 = 1_700_000_000.0
PAY, REFUND, SIGNUP, LOGIN = EventKind.PAYMENT, EventKind.REFUND, EventKind.SIGNUP, EventKind.LOGIN


def _ev(
    txn_id: str,
    dt: float,
    user: str,
    device: str | None = None,
    ip: str | None = None,
    merchant: str | None = None,
    amount: float | None = None,
    kind: EventKind = PAY,
    currency: str | None = "EUR",
    status: str | None = "approved",
) -> Event:
    if not kind.needs_merchant:
        currency = None
    return Event(txn_id, T0 + dt, user, device, ip, merchant, amount, currency, kind, status)


# Device d1 is shared by u1, u2, u3; IP 10.0.0.1 by u1, u2; 10.0.0.2 by u3, u4. u6 only signed up.
# Listed out of time order on purpose; t03 and t04 share a timestamp (tie broken by txn_id).
EVENTS: tuple[Event, ...] = (
    _ev("t01", 0, "u1", kind=SIGNUP, status=None),
    _ev("t02", 10, "u1", "d1", "10.0.0.1", "m1", 20.0),
    _ev("t04", 20, "u3", "d1", "10.0.0.2", "m2", 12.0, currency="USD"),
    _ev("t03", 20, "u2", "d1", "10.0.0.1", "m1", 35.5),
    _ev("t05", 30, "u1", "d1", "10.0.0.1", "m2", 99.99),
    _ev("t06", 40, "u4", "d2", "10.0.0.2", "m1", 7.25),
    _ev("t07", 50, "u4", "d2", None, kind=LOGIN, status=None),
    _ev("t08", 60, "u5", "d3", "2001:db8::1", "m3", 250.0),
    _ev("t09", 70, "u5", None, "2001:db8::1", "m3", 250.0, kind=REFUND),
    _ev("t10", 80, "u2", "d1", "10.0.0.1", "m1", 18.0),
    _ev("t11", 90, "u6", kind=SIGNUP, status=None),
    _ev("t12", 5, "u3", "d4", None, kind=LOGIN, status=None),
    _ev("t13", 100, "u2", "d1", "10.0.0.3", "m2", 0.0, status="declined"),
    _ev("t14", 110, "u3", "d1", "10.0.0.2", "m2", 40.0),
    _ev("t15", 120, "u4", "d2", "10.0.0.2", "m1", 8.0),
    _ev("t16", 130, "u1", "d1", "10.0.0.1", "m1", 60.0, currency=None, status=None),
    _ev("t17", 140, "u5", "d3", "2001:db8::1", "m3", 10.0),
    _ev("t18", 150, "u3", "d4", "10.0.0.2", None, kind=LOGIN, status=None),
    _ev("t19", 160, "u2", "d1", "10.0.0.1", "m1", 5.0),
    _ev("t20", 170, "u4", None, None, "m1", 9.0),
)


# -- an independent reference: the snapshot a store holding ``events`` and ``labels`` returns ----


def expected_snapshot(events: Sequence[Event], labels: Sequence[Label] = ()) -> Snapshot:
    evs = sorted(events, key=lambda e: (e.ts, e.txn_id))
    keys = {
        NodeType.USER: sorted({e.user_id for e in evs}),
        NodeType.DEVICE: sorted({e.device_id for e in evs if e.device_id is not None}),
        NodeType.IP: sorted({e.ip for e in evs if e.ip is not None}),
        NodeType.MERCHANT: sorted({e.merchant_id for e in evs if e.merchant_id is not None}),
    }
    pos = {t: {k: i for i, k in enumerate(ks)} for t, ks in keys.items()}

    def at(t: NodeType, key: str | None) -> int:
        return -1 if key is None else pos[t][key]

    txns = TransactionTable(
        txn_id=np.array([e.txn_id for e in evs], dtype=object),
        ts=np.array([e.ts for e in evs], dtype=np.float64),
        user=np.array([at(NodeType.USER, e.user_id) for e in evs], dtype=np.int64),
        merchant=np.array([at(NodeType.MERCHANT, e.merchant_id) for e in evs], dtype=np.int64),
        device=np.array([at(NodeType.DEVICE, e.device_id) for e in evs], dtype=np.int64),
        ip=np.array([at(NodeType.IP, e.ip) for e in evs], dtype=np.int64),
        amount=np.array([math.nan if e.amount is None else e.amount for e in evs], dtype=np.float64),
        currency=np.array([e.currency for e in evs], dtype=object),
        event=np.array([EVENT_KINDS.index(e.event.value) for e in evs], dtype=np.int8),
        status=np.array([e.status for e in evs], dtype=object),
    )

    def links(pairs: list[tuple[int, int, float]]) -> LinkTable:
        agg: dict[tuple[int, int], list[float]] = {}
        for s, d, ts in pairs:
            agg.setdefault((s, d), []).append(ts)
        rows = sorted(agg.items())
        return LinkTable(
            src=np.array([s for (s, _), _ in rows], dtype=np.int64),
            dst=np.array([d for (_, d), _ in rows], dtype=np.int64),
            first_seen=np.array([min(t) for _, t in rows], dtype=np.float64),
            last_seen=np.array([max(t) for _, t in rows], dtype=np.float64),
            count=np.array([len(t) for _, t in rows], dtype=np.int64),
        )

    u, d, i = (np.asarray(x).tolist() for x in (txns.user, txns.device, txns.ip))
    ts = txns.ts.tolist()
    n = len(evs)

    def winners(entity: LabelEntity, index: dict[str, int]) -> LabelTable:
        best: dict[str, Label] = {}
        for lb in labels:
            if lb.entity is not entity or lb.entity_id not in index:
                continue
            cur = best.get(lb.entity_id)
            # latest ts wins; ties: smallest source, then smallest label ("fraud" < "legit")
            if cur is None or (-lb.ts, lb.source, lb.label.value) < (-cur.ts, cur.source, cur.label.value):
                best[lb.entity_id] = lb
        won = sorted(best.values(), key=lambda lb: index[lb.entity_id])
        return LabelTable(
            index=np.array([index[lb.entity_id] for lb in won], dtype=np.int64),
            is_fraud=np.array([lb.label is Verdict.FRAUD for lb in won], dtype=bool),
            ts=np.array([lb.ts for lb in won], dtype=np.float64),
            source=np.array([lb.source for lb in won], dtype=object),
        )

    return Snapshot(
        nodes={t: np.array(ks, dtype=object) for t, ks in keys.items()},
        transactions=txns,
        user_device=links([(u[k], d[k], ts[k]) for k in range(n) if d[k] >= 0]),
        user_ip=links([(u[k], i[k], ts[k]) for k in range(n) if i[k] >= 0]),
        device_ip=links([(d[k], i[k], ts[k]) for k in range(n) if d[k] >= 0 and i[k] >= 0]),
        user_labels=winners(LabelEntity.USER, pos[NodeType.USER]),
        txn_labels=winners(LabelEntity.TRANSACTION, {t: k for k, t in enumerate(txns.txn_id.tolist())}),
    )


def _label(entity_id: str, verdict: Verdict, dt: float, source: str = "investigator", txn: bool = False) -> Label:
    entity = LabelEntity.TRANSACTION if txn else LabelEntity.USER
    return Label(entity, entity_id, verdict, T0 + dt, source)


def _writeback(model_version: str, rings: Sequence[Ring], users: Sequence[str], txns: Sequence[str]) -> ScoreWriteback:
    """Scores for the given keys (sorted, as last_scores returns them), tiers from the score."""

    def score(key: str, salt: float) -> EntityScore:
        s = round((sum(map(ord, key)) * 0.137 + salt) % 1.0, 6)
        tier = Tier.HIGH if s >= 0.8 else Tier.MEDIUM if s >= 0.5 else Tier.LOW
        return EntityScore(key, s, tier)

    return ScoreWriteback(
        model_version=model_version,
        scored_at=T0 + 1000.5,
        accounts=tuple(score(k, 0.1) for k in sorted(users)),
        transactions=tuple(score(k, 0.3) for k in sorted(txns)),
        rings=tuple(sorted(rings, key=lambda r: (-r.score, r.ring_id))),
    )


RING_A = Ring("ring-A", ("u1", "u2", "u3"), ("d1",), ("10.0.0.1",), ("m1", "m2"), 0.91, Tier.HIGH)
RING_B = Ring("ring-B", ("u4", "u5"), (), ("10.0.0.2",), (), 0.55, Tier.MEDIUM)
RING_C = Ring("ring-C", ("u5", "u6"), ("d3",), (), ("m3",), 0.62, Tier.MEDIUM)
USERS = ("u1", "u2", "u3", "u4", "u5", "u6")


# -- upsert and snapshot ----------------------------------------------------------------------


def test_snapshot_of_hand_built_events_matches_the_reference(store: GraphStore) -> None:
    result = store.upsert_events(EVENTS)
    assert (result.inserted, result.duplicates) == (len(EVENTS), 0)
    snap = store.snapshot()
    assert snap.equals(expected_snapshot(EVENTS))

    assert snap.nodes[NodeType.USER].tolist() == ["u1", "u2", "u3", "u4", "u5", "u6"]
    assert snap.nodes[NodeType.DEVICE].tolist() == ["d1", "d2", "d3", "d4"]
    assert snap.nodes[NodeType.IP].tolist() == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::1"]
    assert snap.nodes[NodeType.MERCHANT].tolist() == ["m1", "m2", "m3"]
    for keys in snap.nodes.values():
        assert keys.dtype == object
    t = snap.transactions
    assert t.txn_id.tolist()[:5] == ["t01", "t12", "t02", "t03", "t04"]  # by (ts, txn_id)
    assert (t.user.dtype, t.merchant.dtype, t.device.dtype, t.ip.dtype) == (np.int64,) * 4
    assert t.ts.dtype == np.float64 and t.amount.dtype == np.float64 and t.event.dtype == np.int8
    assert t.txn_id.dtype == object and t.currency.dtype == object and t.status.dtype == object
    first = t.txn_id.tolist().index("t01")  # a bare signup
    assert (t.merchant[first], t.device[first], t.ip[first]) == (-1, -1, -1)
    assert math.isnan(t.amount[first]) and t.currency[first] is None and t.status[first] is None
    assert EVENT_KINDS[t.event[first]] == "signup"
    refund = t.txn_id.tolist().index("t09")
    assert EVENT_KINDS[t.event[refund]] == "refund" and t.device[refund] == -1 and t.amount[refund] == 250.0

    # u2 used d1 four times (t03, t10, t13, t19): one aggregated USED_DEVICE row
    ud = snap.user_device
    row = [k for k in range(len(ud)) if (ud.src[k], ud.dst[k]) == (1, 0)]
    assert len(row) == 1
    assert (ud.first_seen[row[0]], ud.last_seen[row[0]], ud.count[row[0]]) == (T0 + 20, T0 + 160, 4)
    for links in (snap.user_device, snap.user_ip, snap.device_ip):
        pairs = list(zip(links.src.tolist(), links.dst.tolist()))
        assert pairs == sorted(set(pairs))  # one row per pair, sorted by (src, dst)
        assert links.count.dtype == np.int64 and links.src.dtype == np.int64
    assert (len(snap.user_device), len(snap.user_ip), len(snap.device_ip)) == (6, 6, 6)


def test_upserting_the_same_events_again_changes_nothing(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    before = store.snapshot()
    again = store.upsert_events(list(reversed(EVENTS)))
    assert (again.inserted, again.duplicates) == (0, len(EVENTS))
    assert store.snapshot().equals(before)


def test_partial_overlap_counts_only_new_transactions(store: GraphStore) -> None:
    first = store.upsert_events(EVENTS[:12])
    second = store.upsert_events(EVENTS[8:])
    assert (first.inserted, first.duplicates) == (12, 0)
    assert (second.inserted, second.duplicates) == (len(EVENTS) - 12, 4)
    assert store.snapshot().equals(expected_snapshot(EVENTS))


def test_a_txn_id_repeated_within_one_batch_counts_once(store: GraphStore) -> None:
    result = store.upsert_events([EVENTS[1], EVENTS[2], EVENTS[1]])
    assert (result.inserted, result.duplicates) == (2, 1)
    assert len(store.snapshot().transactions) == 2


def test_stored_events_come_back_as_they_were_written(store: GraphStore) -> None:
    assert not store.has_events() and store.stored_events(["t01"]) == {}
    events = [*EVENTS, _ev("t99", 900, "u1", "d1", "10.0.0.1", "m1", 12.5)]
    store.upsert_events(events)
    assert store.has_events()
    asked = [e.txn_id for e in events] + ["no-such-txn", "t01"]
    assert store.stored_events(asked) == {e.txn_id: e for e in events}
    assert store.stored_events([]) == {}


def test_a_later_load_quarantines_a_txn_id_reused_with_different_content(store: GraphStore, tmp_path: Path) -> None:
    header = "txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status\n"
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(header + "c1,2026-01-02T00:00:00Z,u1,d1,10.0.0.1,m1,5,USD,payment,approved\n"
                     "c2,2026-01-02T00:01:00Z,u2,d2,10.0.0.2,m1,7,USD,payment,approved\n")  # fmt: skip
    second.write_text(header + "c1,2026-01-02T00:00:00Z,u9,d9,10.0.0.9,m1,9999,EUR,refund,approved\n"
                      "c2,2026-01-02T00:01:00Z,u2,d2,10.0.0.2,m1,7,USD,payment,approved\n"
                      "c3,2026-01-02T00:02:00Z,u3,d3,10.0.0.3,m1,8,USD,payment,approved\n"
                      "c1,2026-01-02T00:00:00Z,u9,d9,10.0.0.9,m1,9999,EUR,refund,approved\n")  # fmt: skip
    q = tmp_path / "quarantine"
    load_events(first, store, quarantine_dir=q)
    summary = load_events(second, store, quarantine_dir=q)
    # c2 is the very same event (a no-op); both copies of the different c1 are quarantined.
    assert (summary.read, summary.loaded, summary.duplicates, summary.quarantined) == (4, 1, 1, 2)
    assert summary.quarantined_by_reason == {"duplicate_txn_id_conflict": 2}
    bad = read_quarantine(summary.quarantine_file)
    assert bad["line"].astype(int).tolist() == [2, 5]
    assert all(d.startswith("conflicting duplicate of txn_id 'c1': stored with user_id='u1' (here 'u9')") for d in bad["detail"])
    snap = store.snapshot()
    assert sorted(snap.transactions.txn_id.tolist()) == ["c1", "c2", "c3"]
    assert "u9" not in snap.nodes[NodeType.USER].tolist()  # no orphan node for the refused row
    assert store.stored_events(["c1"])["c1"].user_id == "u1"


def test_empty_batches_are_no_ops(store: GraphStore) -> None:
    assert (store.upsert_events([]).inserted, store.upsert_labels([])) == (0, 0)


def test_snapshot_of_an_empty_store(store: GraphStore) -> None:
    snap = store.snapshot()
    assert snap.equals(expected_snapshot([]))
    for node_type in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT):
        assert snap.num_nodes(node_type) == 0 and snap.nodes[node_type].dtype == object
    assert len(snap.transactions) == 0 and snap.transactions.user.dtype == np.int64
    assert snap.transactions.event.dtype == np.int8
    assert len(snap.user_device) == len(snap.user_labels) == len(snap.txn_labels) == 0
    assert snap.user_labels.is_fraud.dtype == bool
    assert store.rings() == [] and store.last_scores() is None
    stats = store.stats()
    assert stats.rings == 0 and set(stats.nodes.values()) == {0} and set(stats.edges.values()) == {0}


def test_events_without_device_ip_or_merchant(store: GraphStore) -> None:
    signups = [_ev("s1", 1, "new-user", kind=SIGNUP), _ev("s2", 2, "other", kind=LOGIN)]
    store.upsert_events(signups)
    snap = store.snapshot()
    assert snap.nodes[NodeType.USER].tolist() == ["new-user", "other"]
    assert snap.num_nodes(NodeType.DEVICE) == snap.num_nodes(NodeType.IP) == snap.num_nodes(NodeType.MERCHANT) == 0
    assert snap.transactions.merchant.tolist() == [-1, -1] and snap.transactions.device.tolist() == [-1, -1]
    assert len(snap.user_device) == len(snap.user_ip) == len(snap.device_ip) == 0
    sub = store.neighbourhood(NodeType.USER, "new-user", hops=2)
    assert [n.key for n in sub.nodes] == ["new-user"] and sub.edges == ()


# -- labels -----------------------------------------------------------------------------------


def test_latest_verdict_wins_in_any_load_order(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    assert store.upsert_labels([_label("u1", Verdict.LEGIT, 200, "investigator")]) == 1
    assert store.upsert_labels([_label("u1", Verdict.FRAUD, 100, "chargeback")]) == 1  # older: loses
    assert store.upsert_labels([_label("u2", Verdict.FRAUD, 100), _label("u2", Verdict.LEGIT, 300)]) == 2
    assert store.upsert_labels([_label("u3", Verdict.FRAUD, 50)]) == 1
    labels = store.snapshot().user_labels
    assert labels.index.tolist() == [0, 1, 2]  # u1, u2, u3 in node order
    assert labels.is_fraud.tolist() == [False, False, True]
    assert labels.ts.tolist() == [T0 + 200, T0 + 300, T0 + 50]
    assert labels.source.tolist() == ["investigator", "investigator", "investigator"]
    # fraud, later cleared -> legit; then confirmed fraud again -> fraud
    store.upsert_labels([_label("u3", Verdict.LEGIT, 60), _label("u3", Verdict.FRAUD, 70, "chargeback")])
    labels = store.snapshot().user_labels
    assert labels.is_fraud.tolist() == [False, False, True] and labels.source.tolist()[2] == "chargeback"


def test_reloading_a_verdict_is_a_no_op(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    verdicts = [_label("u1", Verdict.FRAUD, 10), _label("t02", Verdict.FRAUD, 10, txn=True)]
    assert store.upsert_labels(verdicts) == 2
    before = store.snapshot()
    assert store.upsert_labels(verdicts) == 0
    assert store.snapshot().equals(before)
    assert store.stats().labels["user:fraud"] == 1


def test_verdicts_with_the_same_timestamp_are_broken_deterministically(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    # same ts: the smallest source wins ("analyst" < "chargeback"); same ts and source: fraud wins
    store.upsert_labels([_label("u4", Verdict.FRAUD, 10, "chargeback"), _label("u4", Verdict.LEGIT, 10, "analyst")])
    store.upsert_labels([_label("u5", Verdict.LEGIT, 10, "x"), _label("u5", Verdict.FRAUD, 10, "x")])
    labels = store.snapshot().user_labels
    assert labels.index.tolist() == [3, 4]
    assert labels.is_fraud.tolist() == [False, True]
    assert labels.source.tolist() == ["analyst", "x"]


def test_transaction_labels_point_at_transaction_rows(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    verdicts = [
        _label("t19", Verdict.FRAUD, 200, "chargeback", txn=True),
        _label("t02", Verdict.FRAUD, 200, "chargeback", txn=True),
        _label("t02", Verdict.LEGIT, 300, "investigator", txn=True),
        _label("u1", Verdict.FRAUD, 200),
    ]
    store.upsert_labels(verdicts)
    snap = store.snapshot()
    ids = snap.transactions.txn_id.tolist()
    lbl = snap.txn_labels
    assert [ids[k] for k in lbl.index.tolist()] == ["t02", "t19"]  # sorted by row
    assert lbl.is_fraud.tolist() == [False, True]  # t02 cleared later
    assert snap.equals(expected_snapshot(EVENTS, verdicts))


def test_labels_of_entities_not_in_the_graph_wait_for_them(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    store.upsert_labels([_label("ghost", Verdict.FRAUD, 10), _label("t-ghost", Verdict.FRAUD, 10, txn=True)])
    snap = store.snapshot()
    assert len(snap.user_labels) == 0 and len(snap.txn_labels) == 0
    store.upsert_events([_ev("t-ghost", 500, "ghost", "d1", None, "m1", 1.0)])
    snap = store.snapshot()
    users = snap.nodes[NodeType.USER].tolist()
    assert [users[k] for k in snap.user_labels.index.tolist()] == ["ghost"]
    assert [snap.transactions.txn_id[k] for k in snap.txn_labels.index.tolist()] == ["t-ghost"]


# -- scores and rings ---------------------------------------------------------------------------


def test_write_scores_then_last_scores_round_trips(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    assert store.last_scores() is None and store.rings() == []
    wb = _writeback("sage-1", [RING_B, RING_A], USERS, [e.txn_id for e in EVENTS])
    store.write_scores(wb)
    assert store.last_scores() == wb
    assert store.rings() == [RING_A, RING_B]  # score desc
    sub = store.neighbourhood(NodeType.USER, "u2", hops=1)
    u2 = next(n for n in sub.nodes if n.key == "u2")
    expected = next(a for a in wb.accounts if a.key == "u2")
    assert (u2.risk_score, u2.risk_tier, u2.ring_id) == (expected.score, expected.tier, "ring-A")
    ring = next(n for n in sub.nodes if n.node_type is NodeType.RING)
    assert (ring.key, ring.risk_score, ring.risk_tier) == ("ring-A", 0.91, Tier.HIGH)
    paid = {e.txn_id: e.risk_score for e in sub.edges if e.edge_type is EdgeType.TRANSACTED}
    scores = {s.key: s.score for s in wb.transactions}
    assert paid == {k: scores[k] for k in ("t03", "t10", "t13", "t19")}


def test_rings_are_ordered_by_score_then_id(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    tied = Ring("ring-0", ("u6",), (), (), (), 0.55, Tier.MEDIUM)
    store.write_scores(_writeback("v1", [RING_B, tied, RING_A], USERS, []))
    assert [r.ring_id for r in store.rings()] == ["ring-A", "ring-0", "ring-B"]


def test_a_rescore_leaves_no_stale_scores_or_rings(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    store.write_scores(_writeback("v1", [RING_A, RING_B], USERS, ["t02", "t03"]))
    second = _writeback("v2", [RING_C], ["u5", "u6"], ["t08"])
    store.write_scores(second)
    assert store.rings() == [RING_C]
    assert store.last_scores() == second
    assert store.stats().rings == 1 and store.stats().edges[EdgeType.MEMBER_OF.value] == 2
    u1 = store.neighbourhood(NodeType.USER, "u1", hops=1)
    center = u1.nodes[0]
    assert (center.key, center.risk_score, center.risk_tier, center.ring_id) == ("u1", None, None, None)
    assert all(n.node_type is not NodeType.RING for n in u1.nodes)
    assert all(e.edge_type is not EdgeType.MEMBER_OF for e in u1.edges)
    assert all(e.risk_score is None for e in u1.edges)  # t02's old score is gone
    u5 = store.neighbourhood(NodeType.USER, "u5", hops=1).nodes[0]
    assert u5.ring_id == "ring-C"


def test_write_scores_is_all_or_nothing(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    good = _writeback("v1", [RING_A], USERS, ["t02"])
    store.write_scores(good)
    with pytest.raises(ValidationError):
        store.write_scores(_writeback("v2", [], ["u1", "nobody"], []))
    with pytest.raises(ValidationError):
        store.write_scores(_writeback("v2", [], ["u1"], ["no-such-txn"]))
    with pytest.raises(ValidationError):
        store.write_scores(_writeback("v2", [Ring("r", ("nobody",), (), (), (), 0.5, Tier.LOW)], ["u1"], []))
    with pytest.raises(ValidationError):
        store.write_scores(_writeback("", [], ["u1"], []))
    assert store.last_scores() == good


# -- neighbourhood ------------------------------------------------------------------------------


def _keys(sub: object) -> set[tuple[NodeType, str]]:
    return {(n.node_type, n.key) for n in sub.nodes}  # type: ignore[attr-defined]


def test_neighbourhood_one_hop_then_two(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    one = store.neighbourhood(NodeType.USER, "u1", hops=1)
    assert one.center == (NodeType.USER, "u1") and one.hops == 1 and not one.truncated
    assert one.nodes[0].key == "u1"
    assert _keys(one) == {
        (NodeType.USER, "u1"),
        (NodeType.DEVICE, "d1"),
        (NodeType.IP, "10.0.0.1"),
        (NodeType.MERCHANT, "m1"),
        (NodeType.MERCHANT, "m2"),
    }
    # one TRANSACTED edge per transaction, with its txn_id; d1 is seen at 10.0.0.1
    paid = sorted(e.txn_id for e in one.edges if e.edge_type is EdgeType.TRANSACTED)
    assert paid == ["t02", "t05", "t16"]
    kinds = {(e.edge_type, e.source[1], e.target[1]) for e in one.edges}
    assert (EdgeType.USED_DEVICE, "u1", "d1") in kinds and (EdgeType.USED_IP, "u1", "10.0.0.1") in kinds
    assert (EdgeType.SEEN_AT, "d1", "10.0.0.1") in kinds
    two = store.neighbourhood(NodeType.USER, "u1", hops=2)
    assert _keys(one) < _keys(two)
    assert {(NodeType.USER, "u2"), (NodeType.USER, "u3"), (NodeType.USER, "u4")} <= _keys(two)
    assert len(two.edges) > len(one.edges)
    for sub in (one, two):  # every edge joins two returned nodes
        assert all(e.source in _keys(sub) and e.target in _keys(sub) for e in sub.edges)
    assert store.neighbourhood(NodeType.USER, "u1", hops=2) == two  # deterministic


def test_neighbourhood_of_other_node_types(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    dev = store.neighbourhood(NodeType.DEVICE, "d1", hops=1)
    assert {k for t, k in _keys(dev) if t is NodeType.USER} == {"u1", "u2", "u3"}
    assert {k for t, k in _keys(dev) if t is NodeType.IP} == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    ip = store.neighbourhood(NodeType.IP, "2001:db8::1", hops=1)
    assert _keys(ip) == {(NodeType.IP, "2001:db8::1"), (NodeType.USER, "u5"), (NodeType.DEVICE, "d3")}
    merchant = store.neighbourhood(NodeType.MERCHANT, "m3", hops=1)
    assert sorted(e.txn_id for e in merchant.edges if e.edge_type is EdgeType.TRANSACTED) == ["t08", "t09", "t17"]


def test_neighbourhood_limit_truncates(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    sub = store.neighbourhood(NodeType.USER, "u1", hops=3, limit=3)
    assert len(sub.nodes) == 3 and sub.truncated
    assert sub.nodes[0].key == "u1"
    assert all(e.source in _keys(sub) and e.target in _keys(sub) for e in sub.edges)
    assert not store.neighbourhood(NodeType.USER, "u6", hops=3, limit=1).truncated


def test_neighbourhood_rejects_bad_arguments(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    with pytest.raises(NotFoundError) as err:
        store.neighbourhood(NodeType.USER, "nobody")
    assert (err.value.kind, err.value.key) == ("User", "nobody")
    with pytest.raises(NotFoundError):
        store.neighbourhood(NodeType.DEVICE, "u1")  # a user key is not a device
    for hops in (0, 4):
        with pytest.raises(ValidationError) as bad:
            store.neighbourhood(NodeType.USER, "u1", hops=hops)
        assert bad.value.field == "hops"
    with pytest.raises(ValidationError):
        store.neighbourhood(NodeType.USER, "u1", limit=0)
    with pytest.raises(ValidationError):
        store.neighbourhood(NodeType.RING, "ring-A")


# -- hostile identifiers and stats --------------------------------------------------------------

NASTY_USER = "u'1\"}`; DROP TABLE users; MATCH (n) DETACH DELETE n"
NASTY_DEVICE = "d{x: 1}\"; DELETE FROM devices; --"
NASTY_IP = "10.0.0.9'); DROP TABLE transactions; --"
NASTY_MERCHANT = "m`$param` {RETURN 1} /* ; */ UNION SELECT * FROM users"
NASTY_TXN = "t'\";\n\t\\ MERGE (x:Evil) //"
NASTY_RING = "ring'}); CALL db.clear() //"


def test_hostile_identifiers_round_trip_exactly(store: GraphStore) -> None:
    events = [*EVENTS, _ev(NASTY_TXN, 500, NASTY_USER, NASTY_DEVICE, NASTY_IP, NASTY_MERCHANT, 1.5, status="ok'; --")]
    store.upsert_events(events)
    verdicts = [_label(NASTY_USER, Verdict.FRAUD, 600, "src'); --"), _label(NASTY_TXN, Verdict.FRAUD, 600, txn=True)]
    store.upsert_labels(verdicts)
    snap = store.snapshot()
    assert snap.equals(expected_snapshot(events, verdicts))
    assert NASTY_USER in snap.nodes[NodeType.USER].tolist()
    assert NASTY_TXN in snap.transactions.txn_id.tolist()
    assert snap.user_labels.source.tolist() == ["src'); --"]
    ring = Ring(NASTY_RING, tuple(sorted(("u1", NASTY_USER))), (NASTY_DEVICE,), (NASTY_IP,), (NASTY_MERCHANT,), 0.99, Tier.HIGH)
    wb = _writeback("v'1\"", [ring], [*USERS, NASTY_USER], [NASTY_TXN])
    store.write_scores(wb)
    assert store.last_scores() == wb
    sub = store.neighbourhood(NodeType.USER, NASTY_USER, hops=1)
    assert _keys(sub) == {
        (NodeType.USER, NASTY_USER),
        (NodeType.DEVICE, NASTY_DEVICE),
        (NodeType.IP, NASTY_IP),
        (NodeType.MERCHANT, NASTY_MERCHANT),
        (NodeType.RING, NASTY_RING),
    }
    assert [e.txn_id for e in sub.edges if e.edge_type is EdgeType.TRANSACTED] == [NASTY_TXN]
    assert store.neighbourhood(NodeType.MERCHANT, NASTY_MERCHANT).nodes[0].key == NASTY_MERCHANT
    stats = store.stats()  # nothing was dropped or deleted
    assert stats.nodes[NodeType.USER.value] == 7 and stats.edges[EdgeType.TRANSACTED.value] == 16


def test_stats_counts(store: GraphStore) -> None:
    store.upsert_events(EVENTS)
    store.upsert_labels(
        [
            _label("u1", Verdict.FRAUD, 10),
            _label("u2", Verdict.FRAUD, 10),
            _label("u2", Verdict.LEGIT, 20),  # u2 now legit: counted once, as legit
            _label("t02", Verdict.FRAUD, 10, txn=True),
        ]
    )
    store.write_scores(_writeback("v1", [RING_A, RING_B], USERS, []))
    stats = store.stats()
    assert stats.nodes == {"User": 6, "Device": 4, "IP": 4, "Merchant": 3, "Ring": 2}
    assert stats.edges == {
        "TRANSACTED": 15,  # events with a merchant
        "USED_DEVICE": 6,  # distinct (user, device) pairs
        "USED_IP": 6,
        "SEEN_AT": 6,
        "MEMBER_OF": 5,
    }
    assert stats.labels == {"user:fraud": 1, "user:legit": 1, "transaction:fraud": 1, "transaction:legit": 0}
    assert stats.rings == 2
