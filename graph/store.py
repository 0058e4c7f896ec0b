"""The ``GraphStore`` interface: one shape for the embedded (SQLite) and Neo4j backends.

Public methods check their arguments, then call the backend's private ``_method``. Both backends
pass the same conformance suite (``tests/graph/test_store_conformance.py``).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Protocol

from graph.errors import RingwatchError, ValidationError
from graph.types import (
    Event,
    EventBatch,
    Label,
    NodeType,
    Ring,
    ScoreWriteback,
    Snapshot,
    StoreStats,
    Subgraph,
    UpsertResult,
)

MAX_HOPS = 3


def check_walk(hops: int, limit: int) -> None:
    """Raises ``ValidationError`` unless ``hops`` is 1..``MAX_HOPS`` and ``limit`` at least 1."""
    if not 1 <= hops <= MAX_HOPS:
        raise ValidationError("hops", hops, f"must be between 1 and {MAX_HOPS}")
    if limit < 1:
        raise ValidationError("limit", limit, "must be at least 1")


def close_quietly(store: GraphStore, log: logging.Logger, what: str) -> None:
    """Close ``store`` where a failure to close must not stop the caller (a background thread
    dropping a broken connection, or done with it): the failure is logged as a warning naming
    ``what``."""
    try:
        store.close()
    except RingwatchError as e:
        log.warning("closing %s: %s", what, e)


class EventSink(Protocol):
    """What a load of events writes to: every ``GraphStore``, and the files of Neo4j's offline
    importer (``graph.neo4j_import.Neo4jImportWriter``), so that both go through one loader."""

    backend: str

    def upsert_events(self, events: Sequence[Event]) -> UpsertResult: ...

    def upsert_batch(self, batch: EventBatch) -> UpsertResult: ...

    def upsert_labels(self, labels: Sequence[Label]) -> int: ...

    def stored_events(self, txn_ids: Sequence[str]) -> dict[str, Event]: ...

    def has_events(self) -> bool: ...


class GraphStore(abc.ABC):
    """Where the graph lives. Writes are idempotent: the same events twice change nothing."""

    #: Short name shown in reports and health checks ("sqlite", "neo4j").
    backend: str = "abstract"

    # -- writes ---------------------------------------------------------------------------

    def upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        """Write validated events as nodes and edges. A ``txn_id`` already stored is a no-op
        (counted in ``UpsertResult.duplicates``)."""
        if not events:
            return UpsertResult(inserted=0, duplicates=0)
        return self._upsert_events(events)

    def upsert_batch(self, batch: EventBatch) -> UpsertResult:
        """``upsert_events`` for validated events in columns (the bulk-ingestion path): same
        result, same idempotence; the first row of a ``txn_id`` repeated within the batch wins.
        Backends without a columnar write get ``Event`` objects (see ``_upsert_batch``)."""
        if not len(batch):
            return UpsertResult(inserted=0, duplicates=0)
        return self._upsert_batch(batch)

    def upsert_labels(self, labels: Sequence[Label]) -> int:
        """Store verdicts; returns how many were new. The latest verdict per entity wins."""
        if not labels:
            return 0
        return self._upsert_labels(labels)

    def write_scores(self, writeback: ScoreWriteback) -> None:
        """Write scores, tiers, ring ids and rings back. Replaces every earlier score and ring,
        so a re-score leaves no stale ring behind."""
        if not writeback.model_version:
            raise ValidationError("model_version", writeback.model_version, "must not be empty")
        self._write_scores(writeback)

    # -- reads ----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The whole graph as typed arrays (see ``Snapshot``)."""
        return self._snapshot()

    def neighbourhood(self, node_type: NodeType, key: str, hops: int = 1, limit: int = 500) -> Subgraph:
        """Nodes and edges within ``hops`` of one entity, at most ``limit`` nodes.

        Raises:
            ValidationError: ``hops`` outside 1..3 or ``limit`` < 1.
            NotFoundError: no such entity.
        """
        check_walk(hops, limit)
        if node_type is NodeType.RING:
            raise ValidationError("node_type", node_type.value, "use ring() for rings")
        return self._neighbourhood(node_type, key, hops, limit)

    def stored_events(self, txn_ids: Sequence[str]) -> dict[str, Event]:
        """The stored events among ``txn_ids``, by ``txn_id`` (ids not stored are left out), to
        tell a repeat of a stored event from a different event that reuses its ``txn_id``."""
        if not txn_ids:
            return {}
        return self._stored_events(list(dict.fromkeys(txn_ids)))

    def has_events(self) -> bool:
        """Whether any event is stored (a first load into an empty store has nothing to compare)."""
        return self._has_events()

    def rings(self) -> list[Ring]:
        """Rings from the last scoring run, highest score first."""
        return self._rings()

    def last_scores(self) -> ScoreWriteback | None:
        """What the last ``write_scores`` wrote (scores, tiers, rings), or None if never scored."""
        return self._last_scores()

    def stats(self) -> StoreStats:
        return self._stats()

    def ping(self) -> None:
        """A round trip to the store, as cheap as the backend allows (the API's readiness probe).

        Raises:
            StoreUnavailableError / StoreError: the store cannot answer.
        """
        self._ping()

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        self._close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backend hooks --------------------------------------------------------------------

    @abc.abstractmethod
    def _upsert_events(self, events: Sequence[Event]) -> UpsertResult: ...

    def _upsert_batch(self, batch: EventBatch) -> UpsertResult:
        """Default: the batch as ``Event`` objects through ``_upsert_events``. A backend that
        can write columns directly overrides this."""
        return self._upsert_events(batch.events())

    @abc.abstractmethod
    def _upsert_labels(self, labels: Sequence[Label]) -> int: ...

    @abc.abstractmethod
    def _write_scores(self, writeback: ScoreWriteback) -> None: ...

    @abc.abstractmethod
    def _snapshot(self) -> Snapshot: ...

    @abc.abstractmethod
    def _neighbourhood(self, node_type: NodeType, key: str, hops: int, limit: int) -> Subgraph: ...

    @abc.abstractmethod
    def _stored_events(self, txn_ids: list[str]) -> dict[str, Event]: ...

    @abc.abstractmethod
    def _has_events(self) -> bool: ...

    @abc.abstractmethod
    def _rings(self) -> list[Ring]: ...

    @abc.abstractmethod
    def _last_scores(self) -> ScoreWriteback | None: ...

    @abc.abstractmethod
    def _stats(self) -> StoreStats: ...

    @abc.abstractmethod
    def _close(self) -> None: ...

    def _ping(self) -> None:
        """Default: ``stats()``; backends override it with something cheaper."""
        self._stats()
