"""The checkout journal: nothing accepted is lost, nothing is loaded twice, across crashes and a
store that is down."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from api.journal import EVENTS_FILE, OFFSET_FILE, REJECTED_FILE, EventJournal, JournalLoader
from graph.errors import StoreUnavailableError
from graph.sqlite_store import SQLiteGraphStore
from graph.store import GraphStore
from graph.types import Event, EventKind, UpsertResult


def _events(n: int, start: int = 0) -> list[Event]:
    return [
        Event(
            txn_id=f"t{i}",
            ts=1_700_000_000.0 + i,
            user_id=f"u{i % 7}",
            device_id=f"d{i % 3}",
            ip="10.0.0.1",
            merchant_id="m1",
            amount=10.0 + i,
            currency="EUR",
        )
        for i in range(start, start + n)
    ]


def _stored_txn_ids(store: GraphStore) -> list[str]:
    return sorted(store.snapshot().transactions.txn_id.tolist())


class FlakyStore(SQLiteGraphStore):
    """A real SQLite store whose writes fail while ``down`` is set, like an unreachable Neo4j."""

    down = False

    def _upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        if FlakyStore.down:
            raise StoreUnavailableError("store at test://flaky is down")
        return super()._upsert_events(events)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteGraphStore:
    s = SQLiteGraphStore(tmp_path / "graph.db")
    yield s
    s.close()


def test_appended_events_reach_the_store_once(tmp_path: Path, store: SQLiteGraphStore) -> None:
    journal = EventJournal(tmp_path / "journal")
    for e in _events(10):
        journal.append(e)
    assert journal.status().depth == 10
    assert journal.load_pending(store) == 10
    assert journal.status().depth == 0
    assert journal.load_pending(store) == 0  # nothing new: nothing re-read
    assert _stored_txn_ids(store) == sorted(f"t{i}" for i in range(10))
    stored = store.snapshot().transactions
    assert float(stored.amount[stored.txn_id.tolist().index("t3")]) == 13.0


def test_restart_replays_what_was_not_loaded(tmp_path: Path, store: SQLiteGraphStore) -> None:
    journal = EventJournal(tmp_path / "journal")
    for e in _events(5):
        journal.append(e)
    journal.load_pending(store)
    for e in _events(4, start=5):
        journal.append(e)
    journal.close()  # the process dies before the loader ran again

    reopened = EventJournal(tmp_path / "journal")
    assert reopened.status().depth == 4
    assert reopened.load_pending(store) == 4
    assert _stored_txn_ids(store) == sorted(f"t{i}" for i in range(9))


def test_crash_between_store_write_and_offset_move_doubles_nothing(
    tmp_path: Path, store: SQLiteGraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = EventJournal(tmp_path / "journal")
    for e in _events(6):
        journal.append(e)

    def crash(self: EventJournal, offset: int) -> None:
        raise SystemExit("killed after the store write")

    monkeypatch.setattr(EventJournal, "_write_offset", crash)
    with pytest.raises(SystemExit):
        journal.load_pending(store)
    monkeypatch.undo()
    assert len(_stored_txn_ids(store)) == 6  # written, but the offset never moved

    reopened = EventJournal(tmp_path / "journal")
    assert reopened.status().depth == 6
    assert reopened.load_pending(store) == 6  # replayed: the store skips the txn ids it holds
    assert _stored_txn_ids(store) == sorted(f"t{i}" for i in range(6))
    assert store.stats().edges.get("TRANSACTED", 0) == 6


def test_store_down_keeps_the_events_and_retries(tmp_path: Path) -> None:
    flaky = FlakyStore(tmp_path / "graph.db")
    journal = EventJournal(tmp_path / "journal")
    for e in _events(8):
        journal.append(e)
    FlakyStore.down = True
    try:
        with pytest.raises(StoreUnavailableError, match="test://flaky"):
            journal.load_pending(flaky, batch_size=3)
        assert journal.status().depth == 8
        assert (tmp_path / "journal" / OFFSET_FILE).exists() is False
    finally:
        FlakyStore.down = False
    assert journal.load_pending(flaky, batch_size=3) == 8
    assert _stored_txn_ids(flaky) == sorted(f"t{i}" for i in range(8))
    flaky.close()


def test_torn_last_line_is_cut_on_open(tmp_path: Path, store: SQLiteGraphStore) -> None:
    journal = EventJournal(tmp_path / "journal")
    for e in _events(3):
        journal.append(e)
    journal.close()
    with open(tmp_path / "journal" / EVENTS_FILE, "ab") as f:
        f.write(b'{"txn_id":"t99","ts":17')  # the process died inside write(): never answered

    reopened = EventJournal(tmp_path / "journal")
    assert reopened.status().depth == 3
    reopened.append(_events(1, start=3)[0])  # the next append starts on a clean line
    assert reopened.load_pending(store) == 4
    assert _stored_txn_ids(store) == ["t0", "t1", "t2", "t3"]
    assert reopened.status().rejected == 0


def test_a_corrupted_line_is_quarantined_and_counted(tmp_path: Path, store: SQLiteGraphStore) -> None:
    journal = EventJournal(tmp_path / "journal")
    journal.append(_events(1)[0])
    journal.close()
    with open(tmp_path / "journal" / EVENTS_FILE, "ab") as f:
        f.write(b"not json at all\n")
    reopened = EventJournal(tmp_path / "journal")
    reopened.append(_events(1, start=1)[0])
    assert reopened.load_pending(store) == 2
    assert _stored_txn_ids(store) == ["t0", "t1"]
    assert reopened.status().rejected == 1
    rejected = [json.loads(x) for x in (tmp_path / "journal" / REJECTED_FILE).read_text().splitlines()]
    assert rejected[0]["line"] == "not json at all"
    assert rejected[0]["offset"] > 0
    assert "not a journal record" in rejected[0]["reason"]


def test_compaction_after_everything_is_loaded(tmp_path: Path, store: SQLiteGraphStore) -> None:
    journal = EventJournal(tmp_path / "journal", compact_bytes=100)
    for e in _events(5):
        journal.append(e)
    journal.load_pending(store)
    assert (tmp_path / "journal" / EVENTS_FILE).stat().st_size == 0
    for e in _events(2, start=5):
        journal.append(e)
    journal.close()
    reopened = EventJournal(tmp_path / "journal", compact_bytes=100)
    assert reopened.status().depth == 2
    reopened.load_pending(store)
    assert _stored_txn_ids(store) == sorted(f"t{i}" for i in range(7))


def test_signups_keep_their_kind(tmp_path: Path, store: SQLiteGraphStore) -> None:
    journal = EventJournal(tmp_path / "journal")
    journal.append(Event(txn_id="s1", ts=1.0, user_id="new", device_id="d1", event=EventKind.SIGNUP))
    journal.load_pending(store)
    t = store.snapshot().transactions
    assert t.txn_id.tolist() == ["s1"]


def _poll(check: Callable[[], bool], tries: int = 6000) -> None:
    """Sleep in 10 ms steps until ``check()`` holds, at most ``tries`` times; the caller asserts.
    Counts steps instead of reading the clock."""
    for _ in range(tries):
        if check():
            return
        time.sleep(0.01)


def test_loader_thread_backs_off_while_down_and_drains_when_back(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path / "journal")
    opened: list[FlakyStore] = []
    lock = threading.Lock()

    def factory() -> GraphStore:
        with lock:
            s = FlakyStore(tmp_path / "graph.db")
            opened.append(s)
            return s

    FlakyStore.down = True
    loader = JournalLoader(journal, factory, interval=0.02, max_backoff=0.1)
    loader.start()
    try:
        for e in _events(20):
            journal.append(e)
            loader.wake()
        _poll(lambda: journal.status().last_error is not None)
        assert "test://flaky" in (journal.status().last_error or "")
        assert journal.status().depth == 20
        FlakyStore.down = False
        _poll(lambda: journal.status().depth == 0)
        assert journal.status().depth == 0
        assert journal.status().last_error is None
    finally:
        FlakyStore.down = False
        loader.stop()
    with SQLiteGraphStore(tmp_path / "graph.db") as check:
        assert _stored_txn_ids(check) == sorted(f"t{i}" for i in range(20))


def test_a_stored_batch_clears_the_load_error_with_the_counts(tmp_path: Path) -> None:
    # The loader thread may be descheduled between a load and its own report: a status read
    # then must not show the events loaded and the store still down.
    journal = EventJournal(tmp_path / "journal")
    for e in _events(3):
        journal.append(e)
    journal.record_error("store at test://flaky is down")
    with SQLiteGraphStore(tmp_path / "graph.db") as store:
        assert journal.load_pending(store) == 3
    status = journal.status()
    assert (status.depth, status.loaded, status.last_error) == (0, 3, None)


def _journal_lines(path: Path) -> list[str]:
    return [json.loads(line)["txn_id"] for line in (path / EVENTS_FILE).read_text().splitlines()]


def test_group_commit_appends_inline_on_a_fast_disk_and_on_its_thread_on_a_slow_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline, the event is on disk when ``submit`` returns; on a slow disk the appends move to
    the writer thread (the event loop must not wait on the disk), and come back inline once
    the disk is fast again. Either way every event is written once, in order."""
    import os

    import api.journal as journal_module
    from api.journal import GroupCommit

    # The writer's clock moves only when the (fake) disk sync says so: a loaded machine
    # cannot make the fast disk look slow.
    now = [0.0]
    journal = EventJournal(tmp_path / "journal")
    writer = GroupCommit(journal, clock=lambda: now[0])
    events = _events(30)
    fast_sync = os.fdatasync

    def instant_sync(fd: int) -> None:
        fast_sync(fd)

    monkeypatch.setattr(os, "fdatasync", instant_sync)
    for event in events[:10]:
        done = writer.submit(event)
        assert done.done() and done.result() is None  # inline: already durable
        assert _journal_lines(tmp_path / "journal")[-1] == event.txn_id

    def slow_sync(fd: int) -> None:
        now[0] += 0.01
        fast_sync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    i = 10
    while writer.inline and i < 15:  # a moving average: a few slow appends move it over
        assert writer.submit(events[i]).done()
        i += 1
    assert not writer.inline, "five appends of 10 ms each did not move the journal to its thread"
    queued = [writer.submit(event) for event in events[i:20]]
    for f in queued:
        f.result(timeout=60)

    monkeypatch.setattr(os, "fdatasync", instant_sync)
    monkeypatch.setattr(journal_module, "INLINE_RETRY_S", 0.0)  # retry inline at once
    rest = [writer.submit(event) for event in events[20:]]
    assert all(f.done() for f in rest) and writer.inline
    writer.stop()
    journal.close()
    assert _journal_lines(tmp_path / "journal") == [e.txn_id for e in events]


def test_group_commit_stays_inline_when_only_a_new_files_first_appends_are_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first syncs of a new journal file take a few milliseconds (the file grows); a fast
    disk's appends stay on the caller's thread through them instead of going to the writer
    thread for ``INLINE_RETRY_S``."""
    import os

    from api.journal import GroupCommit

    now = [0.0]
    journal = EventJournal(tmp_path / "journal")
    writer = GroupCommit(journal, clock=lambda: now[0])
    events = _events(20)
    real_sync = os.fdatasync
    synced = [0]

    def first_three_slow(fd: int) -> None:
        synced[0] += 1
        if synced[0] <= 3:
            now[0] += 0.005  # 5 ms each: past INLINE_APPEND_S alone, not on average
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", first_three_slow)
    for event in events:
        assert writer.submit(event).done() and writer.inline, event.txn_id
    writer.stop()
    journal.close()
    assert _journal_lines(tmp_path / "journal") == [e.txn_id for e in events]
