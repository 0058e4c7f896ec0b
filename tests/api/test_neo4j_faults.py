"""The checkout service over the real Neo4j, with Neo4j stopped in the middle (issue 5, Faults):
scoring keeps answering from memory, ``/readyz`` says degraded, and the events journaled while it
was down reach Neo4j once it is back, none lost and none doubled.

The events here touch only nodes of their own (new users, devices, IPs and a new merchant), so
the demo graph that the investigation tests read is otherwise unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from neo4j import GraphDatabase

from api.app import create_app
from api.security import KeyRing, Scope, new_key, parse_entry
from ringwatch import pipeline
from tests.api.test_v1 import checkout, config_for, wait_for
from tests.conftest import skip_outside_ci
from tests.graph.neo4j_demo import neo4j_demo

pytestmark = pytest.mark.neo4j


def _count(server: Any, txn_ids: list[str]) -> dict[str, int]:
    with GraphDatabase.driver(server.uri, auth=(server.user, server.password)) as driver:
        records = driver.execute_query(
            "UNWIND $ids AS id OPTIONAL MATCH ()-[t:TRANSACTED {txn_id: id}]->() RETURN id, count(t) AS n", ids=txn_ids
        ).records
    return {r["id"]: r["n"] for r in records}


def test_neo4j_stopped_mid_test_scoring_answers_readyz_degrades_and_no_event_is_lost_or_doubled(
    neo4j_server: Any, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    if not neo4j_server.managed:
        skip_outside_ci("needs a Neo4j this test can stop, not an external one (RINGWATCH_TEST_NEO4J_URI)")
    demo = neo4j_demo(neo4j_server, tmp_path_factory)
    secret, entry = new_key("checkout", [Scope.SCORE])
    h = {"X-API-Key": secret}
    config = config_for(
        None,  # every store, model, journal and key field is given below
        store_factory=lambda: pipeline.store_for(demo.settings),
        models_dir=demo.settings.models_dir,
        journal_dir=tmp_path / "journal",
        keys=KeyRing([parse_entry(entry, "test")]),
        probe_interval=0.5,
    )
    ids = [f"t-neo-fault-{i}" for i in range(6)]
    body = lambda i: checkout(ids[i], f"neo-fault-user-{i}", f"neo-fault-device-{i % 2}", ip=f"203.0.113.{50 + i}",  # noqa: E731
                              merchant_id="neo-fault-merchant")  # fmt: skip
    with TestClient(create_app(config)) as client:
        assert client.post("/v1/score", json=body(0), headers=h).status_code == 200
        assert wait_for(lambda: client.get("/readyz").json()["journal_depth"] == 0, timeout=60)
        neo4j_server.stop()
        try:
            assert wait_for(lambda: client.get("/readyz").json()["status"] == "degraded", timeout=90)
            # Answered from memory while the store is down (how fast is bench/api_bench.py's job).
            for i in range(1, 6):
                r = client.post("/v1/score", json=body(i), headers=h)
                assert r.status_code == 200, r.text
            ready = client.get("/readyz").json()
            assert ready["store"]["reachable"] is False and ready["journal_depth"] >= 5
            # The service still knows the events it accepted while Neo4j is down.
            assert r.json()["new_entities"] == ["user", "ip"]  # device 1 came with event 1
        finally:
            neo4j_server.start()
        assert wait_for(lambda: client.get("/readyz").json()["journal_depth"] == 0, timeout=120)
        assert wait_for(lambda: client.get("/readyz").json()["status"] == "ready", timeout=30)
    assert _count(neo4j_server, ids) == {i: 1 for i in ids}
