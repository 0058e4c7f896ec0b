"""Ring routes: the rings of the last scoring run, filtered and paged, and one ring by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import IndexDep
from api.models import ErrorResponse, RingListResponse, RingResponse
from graph.types import Tier

router = APIRouter(prefix="/rings", tags=["rings"])

#: Largest page a ring listing may ask for.
MAX_RING_PAGE = 1000


@router.get("", response_model=RingListResponse, responses={422: {"model": ErrorResponse}})
async def list_rings(
    index: IndexDep,
    min_tier: Annotated[Tier | None, Query(description="only rings at this tier or above")] = None,
    min_size: Annotated[int, Query(ge=0, description="only rings with at least this many members")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_RING_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RingListResponse:
    """Rings, highest score first; ``total`` counts every match before paging."""
    rings = index.rings(min_tier=min_tier, min_size=min_size)
    page = rings[offset : offset + limit]
    return RingListResponse(total=len(rings), items=[RingResponse.from_ring(r) for r in page])


@router.get("/{ring_id}", response_model=RingResponse, responses={404: {"model": ErrorResponse}})
async def get_ring(ring_id: str, index: IndexDep) -> RingResponse:
    return RingResponse.from_ring(index.ring(ring_id))
