"""CPU time per stage of checkout scoring, for ``bench/api_bench.py``'s table of µs per event.

``CpuStages`` adds ``time.thread_time_ns`` differences (user + system CPU of the calling thread,
so neither waits nor other threads count) to plain integers, one per stage, and counts the events
scored and folded. ``flush`` (the tail thread calls it once per tail interval) moves what
accumulated since into Prometheus counters, so ``/metrics`` shows the totals of every worker
merged, while a request pays only a few ``thread_time_ns`` calls and integer additions.

Each stage is written by one thread only (the event loop, the tail thread or the loader
thread), so the additions need no lock; ``flush`` only reads them.
"""

from __future__ import annotations

import threading
from enum import Enum

from prometheus_client import Counter


class Stage(str, Enum):
    """Where a worker spends CPU on checkout events (the bench prints them in this order)."""

    REQUEST = "request"  # the whole POST /v1/score inside the app (includes the stages below it,
    # and ``AWAITED``: CPU of other tasks that ran on the loop while this request waited)
    JOURNAL = "journal"  # encoding, write and fdatasync of the event on the event loop (inline)
    JOURNAL_WRITER = "journal_writer"  # the same on the writer thread (a slow disk, GroupCommit)
    AWAITED = "awaited"  # event-loop CPU of other tasks while a request waited for the writer thread
    SCORE = "score"  # InductiveScorer.score_event (or the identifier fallback)
    REASONS = "reasons"  # identifier facts, ring, reasons, the result object
    FOLD_OWN = "fold_own"  # this worker's own event into its scorer and recent events
    BOOKKEEPING = "bookkeeping"  # retry answers, decision metrics, alerts
    TAIL_READ = "tail_read"  # reading and decoding the other workers' journals (tail thread)
    FOLD_OTHERS = "fold_others"  # the other workers' events recorded and deferred (event loop)
    FOLD_LATE = "fold_late"  # deferred events folded in when a request touched them (part of SCORE)
    LOAD = "load"  # moving the journal into the store (loader thread)


#: Stages written on the event loop inside a scoring request (``REQUEST`` holds them too).
INSIDE_REQUEST = (Stage.JOURNAL, Stage.AWAITED, Stage.SCORE, Stage.REASONS, Stage.FOLD_OWN, Stage.BOOKKEEPING)


class CpuStages:
    """Per-stage CPU nanoseconds and event counts, flushed to ``cpu`` and ``events``.

    Args:
        cpu: a counter labelled ``stage`` (seconds).
        events: a counter labelled ``kind``: ``scored`` (answered here), ``folded`` (another
            worker's event received here), ``late`` (a deferred event folded in here).
    """

    def __init__(self, cpu: Counter, events: Counter) -> None:
        self._cpu = cpu
        self._events = events
        self.ns: dict[Stage, int] = dict.fromkeys(Stage, 0)
        self.scored = 0
        self.folded = 0
        self.late = 0
        self._flushed_late = 0
        self._flushed_ns: dict[Stage, int] = dict.fromkeys(Stage, 0)
        self._flushed_scored = 0
        self._flushed_folded = 0
        self._flush_lock = threading.Lock()

    def add(self, stage: Stage, ns: int) -> None:
        self.ns[stage] += ns

    def flush(self) -> None:
        """Add what accumulated since the last flush to the Prometheus counters."""
        with self._flush_lock:
            for stage in Stage:
                now = self.ns[stage]
                if now != self._flushed_ns[stage]:
                    self._cpu.labels(stage=stage.value).inc((now - self._flushed_ns[stage]) / 1e9)
                    self._flushed_ns[stage] = now
            scored, folded = self.scored, self.folded
            if scored != self._flushed_scored:
                self._events.labels(kind="scored").inc(scored - self._flushed_scored)
                self._flushed_scored = scored
            late = self.late
            if late != self._flushed_late:
                self._events.labels(kind="late").inc(late - self._flushed_late)
                self._flushed_late = late
            if folded != self._flushed_folded:
                self._events.labels(kind="folded").inc(folded - self._flushed_folded)
                self._flushed_folded = folded
