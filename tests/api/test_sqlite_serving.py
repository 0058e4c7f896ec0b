"""The service over a real embedded store: what the API serves from memory matches the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import ApiConfig, create_app
from api.index import ScoringIndex
from graph.sqlite_store import SQLiteGraphStore
from graph.types import NodeType
from tests.api.fixtures import MODEL_VERSION, events, labels, make_snapshot, scores


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    with SQLiteGraphStore(path) as store:
        store.upsert_events(events())
        store.upsert_labels(labels())
        store.write_scores(scores())
    return path


def test_serves_scores_and_rings_from_a_sqlite_store(store_path: Path) -> None:
    app = create_app(ApiConfig(store_factory=lambda: SQLiteGraphStore(store_path)))
    with TestClient(app) as client:
        health = client.get("/healthz").json()
        assert (health["store"], health["scored"], health["model_version"]) == ("sqlite", True, MODEL_VERSION)
        assert (health["users"], health["rings"]) == (10, 2)
        risk = client.get("/v1/accounts/u03/risk").json()
        assert (risk["tier"], risk["decision"], risk["ring_id"]) == ("high", "block", "ring-0001")
        assert any("d01" in reason for reason in risk["reasons"])
        assert client.get("/v1/rings", params={"min_tier": "high"}).json()["total"] == 1
        assert client.get("/v1/accounts/nobody/risk").status_code == 404


def test_in_memory_subgraph_matches_the_store_neighbourhood(store_path: Path) -> None:
    with SQLiteGraphStore(store_path) as store:
        snapshot = store.snapshot()
        assert snapshot.equals(make_snapshot(events(), labels()))  # the fixture builder is faithful
        index = ScoringIndex.build(snapshot, store.last_scores())
        for user in snapshot.nodes[NodeType.USER].tolist():
            for hops in (1, 2, 3):
                ours = index.subgraph(user, hops)
                theirs = store.neighbourhood(NodeType.USER, user, hops)
                assert ours.nodes == theirs.nodes, (user, hops)
                assert ours.edges == theirs.edges, (user, hops)
                assert not ours.truncated and not theirs.truncated
