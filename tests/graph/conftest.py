"""Fixtures for the graph tests: one ``store`` fixture, parametrised over the store backends.

Every backend listed in ``STORE_BACKENDS`` runs the whole conformance suite
(``test_store_conformance.py``) through the ``GraphStore`` interface only. To add Neo4j, add an
opener that returns an emptied store and a ``pytest.param("neo4j", marks=pytest.mark.neo4j)``;
the tests do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graph.sqlite_store import SQLiteGraphStore
from graph.store import GraphStore


def _open_sqlite(tmp_path: Path) -> GraphStore:
    return SQLiteGraphStore(tmp_path / "store.sqlite")


#: name -> opener of an empty store of that backend (one per test).
STORE_OPENERS: dict[str, Callable[[Path], GraphStore]] = {
    "sqlite": _open_sqlite,
}
STORE_BACKENDS = [pytest.param("sqlite", id="sqlite")]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each backend, closed after the test."""
    opened = STORE_OPENERS[request.param](tmp_path)
    try:
        yield opened
    finally:
        opened.close()
