"""Service routes without a key: ``/healthz`` (liveness and what is served), ``/readyz``
(model loaded, snapshot age, store reachable: degraded when not) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.models import HealthResponse, ReadinessResponse, StoreHealthResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz(service: ServiceDep) -> HealthResponse:
    model = service.view()
    index = model.index
    return HealthResponse(
        status="ok",
        store=service.store_backend,
        scored=index.scored,
        model_version=index.model_version,
        model_mode=index.mode,  # type: ignore[arg-type]  # from the artefact (gnn.artefact.model_artefact.MODES)
        artifact_version=model.artifact_version,
        users=index.num_users,
        transactions=index.num_transactions,
        rings=index.num_rings,
        snapshot_taken_at=index.snapshot_taken_at,
        scored_at=index.scored_at,
    )


@router.get("/readyz", response_model=ReadinessResponse, responses={503: {"model": ReadinessResponse}})
async def readyz(service: ServiceDep) -> JSONResponse:
    """200 when ready or degraded (still answering from memory), 503 when no model is loaded."""
    r = service.readiness()
    body = ReadinessResponse(
        status=r.status,  # type: ignore[arg-type]  # ready | degraded | not_ready
        model_loaded=r.model_loaded,
        model_version=r.model_version,
        mode=r.mode,  # type: ignore[arg-type]  # from the artefact (gnn.artefact.model_artefact.MODES)
        artifact_version=r.artifact_version,
        inductive=r.inductive,
        snapshot_age_seconds=r.snapshot_age_seconds,
        store=StoreHealthResponse(reachable=r.store.reachable, checked_at=r.store.checked_at, error=r.store.error),
        journal_depth=r.journal_depth,
        journal_error=r.journal_error,
        events_since_snapshot=r.events_since_snapshot,
        reasons=list(r.reasons),
    )
    return JSONResponse(status_code=503 if r.status == "not_ready" else 200, content=body.model_dump())


@router.get("/ping")
async def ping() -> dict[str, bool]:
    """A bare endpoint (no key, no model, no I/O): the load benchmark's ceiling for this server."""
    return {"ok": True}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text: latency per route, decisions by tier, journal depth, alerts, refusals."""
    if service.journal is not None:
        service.metrics.journal_depth.set(service.journal.status().depth)
    body, content_type = service.metrics.render()
    return Response(content=body, media_type=content_type)
