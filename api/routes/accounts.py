"""Account routes: risk of one account and its neighbourhood, both served from memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import IndexDep
from api.models import AccountRiskResponse, ErrorResponse, SubgraphResponse
from graph.store import MAX_HOPS

router = APIRouter(prefix="/accounts", tags=["accounts"])

#: Largest ``limit`` a subgraph request may ask for.
MAX_SUBGRAPH_LIMIT = 5000


@router.get(
    "/{user_id}/risk",
    response_model=AccountRiskResponse,
    responses={404: {"model": ErrorResponse}},
)
async def account_risk(user_id: str, index: IndexDep) -> AccountRiskResponse:
    """Score, tier, decision, ring and the reasons behind them for one account."""
    return AccountRiskResponse.from_view(index.account(user_id))


@router.get(
    "/{user_id}/subgraph",
    response_model=SubgraphResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def account_subgraph(
    user_id: str,
    index: IndexDep,
    hops: Annotated[int, Query(ge=1, le=MAX_HOPS, description="how far to walk, 1..3")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_SUBGRAPH_LIMIT, description="most nodes returned")] = 500,
) -> SubgraphResponse:
    """Accounts, devices, IPs, merchants and rings within ``hops`` of one account."""
    return SubgraphResponse.from_subgraph(index.subgraph(user_id, hops, limit))
