"""SQLite-only behaviour of the embedded store: files, schema, bulk-load indexes, threads.

What every store must do is in ``test_store_conformance.py``; this file covers what is
particular to ``SQLiteGraphStore``.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from graph.errors import StoreError, ValidationError
from graph.sqlite_store import SQL_ADJACENCY_INDEXES, SQLiteGraphStore
from graph.types import Event, NodeType
from tests.graph.test_store_conformance import EVENTS, T0, expected_snapshot


def _index_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as raw:
        return {n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_the_graph_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "store.sqlite"  # the folder is created
    with SQLiteGraphStore(path) as store:
        store.upsert_events(EVENTS)
        before = store.snapshot()
    with SQLiteGraphStore(path) as again:
        assert again.snapshot().equals(before)
        assert again.upsert_events(EVENTS).inserted == 0
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    SQLiteGraphStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema_version='99'"):
        SQLiteGraphStore(path)


def test_in_memory_store(tmp_path: Path) -> None:
    with SQLiteGraphStore(":memory:") as store:
        store.upsert_events(EVENTS)
        assert store.snapshot().equals(expected_snapshot(EVENTS))
        assert store.backend == "sqlite"


def test_a_bulk_batch_drops_adjacency_indexes_and_neighbourhood_rebuilds_them(tmp_path: Path) -> None:
    bulk_path, small_path = tmp_path / "bulk.sqlite", tmp_path / "small.sqlite"
    with SQLiteGraphStore(bulk_path, bulk_rows=5) as bulk, SQLiteGraphStore(small_path, bulk_rows=5) as small:
        assert set(SQL_ADJACENCY_INDEXES) <= _index_names(bulk_path)  # a new store has them
        bulk.upsert_events(EVENTS)
        for k in range(0, len(EVENTS), 4):
            small.upsert_events(EVENTS[k : k + 4])  # small batches keep them up to date
        assert not set(SQL_ADJACENCY_INDEXES) & _index_names(bulk_path)
        assert set(SQL_ADJACENCY_INDEXES) <= _index_names(small_path)
        for hops in (1, 2, 3):
            assert bulk.neighbourhood(NodeType.USER, "u2", hops) == small.neighbourhood(NodeType.USER, "u2", hops)
        assert set(SQL_ADJACENCY_INDEXES) <= _index_names(bulk_path)
        assert bulk.snapshot().equals(small.snapshot())


def test_a_batch_with_a_missing_required_field_writes_nothing(tmp_path: Path) -> None:
    with SQLiteGraphStore(tmp_path / "store.sqlite") as store:
        broken = Event("t-bad", T0, None)  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as err:
            store.upsert_events([*EVENTS, broken])
        assert err.value.field == "user_id"
        assert len(store.snapshot().transactions) == 0 and store.stats().nodes["User"] == 0


def test_close_is_idempotent_and_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SQLiteGraphStore(tmp_path / "store.sqlite")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.snapshot()


def test_two_handles_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with SQLiteGraphStore(path) as writer, SQLiteGraphStore(path) as reader:
        assert len(reader.snapshot().transactions) == 0
        writer.upsert_events(EVENTS)
        assert reader.snapshot().equals(expected_snapshot(EVENTS))


def test_concurrent_reads_and_writes_from_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with SQLiteGraphStore(tmp_path / "store.sqlite") as store:
        store.upsert_events(EVENTS[:10])

        def work(k: int) -> None:
            try:
                for _ in range(5):
                    if k == 0:
                        store.upsert_events(EVENTS)
                    store.snapshot()
                    store.neighbourhood(NodeType.USER, "u1", hops=2)
                    store.stats()
            except BaseException as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.snapshot().equals(expected_snapshot(EVENTS))
