"""Neo4j-only behaviour of ``Neo4jGraphStore`` on a real server (the shared behaviour is in the
conformance suite): schema, parity with the SQLite store on random data, hostile ids, a server
stopped in the middle of a load, and credentials kept out of messages and logs."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_outside_ci
from graph.errors import StoreError, StoreUnavailableError
from graph.factory import open_store
from graph.neo4j_store import SCHEMA_VERSION, Neo4jGraphStore
from graph.sqlite_store import SQLiteGraphStore
from graph.store import GraphStore
from graph.types import (
    EntityScore,
    Event,
    EventKind,
    Label,
    LabelEntity,
    NodeType,
    Ring,
    ScoreWriteback,
    Tier,
    UpsertResult,
    Verdict,
)

pytestmark = pytest.mark.neo4j

T0 = 1_700_000_000.0
HOSTILE = (
    "MATCH (n) DETACH DELETE n",
    "}) RETURN 1 //",
    "x'y\"z",
    "{braces: 1}",
    "`backtick`",
    "$param",
    "back\\slash\\",
    "CALL db.clear() ; DROP CONSTRAINT user_user_id_unique",
    "ünïcødé ☃ \U0001f600",
    " ",
)


@pytest.fixture
def neo4j_store(neo4j_server) -> Iterator[Neo4jGraphStore]:  # type: ignore[no-untyped-def]
    """An emptied store with small batches and pages, so tests cross batch and page edges."""
    store = Neo4jGraphStore(neo4j_server.uri, neo4j_server.user, neo4j_server.password, batch_size=37, page_size=29)
    store.delete_all()
    try:
        yield store
    finally:
        store.close()


def random_events(n: int, seed: int, ids: tuple[str, ...] = ()) -> list[Event]:
    """``n`` events over few users, devices, IPs and merchants (so links aggregate), some
    without device, IP or merchant, some repeated txn ids, keys drawn partly from ``ids``."""
    rng = random.Random(seed)

    def key(prefix: str, pool: int) -> str:
        if ids and rng.random() < 0.15:
            return prefix + rng.choice(ids)
        return f"{prefix}{rng.randrange(pool)}"

    events = []
    for i in range(n):
        kind = rng.choice([EventKind.PAYMENT] * 6 + [EventKind.REFUND, EventKind.SIGNUP, EventKind.LOGIN])
        paid = kind.needs_merchant
        txn_id = f"t{rng.randrange(i + 1)}" if rng.random() < 0.05 else key("t", 10**9) + f"-{i}"
        events.append(
            Event(
                txn_id=txn_id,
                ts=T0 + rng.randrange(0, 100_000) + rng.choice([0.0, 0.25, 0.5]),
                user_id=key("u", n // 6 + 1),
                device_id=None if rng.random() < 0.1 else key("d", n // 8 + 1),
                ip=None if rng.random() < 0.1 else key("ip", n // 8 + 1),
                merchant_id=key("m", n // 30 + 1) if paid else None,
                amount=round(rng.uniform(0, 500), 2) if paid else None,
                currency=rng.choice(["EUR", "USD", None]) if paid else None,
                event=kind,
                status=rng.choice(["approved", "declined", None]),
            )
        )
    return events


def random_labels(events: list[Event], seed: int) -> list[Label]:
    rng = random.Random(seed)
    users = sorted({e.user_id for e in events})
    txns = sorted({e.txn_id for e in events})
    labels = []
    for _ in range(len(events) // 4):
        txn = rng.random() < 0.4
        entity_id = rng.choice(txns if txn else users) if rng.random() < 0.9 else f"ghost-{rng.randrange(5)}"
        labels.append(
            Label(
                LabelEntity.TRANSACTION if txn else LabelEntity.USER,
                entity_id,
                rng.choice(list(Verdict)),
                T0 + rng.randrange(0, 20),  # few distinct ts: ties happen
                rng.choice(["chargeback", "analyst", "investigator"]),
            )
        )
    return labels


def random_writeback(events: list[Event], seed: int, version: str) -> ScoreWriteback:
    rng = random.Random(seed)
    users = sorted({e.user_id for e in events})
    txns = sorted({e.txn_id for e in events})

    def score(key: str) -> EntityScore:
        s = round(rng.random(), 6)
        return EntityScore(key, s, Tier.HIGH if s >= 0.8 else Tier.MEDIUM if s >= 0.5 else Tier.LOW)

    rings = []
    for k in range(6):
        members = tuple(sorted(rng.sample(users, 3)))
        rings.append(Ring(f"ring-{k}", members, ("d1",), (), ("m1", "m2"), round(rng.random(), 3), Tier.MEDIUM))
    rings.sort(key=lambda r: (-r.score, r.ring_id))
    return ScoreWriteback(
        model_version=version,
        scored_at=T0 + 5000,
        accounts=tuple(score(u) for u in rng.sample(users, len(users) // 2) if True),
        transactions=tuple(score(t) for t in rng.sample(txns, len(txns) // 3)),
        rings=tuple(rings),
    )


def _sorted_writeback(wb: ScoreWriteback) -> ScoreWriteback:
    """``last_scores`` returns accounts and transactions sorted by key."""
    return ScoreWriteback(
        wb.model_version,
        wb.scored_at,
        tuple(sorted(wb.accounts, key=lambda s: s.key)),
        tuple(sorted(wb.transactions, key=lambda s: s.key)),
        wb.rings,
    )


def _load_both(neo: GraphStore, sqlite: GraphStore, events: list[Event], batch: int) -> None:
    for i in range(0, len(events), batch):
        assert neo.upsert_events(events[i : i + batch]) == sqlite.upsert_events(events[i : i + batch])


# -- schema -------------------------------------------------------------------------------------


def test_schema_is_created_idempotently_and_versioned(neo4j_server) -> None:  # type: ignore[no-untyped-def]
    first = Neo4jGraphStore(neo4j_server.uri, neo4j_server.user, neo4j_server.password)
    second = Neo4jGraphStore(neo4j_server.uri, neo4j_server.user, neo4j_server.password)  # connect again: OK
    try:
        assert first.backend == "neo4j" and "ringwatch-test" not in repr(first)
        assert first.schema_version() == second.schema_version() == SCHEMA_VERSION
        constraints = {(labels, props) for _name, labels, props in second.constraints()}
        for key in [("User", "user_id"), ("Device", "device_id"), ("IP", "ip"), ("Merchant", "merchant_id"),
                    ("Ring", "ring_id"), ("TRANSACTED", "txn_id"), ("ACTED", "txn_id")]:  # fmt: skip
            assert ((key[0],), (key[1],)) in constraints
        assert len(second.constraints()) == len(first.constraints())  # nothing created twice
    finally:
        first.close()
        second.close()
        second.close()  # safe twice


def test_the_factory_opens_neo4j_when_a_uri_is_set(neo4j_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with open_store(tmp_path / "unused.sqlite", neo4j_server.uri, neo4j_server.user, neo4j_server.password) as store:
        assert isinstance(store, Neo4jGraphStore) and store.backend == "neo4j"
    assert not (tmp_path / "unused.sqlite").exists()



def _operators(plan: dict) -> list[str]:
    return [plan["operatorType"].split("@")[0], *(op for child in plan.get("children", []) for op in _operators(child))]


def test_txn_id_lookups_seek_the_unique_index_even_on_an_empty_database(neo4j_store: Neo4jGraphStore) -> None:
    # Plans are cached; one made while the database is empty must still seek, not scan the index
    # and filter each id (what an unhinted plan sometimes did, at ~200 µs of server CPU per event).
    from graph import neo4j_cypher as cy

    driver = neo4j_store._driver
    assert driver is not None
    statements = [(cy.EXISTING_TXN_IDS, {"ids": ["t1", "t2"]})]
    statements += [(stmt, {"rows": [["t1", 0.5, "low"]]}) for stmt in cy.SET_EVENT_SCORES]
    for stmt, params in statements:
        with driver.session(database=neo4j_store.database) as session:
            plan = session.run("EXPLAIN " + stmt, params).consume().plan
        ops = _operators(plan)
        seeks = [op for op in ops if op.startswith("DirectedRelationshipUniqueIndexSeek")]  # or (Locking)
        assert seeks and not [op for op in ops if "Scan" in op], (stmt, ops)


def test_repeated_keys_in_one_batch_aggregate_links_once_and_a_reload_changes_nothing(
    neo4j_server,  # type: ignore[no-untyped-def]
) -> None:
    # One write transaction holding the same user, device, IP and merchant many times (and the
    # same txn id twice: the first copy wins), then the same events again in other batches.
    store = Neo4jGraphStore(neo4j_server.uri, neo4j_server.user, neo4j_server.password, batch_size=1000)
    try:
        store.delete_all()
        events = [
            Event(f"r{i}", T0 + (7 - i) * 10.0, "u1", "d1", "ip1", "m1" if i % 2 else None,
                  1.0 if i % 2 else None, None, EventKind.PAYMENT if i % 2 else EventKind.LOGIN, "approved")
            for i in range(8)
        ] + [Event("r0", T0 + 999.0, "u2", "d2", "ip2", None, None, None, EventKind.LOGIN, None)]  # fmt: skip
        assert store.upsert_events(events) == UpsertResult(inserted=8, duplicates=1)
        first = store.snapshot()
        assert first.nodes[NodeType.USER].tolist() == ["u1"] and first.nodes[NodeType.MERCHANT].tolist() == ["m1"]
        for links in (first.user_device, first.user_ip, first.device_ip):
            assert (links.count.tolist(), links.first_seen.tolist(), links.last_seen.tolist()) == ([8], [T0], [T0 + 70])
        assert store.stats().edges["TRANSACTED"] == 4
        again = Neo4jGraphStore(neo4j_server.uri, neo4j_server.user, neo4j_server.password, batch_size=3)
        try:
            assert again.upsert_events(events[::-1]) == UpsertResult(inserted=0, duplicates=9)
        finally:
            again.close()
        assert store.snapshot().equals(first)
    finally:
        store.close()


# -- parity with the SQLite store -----------------------------------------------------------------


def test_same_events_labels_and_scores_give_the_same_results_as_sqlite(
    neo4j_store: Neo4jGraphStore, tmp_path: Path
) -> None:
    events = random_events(1500, seed=3, ids=HOSTILE)
    sqlite = SQLiteGraphStore(tmp_path / "ref.sqlite")
    try:
        _load_both(neo4j_store, sqlite, events, batch=400)  # 400 = several of the store's 37-event batches
        _load_both(neo4j_store, sqlite, events[::-1], batch=500)  # all duplicates now
        labels = random_labels(events, seed=4)
        assert neo4j_store.upsert_labels(labels) == sqlite.upsert_labels(labels)
        assert neo4j_store.upsert_labels(labels) == sqlite.upsert_labels(labels) == 0
        snap = neo4j_store.snapshot()
        assert snap.equals(sqlite.snapshot())
        assert len(snap.transactions) > 1000 and len(snap.user_labels) > 0 and len(snap.txn_labels) > 0

        for version, seed in (("v1", 5), ("v2", 6)):  # the second replaces the first
            wb = random_writeback(events, seed, version)
            neo4j_store.write_scores(wb)
            sqlite.write_scores(wb)
            assert neo4j_store.last_scores() == sqlite.last_scores() == _sorted_writeback(wb)
            assert neo4j_store.rings() == sqlite.rings()
        assert neo4j_store.stats() == sqlite.stats()

        rng = random.Random(7)
        for node_type in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT):
            for key in rng.sample(snap.nodes[node_type].tolist(), 3):
                for hops, limit in ((1, 500), (2, 40), (3, 15)):
                    assert neo4j_store.neighbourhood(node_type, key, hops, limit) == sqlite.neighbourhood(
                        node_type, key, hops, limit
                    ), (node_type, key, hops, limit)
    finally:
        sqlite.close()


def test_hostile_ids_everywhere_round_trip_and_break_nothing(neo4j_store: Neo4jGraphStore, tmp_path: Path) -> None:
    events = [
        Event(f"t{k}{bad}", T0 + k, f"u{bad}", f"d{bad}", f"ip{bad}", f"m{bad}", 1.0 + k, "EUR", EventKind.PAYMENT, bad)
        for k, bad in enumerate(HOSTILE)
    ] + [Event(bad, T0 + 100, bad, None, None, None, None, None, EventKind.SIGNUP, None) for bad in HOSTILE]
    labels = [Label(LabelEntity.USER, bad, Verdict.FRAUD, T0, bad) for bad in HOSTILE]
    sqlite = SQLiteGraphStore(tmp_path / "ref.sqlite")
    try:
        for store in (neo4j_store, sqlite):
            store.upsert_events(events)
            store.upsert_labels(labels)
        snap = neo4j_store.snapshot()
        assert snap.equals(sqlite.snapshot())
        assert set(HOSTILE) <= set(snap.nodes[NodeType.USER].tolist())
        ring = Ring(HOSTILE[1], tuple(sorted(HOSTILE)), (f"d{HOSTILE[0]}",), (), (), 0.9, Tier.HIGH)
        wb = ScoreWriteback(
            HOSTILE[0],
            T0,
            tuple(EntityScore(u, 0.5, Tier.MEDIUM) for u in sorted(HOSTILE)),
            tuple(EntityScore(t, 0.9, Tier.HIGH) for t in sorted(HOSTILE)),
            (ring,),
        )
        neo4j_store.write_scores(wb)
        assert neo4j_store.last_scores() == wb
        for bad in HOSTILE:
            sub = neo4j_store.neighbourhood(NodeType.USER, f"u{bad}", hops=1)
            assert {(n.node_type, n.key) for n in sub.nodes} >= {(NodeType.DEVICE, f"d{bad}"), (NodeType.MERCHANT, f"m{bad}")}
        stats = neo4j_store.stats()  # nothing was deleted or dropped
        assert stats.nodes["User"] == 2 * len(HOSTILE) and stats.edges["TRANSACTED"] == len(HOSTILE)
        assert len(neo4j_store.constraints()) >= 9
    finally:
        sqlite.close()


# -- faults and secrets -----------------------------------------------------------------------------


def test_a_load_cut_by_a_server_stop_fails_clearly_and_a_rerun_completes(neo4j_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not neo4j_server.managed:
        skip_outside_ci("needs a Neo4j this test can stop (not RINGWATCH_TEST_NEO4J_URI)")
    events = random_events(6000, seed=11)
    batches = [events[i : i + 300] for i in range(0, len(events), 300)]
    # max_retry_time: how long the driver retries a transaction before giving up (default 30 s).
    store = Neo4jGraphStore(
        neo4j_server.uri, neo4j_server.user, neo4j_server.password, batch_size=100, max_retry_time=2.0,
        connection_timeout=2.0,
    )  # fmt: skip
    stopper = threading.Thread(target=neo4j_server.stop)
    try:
        store.delete_all()
        loaded = 0
        with pytest.raises(StoreError) as err:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # keep calling until the stop bites
                for k, batch in enumerate(batches):
                    loaded += store.upsert_events(batch).inserted
                    if k == 2 and not stopper.is_alive() and stopper.ident is None:
                        stopper.start()  # the server goes down while later batches are written
        stopper.join()
        assert isinstance(err.value, StoreUnavailableError) and err.value.retryable, repr(err.value)
        assert neo4j_server.uri in str(err.value)
        assert neo4j_server.password not in str(err.value)

        neo4j_server.start()
        rerun = [store.upsert_events(b) for b in batches]  # the same load again
        # The call that was cut off may have committed some of its 300 events before the
        # connection died (its result never arrived): those count as duplicates now.
        unique = len({e.txn_id for e in events})
        assert unique - 300 <= loaded + sum(r.inserted for r in rerun) <= unique
        reference = SQLiteGraphStore(tmp_path / "ref.sqlite")
        try:
            reference.upsert_events(events)
            assert store.snapshot().equals(reference.snapshot())  # no loss, no duplicates
        finally:
            reference.close()
    finally:
        if stopper.ident is not None:
            stopper.join()
        if not neo4j_server.is_running():
            neo4j_server.start()
        store.close()


def test_a_wrong_password_never_shows_in_errors_or_logs(
    neo4j_server, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    wrong = "Wr0ng-Pa55word-9f3e"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError) as err:
        Neo4jGraphStore(neo4j_server.uri, neo4j_server.user, wrong)
    message = str(err.value)
    assert neo4j_server.uri in message and "credentials" in message
    assert wrong not in message and wrong not in repr(err.value)
    assert wrong not in caplog.text
    assert caplog.records  # the driver did log (at DEBUG): the check above is not vacuous


def test_an_unreachable_server_is_a_retryable_error_naming_the_uri() -> None:
    uri = "bolt://127.0.0.1:1"  # nothing listens on port 1
    with pytest.raises(StoreUnavailableError) as err:
        Neo4jGraphStore(uri, "neo4j", "Secret-Pa55word", connection_timeout=1.0, max_retry_time=0.5)
    assert uri in str(err.value) and "Secret-Pa55word" not in str(err.value)


def _label_counts(server) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from neo4j import GraphDatabase

    with GraphDatabase.driver(server.uri, auth=(server.user, server.password)) as driver:
        records, _, _ = driver.execute_query(
            "UNWIND $labels AS l CALL (l) { MATCH (n) WHERE l IN labels(n) RETURN count(n) AS c } RETURN l, c",
            labels=["HighRisk", "MediumRisk", "LowRisk", "SmallRing", "MidRing", "LargeRing"],
        )
    return {r["l"]: int(r["c"]) for r in records}


def test_browser_display_labels_follow_tiers_and_ring_sizes(neo4j_store: Neo4jGraphStore, neo4j_server) -> None:  # type: ignore[no-untyped-def]
    """GraSS styles by label only, so tiers and ring sizes are mirrored as labels, and a re-score
    leaves none behind."""
    events = random_events(300, seed=5)
    neo4j_store.upsert_events(events)
    wb = random_writeback(events, seed=6, version="v1")
    big = Ring("ring-big", tuple(sorted({e.user_id for e in events})[:16]), (), (), (), 0.99, Tier.HIGH)
    wb = ScoreWriteback(
        model_version=wb.model_version, scored_at=wb.scored_at, accounts=wb.accounts,
        transactions=wb.transactions, rings=(big, *wb.rings),
    )
    neo4j_store.write_scores(wb)
    counts = _label_counts(neo4j_server)
    for tier, label in ((Tier.HIGH, "HighRisk"), (Tier.MEDIUM, "MediumRisk"), (Tier.LOW, "LowRisk")):
        assert counts[label] == sum(1 for s in wb.accounts if s.tier is tier) > 0
    assert counts["LargeRing"] == 1 and counts["SmallRing"] == 6 and counts["MidRing"] == 0

    everyone_low = tuple(EntityScore(s.key, 0.01, Tier.LOW) for s in wb.accounts[:5])
    neo4j_store.write_scores(
        ScoreWriteback(model_version="v2", scored_at=wb.scored_at + 1, accounts=everyone_low, transactions=(), rings=())
    )
    assert _label_counts(neo4j_server) == {
        "HighRisk": 0, "MediumRisk": 0, "LowRisk": 5, "SmallRing": 0, "MidRing": 0, "LargeRing": 0,
    }  # fmt: skip
