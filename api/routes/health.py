"""``GET /healthz``: is the service up, what does it serve, and was the store ever scored."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep
from api.models import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz(service: ServiceDep) -> HealthResponse:
    index = service.index
    return HealthResponse(
        status="ok",
        store=service.store.backend,
        scored=index.scored,
        model_version=index.model_version,
        model_mode=index.mode,  # type: ignore[arg-type]  # from the artefact (gnn.artefact.MODES)
        artifact_version=service.artifact_version,
        users=index.num_users,
        transactions=index.num_transactions,
        rings=index.num_rings,
        snapshot_taken_at=index.snapshot_taken_at,
        scored_at=index.scored_at,
    )
