"""The FastAPI application: configuration, lifespan, key checks, metrics and the mapping of
domain errors to HTTP (the only place that knows HTTP status codes).

``create_app(ApiConfig(store_factory=...))`` builds the app; nothing is opened until the
lifespan starts. The lifespan starts a ``RiskService`` (``api.service``): it loads the serving
view (snapshot, scores, model) through the store factory it is given, opens this worker's event
journal and starts the background threads; requests are answered from memory.

Routes: ``/v1/score`` (scope ``score``), ``/v1/accounts/...`` and ``/v1/rings...`` (scope
``investigate``), ``/v1/labels`` (scope ``label``); ``/healthz``, ``/readyz`` and ``/metrics``
need no key. ``POST /v1/score``, the checkout hot path, is answered by ``CheckoutFastPath`` in
front of FastAPI's router, through the same middleware, error handlers and route code.
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
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ServiceMetrics
from api.models import ErrorBody, ErrorResponse
from api.routes import API_PREFIX, accounts, health, labels, rings, score
from api.security import AuthenticationError, KeyRing, PermissionDeniedError, RateLimitedError, RateLimiter
from api.service import RiskService, ServiceConfig
from api.stages import Stage
from graph.errors import ConflictError, ModelError, NotFoundError, RingwatchError, StoreError, ValidationError

log = logging.getLogger(__name__)



#: Default request body limit: room for the largest valid labels batch (10,000 verdicts, each at
#: most about 1 kB even with every id character escaped); a checkout event is about 300 bytes.
DEFAULT_MAX_BODY_BYTES = 16 << 20
#: How much of a bad value an error message quotes.
_QUOTE_CHARS = 80
#: The checkout route, whose CPU per call the latency middleware counts (``Stage.REQUEST``).
SCORE_PATH = f"{API_PREFIX}/score"


@dataclass(frozen=True)
class ApiConfig(ServiceConfig):
    """How the service starts: ``api.service.ServiceConfig`` (store factory, models, journal,
    alerts, intervals) plus who may call it.

    Attributes:
        keys: the API keys (``api.security.load_keys``). None turns authentication off
            (``ringwatch serve --no-auth``, tests): every caller has every scope.
        rate_limit: per-key token bucket; None: no limit.
        max_body_bytes: larger request bodies get 413 before anything parses them.
        checkout_fast_path: answer ``POST /v1/score`` without FastAPI's router
            (``CheckoutFastPath``); False sends it through FastAPI like every other route.
    """

    keys: KeyRing | None = None
    rate_limit: RateLimiter | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    checkout_fast_path: bool = True


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
        responses={413: {"model": ErrorResponse, "description": "request body over the size limit"}},
    )
    app.state.keys = config.keys
    app.state.rate_limiter = config.rate_limit
    if config.keys is None:
        log.warning("API keys are OFF: every caller may score, investigate and label (ringwatch serve --no-auth)")
    for router in (health.router, score.router, accounts.router, rings.router, labels.router):
        app.include_router(router)
    _register_error_handlers(app, metrics)
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    if config.checkout_fast_path:
        app.add_middleware(CheckoutFastPath, fastapi_app=app, metrics=metrics, max_body_bytes=config.max_body_bytes)
    return app


class CheckoutFastPath:
    """Answers ``POST /v1/score`` without FastAPI's router and endpoint wrapper (route matching,
    dependency solving, exit stacks); every other request goes on to the app unchanged.

    The checkout goes through what the route has around it, the same classes with the same
    settings: ``LatencyMiddleware``, ``BodyLimitMiddleware``, Starlette's ``ExceptionMiddleware``
    with the app's exception handlers, and the route's own ``answer_checkout``. Past the body
    limit the scope gets the route, as the router would set it there, so metrics name the same
    route template (and a 413 stays ``unmatched``). It is the outermost middleware of the app
    (inside Starlette's server-error handler, as the rest is) and is built on the first request,
    when every handler is registered.
    """

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.router = fastapi_app.router
        # The route object the router puts in the scope for this call (metrics read its path).
        self.route = next(r for r in score.router.routes if isinstance(r, APIRoute) and r.path == SCORE_PATH)
        # As Starlette's build_middleware_stack hands them to its ExceptionMiddleware.
        handlers = {k: v for k, v in fastapi_app.exception_handlers.items() if k not in (500, Exception)}
        self.answer = ExceptionMiddleware(_answer_checkout, handlers=handlers, debug=fastapi_app.debug)
        self.checkout = LatencyMiddleware(BodyLimitMiddleware(self._routed, limit=max_body_bytes), metrics=metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == SCORE_PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await self.checkout(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["router"] = self.router
        scope["endpoint"] = self.route.endpoint
        scope["path_params"] = {}
        scope["route"] = self.route
        await self.answer(scope, receive, send)


async def _answer_checkout(scope: Scope, receive: Receive, send: Send) -> None:
    response = await score.answer_checkout(Request(scope, receive, send))
    await response(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes, declared (``Content-Length``) or streamed,
    before any of it is parsed; smaller bodies are read here and handed on unchanged."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _too_large(self, send: Send) -> None:
        response = _error(413, "too_large", f"request body over {self.limit:,} bytes (RINGWATCH_MAX_BODY_BYTES)")
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(response.body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": response.body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _quote(value: object) -> str:
    """``repr(value)``, cut to a short prefix: an error never echoes a huge input back."""
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else f"{text[:_QUOTE_CHARS]}... ({len(text):,} characters)"


class LatencyMiddleware:
    """Observes every request's latency by route template (``/v1/accounts/{user_id}/risk``, not
    the id), method and status. Plain ASGI: a few microseconds per request. The CPU of an
    answered checkout call (``POST /v1/score``) goes to ``Stage.REQUEST`` (``api.stages``)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        cpu_started = time.thread_time_ns()
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
            if status == 200 and name == SCORE_PATH and scope["method"] == "POST":
                self.metrics.stages.add(Stage.REQUEST, time.thread_time_ns() - cpu_started)


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
        why = _quote(first.get("msg", "invalid"))[1:-1]
        message = f"{field}={_quote(first.get('input'))}: {why}" if field else f"invalid request: {why}"
        return _error(422, "invalid", message, field)

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConflictError)
        return _error(409, "conflict", str(exc), exc.field)

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
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StoreError, store_failed)
    app.add_exception_handler(ModelError, not_ready)
    app.add_exception_handler(AuthenticationError, unauthenticated)
    app.add_exception_handler(PermissionDeniedError, forbidden)
    app.add_exception_handler(RateLimitedError, rate_limited)
    app.add_exception_handler(RingwatchError, ringwatch_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
