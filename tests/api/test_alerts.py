"""Alerts against a real HTTP receiver on 127.0.0.1: signed, retried, deduplicated, logged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from api.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alert,
    AlertConfig,
    AlertKind,
    AlertSender,
    verify_signature,
)
from graph.errors import ConfigError

SECRET = "webhook-secret-for-tests"


@dataclass
class Receiver:
    """A webhook receiver that fails the first ``fail_first`` requests with ``fail_status``."""

    url: str
    fail_first: int = 0
    fail_status: int = 500
    received: list[tuple[dict[str, object], bool]] = field(default_factory=list)  # (body, signature ok)
    attempts: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.attempts += 1
            if state.attempts <= state.fail_first:
                self.send_response(state.fail_status)
                self.end_headers()
                return
            ok = verify_signature(SECRET, self.headers[TIMESTAMP_HEADER], body, self.headers[SIGNATURE_HEADER])
            state.received.append((json.loads(body), ok))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _config(url: str, tmp_path: Path, **kw: object) -> AlertConfig:
    return AlertConfig(url=url, secret=SECRET, log_path=tmp_path / "alerts.jsonl", backoff=0.01, **kw)  # type: ignore[arg-type]


def _alert(ring: str | None = "ring-1", txn: str = "t1", at: float = 1000.0) -> Alert:
    return Alert(
        kind=AlertKind.HIGH_DECISION,
        created_at=at,
        score=0.97,
        tier="high",
        model_version="m1",
        reasons=("device d-81 is shared by 6 accounts, 4 confirmed fraud",),
        user_id="u1",
        txn_id=txn,
        ring_id=ring,
        ring_size=6,
    )


def _drain(sender: AlertSender) -> None:
    deadline = time.monotonic() + 10
    while sender.stats().pending and time.monotonic() < deadline:
        time.sleep(0.01)
    sender.stop()


def _log(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]


def test_signed_alert_reaches_the_receiver_after_retries(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_first = 2
    sender = AlertSender(_config(receiver.url, tmp_path))
    sender.start()
    assert sender.raise_alert(_alert())
    _drain(sender)
    assert receiver.attempts == 3
    [(body, signature_ok)] = receiver.received
    assert signature_ok
    assert body["ring_id"] == "ring-1" and body["kind"] == "high_decision"
    assert body["reasons"] == ["device d-81 is shared by 6 accounts, 4 confirmed fraud"]
    [entry] = _log(tmp_path)
    assert entry["status"] == "sent" and entry["attempts"] == 3
    assert sender.stats().sent == 1


def test_same_ring_within_the_window_alerts_once(receiver: Receiver, tmp_path: Path) -> None:
    sender = AlertSender(_config(receiver.url, tmp_path, dedupe_window=600.0))
    sender.start()
    assert sender.raise_alert(_alert(txn="t1", at=1000.0))
    assert not sender.raise_alert(_alert(txn="t2", at=1300.0))  # same ring, 5 minutes later
    assert sender.raise_alert(_alert(ring="ring-2", txn="t3", at=1300.0))
    assert sender.raise_alert(_alert(txn="t4", at=1700.0))  # window over
    _drain(sender)
    assert sorted(b["txn_id"] for b, _ in receiver.received) == ["t1", "t3", "t4"]
    statuses = sorted(e["status"] for e in _log(tmp_path))
    assert statuses == ["deduplicated", "sent", "sent", "sent"]
    assert sender.stats().deduplicated == 1


def test_dedupe_keys_are_forgotten_after_the_window(tmp_path: Path) -> None:
    """A long-running server alerts on ever new rings: the dedupe map must not grow forever."""
    sender = AlertSender(_config("http://127.0.0.1:9/unused", tmp_path, dedupe_window=600.0))
    for i in range(5000):  # one new ring every 10 s: about 60 inside any 600 s window
        sender.raise_alert(_alert(ring=f"ring-{i}", txn=f"t{i}", at=1000.0 + 10 * i))
    assert 55 <= sender.remembered <= 61
    # A ring still inside the window is still deduplicated.
    assert not sender.raise_alert(_alert(ring="ring-4999", txn="again", at=1000.0 + 10 * 4999 + 1))


def test_receiver_down_is_logged_as_failed(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_first = 99
    sender = AlertSender(_config(receiver.url, tmp_path, max_attempts=3))
    sender.start()
    sender.raise_alert(_alert())
    _drain(sender)
    assert receiver.attempts == 3
    [entry] = _log(tmp_path)
    assert entry["status"] == "failed" and entry["error"] == "HTTP 500"
    assert entry["alert"]["ring_id"] == "ring-1"  # the log keeps what was not delivered


def test_a_refused_body_is_not_retried(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_first, receiver.fail_status = 99, 400
    sender = AlertSender(_config(receiver.url, tmp_path, max_attempts=5))
    sender.start()
    sender.raise_alert(_alert())
    _drain(sender)
    assert receiver.attempts == 1
    assert _log(tmp_path)[0]["error"] == "HTTP 400"


def test_tampered_or_stale_bodies_fail_verification() -> None:
    from api.alerts import sign

    ts = f"{time.time():.3f}"
    body = b'{"score":0.9}'
    sig = sign(SECRET, ts, body)
    assert verify_signature(SECRET, ts, body, sig)
    assert not verify_signature(SECRET, ts, b'{"score":0.1}', sig)
    assert not verify_signature("other-secret", ts, body, sig)
    old = f"{time.time() - 3600:.3f}"
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body))


def test_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ftp://x"):
        AlertConfig(url="ftp://x", secret="s", log_path=tmp_path / "a.jsonl")
    with pytest.raises(ConfigError, match="RINGWATCH_ALERT_SECRET"):
        AlertConfig(url="http://127.0.0.1:1", secret="", log_path=tmp_path / "a.jsonl")
    assert SECRET not in repr(_config("http://127.0.0.1:1", tmp_path))
