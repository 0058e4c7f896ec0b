"""``open_store``: the one place that picks the ``GraphStore`` backend from settings."""

from __future__ import annotations

from pathlib import Path

from graph.errors import ConfigError
from graph.sqlite_store import SQLiteGraphStore
from graph.store import GraphStore


def open_store(
    store_path: Path,
    neo4j_uri: str | None = None,
    neo4j_user: str = "neo4j",
    neo4j_password: str | None = None,
) -> GraphStore:
    """Open the configured store: Neo4j when ``neo4j_uri`` is set, else the embedded SQLite
    file at ``store_path`` (created with its folder if missing).

    Raises:
        ConfigError: ``neo4j_uri`` is set (the Neo4j backend is not built yet).
        StoreError: the SQLite file cannot be opened.
    """
    if neo4j_uri:
        # The Neo4j backend slots in here (graph/neo4j_store.py); the password is never logged.
        raise ConfigError(
            f"Neo4j backend not available yet: neo4j_uri={neo4j_uri!r} is set; "
            "unset NEO4J_URI to use the embedded SQLite store"
        )
    return SQLiteGraphStore(store_path)
