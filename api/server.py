"""``ringwatch serve``: the app built from the environment, so that every uvicorn worker process
builds the same one (``uvicorn api.server:app_from_env --factory``).

Environment (the CLI sets the first three from its options):

- ``RINGWATCH_HOME``: the data directory (store, models, ``journal/``, ``alerts.jsonl``).
- ``RINGWATCH_NO_AUTH=1``: serve without API keys (local exploration only; logged loudly).
- ``RINGWATCH_RATE_LIMIT``: ``<requests per second>,<burst>`` per key and worker (default
  ``1000,2000``; ``off`` for none).
- ``RINGWATCH_API_KEYS`` / ``RINGWATCH_API_KEYS_FILE``: the hashed keys (``api.security``).
- ``RINGWATCH_MAX_BODY_BYTES``: larger request bodies get 413 (default 16 MiB).
- ``RINGWATCH_ALERT_URL`` and ``RINGWATCH_ALERT_SECRET``: the alert webhook and its HMAC secret.
- ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``: use Neo4j instead of the embedded store.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.alerts import AlertConfig
from api.app import DEFAULT_MAX_BODY_BYTES, ApiConfig, create_app
from api.security import KEYS_ENV, KEYS_FILE_ENV, KeyRing, RateLimiter, load_keys
from graph.errors import ConfigError
from ringwatch.settings import Settings

NO_AUTH_ENV = "RINGWATCH_NO_AUTH"
RATE_LIMIT_ENV = "RINGWATCH_RATE_LIMIT"
ALERT_URL_ENV = "RINGWATCH_ALERT_URL"
ALERT_SECRET_ENV = "RINGWATCH_ALERT_SECRET"
DEFAULT_RATE_LIMIT = "1000,2000"
MAX_BODY_ENV = "RINGWATCH_MAX_BODY_BYTES"


def config_from_env(env: dict[str, str] | None = None) -> ApiConfig:
    """The service configuration from the environment (see the module docstring).

    Raises:
        ConfigError: no API keys and no ``RINGWATCH_NO_AUTH=1``, a malformed key entry, body limit or rate
            limit, or an alert URL without its secret.
    """
    env = dict(os.environ) if env is None else env
    settings = Settings.load(env.get("RINGWATCH_HOME"))
    settings.ensure_dirs()
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
        alerts = AlertConfig(url=url, secret=secret, log_path=settings.home / "alerts.jsonl")

    def store_factory():  # type: ignore[no-untyped-def]  # a GraphStore
        from ringwatch.pipeline import store_for

        return store_for(settings)

    return ApiConfig(
        store_factory=store_factory,
        models_dir=settings.models_dir,
        journal_dir=settings.home / "journal",
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


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn ``--factory``). Torch runs on one thread: a
    worker scores one small neighbourhood at a time, and the thread pools of several workers
    spinning on the same cores lower the throughput (``bench/api_bench.py`` shows it)."""
    import torch

    torch.set_num_threads(1)
    os.umask(0o077)  # the journal holds events: owner-only, like everything ringwatch writes
    return create_app(config_from_env())
