"""``open_store``: the one place that picks the ``GraphStore`` backend from settings."""

from __future__ import annotations

from pathlib import Path

from graph.neo4j_store import Neo4jGraphStore
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
        StoreUnavailableError: the Neo4j server cannot be reached.
        StoreError: Neo4j rejects the credentials, or the SQLite file cannot be opened.
    """
    if neo4j_uri:
        # The password goes to the driver only; no message or log line carries it.
        return Neo4jGraphStore(neo4j_uri, neo4j_user, neo4j_password)
    return SQLiteGraphStore(store_path)
