"""The /v1 service end to end on a trained, scored embedded store: checkout scoring of unseen
events (inductive), journaling and loading, freshness, keys and scopes, input limits, verdicts,
subgraphs, metrics, model swaps, restarts, and alerts to a real local webhook."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, AlertConfig
from api.app import DEFAULT_MAX_BODY_BYTES, ApiConfig, create_app
from api.journal import EventJournal
from api.models import LabelsRequest
from api.security import RateLimiter
from api.stages import INSIDE_REQUEST, Stage
from gnn.artefact.model_artefact import ModelArtefact
from graph.errors import StoreUnavailableError
from graph.sqlite_store import SQLiteGraphStore
from graph.types import Event, NodeType
from ringwatch.settings import Settings
from tests.api.served import ServedHome, served_home

NOW = "2026-11-20T12:00:00Z"
NOW_TS = datetime.fromisoformat(NOW).timestamp()  # the same instant in epoch seconds: no test reads the clock


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> ServedHome:
    return served_home(tmp_path_factory.mktemp("v1"))


def config_for(home: ServedHome | None, settings: Settings | None = None, **kw: Any) -> ApiConfig:
    """The test configuration: the served home's store, models, journal and keys (``home``
    None: the caller gives ``store_factory``, ``models_dir``, ``journal_dir`` and ``keys``)."""
    base: dict[str, Any] = {}
    if home is not None:
        s = settings or home.settings
        base.update(
            store_factory=lambda: SQLiteGraphStore(s.store_path),
            models_dir=s.models_dir,
            journal_dir=s.home / "journal",
            keys=home.ring,
        )
    base.update(
        reload_interval=0.2,
        tail_interval=0.2,
        load_interval=0.2,
        probe_interval=0.2,
    )
    base.update(kw)
    return ApiConfig(**base)


@pytest.fixture
def client(home: ServedHome) -> Iterator[TestClient]:
    with TestClient(create_app(config_for(home))) as c:
        yield c


def key(home: ServedHome, name: str) -> dict[str, str]:
    return {"X-API-Key": home.keys[name]}


def checkout(txn_id: str, user: str, device: str | None, ip: str | None = "198.51.100.7", **kw: Any) -> dict[str, Any]:
    body = {"txn_id": txn_id, "ts": NOW, "user_id": user, "device_id": device, "ip": ip, "merchant_id": "m0003",
            "amount": 25.0, "currency": "USD"}  # fmt: skip
    body.update(kw)
    return body


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return check()


def stored_txn_ids(settings: Settings) -> list[str]:
    with SQLiteGraphStore(settings.store_path) as store:
        return store.snapshot().transactions.txn_id.tolist()


# -- scoring ------------------------------------------------------------------------------------


def test_an_unseen_account_on_a_ring_device_is_flagged_and_a_clean_newcomer_allowed(
    client: TestClient, home: ServedHome
) -> None:
    h = key(home, "checkout")
    ring = client.post("/v1/score", json=checkout("t-ring-1", "newcomer-1", home.ring_device), headers=h)
    clean = client.post("/v1/score", json=checkout("t-clean-1", "newcomer-2", "never-seen-device", ip="198.51.100.99"),
                        headers=h)  # fmt: skip
    assert ring.status_code == clean.status_code == 200, (ring.text, clean.text)
    r, c = ring.json(), clean.json()
    assert r["scoring"] == c["scoring"] == "inductive"
    assert r["model_version"] == home.model_version and r["mode"] == "supervised"
    assert r["new_entities"] == ["user", "ip"] and c["new_entities"] == ["user", "device", "ip"]
    assert r["decision"] in ("review", "block") and c["decision"] == "allow"
    assert r["score"] > 5 * c["score"] and r["account_score"] > 5 * c["account_score"]
    assert any(home.ring_device in reason for reason in r["reasons"]), r["reasons"]
    assert r["ring_id"] is not None and c["ring_id"] is None


def test_a_scored_event_is_journaled_loaded_once_and_seen_by_the_next_request(
    home: ServedHome, tmp_path: Path
) -> None:
    settings = home.copy(tmp_path / "home")
    h = key(home, "all")
    with TestClient(create_app(config_for(home, settings))) as client:
        fresh = {"ip": "203.0.113.201"}
        first = client.post("/v1/score", json=checkout("t-fresh-1", "fresh-user-1", "fresh-device-1", **fresh), headers=h).json()
        journal = (settings.home / "journal" / "slot-0" / "events.jsonl").read_text()
        assert '"txn_id":"t-fresh-1"' in journal  # on disk before the answer
        # The next event on the same device sees the first: the device is no longer new.
        second = client.post("/v1/score", json=checkout("t-fresh-2", "fresh-user-2", "fresh-device-1", **fresh), headers=h).json()
        assert first["new_entities"] == ["user", "device", "ip"] and second["new_entities"] == ["user"]
        # The new account is known to the service at once (scored on its neighbourhood).
        risk = client.get("/v1/accounts/fresh-user-1/risk", headers=h)
        assert risk.status_code == 200 and risk.json()["score"] is not None
        assert wait_for(lambda: {"t-fresh-1", "t-fresh-2"} <= set(stored_txn_ids(settings)))
        # The same event again (a retry) is answered but stored once.
        client.post("/v1/score", json=checkout("t-fresh-1", "fresh-user-1", "fresh-device-1", **fresh), headers=h)
        assert wait_for(lambda: client.get("/readyz").json()["journal_depth"] == 0)
    ids = stored_txn_ids(settings)
    assert ids.count("t-fresh-1") == 1 and ids.count("t-fresh-2") == 1


def test_a_reused_txn_id_is_a_retry_with_the_same_content_and_409_with_other_content(
    home: ServedHome, tmp_path: Path
) -> None:
    settings = home.copy(tmp_path / "home")
    h = key(home, "all")
    with TestClient(create_app(config_for(home, settings))) as client:
        body = checkout("t-reuse-1", "reuse-user-1", "reuse-device-1", ip="203.0.113.211")
        first = client.post("/v1/score", json=body, headers=h)
        # Another event in between moves the graph; the retry still gets the first answer.
        client.post("/v1/score", json=checkout("t-reuse-2", "reuse-user-1", "reuse-device-1", ip="203.0.113.211"), headers=h)
        retry = client.post("/v1/score", json=body, headers=h)
        assert first.status_code == retry.status_code == 200 and retry.json() == first.json()
        other = client.post("/v1/score", json=checkout("t-reuse-1", "orphan-user", "orphan-device", amount=9999.0), headers=h)
        assert other.status_code == 409, other.text
        error = other.json()["error"]
        assert error["code"] == "conflict" and error["field"] == "txn_id"
        assert "t-reuse-1" in error["message"] and "user_id='reuse-user-1' (this request 'orphan-user')" in error["message"]
        # Nothing of the refused event exists: not for scoring, not for investigators.
        assert client.get("/v1/accounts/orphan-user/risk", headers=h).status_code == 404
        assert wait_for(lambda: {"t-reuse-1", "t-reuse-2"} <= set(stored_txn_ids(settings)))
        assert wait_for(lambda: client.get("/readyz").json()["journal_depth"] == 0)
        # An event of the snapshot, sent again with other content, is refused too.
        snapshot_txn = SQLiteGraphStore(home.settings.store_path).snapshot().transactions.txn_id[0]
        stale = client.post("/v1/score", json=checkout(str(snapshot_txn), "orphan-user", "orphan-device"), headers=h)
        assert stale.status_code == 409, stale.text
    snap = SQLiteGraphStore(settings.store_path).snapshot()
    assert "orphan-user" not in snap.nodes[NodeType.USER].tolist()
    assert "orphan-device" not in snap.nodes[NodeType.DEVICE].tolist()


def test_every_route_sees_a_new_account_at_once(home: ServedHome, tmp_path: Path) -> None:
    settings = home.copy(tmp_path / "home")
    h = key(home, "all")
    with TestClient(create_app(config_for(home, settings))) as client:
        r = client.post("/v1/score", json=checkout("t-new-1", "brand-new-user", home.ring_device, ip="203.0.113.212"), headers=h)
        assert r.status_code == 200, r.text
        assert client.get("/v1/accounts/brand-new-user/risk", headers=h).status_code == 200
        one = client.get("/v1/accounts/brand-new-user/subgraph", headers=h)
        assert one.status_code == 200, one.text
        nodes = {n["id"] for n in one.json()["nodes"]}
        assert {"User:brand-new-user", f"Device:{home.ring_device}", "IP:203.0.113.212", "Merchant:m0003"} <= nodes
        kinds = {e["type"] for e in one.json()["edges"]}
        assert {"USED_DEVICE", "USED_IP", "TRANSACTED"} <= kinds
        # Two hops reach the ring members who share the device, from the snapshot.
        two = client.get("/v1/accounts/brand-new-user/subgraph", params={"hops": 2}, headers=h).json()
        users = {n["id"] for n in two["nodes"] if n["type"] == "User"}
        assert {f"User:{m}" for m in home.ring_members} & users
        assert client.get("/v1/accounts/never-seen-user/subgraph", headers=h).status_code == 404


def test_scored_events_do_not_pile_up_in_the_collectors_old_generation(home: ServedHome, tmp_path: Path) -> None:
    """Each folded event leaves long-lived objects; in the old generation every full collection
    would walk them on the event loop (pauses growing with the events served). The service
    freezes them instead."""
    settings = home.copy(tmp_path / "home")
    h = key(home, "checkout")
    n = 400
    with TestClient(create_app(config_for(home, settings))) as client:
        frozen = gc.get_freeze_count()
        for i in range(n):
            body = checkout(f"t-heap-{i}", f"heap-user-{i}", f"heap-device-{i % 50}", ip=f"203.0.113.{i % 200}")
            assert client.post("/v1/score", json=body, headers=h).status_code == 200
        assert wait_for(lambda: gc.get_freeze_count() - frozen >= n)  # at least one object per event
        old = len(gc.get_objects(generation=2))
    assert old < n, f"{old} objects in the old generation after {n} events"


# -- keys, limits, input --------------------------------------------------------------------------


def test_keys_401_without_or_with_a_wrong_key_403_for_the_wrong_scope(client: TestClient, home: ServedHome) -> None:
    body = checkout("t-auth-1", "auth-user", "auth-device")
    missing = client.post("/v1/score", json=body)
    wrong = client.post("/v1/score", json=body, headers={"X-API-Key": "rw_not-a-key"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "unauthenticated" and missing.headers["WWW-Authenticate"] == "ApiKey"
    scope = client.post("/v1/score", json=body, headers=key(home, "analyst"))
    assert scope.status_code == 403 and "score" in scope.json()["error"]["message"]
    assert client.get("/v1/rings", headers=key(home, "checkout")).status_code == 403
    assert client.get("/v1/rings", headers=key(home, "analyst")).status_code == 200
    # What most HTTP clients send works too, with the same checks.
    assert client.get("/v1/rings", headers={"Authorization": f"Bearer {home.keys['analyst']}"}).status_code == 200
    assert client.get("/v1/rings", headers={"Authorization": f"Bearer {home.keys['checkout']}"}).status_code == 403
    assert client.get("/v1/rings", headers={"Authorization": "Bearer rw_not-a-key"}).status_code == 401
    assert "Bearer" in missing.json()["error"]["message"]
    assert client.post("/v1/labels", json={"labels": [{"entity": "user", "entity_id": "x", "label": "legit"}]},
                       headers=key(home, "analyst")).status_code == 403  # fmt: skip
    for open_route in ("/healthz", "/readyz", "/metrics", "/ping"):
        assert client.get(open_route).status_code == 200
    # The key never reaches the logs or the answers.
    assert home.keys["analyst"] not in scope.text


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(home: ServedHome) -> None:
    config = config_for(home, rate_limit=RateLimiter(rate=0.5, burst=3), journal_dir=None)
    with TestClient(create_app(config)) as client:
        codes = [client.get("/v1/rings", headers=key(home, "analyst")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = client.get("/v1/rings", headers=key(home, "analyst"))
        assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        assert client.get("/v1/rings", headers=key(home, "all")).status_code == 200  # per key


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"txn_id": ""}, "txn_id"),
        ({"txn_id": "x" * 129}, "txn_id"),
        ({"user_id": "tab\there"}, "user_id"),
        ({"amount": -1}, "amount"),
        ({"amount": 1e12}, "amount"),
        ({"ts": "1990-01-01T00:00:00Z"}, "ts"),
        ({"ts": "2999-01-01T00:00:00Z"}, "ts"),
        ({"ts": "yesterday"}, "ts"),
        ({"ip": "999.1.1.1"}, "ip"),
        ({"currency": "dollars"}, "currency"),
        ({"merchant_id": None}, "merchant_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_is_422_naming_the_field(client: TestClient, home: ServedHome, change: dict, field: str) -> None:
    body = {**checkout("t-bad", "bad-user", "bad-device"), **change}
    r = client.post("/v1/score", json=body, headers=key(home, "checkout"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and field in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"null", "application/json"),
        (b'"text"', "application/json; charset=utf-8"),
        (b'{"txn_id": "\xff"}', "application/json"),
        (b'{"txn_id": "t-ct"}', "text/plain"),
        (b'{"txn_id": "t-ct"}', None),
    ],
)
def test_a_body_that_is_no_event_is_refused_as_fastapi_refuses_a_body_parameter(
    client: TestClient, home: ServedHome, content: bytes, content_type: str | None
) -> None:
    """The checkout route reads its body itself (no FastAPI body parameter on the hot path); a body
    that is not a JSON object gets the answer that FastAPI gives a route with a body parameter
    (``POST /v1/labels``): 422, field ``body``, the value quoted."""
    headers = {**key(home, "all"), **({"content-type": content_type} if content_type else {})}
    checkout_answer = client.post("/v1/score", content=content, headers=headers)
    labels_answer = client.post("/v1/labels", content=content, headers=headers)
    assert checkout_answer.status_code == labels_answer.status_code == 422, (checkout_answer.text, labels_answer.text)
    assert checkout_answer.json() == labels_answer.json()
    assert checkout_answer.json()["error"]["field"] == "body"


class _FrozenLimiter(RateLimiter):
    """A rate limiter whose clock stands still: a key gets ``burst`` requests, then 429s."""

    def take(self, key_name: str, now: float | None = None) -> None:
        super().take(key_name, now=0.0)


def _routed_paths(app: Any) -> list[str]:
    """Records the path of every HTTP request that reaches FastAPI's router from now on (the
    app's middleware stack is built by then: the lifespan has started)."""
    paths: list[str] = []
    node = app.middleware_stack
    while node.app is not app.router:
        node = node.app
    router = node.app

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            paths.append(scope["path"])
        await router(scope, receive, send)

    node.app = counting
    return paths


_BURST = 12


def _checkout_calls(home: ServedHome) -> list[tuple[str, dict[str, Any]]]:
    """Checkout calls of every outcome: scored, retried, 409, 401, 403, 422, 413 and 429."""
    h = key(home, "checkout")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("ring device", {"json": checkout("t-fast-1", "fast-user-1", home.ring_device), "headers": h}),
        ("retry", {"json": checkout("t-fast-1", "fast-user-1", home.ring_device), "headers": h}),
        ("conflict", {"json": checkout("t-fast-1", "fast-user-1", home.ring_device, amount=99.0), "headers": h}),
        ("bearer", {"json": checkout("t-fast-2", home.known_user, "fast-device-2"),
                    "headers": {"Authorization": f"Bearer {home.keys['checkout']}"}}),  # fmt: skip
        ("no key", {"json": checkout("t-fast-3", "fast-user-3", None)}),
        ("wrong key", {"json": checkout("t-fast-3", "fast-user-3", None), "headers": {"X-API-Key": "rw_not-a-key"}}),
        ("wrong scope", {"json": checkout("t-fast-3", "fast-user-3", None), "headers": key(home, "analyst")}),
        ("bad field", {"json": checkout("t-fast-4", "fast-user-4", None, amount=-1), "headers": h}),
        ("unknown field", {"json": checkout("t-fast-4", "fast-user-4", None, surprise=1), "headers": h}),
        ("too large", {"json": checkout("t-fast-5", "x" * 2000, None), "headers": h}),
        ("streamed too large", {"content": (b"x" * 1024 for _ in range(3)),
                                "headers": {**h, "content-type": "application/json"}}),  # fmt: skip
    ]
    for content, content_type in [(b"", "application/json"), (b"{not json", "application/json"),
                                  (b"null", "application/json"), (b'{"txn_id": "\xff"}', "application/json"),
                                  (b'{"txn_id": "t-ct"}', "text/plain"), (b'{"txn_id": "t-ct"}', None)]:  # fmt: skip
        headers = {**h, **({"content-type": content_type} if content_type else {})}
        calls.append((f"body {content!r} as {content_type}", {"content": content, "headers": headers}))
    # Every key's burst is _BURST, more than the "checkout" key spends above: the "all" key
    # spends it on bad bodies, and its next call is refused.
    for i in range(_BURST + 1):
        calls.append((f"rate {i}", {"content": b"{}", "headers": {**key(home, "all"), "content-type": "application/json"}}))
    return calls


def test_the_checkout_fast_path_answers_and_counts_as_the_fastapi_route_does(home: ServedHome, tmp_path: Path) -> None:
    """``POST /v1/score`` answered in front of FastAPI's router gives the same status, headers and
    body as the FastAPI route for every outcome, and the same metrics."""
    answers: dict[bool, list[tuple[int, list[tuple[str, str]], bytes]]] = {}
    metrics: dict[bool, list[str]] = {}
    for fast in (True, False):
        settings = home.copy(tmp_path / f"fast-{fast}")
        config = config_for(home, settings, checkout_fast_path=fast, max_body_bytes=1024,
                            rate_limit=_FrozenLimiter(rate=1.0, burst=_BURST))  # fmt: skip
        app = create_app(config)
        with TestClient(app) as client:
            routed = _routed_paths(app)
            answers[fast] = []
            for _, call in _checkout_calls(home):
                r = client.post("/v1/score", **call)
                answers[fast].append((r.status_code, r.headers.multi_items(), r.content))
            text = client.get("/metrics").text
            stages = app.state.service.metrics.stages
            assert stages.scored == 2
            assert stages.ns[Stage.REQUEST] > sum(stages.ns[s] for s in INSIDE_REQUEST) > 0
        assert ("/v1/score" in routed) is not fast and "/metrics" in routed
        metrics[fast] = sorted(line for line in text.splitlines() if not line.startswith("#") and (
            "_count{" in line or "ringwatch_auth_rejections_total{" in line or "ringwatch_decisions_total{" in line))  # fmt: skip
    names = [name for name, _ in _checkout_calls(home)]
    statuses = [status for status, _, _ in answers[True]]
    assert sorted(set(statuses)) == [200, 401, 403, 409, 413, 422, 429], list(zip(names, statuses))
    for name, with_fast, with_fastapi in zip(names, answers[True], answers[False]):
        assert with_fast == with_fastapi, name
    assert metrics[True] == metrics[False]
    assert any('route="/v1/score",status="429"' in line for line in metrics[True])


def test_a_huge_bad_value_is_named_not_echoed(client: TestClient, home: ServedHome) -> None:
    body = {**checkout("t-huge", "huge-user", "huge-device"), "txn_id": "x" * 500_000}
    r = client.post("/v1/score", json=body, headers=key(home, "checkout"))
    assert r.status_code == 422 and r.json()["error"]["field"] == "txn_id"
    assert len(r.content) < 1_000 and "500,000 characters" in r.json()["error"]["message"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed(home: ServedHome) -> None:
    with TestClient(create_app(config_for(home, max_body_bytes=4096))) as c:
        big = {"labels": [{"entity": "user", "entity_id": f"user-{i}", "label": "legit"} for i in range(200)]}
        r = c.post("/v1/labels", json=big, headers=key(home, "analyst"))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        # Streamed without a Content-Length: counted as it arrives.
        chunks = (b"x" * 1024 for _ in range(8))
        streamed = c.post("/v1/score", content=chunks, headers={**key(home, "checkout"), "content-type": "application/json"})
        assert streamed.status_code == 413
        small = c.post("/v1/score", json=checkout("t-small", "small-user", "small-device"), headers=key(home, "checkout"))
        assert small.status_code == 200, small.text


def test_the_largest_valid_labels_batch_fits_the_default_body_limit() -> None:
    # Every id character escaped as \uXXXX: the widest JSON a valid batch can take without padding.
    label = {"entity": "transaction", "entity_id": "\u00e9" * 128, "label": "fraud",
             "ts": "2026-01-02T03:04:05.123456+00:00", "source": "s" * 64}  # fmt: skip
    body = json.dumps({"labels": [label] * 10_000}, ensure_ascii=True).encode()
    assert len(body) < DEFAULT_MAX_BODY_BYTES
    LabelsRequest.model_validate_json(body)

# -- investigators ------------------------------------------------------------------------------


def test_verdicts_are_stored_for_the_next_training_run(home: ServedHome, tmp_path: Path) -> None:
    settings = home.copy(tmp_path / "home")
    with TestClient(create_app(config_for(home, settings))) as client:
        user = home.ring_members[0]
        r = client.post(
            "/v1/labels",
            json={"labels": [{"entity": "user", "entity_id": user, "label": "legit", "ts": NOW},
                             {"entity": "transaction", "entity_id": "no-such-txn", "label": "fraud"}]},  # fmt: skip
            headers=key(home, "desk"),
        )
        assert r.status_code == 200 and r.json()["received"] == 2
    with SQLiteGraphStore(settings.store_path) as store:
        snap = store.snapshot()
    pos = snap.index_of(NodeType.USER)[user]
    labels = snap.user_labels
    assert [bool(f) for i, f in zip(labels.index.tolist(), labels.is_fraud.tolist(), strict=True) if i == pos] == [False]


def test_subgraph_keeps_the_asked_tiers_and_gives_the_browser_query(client: TestClient, home: ServedHome) -> None:
    h = key(home, "analyst")
    member = home.ring_members[0]
    every = client.get(f"/v1/accounts/{member}/subgraph", params={"hops": 2}, headers=h).json()
    high = client.get(f"/v1/accounts/{member}/subgraph", params={"hops": 2, "min_tier": "high"}, headers=h).json()
    users = lambda sub: {n["id"] for n in sub["nodes"] if n["type"] == "User"}  # noqa: E731
    tier_of = {n["id"]: n["risk_tier"] for n in every["nodes"]}
    assert any(tier_of[u] != "high" for u in users(every) - {f"User:{member}"})  # so the filter has work
    assert all(n["risk_tier"] == "high" or n["id"] == f"User:{member}" for n in high["nodes"] if n["type"] == "User")
    assert f"Device:{home.ring_device}" in {n["id"] for n in high["nodes"]}
    b = high["browser"]
    assert b["params"] == {"user_id": member, "hops": 2, "tiers": ["high"], "limit": 500}
    assert "$user_id" in b["cypher"] and member not in b["cypher"]
    assert f":param user_id => '{member}'" in b["browser"]
    ring = client.get("/v1/rings", params={"min_tier": "high", "limit": 1}, headers=h).json()
    assert ring["total"] >= 1 and len(ring["items"]) == 1
    one = client.get(f"/v1/rings/{ring['items'][0]['ring_id']}", headers=h).json()
    assert one == ring["items"][0]


def test_metrics_show_latency_per_route_decisions_and_journal_depth(client: TestClient, home: ServedHome) -> None:
    client.post("/v1/score", json=checkout("t-metrics-1", "metrics-user", "metrics-device"), headers=key(home, "checkout"))
    client.get("/v1/rings")  # 401
    text = client.get("/metrics").text
    assert 'ringwatch_request_seconds_bucket{le="0.01",method="POST",route="/v1/score",status="200"}' in text
    assert 'ringwatch_decisions_total{decision="allow",tier="low"}' in text or "ringwatch_decisions_total{" in text
    assert "ringwatch_journal_depth" in text
    assert 'ringwatch_auth_rejections_total{reason="401"} 1.0' in text


# -- model swaps, faults, restarts ----------------------------------------------------------------


def test_a_promoted_model_is_swapped_in_while_requests_keep_being_answered(home: ServedHome, tmp_path: Path) -> None:
    settings = home.copy(tmp_path / "home")
    h = key(home, "all")
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()
    with TestClient(create_app(config_for(home, settings))) as client:

        def hammer() -> None:
            i = 0
            while not stop.is_set():
                r = client.post("/v1/score", json=checkout(f"t-swap-{i}", f"swap-user-{i}", home.ring_device), headers=h)
                answers.append((r.status_code, r.json().get("model_version")))
                i += 1

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            old = ModelArtefact.load(settings.models_dir)
            new = dataclasses.replace(old, version=old.version + "-b")
            new.save(settings.models_dir)  # promoted: CURRENT names it now
            assert wait_for(lambda: client.get("/readyz").json()["model_version"] == new.version, timeout=60)
            time.sleep(0.5)
        finally:
            stop.set()
            worker.join()
        seen = [v for _, v in answers]
        assert all(code == 200 for code, _ in answers)
        assert set(seen) <= {old.version, new.version} and seen[-1] == new.version
        assert seen == sorted(seen, key=lambda v: v == new.version)  # old ones, then new ones: no flapping
        # Events scored before the swap are still known to the new view (re-applied).
        assert client.get("/v1/accounts/swap-user-0/risk", headers=h).status_code == 200


def test_store_down_scoring_answers_readyz_degraded_and_a_restart_loads_every_event(
    home: ServedHome, tmp_path: Path
) -> None:
    settings = home.copy(tmp_path / "home")
    down = threading.Event()

    class FlakyStore(SQLiteGraphStore):
        """The embedded store, but every call fails while ``down`` is set (as Neo4j's would)."""

        def _check(self) -> None:
            if down.is_set():
                raise StoreUnavailableError(f"store at {settings.store_path} is down (test)")

        def _ping(self) -> None:
            self._check()
            super()._ping()

        def _upsert_events(self, events):  # type: ignore[no-untyped-def]
            self._check()
            return super()._upsert_events(events)

    def factory() -> SQLiteGraphStore:
        if down.is_set():
            raise StoreUnavailableError(f"store at {settings.store_path} is down (test)")
        return FlakyStore(settings.store_path)

    h = key(home, "all")
    with TestClient(create_app(config_for(home, settings, store_factory=factory))) as client:
        down.set()
        assert wait_for(lambda: client.get("/readyz").json()["status"] == "degraded")
        for i in range(3):
            r = client.post("/v1/score", json=checkout(f"t-down-{i}", f"down-user-{i}", "down-device"), headers=h)
            assert r.status_code == 200
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["store"]["reachable"] is False and ready["journal_depth"] == 3
        assert any("store unreachable" in reason for reason in ready["reasons"])
    assert not {"t-down-0", "t-down-1", "t-down-2"} & set(stored_txn_ids(settings))  # nothing reached it
    down.clear()
    with TestClient(create_app(config_for(home, settings, store_factory=factory))) as client:
        assert wait_for(lambda: client.get("/readyz").json()["journal_depth"] == 0)
        assert client.get("/v1/accounts/down-user-1/risk", headers=h).status_code == 200  # replayed in memory too
    ids = stored_txn_ids(settings)
    assert all(ids.count(f"t-down-{i}") == 1 for i in range(3))


def test_a_stopped_workers_journal_is_drained_by_a_live_one(home: ServedHome, tmp_path: Path) -> None:
    settings = home.copy(tmp_path / "home")
    orphan = EventJournal(settings.home / "journal" / "slot-3", fsync=False)
    for i in range(4):
        orphan.append(Event(txn_id=f"t-orphan-{i}", ts=NOW_TS - 60, user_id="orphan-user", device_id="orphan-device",
                            merchant_id="m0003", amount=5.0))  # fmt: skip
    orphan.close()
    with TestClient(create_app(config_for(home, settings))) as client:
        assert wait_for(lambda: {f"t-orphan-{i}" for i in range(4)} <= set(stored_txn_ids(settings)))
        # The live worker also read them into memory (the other slot's journal is tailed).
        assert client.get("/v1/accounts/orphan-user/risk", headers=key(home, "all")).status_code == 200


# -- alerts -------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_high_rings_and_decisions_raise_signed_alerts_deduplicated_per_ring(
    home: ServedHome, tmp_path: Path, webhook: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = webhook
    secret = "whsec-test"
    alerts = AlertConfig(url=url, secret=secret, log_path=tmp_path / "alerts.jsonl", backoff=0.05)
    with TestClient(create_app(config_for(home, alerts=alerts, journal_dir=None))) as client:
        high_rings = client.get("/v1/rings", params={"min_tier": "high"}, headers=key(home, "all")).json()["items"]
        assert high_rings
        assert wait_for(lambda: len(received) >= len(high_rings))
        # A ring member pays again: high tier, but its ring alerted already within the window.
        member = next(m for r in high_rings for m in r["members"])
        r = client.post("/v1/score", json=checkout("t-alert-1", member, None, ip=None), headers=key(home, "all")).json()
    bodies = [json.loads(b) for _, b in received]
    assert {b["ring_id"] for b in bodies if b["kind"] == "high_ring"} == {r_["ring_id"] for r_ in high_rings}
    for headers, body in received:
        ts = headers[TIMESTAMP_HEADER]
        expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER].endswith(expected)
    log = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    if r["tier"] == "high" and r["ring_id"] is not None:
        assert any(entry["status"] == "deduplicated" for entry in log)
    assert sum(entry["status"] == "sent" for entry in log) == len(received)


def test_openapi_documents_the_key_header_and_every_v1_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/v1/score", "/v1/accounts/{user_id}/risk", "/v1/accounts/{user_id}/subgraph", "/v1/rings",
            "/v1/rings/{ring_id}", "/v1/labels", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])  # fmt: skip
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    # The score route checks its key in one plain dependency; it documents the same schemes.
    assert spec["paths"]["/v1/score"]["post"]["security"] == spec["paths"]["/v1/rings"]["get"]["security"]
    assert {"APIKeyHeader", "HTTPBearer"} == {name for entry in spec["paths"]["/v1/score"]["post"]["security"] for name in entry}


def test_account_reasons_come_from_the_model_and_name_the_rings_shared_device(client: TestClient, home: ServedHome) -> None:
    """Account reasons are the explainer's (gnn.serving.explain: surrogate contributions + risky
    neighbours): a planted ring member's reasons name a device its ring shares."""
    h = key(home, "analyst")
    named = 0
    for member in home.ring_members[:4]:
        risk = client.get(f"/v1/accounts/{member}/risk", headers=h).json()
        if risk["ring_id"] is None:
            continue
        ring = client.get(f"/v1/rings/{risk['ring_id']}", headers=h).json()
        assert 1 <= len(risk["reasons"]) <= 4
        named += any(f"device {d}" in r for d in ring["shared_devices"] for r in risk["reasons"])
    assert named >= 1


def test_no_key_or_request_body_reaches_the_logs(home: ServedHome, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    secret = home.keys["checkout"]
    marker = "body-marker-7f3a"
    with TestClient(create_app(config_for(home, journal_dir=None))) as client:
        client.post("/v1/score", json=checkout(f"t-{marker}", marker, marker), headers={"X-API-Key": secret})
        client.post("/v1/score", json=checkout("t-log-2", "u", "d", amount=-5), headers={"X-API-Key": secret})
        client.get("/v1/rings", headers={"X-API-Key": secret + "x"})
    assert caplog.records  # something was logged (the test would be empty otherwise)
    assert secret not in caplog.text and marker not in caplog.text


def test_another_workers_event_is_seen_by_the_next_request_that_touches_it(home: ServedHome, tmp_path: Path) -> None:
    """Another worker's journaled events are read within a tail interval and deferred; the next
    request on their device folds them in first (the device is not new), and their account has
    its fresh risk."""
    settings = home.copy(tmp_path / "home")
    h = key(home, "all")
    with TestClient(create_app(config_for(home, settings))) as client:
        other = EventJournal(settings.home / "journal" / "slot-5", fsync=False)  # another live worker's slot
        other.append(Event(txn_id="t-other-1", ts=NOW_TS - 5, user_id="other-user-1", device_id="other-device-1",
                           ip="203.0.113.231", merchant_id="m0003", amount=7.0))  # fmt: skip
        other.close()
        assert wait_for(lambda: client.get("/readyz").json()["events_since_snapshot"] >= 1)
        mine = client.post("/v1/score", json=checkout("t-mine-1", "my-user-1", "other-device-1", ip="203.0.113.232"),
                           headers=h)  # fmt: skip
        assert mine.status_code == 200 and mine.json()["new_entities"] == ["user", "ip"]
        risk = client.get("/v1/accounts/other-user-1/risk", headers=h)
        assert risk.status_code == 200 and risk.json()["score"] is not None
