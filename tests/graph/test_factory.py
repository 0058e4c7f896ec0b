"""open_store: the embedded store by default, Neo4j (not built yet) refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.errors import ConfigError
from graph.factory import open_store
from graph.sqlite_store import SQLiteGraphStore


def test_without_neo4j_the_embedded_store_opens_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "home" / "store.sqlite"
    with open_store(path) as store:
        assert isinstance(store, SQLiteGraphStore) and store.backend == "sqlite"
    assert path.exists()


def test_a_neo4j_uri_is_refused_until_the_backend_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Neo4j backend not available yet") as err:
        open_store(tmp_path / "store.sqlite", neo4j_uri="bolt://localhost:7687", neo4j_password="s3cret")
    assert "s3cret" not in str(err.value)
    assert not (tmp_path / "store.sqlite").exists()
