"""Account routes (scope ``investigate``): one account's risk, and its neighbourhood."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import InvestigateKey, ServiceDep
from api.routes import API_PREFIX
from api.models import AccountRiskResponse, BrowserQuery, ErrorResponse, SubgraphResponse
from graph.investigation import InvestigationQuery, browser_snippet, load_queries
from graph.store import MAX_HOPS
from graph.types import Tier
from ingestion.validate import MAX_ID_LENGTH

router = APIRouter(prefix=f"{API_PREFIX}/accounts", tags=["accounts"])

#: Largest ``limit`` a subgraph request may ask for.
MAX_SUBGRAPH_LIMIT = 5000
_ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
           422: {"model": ErrorResponse}, 429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}  # fmt: skip
UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, description="the account's user_id")]


@router.get("/{user_id}/risk", response_model=AccountRiskResponse, responses=_ERRORS)
async def account_risk(user_id: UserId, service: ServiceDep, _: InvestigateKey) -> AccountRiskResponse:
    """Score, tier, decision, ring and the reasons behind them for one account. An account
    with events since the last snapshot (or new since) is scored on its neighbourhood as it
    stands now."""
    return AccountRiskResponse.from_view(service.account(user_id))


@router.get("/{user_id}/subgraph", response_model=SubgraphResponse, responses=_ERRORS)
async def account_subgraph(
    user_id: UserId,
    service: ServiceDep,
    _: InvestigateKey,
    hops: Annotated[int, Query(ge=1, le=MAX_HOPS, description="how far to walk, 1..3")] = 1,
    min_tier: Annotated[Tier | None, Query(description="leave out other accounts below this tier")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SUBGRAPH_LIMIT, description="most nodes returned")] = 500,
) -> SubgraphResponse:
    """Accounts, devices, IPs, merchants and rings within ``hops`` of one account, with their
    scores and tiers, ready to draw; ``browser`` opens the same subgraph in Neo4j Browser (which
    shows the store, so events not loaded from the journal yet appear here first)."""
    sub = service.subgraph(user_id, hops, limit, min_tier=min_tier)
    tiers = [t.value for t in Tier if min_tier is None or t.rank >= min_tier.rank]
    query = _subgraph_query()
    params: dict[str, str | int | list[str]] = {"user_id": user_id, "hops": hops, "tiers": tiers, "limit": limit}
    response = SubgraphResponse.from_subgraph(sub)
    response.browser = BrowserQuery(cypher=query.cypher, params=params, browser=browser_snippet(query, params))
    return response


@cache
def _subgraph_query() -> InvestigationQuery:
    return load_queries()["account_subgraph"]
