"""The FastAPI application: configuration, lifespan, key checks, metrics and the mapping of
domain errors to HTTP (the only place that knows HTTP status codes).

``create_app(ApiConfig(store_factory=...))`` builds the app; nothing is opened until the
lifespan starts. The lifespan starts a ``RiskService`` (``api.service``): it loads the serving
view (snapshot, scores, model) through the store factory it is given, opens this worker's event
journal and starts the background threads; requests are answered from memory.

Routes: ``/v1/score`` (scope ``score``), ``/v1/accounts/...`` and ``/v1/rings...`` (scope
``investigate``), ``/v1/labels`` (scope ``label``); ``/healthz``, ``/readyz`` and ``/metrics``
need no key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ServiceMetrics
from api.models import ErrorBody, ErrorResponse
from api.routes import accounts, health, labels, rings, score
from api.security import AuthenticationError, KeyRing, PermissionDeniedError, RateLimitedError, RateLimiter
from api.service import RiskService, ServiceConfig
from graph.errors import ModelError, NotFoundError, RingwatchError, StoreError, ValidationError

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ApiConfig(ServiceConfig):
    """How the service starts: ``api.service.ServiceConfig`` (store factory, models, journal,
    alerts, intervals) plus who may call it.

    Attributes:
        keys: the API keys (``api.security.load_keys``). None turns authentication off
            (``ringwatch serve --no-auth``, tests): every caller has every scope.
        rate_limit: per-key token bucket; None: no limit.
    """

    keys: KeyRing | None = None
    rate_limit: RateLimiter | None = None


def create_app(config: ApiConfig) -> FastAPI:
    """Build the app; the store is opened only when the lifespan starts."""
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = RiskService(config, metrics)
        service.start()
        app.state.service = service
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="ringwatch",
        version="1",
        summary="Fraud-ring risk for checkout events and accounts, served from an in-memory graph.",
        lifespan=lifespan,
    )
    app.state.keys = config.keys
    app.state.rate_limiter = config.rate_limit
    if config.keys is None:
        log.warning("API keys are OFF: every caller may score, investigate and label (ringwatch serve --no-auth)")
    for router in (health.router, score.router, accounts.router, rings.router, labels.router):
        app.include_router(router)
    _register_error_handlers(app, metrics)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


class LatencyMiddleware:
    """Observes every request's latency by route template (``/v1/accounts/{user_id}/risk``, not
    the id), method and status. Plain ASGI: a few microseconds per request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(route=name, method=scope["method"], status=str(status)).observe(
                time.perf_counter() - started
            )


# -- errors: one shape, {"error": {"code", "message", "field"}} ---------------------------------


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, field=field))
    return JSONResponse(status_code=status, content=body.model_dump())


def _register_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NotFoundError)
        return _error(404, "not_found", str(exc))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        return _error(422, "invalid", str(exc), exc.field)

    async def request_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        # loc is e.g. ("query", "hops") or ("path", "user_id"): the last name is the field.
        names = [str(part) for part in first.get("loc", ()) if isinstance(part, str)]
        field = names[-1] if names else None
        message = f"{field}={first.get('input')!r}: {first.get('msg', 'invalid')}" if field else str(exc)
        return _error(422, "invalid", message, field)

    async def store_failed(_: Request, exc: Exception) -> JSONResponse:
        return _error(503, "store_unavailable", str(exc))

    async def not_ready(_: Request, exc: Exception) -> JSONResponse:
        return _error(503, "not_ready", str(exc))

    async def unauthenticated(_: Request, exc: Exception) -> JSONResponse:
        metrics.rejected.labels(reason="401").inc()
        response = _error(401, "unauthenticated", str(exc))
        response.headers["WWW-Authenticate"] = "ApiKey"
        return response

    async def forbidden(_: Request, exc: Exception) -> JSONResponse:
        metrics.rejected.labels(reason="403").inc()
        return _error(403, "forbidden", str(exc))

    async def rate_limited(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimitedError)
        metrics.rejected.labels(reason="429").inc()
        response = _error(429, "rate_limited", str(exc))
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
        return response

    async def ringwatch_failed(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal", str(exc))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # a body that is not JSON: one error shape for bad input
            return _error(422, "invalid", f"body: {exc.detail}", "body")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. 405's Allow
        return response

    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ValidationError, invalid)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StoreError, store_failed)
    app.add_exception_handler(ModelError, not_ready)
    app.add_exception_handler(AuthenticationError, unauthenticated)
    app.add_exception_handler(PermissionDeniedError, forbidden)
    app.add_exception_handler(RateLimitedError, rate_limited)
    app.add_exception_handler(RingwatchError, ringwatch_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
