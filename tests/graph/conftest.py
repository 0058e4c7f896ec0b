"""Fixtures for the graph tests: one ``store`` fixture, parametrised over the store backends.

Every backend listed in ``STORE_BACKENDS`` runs the whole conformance suite
(``test_store_conformance.py``) through the ``GraphStore`` interface only: SQLite in a temporary
file, and Neo4j on the session's test server (``neo4j_server`` in ``tests/conftest.py``), emptied
before each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graph.neo4j_store import Neo4jGraphStore
from graph.sqlite_store import SQLiteGraphStore
from graph.store import GraphStore


def _open_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> GraphStore:
    return SQLiteGraphStore(tmp_path / "store.sqlite")


def _open_neo4j(request: pytest.FixtureRequest, tmp_path: Path) -> GraphStore:
    server = request.getfixturevalue("neo4j_server")
    opened = Neo4jGraphStore(server.uri, server.user, server.password)
    opened.delete_all()
    return opened


#: name -> opener of an empty store of that backend (one per test).
STORE_OPENERS: dict[str, Callable[[pytest.FixtureRequest, Path], GraphStore]] = {
    "sqlite": _open_sqlite,
    "neo4j": _open_neo4j,
}
STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.neo4j),
]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each backend, closed after the test."""
    opened = STORE_OPENERS[request.param](request, tmp_path)
    try:
        yield opened
    finally:
        opened.close()
