"""The service as ``ringwatch serve`` runs it: its configuration from the environment, and the
app of one uvicorn worker process.

The command line (``ringwatch.serve``) says how to open the store and where the models and the
service's own files live; ``config_from_env`` adds what the environment says about callers and
alerts:

- ``RINGWATCH_NO_AUTH=1``: serve without API keys (local exploration only; logged loudly).
- ``RINGWATCH_RATE_LIMIT``: ``<requests per second>,<burst>`` per key and worker (default
  ``1000,2000``; ``off`` for none).
- ``RINGWATCH_API_KEYS`` / ``RINGWATCH_API_KEYS_FILE``: the hashed keys (``api.security``).
- ``RINGWATCH_MAX_BODY_BYTES``: larger request bodies get 413 (default 16 MiB).
- ``RINGWATCH_ALERT_URL`` and ``RINGWATCH_ALERT_SECRET``: the alert webhook and its HMAC secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from api.alerts import AlertConfig
from api.app import DEFAULT_MAX_BODY_BYTES, ApiConfig, create_app
from api.security import KEYS_ENV, KEYS_FILE_ENV, KeyRing, RateLimiter, load_keys
from graph.errors import ConfigError
from graph.store import GraphStore

NO_AUTH_ENV = "RINGWATCH_NO_AUTH"
RATE_LIMIT_ENV = "RINGWATCH_RATE_LIMIT"
ALERT_URL_ENV = "RINGWATCH_ALERT_URL"
ALERT_SECRET_ENV = "RINGWATCH_ALERT_SECRET"
DEFAULT_RATE_LIMIT = "1000,2000"
MAX_BODY_ENV = "RINGWATCH_MAX_BODY_BYTES"


def config_from_env(
    store_factory: Callable[[], GraphStore],
    *,
    models_dir: Path,
    data_dir: Path,
    env: dict[str, str] | None = None,
) -> ApiConfig:
    """The service configuration: the store and models the caller names, the rest from the
    environment (see the module docstring).

    Args:
        store_factory: opens the graph store (each background thread opens its own).
        models_dir: the model artefacts (``CURRENT`` names the served one).
        data_dir: where the service keeps its own files: ``journal/`` and ``alerts.jsonl``.
        env: the environment (default ``os.environ``).

    Raises:
        ConfigError: no API keys and no ``RINGWATCH_NO_AUTH=1``, a malformed key entry, body limit or rate
            limit, or an alert URL without its secret.
    """
    env = dict(os.environ) if env is None else env
    keys: KeyRing | None = None
    if env.get(NO_AUTH_ENV, "") not in ("1", "true", "yes"):
        loaded = load_keys(env)
        if not loaded:
            raise ConfigError(
                f"no API keys: set {KEYS_ENV} or {KEYS_FILE_ENV} (make one with `ringwatch apikey --name NAME "
                f"--scopes score,investigate,label`), or serve without keys with `ringwatch serve --no-auth`"
            )
        keys = KeyRing(loaded)
    limiter = _rate_limit(env.get(RATE_LIMIT_ENV, DEFAULT_RATE_LIMIT))
    body_text = env.get(MAX_BODY_ENV, "").strip() or str(DEFAULT_MAX_BODY_BYTES)
    if not body_text.isdigit() or int(body_text) < 1024:
        raise ConfigError(f"{MAX_BODY_ENV}={body_text!r}: must be a whole number of bytes >= 1024")
    alerts: AlertConfig | None = None
    if url := env.get(ALERT_URL_ENV, "").strip():
        secret = env.get(ALERT_SECRET_ENV, "")
        if not secret:
            raise ConfigError(f"{ALERT_URL_ENV} is set but {ALERT_SECRET_ENV} is not: alerts are always signed")
        alerts = AlertConfig(url=url, secret=secret, log_path=data_dir / "alerts.jsonl")
    return ApiConfig(
        store_factory=store_factory,
        models_dir=models_dir,
        journal_dir=data_dir / "journal",
        alerts=alerts,
        keys=keys,
        rate_limit=limiter,
        max_body_bytes=int(body_text),
    )


def _rate_limit(text: str) -> RateLimiter | None:
    if text.strip().lower() == "off":
        return None
    try:
        rate, burst = (part.strip() for part in text.split(","))
        return RateLimiter(float(rate), int(burst))
    except ValueError:
        raise ConfigError(f"{RATE_LIMIT_ENV}={text!r}: expected '<requests per second>,<burst>' or 'off'") from None


def worker_app(config: ApiConfig) -> FastAPI:
    """The app of one worker process. Torch runs on one thread: a worker scores one small
    neighbourhood at a time, and the thread pools of several workers spinning on the same cores
    lower the throughput (``bench/api_bench.py`` shows it)."""
    import torch

    torch.set_num_threads(1)
    os.umask(0o077)  # the journal holds events: owner-only, like everything ringwatch writes
    return create_app(config)
