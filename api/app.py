"""The FastAPI application: configuration, lifespan and the mapping of domain errors to HTTP.

``create_app(ApiConfig(store_factory=...))`` builds the app; nothing is opened until the
lifespan starts. The lifespan opens the store through the factory it is given (the store is
passed in, never created here), takes one snapshot and the last scores, builds the in-memory
``ScoringIndex`` and closes the store at shutdown. Requests never touch the store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import ServiceState
from api.index import ScoringIndex
from api.models import ErrorBody, ErrorResponse
from api.routes import accounts, health, rings
from gnn.artefact import ModelArtefact
from graph.errors import ConfigError, ModelError, NotFoundError, RingwatchError, StoreError, ValidationError
from graph.store import GraphStore

log = logging.getLogger(__name__)

#: File in ``models_dir`` whose first line names the model artefact in use.
CURRENT_FILE = "CURRENT"


@dataclass(frozen=True)
class ApiConfig:
    """How the service starts.

    Attributes:
        store_factory: opens the graph store; called once by the lifespan, which closes it.
        models_dir: where model artefacts live; ``models_dir/CURRENT`` is read to report which
            artefact is current, and the artefact that made the served scores to report its
            ``mode``. None: neither is reported.
    """

    store_factory: Callable[[], GraphStore]
    models_dir: Path | None = None


def artefact_mode(models_dir: Path | None, model_version: str | None) -> str | None:
    """The ``mode`` recorded in the artefact that made the served scores
    (``models_dir/model-<model_version>.pt``): ``"supervised"`` or ``"unsupervised"`` (the graph
    anomaly score used when labels are too few). None when nothing was scored, no ``models_dir``
    is configured, or that artefact is not there (the service still starts; the mode is unknown).
    """
    if models_dir is None or model_version is None:
        return None
    try:
        return ModelArtefact.load(Path(models_dir), model_version).mode
    except (ModelError, ValidationError) as e:
        log.warning("mode of model %s unknown: %s", model_version, e)
        return None


def read_artifact_version(models_dir: Path | None) -> str | None:
    """First line of ``models_dir/CURRENT``, or None when there is no such file.

    Raises:
        ConfigError: the file exists but cannot be read.
    """
    if models_dir is None:
        return None
    path = Path(models_dir) / CURRENT_FILE
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"models_dir={str(models_dir)!r}: cannot read {CURRENT_FILE}: {e}") from e
    first = lines[0].strip() if lines else ""
    return first or None


def create_app(config: ApiConfig) -> FastAPI:
    """Build the app; the store is opened only when the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = config.store_factory()
        try:
            snapshot = store.snapshot()
            scores = store.last_scores()
            version = scores.model_version if scores is not None else None
            index = ScoringIndex.build(snapshot, scores, mode=artefact_mode(config.models_dir, version))
            app.state.service = ServiceState(
                store=store,
                index=index,
                artifact_version=read_artifact_version(config.models_dir),
            )
            yield
        finally:
            store.close()

    app = FastAPI(
        title="ringwatch",
        summary="Fraud-ring risk for accounts, served from an in-memory graph index.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(rings.router)
    _register_error_handlers(app)
    return app


# -- errors: one shape, {"error": {"code", "message", "field"}} ---------------------------------


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, field=field))
    return JSONResponse(status_code=status, content=body.model_dump())


def _register_error_handlers(app: FastAPI) -> None:
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

    async def ringwatch_failed(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal", str(exc))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ValidationError, invalid)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(StoreError, store_failed)
    app.add_exception_handler(RingwatchError, ringwatch_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
