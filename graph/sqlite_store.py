"""``SQLiteGraphStore``: the embedded default ``GraphStore``, one SQLite file, standard library only.

Used when no Neo4j is configured (DESIGN §8). It holds the same graph as the Neo4j store and
passes the same conformance suite, in relational form: one table per node type with the
write-back properties, ``transactions`` (one row per event: a ``TRANSACTED`` edge per
payment/refund), ``labels`` (every verdict; the winner is chosen on read) and the last scoring
run's ``rings`` / ``ring_members`` / ``scoring``. ``USED_DEVICE`` / ``USED_IP`` / ``SEEN_AT`` are
not stored but derived from ``transactions`` when read, so an upsert only adds rows and
re-loading the same events changes nothing. One connection behind a lock serves the API's
thread pool; other processes may share the file (WAL mode), and a snapshot is one consistent
read transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import LiteralString, NoReturn

import numpy as np
import pandas as pd

from graph.errors import NotFoundError, StoreError, StoreUnavailableError, ValidationError
from graph.snapshot_arrays import codes, key_index, label_table, object_array, transaction_table
from graph.store import GraphStore
from graph.traversal import Node, node_sort_key, walk
from graph.types import (
    EVENT_KINDS,
    EdgeType,
    EntityScore,
    Event,
    EventBatch,
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

SCHEMA_VERSION = 1


# ============================================================================================
# SQL: every statement of this module, all with ``?`` parameters. Table and column names come
# only from the literals below, never from input.
# ============================================================================================

_NODE_TABLES: dict[NodeType, tuple[LiteralString, LiteralString]] = {
    NodeType.USER: ("users", "user_id"),
    NodeType.DEVICE: ("devices", "device_id"),
    NodeType.IP: ("ips", "ip"),
    NodeType.MERCHANT: ("merchants", "merchant_id"),
}


def _node_table_sql(table: LiteralString, key: LiteralString) -> list[LiteralString]:
    # WITHOUT ROWID: the key b-tree is the table, so an insert touches one b-tree, not two.
    # Partial indexes skip the NULL rows that every unscored node has, so inserts never pay
    # for them.
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        f" {key} TEXT PRIMARY KEY NOT NULL, risk_score REAL, risk_tier TEXT, ring_id TEXT,"
        " model_version TEXT, scored_at REAL) WITHOUT ROWID",
        f"CREATE INDEX IF NOT EXISTS {table}_risk_tier ON {table}(risk_tier) WHERE risk_tier IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {table}_ring_id ON {table}(ring_id) WHERE ring_id IS NOT NULL",
    ]


SQL_SCHEMA: tuple[LiteralString, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    *(stmt for table, key in _NODE_TABLES.values() for stmt in _node_table_sql(table, key)),
    "CREATE TABLE IF NOT EXISTS transactions ("
    " txn_id TEXT PRIMARY KEY NOT NULL, ts REAL NOT NULL, user_id TEXT NOT NULL,"
    " merchant_id TEXT, device_id TEXT, ip TEXT, amount REAL, currency TEXT,"
    " event TEXT NOT NULL, status TEXT, risk_score REAL, risk_tier TEXT) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS transactions_risk_tier ON transactions(risk_tier)"
    " WHERE risk_tier IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS labels ("
    " entity TEXT NOT NULL, entity_id TEXT NOT NULL, label TEXT NOT NULL, ts REAL NOT NULL,"
    " source TEXT NOT NULL, PRIMARY KEY (entity, entity_id, ts, label, source)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS rings ("
    " ring_id TEXT PRIMARY KEY NOT NULL, score REAL NOT NULL, tier TEXT NOT NULL,"
    " size INTEGER NOT NULL, shared_devices TEXT NOT NULL, shared_ips TEXT NOT NULL,"
    " shared_merchants TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS ring_members ("
    " ring_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (ring_id, user_id)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS ring_members_user ON ring_members(user_id)",
    "CREATE TABLE IF NOT EXISTS scoring ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), model_version TEXT NOT NULL, scored_at REAL NOT NULL)",
)

# Adjacency indexes, used only by neighbourhood(). Maintaining four random-key indexes costs
# far more than the plain insert of a transaction row (bench/store_bench.py), so a bulk batch
# drops them and the next neighbourhood() rebuilds them in one sorted pass (see
# SQLiteGraphStore). Partial where the column may be NULL: signups cost nothing there.
SQL_ADJACENCY_INDEXES: dict[LiteralString, LiteralString] = {
    "transactions_user": "CREATE INDEX IF NOT EXISTS transactions_user ON transactions(user_id)",
    "transactions_device": "CREATE INDEX IF NOT EXISTS transactions_device ON transactions(device_id)"
    " WHERE device_id IS NOT NULL",
    "transactions_ip": "CREATE INDEX IF NOT EXISTS transactions_ip ON transactions(ip) WHERE ip IS NOT NULL",
    "transactions_merchant": "CREATE INDEX IF NOT EXISTS transactions_merchant ON transactions(merchant_id)"
    " WHERE merchant_id IS NOT NULL",
}
SQL_DROP_ADJACENCY_INDEXES: tuple[LiteralString, ...] = tuple(
    f"DROP INDEX IF EXISTS {name}" for name in SQL_ADJACENCY_INDEXES
)
SQL_TXN_INDEX_NAMES: LiteralString = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transactions'"
SQL_ANY_TXN: LiteralString = "SELECT 1 FROM transactions LIMIT 1"

SQL_PRAGMAS: tuple[LiteralString, ...] = (
    "PRAGMA journal_mode = WAL",  # readers never block the writer; other processes may read
    "PRAGMA synchronous = NORMAL",  # in WAL mode: durable at checkpoint, no fsync per commit
    "PRAGMA busy_timeout = 10000",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -65536",  # 64 MiB page cache: node-key look-ups of a batch stay in memory
    "PRAGMA wal_autocheckpoint = 10000",  # checkpoint (and fsync) every ~40 MiB, not every 4 MiB
    "PRAGMA foreign_keys = OFF",
)

SQL_META_GET: LiteralString = "SELECT value FROM meta WHERE key = ?"
SQL_META_INIT: LiteralString = "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)"

# -- writes ---------------------------------------------------------------------------------

#: Rows per multi-row INSERT: 64 rows x 10 columns = 640 parameters, under the 999 that older
#: SQLite builds allow. One statement per 64 rows saves most of executemany's per-statement
#: step/reset and Python work, compared with one row per statement.
INSERT_ROWS = 64
_TXN_INSERT: LiteralString = (
    "INSERT INTO transactions (txn_id, ts, user_id, merchant_id, device_id, ip, amount, currency, event, status)"
    " VALUES "
)
_TXN_VALUES: LiteralString = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows are inserted in input order, so within one batch the first copy of a txn_id wins.
# ON CONFLICT (txn_id) DO NOTHING skips only duplicates; a NULL in a required column still
# fails the statement (INSERT OR IGNORE would skip that row silently).
SQL_INSERT_TXN: LiteralString = _TXN_INSERT + _TXN_VALUES + " ON CONFLICT (txn_id) DO NOTHING"
SQL_INSERT_TXN_ROWS: LiteralString = (
    _TXN_INSERT + ", ".join([_TXN_VALUES] * INSERT_ROWS) + " ON CONFLICT (txn_id) DO NOTHING"
)
_TXN_WIDTH = 10  # columns of SQL_INSERT_TXN, in its order
#: Position of each node key in a row of SQL_INSERT_TXN.
_NODE_COLUMN: dict[NodeType, int] = {NodeType.USER: 2, NodeType.MERCHANT: 3, NodeType.DEVICE: 4, NodeType.IP: 5}
SQL_INSERT_NODE: dict[NodeType, LiteralString] = {
    t: f"INSERT OR IGNORE INTO {table} ({key}) VALUES (?)" for t, (table, key) in _NODE_TABLES.items()
}
SQL_INSERT_LABEL: LiteralString = (
    "INSERT OR IGNORE INTO labels (entity, entity_id, label, ts, source) VALUES (?, ?, ?, ?, ?)"
)
SQL_CLEAR_NODE_SCORES: dict[NodeType, LiteralString] = {
    t: f"UPDATE {table} SET risk_score = NULL, risk_tier = NULL, ring_id = NULL,"
    " model_version = NULL, scored_at = NULL"
    " WHERE risk_tier IS NOT NULL OR ring_id IS NOT NULL OR model_version IS NOT NULL"
    for t, (table, _key) in _NODE_TABLES.items()
}
SQL_CLEAR_TXN_SCORES: LiteralString = (
    "UPDATE transactions SET risk_score = NULL, risk_tier = NULL WHERE risk_tier IS NOT NULL"
)
SQL_CLEAR_RING_MEMBERS: LiteralString = "DELETE FROM ring_members"
SQL_CLEAR_RINGS: LiteralString = "DELETE FROM rings"
SQL_SET_USER_SCORE: LiteralString = (
    "UPDATE users SET risk_score = ?, risk_tier = ?, model_version = ?, scored_at = ? WHERE user_id = ?"
)
SQL_SET_USER_RING: LiteralString = "UPDATE users SET ring_id = ? WHERE user_id = ?"
SQL_SET_TXN_SCORE: LiteralString = "UPDATE transactions SET risk_score = ?, risk_tier = ? WHERE txn_id = ?"
SQL_INSERT_RING: LiteralString = (
    "INSERT INTO rings (ring_id, score, tier, size, shared_devices, shared_ips, shared_merchants)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SQL_INSERT_RING_MEMBER: LiteralString = "INSERT OR IGNORE INTO ring_members (ring_id, user_id) VALUES (?, ?)"
SQL_SET_SCORING: LiteralString = (
    "INSERT OR REPLACE INTO scoring (id, model_version, scored_at) VALUES (1, ?, ?)"
)

# -- snapshot -------------------------------------------------------------------------------

SQL_NODE_KEYS: dict[NodeType, LiteralString] = {
    t: f"SELECT {key} FROM {table} ORDER BY {key}" for t, (table, key) in _NODE_TABLES.items()
}
# In txn_id order, which is the table's own (clustered) order, so SQLite does not sort; a stable
# sort by ts in numpy then gives the (ts, txn_id) order of the Snapshot.
# Keys compare as SQLite BINARY text, i.e. by UTF-8 bytes: the same order as Python's
# code-point order for str, so ORDER BY here matches sorted() in Python.
SQL_SNAPSHOT_TXNS: LiteralString = (
    "SELECT txn_id, ts, user_id, merchant_id, device_id, ip, amount, currency, event, status"
    " FROM transactions ORDER BY txn_id"
)
# The winning verdict per entity (the rule the Neo4j store shares): the latest ts wins; at equal
# ts the smallest source, then the smallest label ("fraud" before "legit").
SQL_LATEST_LABELS: LiteralString = (
    "SELECT entity_id, label, ts, source FROM ("
    " SELECT entity_id, label, ts, source, ROW_NUMBER() OVER ("
    "  PARTITION BY entity_id ORDER BY ts DESC, source ASC, label ASC) AS rn"
    " FROM labels WHERE entity = ?) WHERE rn = 1"
)

# -- scores and rings -------------------------------------------------------------------------

SQL_GET_SCORING: LiteralString = "SELECT model_version, scored_at FROM scoring WHERE id = 1"
SQL_SCORED_USERS: LiteralString = (
    "SELECT user_id, risk_score, risk_tier FROM users WHERE risk_tier IS NOT NULL ORDER BY user_id"
)
SQL_SCORED_TXNS: LiteralString = (
    "SELECT txn_id, risk_score, risk_tier FROM transactions WHERE risk_tier IS NOT NULL ORDER BY txn_id"
)
SQL_RINGS: LiteralString = (
    "SELECT ring_id, score, tier, shared_devices, shared_ips, shared_merchants"
    " FROM rings ORDER BY score DESC, ring_id ASC"
)
SQL_RING_MEMBERS: LiteralString = "SELECT ring_id, user_id FROM ring_members ORDER BY ring_id, user_id"

# -- neighbourhood ----------------------------------------------------------------------------

SQL_NODE_EXISTS: dict[NodeType, LiteralString] = {
    t: f"SELECT 1 FROM {table} WHERE {key} = ?" for t, (table, key) in _NODE_TABLES.items()
}
# Write-back properties of many nodes at once: the keys travel as one JSON array parameter.
SQL_NODE_PROPS: dict[NodeType, LiteralString] = {
    t: f"SELECT n.{key}, n.risk_score, n.risk_tier, n.ring_id FROM json_each(?) AS j"
    f" JOIN {table} AS n ON n.{key} = j.value"
    for t, (table, key) in _NODE_TABLES.items()
}
SQL_TXN_EXISTS: LiteralString = "SELECT 1 FROM transactions WHERE txn_id = ?"
#: Stored events among a JSON array of txn ids, in ``Event`` field order.
SQL_STORED_EVENTS: LiteralString = (
    "SELECT txn_id, ts, user_id, device_id, ip, merchant_id, amount, currency, event, status"
    " FROM transactions WHERE txn_id IN (SELECT value FROM json_each(?))"
)
SQL_RING_PROPS: LiteralString = (
    "SELECT r.ring_id, r.score, r.tier FROM json_each(?) AS j JOIN rings AS r ON r.ring_id = j.value"
)
SQL_USER_DEVICES: LiteralString = (
    "SELECT device_id FROM transactions WHERE user_id = ? AND device_id IS NOT NULL"
    " GROUP BY device_id ORDER BY device_id LIMIT ?"
)
SQL_USER_IPS: LiteralString = (
    "SELECT ip FROM transactions WHERE user_id = ? AND ip IS NOT NULL GROUP BY ip ORDER BY ip LIMIT ?"
)
SQL_USER_TXNS: LiteralString = (
    "SELECT txn_id, merchant_id, risk_score FROM transactions"
    " WHERE user_id = ? AND merchant_id IS NOT NULL ORDER BY merchant_id, txn_id LIMIT ?"
)
SQL_USER_RINGS: LiteralString = (
    "SELECT ring_id FROM ring_members WHERE user_id = ? ORDER BY ring_id LIMIT ?"
)
SQL_DEVICE_USERS: LiteralString = (
    "SELECT user_id FROM transactions WHERE device_id = ? GROUP BY user_id ORDER BY user_id LIMIT ?"
)
SQL_DEVICE_IPS: LiteralString = (
    "SELECT ip FROM transactions WHERE device_id = ? AND ip IS NOT NULL GROUP BY ip ORDER BY ip LIMIT ?"
)
SQL_IP_USERS: LiteralString = (
    "SELECT user_id FROM transactions WHERE ip = ? GROUP BY user_id ORDER BY user_id LIMIT ?"
)
SQL_IP_DEVICES: LiteralString = (
    "SELECT device_id FROM transactions WHERE ip = ? AND device_id IS NOT NULL"
    " GROUP BY device_id ORDER BY device_id LIMIT ?"
)
SQL_MERCHANT_TXNS: LiteralString = (
    "SELECT txn_id, user_id, risk_score FROM transactions WHERE merchant_id = ?"
    " ORDER BY user_id, txn_id LIMIT ?"
)
SQL_RING_USERS: LiteralString = (
    "SELECT user_id FROM ring_members WHERE ring_id = ? ORDER BY user_id LIMIT ?"
)

# -- stats ------------------------------------------------------------------------------------

SQL_PING: LiteralString = "SELECT 1"
SQL_COUNT_NODES: dict[NodeType, LiteralString] = {
    **{t: f"SELECT COUNT(*) FROM {table}" for t, (table, _key) in _NODE_TABLES.items()},
    NodeType.RING: "SELECT COUNT(*) FROM rings",
}
SQL_COUNT_EDGES: dict[EdgeType, LiteralString] = {
    EdgeType.TRANSACTED: "SELECT COUNT(*) FROM transactions WHERE merchant_id IS NOT NULL",
    EdgeType.USED_DEVICE: "SELECT COUNT(*) FROM (SELECT 1 FROM transactions"
    " WHERE device_id IS NOT NULL GROUP BY user_id, device_id)",
    EdgeType.USED_IP: "SELECT COUNT(*) FROM (SELECT 1 FROM transactions"
    " WHERE ip IS NOT NULL GROUP BY user_id, ip)",
    EdgeType.SEEN_AT: "SELECT COUNT(*) FROM (SELECT 1 FROM transactions"
    " WHERE device_id IS NOT NULL AND ip IS NOT NULL GROUP BY device_id, ip)",
    EdgeType.MEMBER_OF: "SELECT COUNT(*) FROM ring_members",
}
SQL_COUNT_LABELS: LiteralString = (
    "SELECT entity, label, COUNT(*) FROM ("
    " SELECT entity, label, ROW_NUMBER() OVER ("
    "  PARTITION BY entity, entity_id ORDER BY ts DESC, source ASC, label ASC) AS rn"
    " FROM labels) WHERE rn = 1 GROUP BY entity, label"
)

# ============================================================================================

#: A batch of at least this many events is a bulk load: it drops the adjacency indexes first.
BULK_ROWS = 10_000

#: Most node keys per type remembered as written (see ``SQLiteGraphStore``); past it the cache
#: starts again, which costs only SQL look-ups. ~100 bytes per key.
NODE_CACHE_KEYS = 2_000_000

_EVENT_KIND_NAMES = np.array(EVENT_KINDS, dtype=object)

# Column order of SQL_INSERT_TXN; attrgetter builds each row as a tuple in C. ``event.value``
# (plain str, not the enum) keeps the tuples free of GC-tracked objects, so they build faster.
_EVENT_ROW = attrgetter(
    "txn_id", "ts", "user_id", "merchant_id", "device_id", "ip", "amount", "currency", "event.value", "status"
)
_Node = Node


class SQLiteGraphStore(GraphStore):
    """The graph in one SQLite file (or ``":memory:"`` for tests).

    Bulk loads: a batch of at least ``bulk_rows`` events drops the four adjacency indexes on
    ``transactions`` (user, device, IP, merchant), which only ``neighbourhood()`` needs; the
    first ``neighbourhood()`` afterwards rebuilds them in one sorted pass, far cheaper than
    maintaining them row by row during the load.
    Smaller batches (online events) keep existing indexes up to date. Snapshots, scores and
    stats never need them.

    Args:
        path: database file; created with its parent folder if missing. ``":memory:"`` keeps
            the graph in memory for the life of this object.
        bulk_rows: batch size from which ``upsert_events`` counts as a bulk load.

    Raises:
        StoreError: the file cannot be opened or was written by another schema version.
    """

    backend = "sqlite"

    def __init__(self, path: Path | str, *, bulk_rows: int = BULK_ROWS) -> None:
        if bulk_rows < 1:
            raise ValidationError("bulk_rows", bulk_rows, "must be at least 1")
        self.path = str(path)
        self.bulk_rows = bulk_rows
        self._lock = threading.RLock()
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        # Node keys this connection has committed. Nodes are never deleted, so a key here is
        # in the file for good and its INSERT OR IGNORE can be skipped; filled only after COMMIT.
        self._written_nodes: dict[NodeType, set[str]] = {t: set() for t in _NODE_TABLES}
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (one transaction per batch).
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open SQLite store at path={self.path!r}: {e}") from e
        try:
            for pragma in SQL_PRAGMAS:
                conn.execute(pragma)
            self._create_schema(conn)
        except (sqlite3.Error, StoreError) as e:
            conn.close()
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot open SQLite store at path={self.path!r}: {e}") from e
        self._conn = conn

    def __repr__(self) -> str:
        return f"SQLiteGraphStore(path={self.path!r})"

    # -- connection and transactions ------------------------------------------------------

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create missing tables (idempotent); a store without transactions also gets the
        adjacency indexes, which are then maintained until a bulk batch drops them."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SQL_SCHEMA:
                conn.execute(stmt)
            conn.execute(SQL_META_INIT, ("schema_version", str(SCHEMA_VERSION)))
            (found,) = conn.execute(SQL_META_GET, ("schema_version",)).fetchone()
            if conn.execute(SQL_ANY_TXN).fetchone() is None:
                for stmt in SQL_ADJACENCY_INDEXES.values():
                    conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if found != str(SCHEMA_VERSION):
            raise StoreError(
                f"SQLite store at path={self.path!r} has schema_version={found!r}; "
                f"this ringwatch reads schema_version={SCHEMA_VERSION}"
            )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"SQLite store at path={self.path!r} is closed")
        return self._conn

    @contextmanager
    def _transaction(self, what: str, write: bool) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one SQLite transaction; commit on success, roll back on error.

        sqlite3 errors become ``StoreError`` (``StoreUnavailableError`` when the file is locked
        by another process, which is worth retrying)."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as e:
                raise StoreUnavailableError(f"{what}: SQLite store at path={self.path!r}: {e}") from e
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                    raise StoreUnavailableError(f"{what}: SQLite store at path={self.path!r}: {e}") from e
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"{what}: SQLite store at path={self.path!r}: {e}") from e
                raise

    # -- writes -----------------------------------------------------------------------------

    def _upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        rows = list(map(_EVENT_ROW, events))
        full = len(rows) - len(rows) % INSERT_ROWS
        flat = list(chain.from_iterable(rows[:full]))
        keys = lambda t: set(map(itemgetter(_NODE_COLUMN[t]), rows))  # noqa: E731
        inserted = self._write_events(len(rows), flat, rows[full:], keys, lambda: _incomplete_event(events))
        return UpsertResult(inserted=inserted, duplicates=len(rows) - inserted)

    def _upsert_batch(self, batch: EventBatch) -> UpsertResult:
        """Bind the batch's columns directly, so no ``Event`` object is built."""
        n = len(batch)
        columns = [
            batch.txn_id.tolist(),
            batch.ts.tolist(),
            batch.user_id.tolist(),
            batch.merchant_id.tolist(),
            batch.device_id.tolist(),
            batch.ip.tolist(),
            batch.amount.tolist(),  # NaN binds as NULL
            batch.currency.tolist(),
            _EVENT_KIND_NAMES[batch.event.astype(np.intp)].tolist(),
            batch.status.tolist(),
        ]
        full = n - n % INSERT_ROWS
        flat: list[object] = [None] * (full * _TXN_WIDTH)
        for j, column in enumerate(columns):  # row-major, filled one column at a time in C
            flat[j::_TXN_WIDTH] = column[:full]
        tail = zip(*(column[full:] for column in columns))
        keys = lambda t: set(columns[_NODE_COLUMN[t]])  # noqa: E731
        inserted = self._write_events(n, flat, tail, keys, lambda: _incomplete_batch(batch))
        return UpsertResult(inserted=inserted, duplicates=n - inserted)

    def _write_events(
        self,
        n: int,
        flat: list[object],
        tail: Iterable[tuple],
        keys: Callable[[NodeType], set[str | None]],
        incomplete: Callable[[], ValidationError],
    ) -> int:
        """Insert ``n`` rows (``flat``: the first ones, row-major, a multiple of ``INSERT_ROWS``
        rows; ``tail``: the rest as tuples) and the node keys (``keys(type)``, called only when
        some transaction is new) not yet known, in one transaction. Returns how many transactions were new.

        Known keys are those this store has committed (a per-connection cache; nodes are never
        deleted, so a cached key is always still there). ``ON CONFLICT DO NOTHING`` skips a stored
        ``txn_id``; the statements' row counts (SQLite's summed ``changes()``) are the new rows.

        Raises:
            ValidationError: from ``incomplete()`` when a row lacks a required field (nothing
                of the batch is written).
        """
        per_statement = INSERT_ROWS * _TXN_WIDTH
        with self._lock:
            with self._transaction("upsert_events", write=True) as conn:
                if n >= self.bulk_rows:
                    for stmt in SQL_DROP_ADJACENCY_INDEXES:
                        conn.execute(stmt)
                inserted = 0
                try:
                    if flat:
                        values = iter(flat)
                        inserted += conn.executemany(SQL_INSERT_TXN_ROWS, zip(*[values] * per_statement)).rowcount
                    inserted += conn.executemany(SQL_INSERT_TXN, tail).rowcount
                except sqlite3.IntegrityError as e:  # a NULL in a NOT NULL column
                    raise incomplete() from e
                new: dict[NodeType, set[str | None]] = {}
                if inserted:  # nodes come only from transactions: no new one, no new node
                    for t in _NODE_COLUMN:
                        wanted = keys(t)
                        wanted.discard(None)
                        wanted -= self._written_nodes[t]
                        if wanted:
                            conn.executemany(SQL_INSERT_NODE[t], zip(wanted))
                        new[t] = wanted
            for t, added in new.items():  # committed: remember them
                written = self._written_nodes[t]
                if len(written) + len(added) > NODE_CACHE_KEYS:
                    written.clear()
                written |= added  # type: ignore[arg-type]
        return inserted

    def _upsert_labels(self, labels: Sequence[Label]) -> int:
        rows = []
        for lb in labels:
            try:
                rows.append((LabelEntity(lb.entity).value, lb.entity_id, Verdict(lb.label).value, float(lb.ts), lb.source))
            except ValueError as e:
                raise ValidationError("label", lb, str(e)) from e
        with self._transaction("upsert_labels", write=True) as conn:
            return conn.executemany(SQL_INSERT_LABEL, rows).rowcount

    def _write_scores(self, writeback: ScoreWriteback) -> None:
        wb = writeback
        account_rows = [(s.score, Tier(s.tier).value, wb.model_version, wb.scored_at, s.key) for s in wb.accounts]
        txn_rows = [(s.score, Tier(s.tier).value, s.key) for s in wb.transactions]
        ring_rows = [
            (
                r.ring_id,
                float(r.score),
                Tier(r.tier).value,
                r.size,
                json.dumps(list(r.shared_devices)),
                json.dumps(list(r.shared_ips)),
                json.dumps(list(r.shared_merchants)),
            )
            for r in wb.rings
        ]
        member_rows = [(r.ring_id, m) for r in wb.rings for m in r.members]
        # A user's ring_id: its highest-scoring ring if it is (unusually) in more than one.
        user_ring: dict[str, str] = {}
        for r in sorted(wb.rings, key=lambda r: (-r.score, r.ring_id)):
            for m in r.members:
                user_ring.setdefault(m, r.ring_id)
        ring_ids = [r[0] for r in ring_rows]
        if len(set(ring_ids)) != len(ring_ids):
            dup = next(i for i in ring_ids if ring_ids.count(i) > 1)
            raise ValidationError("ring_id", dup, "appears in more than one ring")

        with self._transaction("write_scores", write=True) as conn:
            for sql in SQL_CLEAR_NODE_SCORES.values():
                conn.execute(sql)
            conn.execute(SQL_CLEAR_TXN_SCORES)
            conn.execute(SQL_CLEAR_RING_MEMBERS)
            conn.execute(SQL_CLEAR_RINGS)
            # Each UPDATE matches at most one row (by key), so a summed rowcount below the row
            # count means some key is not in the store: refuse the whole write (rolled back).
            if conn.executemany(SQL_SET_USER_SCORE, account_rows).rowcount != len(account_rows):
                self._raise_missing(conn, SQL_NODE_EXISTS[NodeType.USER], "accounts", [s.key for s in wb.accounts])
            if conn.executemany(SQL_SET_TXN_SCORE, txn_rows).rowcount != len(txn_rows):
                self._raise_missing(conn, SQL_TXN_EXISTS, "transactions", [s.key for s in wb.transactions])
            ring_user_rows = [(ring_id, user_id) for user_id, ring_id in user_ring.items()]
            if conn.executemany(SQL_SET_USER_RING, ring_user_rows).rowcount != len(ring_user_rows):
                self._raise_missing(conn, SQL_NODE_EXISTS[NodeType.USER], "rings.members", list(user_ring))
            conn.executemany(SQL_INSERT_RING, ring_rows)
            conn.executemany(SQL_INSERT_RING_MEMBER, member_rows)
            conn.execute(SQL_SET_SCORING, (wb.model_version, float(wb.scored_at)))

    @staticmethod
    def _raise_missing(conn: sqlite3.Connection, exists_sql: LiteralString, field: str, keys: list[str]) -> NoReturn:
        """Raise ValidationError for the first of ``keys`` not in the store (the write rolls back)."""
        for k in keys:
            if conn.execute(exists_sql, (k,)).fetchone() is None:
                raise ValidationError(field, k, "no such key in the store")
        raise StoreError(f"write_scores: {field} matched fewer rows than given")  # pragma: no cover

    # -- snapshot ---------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        """The graph in one read transaction. Labels of entities that are not in the graph stay
        in the store (they count in ``stats``) but are left out until their user or
        transaction arrives."""
        with self._transaction("snapshot", write=False) as conn:
            taken_at = time.time()
            keys = {t: [k for (k,) in conn.execute(SQL_NODE_KEYS[t])] for t in _NODE_TABLES}
            txn_rows = conn.execute(SQL_SNAPSHOT_TXNS).fetchall()
            user_label_rows = conn.execute(SQL_LATEST_LABELS, (LabelEntity.USER.value,)).fetchall()
            txn_label_rows = conn.execute(SQL_LATEST_LABELS, (LabelEntity.TRANSACTION.value,)).fetchall()

        nodes = {t: object_array(k) for t, k in keys.items()}
        positions = {t: key_index(k) for t, k in nodes.items()}
        txns, txn_rows_of = transaction_table(txn_rows, positions)
        return Snapshot(
            nodes=nodes,
            transactions=txns,
            user_device=_link_table(txns.user, txns.device, txns.ts),
            user_ip=_link_table(txns.user, txns.ip, txns.ts),
            device_ip=_link_table(txns.device, txns.ip, txns.ts),
            user_labels=label_table(user_label_rows, lambda ids: codes(positions[NodeType.USER], ids)),
            txn_labels=label_table(txn_label_rows, txn_rows_of),
            taken_at=taken_at,
        )

    # -- scores and rings -------------------------------------------------------------------

    def _rings(self) -> list[Ring]:
        with self._transaction("rings", write=False) as conn:
            return self._read_rings(conn)

    def _read_rings(self, conn: sqlite3.Connection) -> list[Ring]:
        members: dict[str, list[str]] = {}
        for ring_id, user_id in conn.execute(SQL_RING_MEMBERS):
            members.setdefault(ring_id, []).append(user_id)
        return [
            Ring(
                ring_id=ring_id,
                members=tuple(members.get(ring_id, ())),
                shared_devices=tuple(json.loads(devices)),
                shared_ips=tuple(json.loads(ips)),
                shared_merchants=tuple(json.loads(merchants)),
                score=score,
                tier=Tier(tier),
            )
            for ring_id, score, tier, devices, ips, merchants in conn.execute(SQL_RINGS)
        ]

    def _last_scores(self) -> ScoreWriteback | None:
        with self._transaction("last_scores", write=False) as conn:
            head = conn.execute(SQL_GET_SCORING).fetchone()
            if head is None:
                return None
            accounts = tuple(EntityScore(k, s, Tier(t)) for k, s, t in conn.execute(SQL_SCORED_USERS))
            txns = tuple(EntityScore(k, s, Tier(t)) for k, s, t in conn.execute(SQL_SCORED_TXNS))
            rings = tuple(self._read_rings(conn))
        return ScoreWriteback(
            model_version=head[0], scored_at=head[1], accounts=accounts, transactions=txns, rings=rings
        )

    # -- neighbourhood ----------------------------------------------------------------------

    def _neighbourhood(self, node_type: NodeType, key: str, hops: int, limit: int) -> Subgraph:
        center: _Node = (node_type, key)
        self._ensure_adjacency_indexes()
        with self._transaction("neighbourhood", write=False) as conn:
            if conn.execute(SQL_NODE_EXISTS[node_type], (key,)).fetchone() is None:
                raise NotFoundError(node_type.value, key)

            def adjacent(frontier: list[_Node], cap: int) -> tuple[dict[_Node, list[tuple[SubgraphEdge, _Node]]], bool]:
                around, more = {}, False
                for node in frontier:
                    around[node], cut = self._adjacent(conn, node, cap)
                    more |= cut
                return around, more

            depth_of, edges, truncated = walk(center, hops, limit, adjacent)
            nodes = self._subgraph_nodes(conn, depth_of)
        return Subgraph(center=center, hops=hops, nodes=nodes, edges=tuple(edges), truncated=truncated)

    def _stored_events(self, txn_ids: list[str]) -> dict[str, Event]:
        with self._transaction("stored events", write=False) as conn:
            rows = conn.execute(SQL_STORED_EVENTS, (json.dumps(txn_ids),)).fetchall()
        return {r[0]: Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], EventKind(r[8]), r[9]) for r in rows}

    def _has_events(self) -> bool:
        with self._transaction("has events", write=False) as conn:
            return conn.execute(SQL_ANY_TXN).fetchone() is not None

    def _ensure_adjacency_indexes(self) -> None:
        """Rebuild the adjacency indexes a bulk load dropped (one write, only when missing)."""
        with self._lock:
            have = {name for (name,) in self._connection().execute(SQL_TXN_INDEX_NAMES)}
            if have.issuperset(SQL_ADJACENCY_INDEXES):
                return
            with self._transaction("neighbourhood (index rebuild)", write=True) as conn:
                for stmt in SQL_ADJACENCY_INDEXES.values():
                    conn.execute(stmt)

    def _adjacent(
        self, conn: sqlite3.Connection, node: _Node, cap: int
    ) -> tuple[list[tuple[SubgraphEdge, _Node]], bool]:
        """Edges at ``node`` with the node at their other end, in a fixed order, at most ``cap``
        per kind; the flag says some kind had more."""
        node_type, key = node
        out: list[tuple[SubgraphEdge, _Node]] = []
        more = False

        def keys(sql: LiteralString) -> list[str]:
            nonlocal more
            rows = conn.execute(sql, (key, cap)).fetchall()
            more |= len(rows) >= cap
            return [r[0] for r in rows]

        def link(edge_type: EdgeType, src: _Node, dst: _Node, other: _Node) -> None:
            out.append((SubgraphEdge(edge_type, src, dst), other))

        if node_type is NodeType.USER:
            for d in keys(SQL_USER_DEVICES):
                link(EdgeType.USED_DEVICE, node, (NodeType.DEVICE, d), (NodeType.DEVICE, d))
            for i in keys(SQL_USER_IPS):
                link(EdgeType.USED_IP, node, (NodeType.IP, i), (NodeType.IP, i))
            rows = conn.execute(SQL_USER_TXNS, (key, cap)).fetchall()
            more |= len(rows) >= cap
            for txn_id, merchant, score in rows:
                m = (NodeType.MERCHANT, merchant)
                out.append((SubgraphEdge(EdgeType.TRANSACTED, node, m, txn_id=txn_id, risk_score=score), m))
            for r in keys(SQL_USER_RINGS):
                link(EdgeType.MEMBER_OF, node, (NodeType.RING, r), (NodeType.RING, r))
        elif node_type is NodeType.DEVICE:
            for u in keys(SQL_DEVICE_USERS):
                link(EdgeType.USED_DEVICE, (NodeType.USER, u), node, (NodeType.USER, u))
            for i in keys(SQL_DEVICE_IPS):
                link(EdgeType.SEEN_AT, node, (NodeType.IP, i), (NodeType.IP, i))
        elif node_type is NodeType.IP:
            for u in keys(SQL_IP_USERS):
                link(EdgeType.USED_IP, (NodeType.USER, u), node, (NodeType.USER, u))
            for d in keys(SQL_IP_DEVICES):
                link(EdgeType.SEEN_AT, (NodeType.DEVICE, d), node, (NodeType.DEVICE, d))
        elif node_type is NodeType.MERCHANT:
            rows = conn.execute(SQL_MERCHANT_TXNS, (key, cap)).fetchall()
            more |= len(rows) >= cap
            for txn_id, user_id, score in rows:
                u = (NodeType.USER, user_id)
                out.append((SubgraphEdge(EdgeType.TRANSACTED, u, node, txn_id=txn_id, risk_score=score), u))
        else:  # NodeType.RING
            for u in keys(SQL_RING_USERS):
                link(EdgeType.MEMBER_OF, (NodeType.USER, u), node, (NodeType.USER, u))
        return out, more

    def _subgraph_nodes(self, conn: sqlite3.Connection, depth_of: dict[_Node, int]) -> tuple[SubgraphNode, ...]:
        """The nodes with their write-back properties, ordered by (depth, type, key)."""
        by_type: dict[NodeType, list[str]] = {}
        for node_type, key in depth_of:
            by_type.setdefault(node_type, []).append(key)
        props: dict[_Node, SubgraphNode] = {}
        for node_type, keys in by_type.items():
            if node_type is NodeType.RING:
                for ring_id, score, tier in conn.execute(SQL_RING_PROPS, (json.dumps(keys),)):
                    props[(node_type, ring_id)] = SubgraphNode(node_type, ring_id, score, Tier(tier), ring_id)
                continue
            for k, score, tier, ring_id in conn.execute(SQL_NODE_PROPS[node_type], (json.dumps(keys),)):
                props[(node_type, k)] = SubgraphNode(node_type, k, score, Tier(tier) if tier else None, ring_id)
        ordered = sorted(depth_of, key=lambda n: (depth_of[n], *_node_sort_key(n)))
        return tuple(props.get(n, SubgraphNode(n[0], n[1])) for n in ordered)

    # -- stats ------------------------------------------------------------------------------

    def _ping(self) -> None:
        with self._transaction("ping", write=False) as conn:
            conn.execute(SQL_PING).fetchone()

    def _stats(self) -> StoreStats:
        with self._transaction("stats", write=False) as conn:
            nodes = {t.value: conn.execute(sql).fetchone()[0] for t, sql in SQL_COUNT_NODES.items()}
            edges = {t.value: conn.execute(sql).fetchone()[0] for t, sql in SQL_COUNT_EDGES.items()}
            labels = {f"{e.value}:{v.value}": 0 for e in LabelEntity for v in Verdict}
            for entity, label, count in conn.execute(SQL_COUNT_LABELS):
                labels[f"{entity}:{label}"] = count
        return StoreStats(nodes=nodes, edges=edges, labels=labels, rings=nodes[NodeType.RING.value])

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _incomplete_event(events: Sequence[Event]) -> ValidationError:
    """The error for the first event that lacks a required field (the batch is rolled back)."""
    for e in events:
        for name in ("txn_id", "ts", "user_id"):
            if getattr(e, name) is None:
                return ValidationError(name, e, "required; the batch was not written")
    return ValidationError("events", len(events), "a required field is missing; the batch was not written")


def _incomplete_batch(batch: EventBatch) -> ValidationError:
    """The error for the first row of ``batch`` that lacks a required field."""
    for name, missing in (
        ("txn_id", pd.isna(batch.txn_id)),
        ("ts", np.isnan(batch.ts)),
        ("user_id", pd.isna(batch.user_id)),
    ):
        rows = np.flatnonzero(missing)
        if len(rows):
            return ValidationError(name, f"row {int(rows[0])} of the batch", "required; the batch was not written")
    return ValidationError("events", len(batch), "a required field is missing; the batch was not written")


# ============================================================================================
# Array building for snapshot()
# ============================================================================================


_node_sort_key = node_sort_key


def _link_table(src: np.ndarray, dst: np.ndarray, ts: np.ndarray) -> LinkTable:
    """Aggregate per-event (src, dst) pairs into one row per distinct pair, sorted by (src, dst)."""
    keep = (src >= 0) & (dst >= 0)
    s, d, t = src[keep], dst[keep], ts[keep]
    if s.shape[0] == 0:
        empty_i, empty_f = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return LinkTable(empty_i, empty_i.copy(), empty_f, empty_f.copy(), empty_i.copy())
    width = int(d.max()) + 1
    if int(s.max()) < (2**62) // width:
        order = np.argsort(s * width + d, kind="stable")  # one int64 key: a radix sort
    else:  # pragma: no cover - more than ~2**31 nodes of both types
        order = np.lexsort((d, s))
    s, d, t = s[order], d[order], t[order]
    starts = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (d[1:] != d[:-1])])
    return LinkTable(
        src=s[starts].astype(np.int64),
        dst=d[starts].astype(np.int64),
        first_seen=np.minimum.reduceat(t, starts),
        last_seen=np.maximum.reduceat(t, starts),
        count=np.diff(np.r_[starts, s.shape[0]]).astype(np.int64),
    )
