"""The durable journal of checkout events: appended before the API answers, loaded into the
store in the background, replayed on start.

``POST /v1/score`` must answer in milliseconds and keep answering while the store (Neo4j) is
slow or down, yet an event the service accepted must never be lost. So ``EventJournal`` appends
the event to a local file and ``fdatasync``-s it *before* the answer goes out (``GroupCommit``
shares the syncs on a slow disk), and a background ``JournalLoader`` moves it into the store
later. Under several workers each process claims its own slot folder (``JournalSlots``). A crash
at any point neither loses an answered event nor stores one twice (see ``EventJournal``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.stages import CpuStages, Stage
from graph.errors import RingwatchError, StoreError, ValidationError
from graph.store import GraphStore, close_quietly
from graph.types import Event, EventKind
from ingestion.loader import store_events

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
OFFSET_FILE = "loaded.offset"
REJECTED_FILE = "rejected.jsonl"
#: ``GroupCommit`` appends on the caller's thread while a journal append (write and sync) takes
#: less than this on average, and hands them to its thread otherwise.
INLINE_APPEND_S = 0.002
#: After switching to its thread, ``GroupCommit`` tries an append on the caller's thread again
#: after this many seconds (the disk may be fast again).
INLINE_RETRY_S = 30.0


@dataclass(frozen=True, slots=True)
class JournalStatus:
    """Where the journal stands. ``depth``: events appended but not yet in the store."""

    depth: int
    appended: int
    loaded: int
    rejected: int
    last_error: str | None
    last_loaded_at: float | None


def _encode(event: Event) -> bytes:
    row = {
        "txn_id": event.txn_id,
        "ts": event.ts,
        "user_id": event.user_id,
        "device_id": event.device_id,
        "ip": event.ip,
        "merchant_id": event.merchant_id,
        "amount": event.amount,
        "currency": event.currency,
        "event": event.event.value,
        "status": event.status,
    }
    return (json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def _decode(line: bytes) -> Event:
    """One journal line back to an ``Event``.

    Raises:
        ValidationError: the line is not a journal record.
    """
    try:
        row = json.loads(line)
        return Event(
            txn_id=str(row["txn_id"]),
            ts=float(row["ts"]),
            user_id=str(row["user_id"]),
            device_id=row.get("device_id"),
            ip=row.get("ip"),
            merchant_id=row.get("merchant_id"),
            amount=None if row.get("amount") is None else float(row["amount"]),
            currency=row.get("currency"),
            event=EventKind(row.get("event", EventKind.PAYMENT.value)),
            status=row.get("status"),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ValidationError("journal line", line[:80], f"not a journal record: {e}") from e


def _read_events(
    path: Path, offset: int, limit: int, reject: Callable[[int, bytes, str], None] | None
) -> tuple[list[Event], int]:
    """The events of up to ``limit`` newline-terminated lines from ``offset`` and the offset after
    them. A last line without its newline (an append in progress, or torn) is left for later;
    an unreadable line is handed to ``reject`` (offset, line, reason), or skipped without one."""
    events: list[Event] = []
    pos = offset
    with open(path, "rb") as f:
        f.seek(offset)
        for _ in range(limit):
            line = f.readline()
            if not line.endswith(b"\n"):
                break
            try:
                events.append(_decode(line))
            except ValidationError as e:
                if reject is not None:
                    reject(pos, line, str(e))
            pos += len(line)
    return events, pos


class EventJournal:
    """Append-only, fsync-ed log of accepted events with a 'loaded up to here' offset.

    Thread-safe: appends and loads may come from different threads (request handlers and the
    ``JournalLoader``). One process owns a journal folder at a time. Its files:

    - ``events.jsonl``: one JSON object per line (the ``Event`` fields), append-only.
    - ``loaded.offset``: the byte offset in ``events.jsonl`` up to which every line is in the
      store, replaced atomically (write, fsync, rename) after each successful store write.
    - ``rejected.jsonl``: lines that could not be read back (a torn or corrupted line), with
      their offset and the reason, counted in ``JournalStatus.rejected``, never dropped silently.

    Crash safety: a crash after the store write but before the offset moved replays those
    events on start; the stores skip a ``txn_id`` they hold already, so nothing is doubled. A
    crash in the middle of an append leaves a line without its newline: that request was never
    answered (the answer waits for the fsync), so the torn tail is cut off on open. When
    everything is loaded and the file has grown past ``compact_bytes``, it is truncated (then
    the offset reset: an offset past the end of the file reads as 0).

    Args:
        directory: the journal folder (created if missing).
        fsync: ``fdatasync`` each append before returning (the durability promise). Only tests
            that measure nothing about crashes may turn it off.
        compact_bytes: truncate the file once everything in it is loaded and it is this big.

    Raises:
        StoreError: the folder cannot be created or the files cannot be opened.
    """

    def __init__(self, directory: Path, *, fsync: bool = True, compact_bytes: int = 64 << 20) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        self._compact_bytes = compact_bytes
        self._lock = threading.Lock()  # appends, compaction
        self._load_lock = threading.Lock()  # one load at a time
        self._appended = 0
        self._loaded = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._last_loaded_at: float | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / EVENTS_FILE
            self._cut_torn_tail()
            self._file = open(self._path, "ab")  # noqa: SIM115 - held open for appends
        except OSError as e:
            raise StoreError(f"journal {self.directory}: cannot open: {e}") from e
        self._depth = self._count_pending()

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Write ``event`` durably. Returns only when it is on disk (with ``fsync``).

        Raises:
            StoreError: the disk write failed (the caller must not acknowledge the event).
        """
        self.append_many([event])

    def append_many(self, events: list[Event]) -> None:
        """Write ``events`` durably with one ``fdatasync`` for all of them (group commit).

        Raises:
            StoreError: the disk write failed (none of them may be acknowledged).
        """
        data = b"".join(_encode(e) for e in events)
        with self._lock:
            try:
                self._file.write(data)
                self._file.flush()
                if self._fsync:
                    os.fdatasync(self._file.fileno())
            except OSError as e:
                raise StoreError(f"journal {self._path}: append failed: {e}") from e
            self._appended += len(events)
            self._depth += len(events)

    # -- loading -----------------------------------------------------------------------------

    def load_pending(self, store: GraphStore, *, batch_size: int = 5_000) -> int:
        """Move every event past the offset into ``store``, in batches (``ingestion.loader.
        store_events``, the write file loads use), moving the offset after each batch. Returns
        how many events were read and handed to the store (duplicates the store already held
        count too: they are in the store).

        Raises:
            StoreError / StoreUnavailableError: from the store, or counts that do not add up;
            the offset stays before the failed batch, so the next call retries it.
        """
        with self._load_lock:
            done = 0
            while True:
                offset = self._read_offset()
                events, end = self._read_batch(offset, batch_size)
                if end == offset:
                    break
                if events:
                    store_events(store, events)
                self._write_offset(end)
                with self._lock:
                    self._depth = max(0, self._depth - len(events))
                    self._loaded += len(events)
                    # A stored batch ends any earlier failure; cleared with the counts, so a
                    # status never shows the events loaded and the store still down.
                    self._last_error = None
                self._last_loaded_at = time.time()
                done += len(events)
            self._maybe_compact()
            return done

    def status(self) -> JournalStatus:
        """Counts since this process opened the journal; ``depth`` includes replayed events."""
        return JournalStatus(
            depth=self._depth,
            appended=self._appended,
            loaded=self._loaded,
            rejected=self._rejected,
            last_error=self._last_error,
            last_loaded_at=self._last_loaded_at,
        )

    def record_error(self, message: str | None) -> None:
        """What the last load attempt failed with (None: it succeeded). For ``/readyz``."""
        self._last_error = message

    def close(self) -> None:
        with self._lock:
            self._file.close()

    @staticmethod
    def read_file(path: Path, offset: int, limit: int = 100_000) -> tuple[list[Event], int]:
        """Complete, readable events of another process's ``events.jsonl`` from ``offset``
        (read-only; unreadable lines are that journal's loader's to reject): the events and the
        offset after them. An offset past the end (the file was compacted) reads from 0."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return [], 0
        return _read_events(path, 0 if offset > size else offset, limit, None)

    # -- internals ---------------------------------------------------------------------------

    def _cut_torn_tail(self) -> None:
        if not self._path.exists():
            return
        size = self._path.stat().st_size
        if size == 0:
            return
        with open(self._path, "rb+") as f:
            back = min(size, 1 << 16)
            f.seek(size - back)
            tail = f.read(back)
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            keep = (size - back + cut + 1) if cut >= 0 else (0 if back == size else size)
            log.warning("journal %s: cut a torn last line (%d bytes) left by a crash", self._path, size - keep)
            f.truncate(keep)

    def _read_offset(self) -> int:
        try:
            offset = int((self.directory / OFFSET_FILE).read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            raise StoreError(f"journal {self.directory / OFFSET_FILE}: unreadable offset: {e}") from e
        size = self._path.stat().st_size
        return 0 if offset > size else offset  # past the end: the file was compacted

    def _write_offset(self, offset: int) -> None:
        path = self.directory / OFFSET_FILE
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as f:
                f.write(str(offset))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            raise StoreError(f"journal {path}: cannot move the offset: {e}") from e

    def _read_batch(self, offset: int, limit: int) -> tuple[list[Event], int]:
        """Up to ``limit`` complete lines from ``offset``: the events and the offset after them.
        Unreadable lines go to the rejected file (counted) and are stepped over."""
        return _read_events(self._path, offset, limit, self._reject)

    def _reject(self, offset: int, line: bytes, reason: str) -> None:
        self._rejected += 1
        with self._lock:
            self._depth = max(0, self._depth - 1)
        record = {"offset": offset, "reason": reason, "line": line.decode("utf-8", "replace").rstrip("\n")}
        with open(self.directory / REJECTED_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        log.error("journal %s: line at byte %d rejected: %s", self._path, offset, reason)

    def _count_pending(self) -> int:
        offset = self._read_offset()
        with open(self._path, "rb") as f:
            f.seek(offset)
            return sum(1 for line in f if line.endswith(b"\n"))

    def _maybe_compact(self) -> None:
        with self._lock:
            size = self._path.stat().st_size
            if size < self._compact_bytes or self._read_offset() < size:
                return
            self._file.truncate(0)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._write_offset(0)
            log.info("journal %s: compacted (%d bytes, all loaded)", self._path, size)


class GroupCommit:
    """Durable appends for the request handlers, in one of two ways, chosen by how fast the
    disk syncs (a moving average of the appends done inline):

    * **inline** (an append under ``INLINE_APPEND_S``, the usual SSD or virtual disk): ``submit``
      writes and syncs on the caller's thread and returns a completed future. The event loop
      waits briefly for a fast disk instead of two thread hand-offs (the writer thread has to
      win the GIL from the busy event loop, then wake the loop), which cost far more at the
      tail under load (README, "The API").
    * **threaded** (a slow disk): a writer thread takes whatever is queued, writes it, syncs
      once, then resolves each request's future, so that several requests share one sync and
      the event loop never waits on the disk. Every ``INLINE_RETRY_S`` one append is tried
      inline again.

    The request handler awaits a future that is not done (``asyncio.wrap_future``). ``clock``
    (seconds, monotonic) times the appends and the retry; tests pass a fake one. ``stages``
    counts the writer thread's CPU (``Stage.JOURNAL_WRITER``).
    """

    def __init__(
        self,
        journal: EventJournal,
        *,
        max_batch: int = 1024,
        inline_below: float = INLINE_APPEND_S,
        clock: Callable[[], float] = time.monotonic,
        stages: CpuStages | None = None,
    ) -> None:
        self.journal = journal
        self._stages = stages
        self._clock = clock
        self._max = max_batch
        self._inline_below = inline_below
        self._append_s = 0.0  # moving average of inline appends
        self._threaded_since: float | None = None  # when appends moved to the thread
        self._inflight = 0  # queued for the thread, not yet resolved
        self._state = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Event, Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ringwatch-journal-writer", daemon=True)
        self._thread.start()

    @property
    def inline(self) -> bool:
        """Whether the next append (with nothing queued) is done on the caller's thread."""
        since = self._threaded_since
        return since is None or self._clock() - since >= INLINE_RETRY_S

    def submit(self, event: Event) -> Future[None]:
        """Append ``event`` (inline: done when this returns) or queue it for the thread; the
        future completes when it is on disk, or fails with StoreError."""
        done: Future[None] = Future()
        with self._state:
            if self.inline and self._inflight == 0:  # nothing queued: the journal order holds
                self._append_inline(event, done)
                return done
            self._inflight += 1
        self._queue.put((event, done))
        return done

    def _append_inline(self, event: Event, done: Future[None]) -> None:
        started = self._clock()
        try:
            self.journal.append_many([event])
        except StoreError as e:
            done.set_exception(e)
            return
        took = self._clock() - started
        # A moving average from the start: the first appends to a new file are slow (the file
        # grows), and one slow sync alone must not send 30 s of appends to the thread. A retry
        # after that time is judged alone, so one fast append brings the appends back.
        self._append_s = took if self._threaded_since is not None else 0.9 * self._append_s + 0.1 * took
        slow = self._append_s >= self._inline_below
        if slow and self._threaded_since is None:
            log.info("journal appends take %.1f ms: syncing on the writer thread", self._append_s * 1000.0)
        self._threaded_since = self._clock() if slow else None
        done.set_result(None)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._max:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            started = time.thread_time_ns()
            try:
                self.journal.append_many([event for event, _ in batch])
            except StoreError as e:
                for _, done in batch:
                    done.set_exception(e)
                continue
            finally:
                with self._state:
                    self._inflight -= len(batch)
            for _, done in batch:
                done.set_result(None)
            if self._stages is not None:
                self._stages.add(Stage.JOURNAL_WRITER, time.thread_time_ns() - started)


class JournalSlots:
    """The journal root shared by the workers: ``claim`` locks the first free ``slot-<i>``
    folder for this process (``flock``, released when the process dies); ``orphans`` are slot
    folders no live process holds, whose events a loader drains, so a restart with fewer
    workers loses nothing. Workers read each other's ``events.jsonl`` (read-only) to see every
    event in memory within a second (``api.tail``).

    Raises:
        StoreError: the root cannot be created or a lock file cannot be opened.
    """

    def __init__(self, root: Path, *, max_slots: int = 256) -> None:
        self.root = Path(root)
        self._max = max_slots
        self._held: tuple[Path, int] | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"journal root {self.root}: cannot create: {e}") from e

    def claim(self) -> Path:
        """This process's slot folder (the same one on every call)."""
        if self._held is not None:
            return self._held[0]
        for i in range(self._max):
            folder = self.root / f"slot-{i}"
            fd = self._try_lock(folder)
            if fd is not None:
                self._held = (folder, fd)
                return folder
        raise StoreError(f"journal root {self.root}: all {self._max} slots are held by live processes")

    def release(self) -> None:
        if self._held is not None:
            os.close(self._held[1])
            self._held = None

    def event_files(self) -> list[Path]:
        """Every slot's ``events.jsonl`` (live or not), in slot order."""
        return sorted(self.root.glob(f"slot-*/{EVENTS_FILE}"), key=lambda p: int(p.parent.name.split("-")[1]))

    def drain_orphans(self, store: GraphStore) -> int:
        """Load the events of every slot no live process holds into ``store``; returns how many.

        Raises:
            StoreError / StoreUnavailableError: from the store (the slot's offset stays put).
        """
        done = 0
        for path in self.event_files():
            folder = path.parent
            if self._held is not None and folder == self._held[0]:
                continue
            fd = self._try_lock(folder)
            if fd is None:
                continue  # a live worker's: its own loader drains it
            try:
                journal = EventJournal(folder)
                try:
                    n = journal.load_pending(store)
                finally:
                    journal.close()
                if n:
                    log.info("journal %s: drained %d events left by a stopped worker", folder, n)
                done += n
            finally:
                os.close(fd)
        return done

    def _try_lock(self, folder: Path) -> int | None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / "owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StoreError(f"journal slot {folder}: cannot open its lock: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd


class JournalLoader:
    """A daemon thread that loads the journal into the store every ``interval`` seconds, backing
    off (doubling up to ``max_backoff``) while the store fails. The first pass replays whatever
    an earlier process left unloaded.

    Args:
        journal: the journal to drain.
        store_factory: opens the store the thread writes to (its own connection: a SQLite
            connection must stay in the thread that made it).
        interval: seconds between passes when all is well.
        max_backoff: the longest wait after failures.
        slots: when given, each pass also drains slots left by stopped workers.
        stages: where the loader's CPU is counted (``Stage.LOAD``; None: not counted).
    """

    def __init__(
        self,
        journal: EventJournal,
        store_factory: Callable[[], GraphStore],
        *,
        interval: float = 0.5,
        max_backoff: float = 30.0,
        slots: JournalSlots | None = None,
        stages: CpuStages | None = None,
    ) -> None:
        self.journal = journal
        self._stages = stages
        self._slots = slots
        self._factory = store_factory
        self._interval = interval
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ringwatch-journal-loader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Load now rather than at the next tick (after an append)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass; a last pass runs so that a clean shutdown leaves the
        journal drained when the store is reachable."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        store: GraphStore | None = None
        delay = self._interval
        while True:
            stopping = self._stop.is_set()
            started = time.thread_time_ns()
            try:
                if store is None:
                    store = self._factory()
                self.journal.load_pending(store)
                if self._slots is not None:
                    self._slots.drain_orphans(store)
                self.journal.record_error(None)
                delay = self._interval
            except Exception as e:  # noqa: BLE001 - the loader must outlive any one failure
                delay = min(self._max_backoff, max(self._interval, delay * 2))
                self.journal.record_error(str(e))
                if isinstance(e, RingwatchError):
                    log.warning("journal load failed (retrying in %.1f s): %s", delay, e)
                else:
                    log.exception("journal load failed unexpectedly (retrying in %.1f s)", delay)
                if store is not None:
                    close_quietly(store, log, "the journal's store")
                    store = None
            if self._stages is not None:
                self._stages.add(Stage.LOAD, time.thread_time_ns() - started)
            if stopping:
                break
            self._wake.wait(delay)
            self._wake.clear()
        if store is not None:
            close_quietly(store, log, "the journal's store")
