"""open_store: the embedded store by default, Neo4j when a URI is set (live server: test_neo4j_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.errors import StoreUnavailableError
from graph.factory import open_store
from graph.sqlite_store import SQLiteGraphStore


def test_without_neo4j_the_embedded_store_opens_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "home" / "store.sqlite"
    with open_store(path) as store:
        assert isinstance(store, SQLiteGraphStore) and store.backend == "sqlite"
    assert path.exists()


def test_a_neo4j_uri_selects_neo4j_and_an_unreachable_one_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="bolt://127.0.0.1:1") as err:
        open_store(tmp_path / "store.sqlite", neo4j_uri="bolt://127.0.0.1:1", neo4j_password="s3cret-pw")
    assert "s3cret-pw" not in str(err.value)
    assert not (tmp_path / "store.sqlite").exists()
