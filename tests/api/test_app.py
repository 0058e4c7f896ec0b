"""The HTTP service end to end through its lifespan, against a fake store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import ApiConfig, create_app
from graph.types import Snapshot
from tests.api.fixtures import MODEL_VERSION, FakeGraphStore, T0, events, make_snapshot, scores


def _assert_error(body: dict, code: str) -> dict:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def test_lifespan_takes_one_snapshot_and_closes_every_connection(snapshot: Snapshot) -> None:
    opened: list[FakeGraphStore] = []

    def factory() -> FakeGraphStore:
        opened.append(FakeGraphStore(snapshot, scores()))
        return opened[-1]

    app = create_app(ApiConfig(store_factory=factory))
    assert not opened  # nothing opened before the lifespan starts
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        client.get("/v1/accounts/u01/subgraph", params={"hops": 3})  # answered from memory
        assert sum(s.snapshots_taken for s in opened) == 1
    assert opened and all(s.closed for s in opened)


def test_healthz_reports_store_scores_and_sizes(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["store"] == "fake"
    assert body["scored"] is True and body["model_version"] == MODEL_VERSION
    assert body["model_mode"] is None  # no models_dir: no artefact to read it from (tests/api/test_mode.py)
    assert (body["users"], body["transactions"], body["rings"]) == (10, len(events()), 2)
    assert body["snapshot_taken_at"] == pytest.approx(T0 + 60 * 86400.0)
    assert body["artifact_version"] is None


def test_risk_of_ring_member_blocks_and_names_the_shared_device(client: TestClient) -> None:
    r = client.get("/v1/accounts/u03/risk")
    assert r.status_code == 200
    body = r.json()
    assert body["tier"] == "high" and body["decision"] == "block"
    assert body["score"] == pytest.approx(0.93)
    assert body["ring_id"] == "ring-0001" and body["model_version"] == MODEL_VERSION
    assert body["devices"] == ["d01"] and body["ips"] == ["10.0.0.1"]
    assert 1 <= len(body["reasons"]) <= 4
    assert any("d01" in reason for reason in body["reasons"])


def test_risk_of_low_account_allows(client: TestClient) -> None:
    body = client.get("/v1/accounts/u08/risk").json()
    assert (body["tier"], body["decision"], body["ring_id"]) == ("low", "allow", None)


def test_unknown_account_is_404_with_error_shape(client: TestClient) -> None:
    for path in ("/v1/accounts/nobody/risk", "/v1/accounts/nobody/subgraph"):
        r = client.get(path)
        assert r.status_code == 404
        assert "nobody" in _assert_error(r.json(), "not_found")["message"]


@pytest.mark.parametrize("hops", [0, 4])
def test_hops_out_of_range_is_422_naming_hops(client: TestClient, hops: int) -> None:
    r = client.get("/v1/accounts/u01/subgraph", params={"hops": hops})
    assert r.status_code == 422
    assert _assert_error(r.json(), "invalid")["field"] == "hops"


def test_non_integer_query_is_422_naming_the_field(client: TestClient) -> None:
    r = client.get("/v1/rings", params={"min_size": "many"})
    assert r.status_code == 422
    assert _assert_error(r.json(), "invalid")["field"] == "min_size"


def test_subgraph_grows_with_hops_and_holds_the_shared_device(client: TestClient) -> None:
    one = client.get("/v1/accounts/u01/subgraph", params={"hops": 1}).json()
    two = client.get("/v1/accounts/u01/subgraph", params={"hops": 2}).json()
    assert one["center"] == "User:u01" and two["hops"] == 2
    assert len(two["nodes"]) > len(one["nodes"])
    ids = {n["id"] for n in two["nodes"]}
    assert {"Device:d01", "User:u05", "Ring:ring-0001"} <= ids
    device = next(n for n in two["nodes"] if n["id"] == "Device:d01")
    assert device["type"] == "Device" and device["risk_score"] is None
    assert {"source": "User:u02", "target": "Device:d01", "type": "USED_DEVICE", "txn_id": None,
            "risk_score": None} in two["edges"]
    assert all(e["source"] in ids and e["target"] in ids for e in two["edges"])


def test_subgraph_limit_marks_truncated(client: TestClient) -> None:
    body = client.get("/v1/accounts/u01/subgraph", params={"hops": 3, "limit": 4}).json()
    assert len(body["nodes"]) == 4 and body["truncated"] is True


def test_rings_filter_and_paginate(client: TestClient) -> None:
    everything = client.get("/v1/rings").json()
    assert everything["total"] == 2
    assert [r["ring_id"] for r in everything["items"]] == ["ring-0001", "ring-0002"]
    high = client.get("/v1/rings", params={"min_tier": "high"}).json()
    assert high["total"] == 1 and high["items"][0]["tier"] == "high"
    big = client.get("/v1/rings", params={"min_size": 3}).json()
    assert [r["ring_id"] for r in big["items"]] == ["ring-0001"] and big["items"][0]["size"] == 5
    page = client.get("/v1/rings", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 2 and [r["ring_id"] for r in page["items"]] == ["ring-0002"]
    past_end = client.get("/v1/rings", params={"offset": 5}).json()
    assert past_end == {"total": 2, "items": []}
    r = client.get("/v1/rings", params={"min_tier": "extreme"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "min_tier"


def test_one_ring_and_ring_404(client: TestClient) -> None:
    ring = client.get("/v1/rings/ring-0001").json()
    assert ring["members"] == ["u01", "u02", "u03", "u04", "u05"]
    assert ring["shared_devices"] == ["d01"] and ring["shared_ips"] == ["10.0.0.1"]
    assert ring["shared_merchants"] == ["m01"] and ring["tier"] == "high"
    r = client.get("/v1/rings/ring-9999")
    assert r.status_code == 404
    _assert_error(r.json(), "not_found")


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    r = client.get("/nowhere")
    assert r.status_code == 404
    _assert_error(r.json(), "not_found")


def test_unscored_store_starts_and_answers(snapshot: Snapshot) -> None:
    store = FakeGraphStore(snapshot, None)
    with TestClient(create_app(ApiConfig(store_factory=lambda: store))) as client:
        health = client.get("/healthz").json()
        assert health["scored"] is False and health["model_version"] is None and health["rings"] == 0
        body = client.get("/v1/accounts/u02/risk").json()
        assert (body["score"], body["tier"], body["decision"], body["ring_id"]) == (None, None, None, None)
        assert "not scored yet" in body["reasons"][0] and "ringwatch score" in body["reasons"][0]
        assert client.get("/v1/rings").json() == {"total": 0, "items": []}
        assert client.get("/v1/accounts/u02/subgraph", params={"hops": 2}).status_code == 200


def test_artifact_version_comes_from_models_dir_current(store: FakeGraphStore, tmp_path: Path) -> None:
    (tmp_path / "CURRENT").write_text("sage-20240101-abc\nother lines ignored\n", encoding="utf-8")
    config = ApiConfig(store_factory=lambda: store, models_dir=tmp_path)
    with TestClient(create_app(config)) as client:
        assert client.get("/healthz").json()["artifact_version"] == "sage-20240101-abc"


def test_empty_store_starts_and_answers_404() -> None:
    store = FakeGraphStore(make_snapshot([]), None)
    with TestClient(create_app(ApiConfig(store_factory=lambda: store))) as client:
        health = client.get("/healthz").json()
        assert (health["users"], health["transactions"], health["scored"]) == (0, 0, False)
        assert client.get("/v1/accounts/u01/risk").status_code == 404


def test_checkout_reasons_count_the_other_accounts_on_the_device(client: TestClient) -> None:
    def reasons(user: str) -> list[str]:
        body = {"txn_id": f"t-{user}-d01", "ts": "2024-03-01T00:00:00Z", "user_id": user, "device_id": "d01",
                "ip": "10.0.0.1", "merchant_id": "m01", "amount": 10.0, "currency": "EUR"}  # fmt: skip
        r = client.post("/v1/score", json=body)
        assert r.status_code == 200, r.text
        return r.json()["reasons"]

    # u09 never used d01: all five ring accounts there are others, u01's verdict among them.
    assert "device d01 is shared with 5 other accounts: 1 confirmed fraud, 4 more high risk" in reasons("u09")
    # u01 is the confirmed fraudster on d01: its own verdict is not a fact about the others.
    assert "device d01 is shared with 4 other accounts: 4 high risk" in reasons("u01")
