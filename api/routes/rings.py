"""Ring routes (scope ``investigate``): the served rings, filtered and paged, and one ring by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import InvestigateKey, ServiceDep
from api.routes import API_PREFIX
from api.models import ErrorResponse, RingListResponse, RingResponse
from graph.types import Tier

router = APIRouter(prefix=f"{API_PREFIX}/rings", tags=["rings"])

#: Largest page a ring listing may ask for.
MAX_RING_PAGE = 1000
_ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
           429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}  # fmt: skip


@router.get("", response_model=RingListResponse, responses=_ERRORS)
async def list_rings(
    service: ServiceDep,
    _: InvestigateKey,
    min_tier: Annotated[Tier | None, Query(description="only rings at this tier or above")] = None,
    min_size: Annotated[int, Query(ge=0, le=1_000_000, description="only rings with at least this many members")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_RING_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RingListResponse:
    """Rings, highest score first; ``total`` counts every match before paging."""
    rings = service.view().index.rings(min_tier=min_tier, min_size=min_size)
    page = rings[offset : offset + limit]
    return RingListResponse(total=len(rings), items=[RingResponse.from_ring(r) for r in page])


@router.get("/{ring_id}", response_model=RingResponse, responses={**_ERRORS, 404: {"model": ErrorResponse}})
async def get_ring(
    ring_id: Annotated[str, Path(min_length=1, max_length=128)], service: ServiceDep, _: InvestigateKey
) -> RingResponse:
    return RingResponse.from_ring(service.view().index.ring(ring_id))
