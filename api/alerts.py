"""Alerts to a webhook: high-tier decisions and newly found high-tier rings.

Each alert is a JSON body POSTed to the configured URL with two headers:
``X-Ringwatch-Timestamp`` (epoch seconds) and ``X-Ringwatch-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``<timestamp>.<body>`` under the shared secret, so the receiver can check both who
sent it and that it is not a replay (``verify_signature`` is the receiver's side).

Delivery happens on a background thread, so a slow receiver never delays a checkout answer. A
failed POST (connection error, timeout, 5xx or 429) is retried with exponential back-off up to
``max_attempts``; a 4xx other than 429 is not retried. Alerts about the same ring within
``dedupe_window`` seconds are sent once (a ring of 20 accounts would otherwise page 20 times).
Every alert, sent, deduplicated or failed, is appended to a local alert log (JSON lines), which
is where an operator looks when the webhook was down.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from graph.errors import ConfigError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Ringwatch-Signature"
TIMESTAMP_HEADER = "X-Ringwatch-Timestamp"


class AlertKind(enum.StrEnum):
    HIGH_DECISION = "high_decision"
    HIGH_RING = "high_ring"


@dataclass(frozen=True, slots=True)
class Alert:
    """What the webhook receives (as JSON). ``dedupe_key`` is the ring id when there is one,
    else the transaction or account id."""

    kind: AlertKind
    created_at: float
    score: float
    tier: str
    model_version: str | None
    reasons: tuple[str, ...] = ()
    user_id: str | None = None
    txn_id: str | None = None
    ring_id: str | None = None
    ring_size: int | None = None

    @property
    def dedupe_key(self) -> str:
        if self.ring_id is not None:
            return f"ring:{self.ring_id}"
        return f"txn:{self.txn_id}" if self.txn_id is not None else f"user:{self.user_id}"

    def body(self) -> bytes:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["reasons"] = list(self.reasons)
        return json.dumps(d, separators=(",", ":"), sort_keys=True).encode("utf-8")


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Where and how alerts go.

    Raises:
        ConfigError: a URL that is not http(s), an empty secret, or non-positive limits.
    """

    url: str
    secret: str = field(repr=False)
    log_path: Path
    dedupe_window: float = 3600.0
    max_attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    timeout: float = 2.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"alert webhook url={self.url!r} must start with http:// or https://")
        if not self.secret:
            raise ConfigError("alert webhook secret is empty: set RINGWATCH_ALERT_SECRET")
        if self.max_attempts < 1 or self.backoff <= 0 or self.timeout <= 0 or self.dedupe_window < 0:
            raise ConfigError("alert retry settings must be positive (max_attempts >= 1, backoff > 0, timeout > 0)")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, max_age: float = 300.0) -> bool:
    """The receiver's check: right secret, untouched body, and not older than ``max_age`` s."""
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        return False
    return age <= max_age and hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True, slots=True)
class AlertStats:
    raised: int
    sent: int
    deduplicated: int
    failed: int
    pending: int


class AlertSender:
    """Queues alerts and delivers them from a daemon thread (see the module docstring).

    ``start()`` before use and ``stop()`` at shutdown (it delivers what is queued first, within
    ``timeout``).
    """

    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        # Dedupe key -> when it last alerted, oldest first; keys past the window are dropped.
        self._last_sent: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._raised = self._sent = self._deduplicated = self._failed = 0
        self._thread = threading.Thread(target=self._run, name="ringwatch-alerts", daemon=True)
        self.config.log_path.parent.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def raise_alert(self, alert: Alert) -> bool:
        """Queue ``alert`` unless the same ring (or entity) alerted within the window. Returns
        whether it was queued. Never blocks on the network."""
        with self._lock:
            self._raised += 1
            self._forget_before(alert.created_at - self.config.dedupe_window)
            last = self._last_sent.get(alert.dedupe_key)
            if last is not None and alert.created_at - last < self.config.dedupe_window:
                self._deduplicated += 1
                duplicate = True
            else:
                self._last_sent[alert.dedupe_key] = alert.created_at
                self._last_sent.move_to_end(alert.dedupe_key)
                duplicate = False
        if duplicate:
            self._log(alert, "deduplicated", attempts=0)
            return False
        self._queue.put(alert)
        return True

    @property
    def remembered(self) -> int:
        """Dedupe keys held (those that alerted within the window, about)."""
        with self._lock:
            return len(self._last_sent)

    def _forget_before(self, cutoff: float) -> None:
        # Oldest first: stop at the first key still inside the window (alert times may be a
        # little out of order; such a key is dropped on a later call).
        while self._last_sent:
            key, at = next(iter(self._last_sent.items()))
            if at > cutoff:
                return
            del self._last_sent[key]

    def stats(self) -> AlertStats:
        with self._lock:
            return AlertStats(self._raised, self._sent, self._deduplicated, self._failed, self._queue.qsize())

    # -- delivery ----------------------------------------------------------------------------

    def _run(self) -> None:
        with httpx.Client(timeout=self.config.timeout) as client:
            while True:
                alert = self._queue.get()
                if alert is None:
                    return
                self._deliver(client, alert)

    def _deliver(self, client: httpx.Client, alert: Alert) -> None:
        body = alert.body()
        delay = self.config.backoff
        error = ""
        for attempt in range(1, self.config.max_attempts + 1):
            ts = f"{time.time():.3f}"
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(self.config.secret, ts, body),
            }
            try:
                response = client.post(self.config.url, content=body, headers=headers)
                if response.status_code < 300:
                    with self._lock:
                        self._sent += 1
                    self._log(alert, "sent", attempts=attempt)
                    return
                error = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses this body: retrying cannot help
            except httpx.HTTPError as e:
                error = type(e).__name__
            if attempt < self.config.max_attempts:
                time.sleep(delay)
                delay = min(self.config.max_backoff, delay * 2)
        with self._lock:
            self._failed += 1
        log.error("alert %s for %s not delivered to the webhook: %s", alert.kind.value, alert.dedupe_key, error)
        self._log(alert, "failed", attempts=attempt, error=error)

    def _log(self, alert: Alert, status: str, *, attempts: int, error: str | None = None) -> None:
        record = {"status": status, "attempts": attempts, "error": error, "alert": json.loads(alert.body())}
        with self._lock, open(self.config.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
