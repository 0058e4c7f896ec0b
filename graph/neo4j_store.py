"""``Neo4jGraphStore``: the ``GraphStore`` on a Neo4j 5 server, through the official driver.

Same interface and same conformance suite as ``SQLiteGraphStore``; the graph is stored as in
DESIGN §4, with two storage choices the design leaves open (all Cypher: ``graph/neo4j_cypher.py``):

- *Events without a merchant* (signups, logins) cannot be a ``TRANSACTED`` edge, which ends at a
  merchant. They are stored as a self-loop ``(:User)-[:ACTED {txn_id, ts, ...}]->(:User)`` with
  the same properties, so every event is one relationship, ``txn_id`` is unique across both types,
  and ``stats()["TRANSACTED"]`` counts merchant events only, as in SQLite. The snapshot reads both.
- *Verdicts* are ``(:Verdict {vid, entity, entity_id, label, ts, source})`` nodes, one per distinct
  verdict (``vid`` is its identity, so re-loading one is a no-op), not linked to the entity: a
  verdict for an entity not in the graph yet waits, and joins it by id when it arrives. The
  winner per entity is chosen on read with the SQLite store's rule (latest ``ts``; ties: smallest
  ``source``, then ``label``), in Python, so both stores order strings the same way.

Writes: a batch of ``batch_size`` events is one managed write transaction
(``session.execute_write``, which retries transient errors for up to ``max_retry_time`` s). In
it, the txn ids already stored are looked up first; then one statement (``WRITE_EVENTS``, so the
rows cross the wire once) writes only the new events: nodes by ``UNWIND ... MERGE`` on the
uniqueness constraints, event edges by ``CREATE``, and ``USED_DEVICE`` / ``USED_IP`` / ``SEEN_AT``
``{first_seen, last_seen, count}`` by ``MERGE`` of the batch's per-pair aggregates. The client
deduplicates the keys and aggregates the pairs (``_event_params``), and rows name their nodes by
position in the merged node lists, so the server does one index look-up per distinct key. So loading
the same events twice changes nothing, and a batch cut off by a fault is either fully written or
not at all: re-running the load completes it (a batch that committed just before the connection
died counts as duplicates the second time).

Scores: one write transaction clears the previous run's scores and rings, writes the new ones
and checks, by the counts the statements return, that every key exists; a missing key raises
``ValidationError`` inside the transaction, which rolls it back (all or nothing). This keeps all
updated properties of one run in one transaction: ``dbms.memory.transaction.total.max`` must
allow for that; the need grows with the number of scored users.

Snapshot: nodes, edges and verdicts are read in pages of ``page_size`` rows over ordered key
ranges (``WHERE key >= $from ORDER BY key LIMIT $page``, served by the constraint indexes), in
one read transaction, then turned into the same arrays as the SQLite store builds.

Keys are sorted in Python (code-point order) wherever the result order matters; Neo4j's own
string order (UTF-16) is used only to page through keys and to choose which ``limit`` neighbours
``neighbourhood`` keeps per node, which differs from SQLite's only for keys with characters above
U+FFFF and only when a list is truncated.

Errors: the driver's errors become ``StoreUnavailableError`` (server unreachable, gone away or
still failing transiently after the retries: worth retrying later) or ``StoreError``. Messages
name the URI and the user, never the password (which is also scrubbed from the driver's text).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import Any, LiteralString, NoReturn, TypeVar

import numpy as np
import pandas as pd
from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import (
    AuthError,
    ConstraintError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from graph import neo4j_cypher as cy
from graph.errors import NotFoundError, RingwatchError, StoreError, StoreUnavailableError, ValidationError
from graph.snapshot_arrays import codes, key_index, label_table, object_array, transaction_table
from graph.store import GraphStore
from graph.traversal import Node, node_sort_key, walk
from graph.types import (
    EdgeType,
    EntityScore,
    Event,
    EventKind,
    Label,
    LabelEntity,
    LinkTable,
    NodeType,
    Ring,
    ScoreWriteback,
    Snapshot,
    StoreStats,
    Subgraph,
    SubgraphEdge,
    SubgraphNode,
    Tier,
    UpsertResult,
    Verdict,
)


#: Version of the storage model above; recorded in ``(:RingwatchMeta {key: 'schema'})``.
SCHEMA_VERSION = 1
#: Events per write transaction (``bench/neo4j_bench.py --batch`` compares sizes); much larger
#: batches need more of dbms.memory.transaction.total.max.
BATCH_SIZE = 10_000
#: Rows per snapshot page.
PAGE_SIZE = 20_000
#: Seconds the driver keeps retrying a transaction after transient errors (its default is 30).
#: Short, so an outage reaches the caller (ingestion, API) quickly as StoreUnavailableError.
MAX_RETRY_TIME = 10.0
#: Seconds to open a connection.
CONNECTION_TIMEOUT = 5.0

# [txn_id, ts, user_id, merchant_id, device_id, ip, amount, currency, event, status]: the column
# order of the event rows in neo4j_cypher. ``event.value`` is the plain string.
_EVENT_ROW = attrgetter(
    "txn_id", "ts", "user_id", "merchant_id", "device_id", "ip", "amount", "currency", "event.value", "status"
)
_Node = Node
_T = TypeVar("_T")

# Per node type: (statement name, edge type, direction) of each kind of adjacency, in the order
# the SQLite store emits them. "out": node -> other; "in": other -> node.
_ADJACENCY: dict[NodeType, tuple[tuple[str, EdgeType, NodeType, str], ...]] = {
    NodeType.USER: (
        ("user_devices", EdgeType.USED_DEVICE, NodeType.DEVICE, "out"),
        ("user_ips", EdgeType.USED_IP, NodeType.IP, "out"),
        ("user_txns", EdgeType.TRANSACTED, NodeType.MERCHANT, "out"),
        ("user_rings", EdgeType.MEMBER_OF, NodeType.RING, "out"),
    ),
    NodeType.DEVICE: (
        ("device_users", EdgeType.USED_DEVICE, NodeType.USER, "in"),
        ("device_ips", EdgeType.SEEN_AT, NodeType.IP, "out"),
    ),
    NodeType.IP: (
        ("ip_users", EdgeType.USED_IP, NodeType.USER, "in"),
        ("ip_devices", EdgeType.SEEN_AT, NodeType.DEVICE, "in"),
    ),
    NodeType.MERCHANT: (("merchant_txns", EdgeType.TRANSACTED, NodeType.USER, "in"),),
    NodeType.RING: (("ring_users", EdgeType.MEMBER_OF, NodeType.USER, "in"),),
}


class Neo4jGraphStore(GraphStore):
    """The graph in a Neo4j 5 database.

    Connects, checks the credentials and creates the schema (constraints, indexes, schema
    version; idempotent) when constructed.

    Args:
        uri: Bolt URI, e.g. ``bolt://127.0.0.1:7687`` or ``neo4j+s://...``.
        user, password: credentials; the password is never logged nor put in a message.
        database: database name (community edition: ``neo4j``).
        batch_size: events per write transaction.
        page_size: rows per page when reading a snapshot.
        max_retry_time: seconds a transaction is retried after transient errors.
        connection_timeout: seconds to open a connection.

    Raises:
        ValidationError: ``batch_size`` or ``page_size`` < 1.
        StoreUnavailableError: the server cannot be reached.
        StoreError: wrong credentials, or the database holds another schema version.
    """

    backend = "neo4j"

    def __init__(
        self,
        uri: str,
        user: str = "neo4j",
        password: str | None = None,
        database: str = "neo4j",
        *,
        batch_size: int = BATCH_SIZE,
        page_size: int = PAGE_SIZE,
        max_retry_time: float = MAX_RETRY_TIME,
        connection_timeout: float = CONNECTION_TIMEOUT,
    ) -> None:
        if batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be at least 1")
        if page_size < 1:
            raise ValidationError("page_size", page_size, "must be at least 1")
        self.uri = uri
        self.user = user
        self.database = database
        self.batch_size = batch_size
        self.page_size = page_size
        self._password = password or ""
        self._lock = threading.Lock()
        self._driver: Driver | None = None
        try:
            driver = GraphDatabase.driver(
                uri,
                auth=(user, self._password),
                max_transaction_retry_time=max_retry_time,
                connection_timeout=connection_timeout,
                connection_acquisition_timeout=max(connection_timeout, max_retry_time),
                # Server notifications (e.g. "property key does not exist" on an empty database)
                # would be logged as warnings for every statement; the statements are fixed.
                notifications_min_severity="OFF",
            )
        except (DriverError, Neo4jError, ValueError) as e:  # malformed URI
            raise StoreError(f"connect: cannot use Neo4j at uri={uri!r}: {self._scrub(e)}") from e
        self._driver = driver
        try:
            self._call("connect", driver.verify_connectivity)
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"Neo4jGraphStore(uri={self.uri!r}, user={self.user!r}, database={self.database!r})"

    # -- connection, transactions, errors ---------------------------------------------------

    def _scrub(self, e: BaseException) -> str:
        text = f"{type(e).__name__}: {e}"
        return text.replace(self._password, "***") if self._password else text

    def _where(self) -> str:
        return f"Neo4j at uri={self.uri!r} (user={self.user!r}, database={self.database!r})"

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn``, turning driver errors into ringwatch errors that name the URI only."""
        try:
            return fn()
        except RingwatchError:
            raise
        except AuthError as e:
            raise StoreError(f"{what}: {self._where()} rejected the credentials: {self._scrub(e)}") from e
        except (ServiceUnavailable, SessionExpired, TransientError) as e:
            raise StoreUnavailableError(f"{what}: {self._where()} is unavailable: {self._scrub(e)}") from e
        except (Neo4jError, DriverError) as e:
            raise StoreError(f"{what}: {self._where()} failed: {self._scrub(e)}") from e
        except OSError as e:  # sockets torn down under the driver
            raise StoreUnavailableError(f"{what}: {self._where()} is unavailable: {self._scrub(e)}") from e

    def _driver_or_raise(self) -> Driver:
        if self._driver is None:
            raise StoreError(f"{self._where()}: the store is closed")
        return self._driver

    def _write(self, what: str, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(tx, *args)`` in one managed write transaction (retried on transient errors)."""
        driver = self._driver_or_raise()

        def run() -> _T:
            with driver.session(database=self.database) as session:
                return session.execute_write(fn, *args)

        return self._call(what, run)

    def _read(self, what: str, fn: Callable[..., _T], *args: Any) -> _T:
        driver = self._driver_or_raise()

        def run() -> _T:
            with driver.session(database=self.database) as session:
                return session.execute_read(fn, *args)

        return self._call(what, run)

    def _create_schema(self) -> None:
        """Constraints and indexes (IF NOT EXISTS), then the schema version record."""
        driver = self._driver_or_raise()

        def run() -> Any:
            with driver.session(database=self.database) as session:
                for stmt in cy.SCHEMA:  # schema statements must run in auto-commit transactions
                    session.run(stmt).consume()
                session.run(cy.AWAIT_INDEXES).consume()
                return session.execute_write(
                    lambda tx: tx.run(cy.INIT_SCHEMA_VERSION, version=SCHEMA_VERSION).single(strict=True)["version"]
                )

        found = self._call("create schema", run)
        if found != SCHEMA_VERSION:
            raise StoreError(
                f"{self._where()} holds ringwatch schema version {found!r}; this ringwatch uses {SCHEMA_VERSION}"
            )

    def schema_version(self) -> int | None:
        """The schema version recorded in the database (None if there is none)."""
        row = self._read("schema_version", lambda tx: tx.run(cy.GET_SCHEMA_VERSION).single())
        return None if row is None else int(row["version"])

    def constraints(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """``(name, labels or types, properties)`` of every constraint in the database."""
        rows = self._read("constraints", lambda tx: tx.run(cy.SHOW_CONSTRAINTS).values())
        return [(name, tuple(labels or ()), tuple(props or ())) for name, labels, props in rows]

    def first_data_labels(self) -> list[str] | None:
        """The labels of some node other than ringwatch's own records; None when there is none
        (the database is empty as far as data goes: what ``ringwatch neo4j import`` requires)."""
        row = self._read("first_data_labels", lambda tx: tx.run(cy.ANY_DATA).single())
        return None if row is None else list(row["labels"])

    def delete_all(self) -> None:
        """Delete every node and relationship except the schema record (tests and development
        only: there is no undo). Constraints and indexes stay."""
        driver = self._driver_or_raise()

        def run() -> None:
            with driver.session(database=self.database) as session:
                for stmt in cy.DELETE_ALL:
                    session.run(stmt).consume()

        self._call("delete_all", run)

    # -- writes -----------------------------------------------------------------------------

    def _upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        for e in events:
            for name in ("txn_id", "ts", "user_id"):
                if getattr(e, name) is None:
                    raise ValidationError(name, e, "required; the batch was not written")
        inserted = 0
        for start in range(0, len(events), self.batch_size):
            rows = list(map(_EVENT_ROW, events[start : start + self.batch_size]))
            firsts: dict[str, tuple] = {}
            for row in rows:  # the first copy of a txn_id in the batch wins, as in SQLite
                firsts.setdefault(row[0], row)
            try:
                inserted += self._write("upsert_events", _write_event_batch, list(firsts.values()))
            except StoreError as e:
                # A concurrent writer stored one of these txn ids between our look-up and our
                # CREATE: run the batch once more; the look-up now finds it.
                if not isinstance(e.__cause__, ConstraintError):
                    raise
                inserted += self._write("upsert_events", _write_event_batch, list(firsts.values()))
        return UpsertResult(inserted=inserted, duplicates=len(events) - inserted)

    def _stored_events(self, txn_ids: list[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for start in range(0, len(txn_ids), self.batch_size):
            found.update(self._read("stored events", _stored_events, txn_ids[start : start + self.batch_size]))
        return found

    def _has_events(self) -> bool:
        return self._read("has events", _has_events)

    def _upsert_labels(self, labels: Sequence[Label]) -> int:
        rows = []
        for lb in labels:
            try:
                entity, verdict, ts = LabelEntity(lb.entity).value, Verdict(lb.label).value, float(lb.ts)
            except (ValueError, TypeError) as e:
                raise ValidationError("label", lb, str(e)) from e
            vid = json.dumps([entity, lb.entity_id, ts, verdict, lb.source])
            rows.append([vid, entity, lb.entity_id, verdict, ts, lb.source])

        def write(tx: ManagedTransaction) -> int:
            return tx.run(cy.MERGE_VERDICTS, rows=rows).consume().counters.nodes_created

        return self._write("upsert_labels", write)

    def _write_scores(self, writeback: ScoreWriteback) -> None:
        wb = writeback
        account_rows = [[s.key, float(s.score), Tier(s.tier).value] for s in wb.accounts]
        txn_rows = [[s.key, float(s.score), Tier(s.tier).value] for s in wb.transactions]
        ring_ids = [r.ring_id for r in wb.rings]
        if len(set(ring_ids)) != len(ring_ids):
            dup = next(i for i in ring_ids if ring_ids.count(i) > 1)
            raise ValidationError("ring_id", dup, "appears in more than one ring")
        ring_rows = [
            [
                r.ring_id,
                float(r.score),
                Tier(r.tier).value,
                r.size,
                list(r.shared_devices),
                list(r.shared_ips),
                list(r.shared_merchants),
            ]
            for r in wb.rings
        ]
        member_rows = [[r.ring_id, m] for r in wb.rings for m in r.members]
        # A user's ring_id: its highest-scoring ring if it is (unusually) in more than one.
        user_ring: dict[str, str] = {}
        for r in sorted(wb.rings, key=lambda r: (-r.score, r.ring_id)):
            for m in r.members:
                user_ring.setdefault(m, r.ring_id)
        ring_user_rows = [[u, g] for u, g in user_ring.items()]
        meta = {"model_version": wb.model_version, "scored_at": float(wb.scored_at)}

        def count(tx: ManagedTransaction, stmt: LiteralString, rows: list) -> int:
            return int(tx.run(stmt, rows=rows, **meta).single(strict=True)["n"])

        def write(tx: ManagedTransaction) -> None:
            for stmt in (*cy.CLEAR_NODE_SCORES.values(), *cy.CLEAR_EVENT_SCORES, cy.DELETE_RINGS):
                tx.run(stmt).consume()
            # Each row matches at most one node or edge (by its unique key), so a count below
            # the row count means some key is not in the store: refuse the whole write (raising
            # here rolls the transaction back).
            if account_rows and count(tx, cy.SET_USER_SCORES, account_rows) != len(account_rows):
                _raise_missing(tx, cy.EXISTING_NODES[NodeType.USER], "accounts", [s.key for s in wb.accounts])
            if txn_rows and sum(count(tx, stmt, txn_rows) for stmt in cy.SET_EVENT_SCORES) != len(txn_rows):
                _raise_missing(tx, cy.EXISTING_EVENTS, "transactions", [s.key for s in wb.transactions])
            if ring_user_rows and count(tx, cy.SET_USER_RINGS, ring_user_rows) != len(ring_user_rows):
                _raise_missing(tx, cy.EXISTING_NODES[NodeType.USER], "rings.members", list(user_ring))
            if ring_rows:
                tx.run(cy.CREATE_RINGS, rows=ring_rows, **meta).consume()
                tx.run(cy.MERGE_MEMBERS, rows=member_rows).consume()
            tx.run(cy.SET_SCORING, **meta).consume()

        self._write("write_scores", write)

    # -- snapshot ---------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        taken_at = time.time()
        raw = self._read("snapshot", self._read_snapshot)
        keys, user_links, device_links, txn_rows, verdicts = raw
        nodes = {t: object_array(sorted(k)) for t, k in keys.items()}
        positions = {t: key_index(k) for t, k in nodes.items()}
        txn_rows.sort(key=_first)  # code-point order of txn_id, as transaction_table expects
        txns, txn_rows_of = transaction_table(txn_rows, positions)
        user_pos, device_pos, ip_pos = (positions[t] for t in (NodeType.USER, NodeType.DEVICE, NodeType.IP))
        winners = _winning_verdicts(verdicts)
        return Snapshot(
            nodes=nodes,
            transactions=txns,
            user_device=_links(user_links[0], user_pos, device_pos),
            user_ip=_links(user_links[1], user_pos, ip_pos),
            device_ip=_links(device_links, device_pos, ip_pos),
            user_labels=label_table(winners[LabelEntity.USER.value], lambda ids: codes(user_pos, ids)),
            txn_labels=label_table(winners[LabelEntity.TRANSACTION.value], txn_rows_of),
            taken_at=taken_at,
        )

    def _pages(self, tx: ManagedTransaction, stmt: LiteralString) -> Iterator[list]:
        """Every row of a paged statement (key in column 0), about ``page_size`` rows a query.

        ``$from`` is inclusive, so every page after the first asks for one row more and drops
        its first row, the previous page's last."""
        start = ""
        first = True
        while True:
            limit = self.page_size if first else self.page_size + 1
            rows = tx.run(stmt, {"from": start, "page": limit}).values()
            got = len(rows)
            if not first and rows and rows[0][0] == start:
                rows = rows[1:]
            yield from rows
            if got < limit or not rows:
                return
            start, first = rows[-1][0], False

    def _read_snapshot(self, tx: ManagedTransaction) -> tuple:
        keys: dict[NodeType, list[str]] = {t: [] for t in cy.NODE_LABELS}
        used_device: list[tuple[str, str, float, float, int]] = []
        used_ip: list[tuple[str, str, float, float, int]] = []
        seen_at: list[tuple[str, str, float, float, int]] = []
        for user, devices, ips in self._pages(tx, cy.PAGE_USERS):
            keys[NodeType.USER].append(user)
            used_device.extend((user, *d) for d in devices)
            used_ip.extend((user, *i) for i in ips)
        for device, ips in self._pages(tx, cy.PAGE_DEVICES):
            keys[NodeType.DEVICE].append(device)
            seen_at.extend((device, *i) for i in ips)
        for t in (NodeType.IP, NodeType.MERCHANT):
            keys[t] = [row[0] for row in self._pages(tx, cy.PAGE_KEYS[t])]
        txn_rows = [tuple(r) for stmt in (cy.PAGE_TRANSACTED, cy.PAGE_ACTED) for r in self._pages(tx, stmt)]
        verdicts = [tuple(r[1:]) for r in self._pages(tx, cy.PAGE_VERDICTS)]
        return keys, (used_device, used_ip), seen_at, txn_rows, verdicts

    # -- scores and rings -------------------------------------------------------------------

    def _rings(self) -> list[Ring]:
        return self._read("rings", _read_rings)

    def _last_scores(self) -> ScoreWriteback | None:
        def read(tx: ManagedTransaction) -> ScoreWriteback | None:
            head = tx.run(cy.GET_SCORING).single()
            if head is None:
                return None
            accounts = sorted(tx.run(cy.SCORED_USERS).values(), key=_first)
            txns = sorted(tx.run(cy.SCORED_EVENTS).values(), key=_first)
            return ScoreWriteback(
                model_version=head["model_version"],
                scored_at=head["scored_at"],
                accounts=tuple(EntityScore(k, s, Tier(t)) for k, s, t in accounts),
                transactions=tuple(EntityScore(k, s, Tier(t)) for k, s, t in txns),
                rings=tuple(_read_rings(tx)),
            )

        return self._read("last_scores", read)

    # -- neighbourhood ----------------------------------------------------------------------

    def _neighbourhood(self, node_type: NodeType, key: str, hops: int, limit: int) -> Subgraph:
        """``graph.traversal.walk`` with one query per kind of adjacency per frontier."""
        center: _Node = (node_type, key)

        def read(tx: ManagedTransaction) -> Subgraph:
            if tx.run(cy.NODE_EXISTS[node_type], key=key).single() is None:
                raise NotFoundError(node_type.value, key)
            depth_of, edges, truncated = walk(center, hops, limit, lambda frontier, cap: _adjacent(tx, frontier, cap))
            nodes = _subgraph_nodes(tx, depth_of)
            return Subgraph(center=center, hops=hops, nodes=nodes, edges=tuple(edges), truncated=truncated)

        return self._read("neighbourhood", read)

    # -- stats ------------------------------------------------------------------------------

    def _stats(self) -> StoreStats:
        def read(tx: ManagedTransaction) -> StoreStats:
            nodes = {t.value: int(tx.run(stmt).single(strict=True)["n"]) for t, stmt in cy.COUNT_NODES.items()}
            edges = {t.value: int(tx.run(stmt).single(strict=True)["n"]) for t, stmt in cy.COUNT_EDGES.items()}
            verdicts = [tuple(r[1:]) for r in self._pages(tx, cy.PAGE_VERDICTS)]
            labels = {f"{e.value}:{v.value}": 0 for e in LabelEntity for v in Verdict}
            for entity, rows in _winning_verdicts(verdicts).items():
                for _entity_id, label, _ts, _source in rows:
                    labels[f"{entity}:{label}"] += 1
            return StoreStats(nodes=nodes, edges=edges, labels=labels, rings=nodes[NodeType.RING.value])

        return self._read("stats", read)

    def _close(self) -> None:
        with self._lock:
            if self._driver is not None:
                self._driver.close()
                self._driver = None


# ============================================================================================
# Transaction functions (module level: run by execute_write/execute_read, maybe more than once)
# ============================================================================================


def _stored_events(tx: ManagedTransaction, ids: list[str]) -> dict[str, Event]:
    found = {}
    for r in tx.run(cy.STORED_EVENTS, ids=ids):
        found[r["txn_id"]] = Event(
            r["txn_id"], r["ts"], r["user_id"], r["device_id"], r["ip"], r["merchant_id"],
            r["amount"], r["currency"], EventKind(r["event"]), r["status"],
        )  # fmt: skip
    return found


def _has_events(tx: ManagedTransaction) -> bool:
    return tx.run(cy.ANY_EVENT).single() is not None


def _write_event_batch(tx: ManagedTransaction, rows: list[tuple]) -> int:
    """Write the events of ``rows`` (distinct txn ids) not stored yet; returns how many."""
    stored = {r[0] for r in tx.run(cy.EXISTING_TXN_IDS, ids=[r[0] for r in rows]).values()}
    new = [r for r in rows if r[0] not in stored] if stored else rows
    if new:
        tx.run(cy.WRITE_EVENTS, _event_params(new)).consume()
    return len(new)


def _event_params(rows: list[tuple]) -> dict[str, list]:
    """``WRITE_EVENTS``'s parameters for event ``rows`` (see neo4j_cypher): sorted distinct keys
    per node label, event rows that point into them, and the batch's per-pair link aggregates
    [source, target, first ts, last ts, count], built here so the server looks each key up once."""
    users = sorted({r[2] for r in rows})
    merchants = sorted({r[3] for r in rows if r[3] is not None})
    devices = sorted({r[4] for r in rows if r[4] is not None})
    ips = sorted({r[5] for r in rows if r[5] is not None})
    u_at = {k: i for i, k in enumerate(users)}
    m_at = {k: i for i, k in enumerate(merchants)}
    d_at = {k: i for i, k in enumerate(devices)}
    i_at = {k: i for i, k in enumerate(ips)}
    transacted: list[list] = []
    acted: list[list] = []
    links: tuple[dict[tuple[int, int], list], ...] = ({}, {}, {})  # user_device, user_ip, device_ip

    def seen(link: dict[tuple[int, int], list], pair: tuple[int, int], ts: float) -> None:
        agg = link.get(pair)
        if agg is None:
            link[pair] = [ts, ts, 1]
        else:
            if ts < agg[0]:
                agg[0] = ts
            if ts > agg[1]:
                agg[1] = ts
            agg[2] += 1

    for txn_id, ts, user, merchant, device, ip, *rest in rows:
        u = u_at[user]
        if merchant is None:
            acted.append([txn_id, ts, u, None, device, ip, *rest])
        else:
            transacted.append([txn_id, ts, u, m_at[merchant], device, ip, *rest])
        d = None if device is None else d_at[device]
        i = None if ip is None else i_at[ip]
        if d is not None:
            seen(links[0], (u, d), ts)
            if i is not None:
                seen(links[2], (d, i), ts)
        if i is not None:
            seen(links[1], (u, i), ts)
    user_device, user_ip, device_ip = ([[a, b, *agg] for (a, b), agg in sorted(link.items())] for link in links)
    return {
        "users": users,
        "merchants": merchants,
        "devices": devices,
        "ips": ips,
        "transacted": transacted,
        "acted": acted,
        "user_device": user_device,
        "user_ip": user_ip,
        "device_ip": device_ip,
    }


def _raise_missing(tx: ManagedTransaction, stmt: LiteralString, field: str, keys: list[str]) -> NoReturn:
    """Raise ValidationError for the first of ``keys`` not in the store (rolls the write back)."""
    found = {r[0] for r in tx.run(stmt, keys=keys).values()}
    for k in keys:
        if k not in found:
            raise ValidationError(field, k, "no such key in the store")
    raise StoreError(f"write_scores: {field} matched fewer rows than given")  # pragma: no cover


def _read_rings(tx: ManagedTransaction) -> list[Ring]:
    rings = [
        Ring(
            ring_id=row["ring_id"],
            members=tuple(sorted(row["members"])),
            shared_devices=tuple(row["devices"]),
            shared_ips=tuple(row["ips"]),
            shared_merchants=tuple(row["merchants"]),
            score=row["score"],
            tier=Tier(row["tier"]),
        )
        for row in tx.run(cy.RINGS)
    ]
    return sorted(rings, key=lambda r: (-r.score, r.ring_id))


def _adjacent(
    tx: ManagedTransaction, frontier: list[_Node], cap: int
) -> tuple[dict[_Node, list[tuple[SubgraphEdge, _Node]]], bool]:
    """Edges at each frontier node with the node at their other end, in the SQLite store's
    order, at most ``cap`` per kind; the flag says some node had more of some kind."""
    by_type: dict[NodeType, list[str]] = {}
    for node_type, key in frontier:
        by_type.setdefault(node_type, []).append(key)
    out: dict[_Node, list[tuple[SubgraphEdge, _Node]]] = {n: [] for n in frontier}
    more = False
    for node_type, keys in by_type.items():
        for name, edge_type, other_type, direction in _ADJACENCY[node_type]:
            per_key: dict[str, list[tuple[str, str | None, float | None]]] = {}
            for k, o, txn, score in tx.run(cy.ADJACENT[name], keys=keys, cap=cap).values():
                per_key.setdefault(k, []).append((o, txn, score))
            for k in keys:
                found = per_key.get(k, [])
                more |= len(found) >= cap
                node: _Node = (node_type, k)
                for o, txn, score in found:
                    other: _Node = (other_type, o)
                    src, dst = (node, other) if direction == "out" else (other, node)
                    out[node].append((SubgraphEdge(edge_type, src, dst, txn_id=txn, risk_score=score), other))
    # Within one node the SQLite store lists kinds in _ADJACENCY order; rebuilt above per kind,
    # so each node's list is already in that order.
    return out, more


def _subgraph_nodes(tx: ManagedTransaction, depth_of: dict[_Node, int]) -> tuple[SubgraphNode, ...]:
    """The nodes with their write-back properties, ordered by (depth, type, key)."""
    by_type: dict[NodeType, list[str]] = {}
    for node_type, key in depth_of:
        by_type.setdefault(node_type, []).append(key)
    props: dict[_Node, SubgraphNode] = {}
    for node_type, keys in by_type.items():
        stmt = cy.RING_PROPS if node_type is NodeType.RING else cy.NODE_PROPS[node_type]
        for k, score, tier, ring_id in tx.run(stmt, keys=keys).values():
            props[(node_type, k)] = SubgraphNode(node_type, k, score, Tier(tier) if tier else None, ring_id)
    ordered = sorted(depth_of, key=lambda n: (depth_of[n], *_node_sort_key(n)))
    return tuple(props.get(n, SubgraphNode(n[0], n[1])) for n in ordered)


# ============================================================================================
# Array building for snapshot()
# ============================================================================================


def _first(row: Sequence[Any]) -> Any:
    return row[0]


_node_sort_key = node_sort_key


def _winning_verdicts(verdicts: list[tuple]) -> dict[str, list[tuple]]:
    """(entity, entity_id, label, ts, source) rows -> per entity, the winning
    (entity_id, label, ts, source) per entity id: latest ts, then smallest source, then label."""
    best: dict[tuple[str, str], tuple] = {}
    for entity, entity_id, label, ts, source in verdicts:
        cur = best.get((entity, entity_id))
        if cur is None or (-ts, source, label) < (-cur[2], cur[3], cur[1]):
            best[(entity, entity_id)] = (entity_id, label, ts, source)
    out: dict[str, list[tuple]] = {e.value: [] for e in LabelEntity}
    for (entity, _id), row in best.items():
        out[entity].append(row)
    return out


def _links(rows: list[tuple[str, str, float, float, int]], src_index: pd.Index, dst_index: pd.Index) -> LinkTable:
    """Stored aggregate links (src key, dst key, first, last, count) -> LinkTable by (src, dst)."""
    n = len(rows)
    cols = np.empty((n, 5), dtype=object)
    if n:
        cols[:] = rows
    src = codes(src_index, cols[:, 0])
    dst = codes(dst_index, cols[:, 1])
    order = np.lexsort((dst, src))
    return LinkTable(
        src=src[order].astype(np.int64),
        dst=dst[order].astype(np.int64),
        first_seen=cols[order, 2].astype(np.float64),
        last_seen=cols[order, 3].astype(np.float64),
        count=cols[order, 4].astype(np.int64),
    )
