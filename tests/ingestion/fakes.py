"""A small in-memory ``GraphStore`` for ingestion tests: events keyed by txn_id, idempotent."""

from __future__ import annotations

from collections.abc import Sequence

from graph.store import GraphStore
from graph.types import (
    Event,
    Label,
    NodeType,
    Ring,
    ScoreWriteback,
    Snapshot,
    StoreStats,
    Subgraph,
    UpsertResult,
)


class FakeGraphStore(GraphStore):
    """Keeps what ingestion writes; the read side of the interface is not needed here."""

    backend = "fake"

    def __init__(self) -> None:
        self.events: dict[str, Event] = {}
        self.labels: dict[tuple[object, ...], Label] = {}
        self.batches: list[int] = []  # size of every upsert_events call
        self.closed = False

    def _upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        self.batches.append(len(events))
        inserted = 0
        for e in events:
            if e.txn_id not in self.events:
                self.events[e.txn_id] = e
                inserted += 1
        return UpsertResult(inserted=inserted, duplicates=len(events) - inserted)

    def _upsert_labels(self, labels: Sequence[Label]) -> int:
        new = 0
        for lab in labels:
            key = (lab.entity, lab.entity_id, lab.label, lab.ts, lab.source)
            if key not in self.labels:
                self.labels[key] = lab
                new += 1
        return new

    def _write_scores(self, writeback: ScoreWriteback) -> None:
        raise NotImplementedError

    def _snapshot(self) -> Snapshot:
        raise NotImplementedError

    def _neighbourhood(self, node_type: NodeType, key: str, hops: int, limit: int) -> Subgraph:
        raise NotImplementedError

    def _stored_events(self, txn_ids: list[str]) -> dict[str, Event]:
        return {t: self.events[t] for t in txn_ids if t in self.events}

    def _has_events(self) -> bool:
        return bool(self.events)

    def _rings(self) -> list[Ring]:
        return []

    def _last_scores(self) -> ScoreWriteback | None:
        return None

    def _stats(self) -> StoreStats:
        return StoreStats()

    def _close(self) -> None:
        self.closed = True
