"""Freshness without reloads: the events a worker holds since its snapshot, and the other
workers' events folded into its scorer.

``RecentEvents`` keeps the events received or tailed since the snapshot (re-applied to a reloaded
scorer; the reference for a reused ``txn_id``). A ``Tailer`` reads the events the other workers
appended to their journals (``api.journal``) every ``tail_interval`` seconds and has the event
loop record them and hand them to the scorer's ``defer_events``, a chunk at a time, so every
worker sees every event within that interval: the scorer folds an event in when a call first
reads its user, device or IP (``InductiveScorer.defer_events`` says what waits longer).
``settle_heap``, run on the loop after each read, keeps the garbage collector off the objects
that folded events leave behind.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from api.journal import EventJournal, JournalSlots
from api.stages import CpuStages, Stage
from gnn.serving.inductive import InductiveScorer
from graph.types import Event

#: The most events kept in memory for re-applying to a reloaded scorer.
RECENT_EVENTS = 200_000
#: Other workers' events recorded and deferred per event-loop turn.
TAIL_CHUNK = 256


class RecentEvents:
    """Events received or tailed since the snapshot, by ``txn_id`` (the first one wins), oldest
    first, at most ``cap``: re-applied to a reloaded scorer, and the reference for a reused ``txn_id``."""

    def __init__(self, cap: int = RECENT_EVENTS) -> None:
        self._cap = cap
        self._by_id: OrderedDict[str, Event] = OrderedDict()
        self._by_user: dict[str, list[Event]] = {}

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.txn_id not in self._by_id:
                self._by_id[event.txn_id] = event
                self._by_user.setdefault(event.user_id, []).append(event)
        while len(self._by_id) > self._cap:
            _, old = self._by_id.popitem(last=False)
            mine = self._by_user[old.user_id]
            mine.remove(old)
            if not mine:
                del self._by_user[old.user_id]

    def get(self, txn_id: str) -> Event | None:
        return self._by_id.get(txn_id)

    def of_user(self, user_id: str) -> list[Event]:
        return list(self._by_user.get(user_id, ()))

    def events(self) -> list[Event]:
        return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


class Tailer:
    """Reads the other workers' journals and folds their events into this worker's view.

    ``run`` is the body of the tail thread; ``read`` and ``apply`` are also called once at start
    (``read(include_own=True)``: this worker's own slot holds a replay the loader is about to
    store). Events the snapshot holds already are skipped by ``InductiveScorer.add_events``.

    Args:
        slots: the journal root (None: no journal, nothing to read).
        journal: this worker's own journal (None: no journal).
        recent: where tailed events are recorded.
        scorer: the scorer of the view served now, if it has one.
        loop: the event loop that folds the events in.
        interval: seconds between reads.
        stages: where the CPU of reading and folding is counted (None: not counted); the tail
            thread flushes it once per interval.
    """

    def __init__(
        self,
        slots: JournalSlots | None,
        journal: EventJournal | None,
        recent: RecentEvents,
        scorer: Callable[[], InductiveScorer | None],
        loop: asyncio.AbstractEventLoop,
        interval: float,
        *,
        stages: CpuStages | None = None,
    ) -> None:
        self._stages = stages
        self._slots = slots
        self._journal = journal
        self._recent = recent
        self._scorer = scorer
        self._loop = loop
        self._interval = interval
        self._offsets: dict[Path, int] = {}
        self._pending: list[Event] = []
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            with self._lock:
                busy = bool(self._pending)  # the loop is still folding in the last read
            started = time.thread_time_ns()
            found = not busy and self.read()
            if self._stages is not None:
                self._stages.add(Stage.TAIL_READ, time.thread_time_ns() - started)
                self._stages.flush()
            if found:
                self._loop.call_soon_threadsafe(self.apply)
            self._loop.call_soon_threadsafe(settle_heap)

    def read(self, *, include_own: bool = False) -> bool:
        """Read events the other workers appended to their journals since the last read (and,
        with ``include_own``, this worker's own). Returns whether any were found."""
        if self._slots is None or self._journal is None:
            return False
        found: list[Event] = []
        for path in self._slots.event_files():
            if path.parent == self._journal.directory and not include_own:
                continue
            start = self._offsets.get(path, 0)
            events, end = EventJournal.read_file(path, start)
            self._offsets[path] = end
            found.extend(events)
        if not found:
            return False
        with self._lock:
            self._pending.extend(found)
        return True

    def apply(self) -> None:
        """Record read events and defer them to the scorer a chunk at a time, yielding the
        event loop between chunks, so that a request waits behind at most one chunk."""
        with self._lock:
            events, self._pending = self._pending[:TAIL_CHUNK], self._pending[TAIL_CHUNK:]
            more = bool(self._pending)
        if events:
            started = time.thread_time_ns()
            self._recent.add(events)
            scorer = self._scorer()
            if scorer is not None:
                scorer.defer_events(events)
            if self._stages is not None:
                self._stages.add(Stage.FOLD_OTHERS, time.thread_time_ns() - started)
                self._stages.folded += len(events)
        if more:
            self._loop.call_soon(self.apply)


def settle_heap() -> None:
    """Collect the young generations, then move what survived into the GC's permanent
    generation (``gc.freeze``, which costs no walk of the heap).

    Every folded event leaves long-lived objects (the event, its entries in the scorer's
    delta). Left to the GC, they pile up in the old generation, and each automatic full
    collection walks all of them on the event loop: pauses that grow with every event until
    the next reload (``bench/api_bench.py`` shows them in its p99 per window). Frozen, they
    are never walked again; they are still freed by reference counting when dropped (a reload
    drops the old scorer). Only reference cycles that are alive at the moment of the freeze
    (requests in flight) are never collected."""
    gc.collect(1)
    gc.freeze()
