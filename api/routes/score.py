"""``POST /v1/score``: a checkout event's risk, for the checkout service (scope ``score``)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from api.deps import ScoreKey, ServiceDep
from api.routes import API_PREFIX
from api.models import CheckoutRequest, CheckoutResponse, ErrorResponse

router = APIRouter(prefix=API_PREFIX, tags=["checkout"])


@router.post(
    "/score",
    response_model=CheckoutResponse,
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "the txn_id was received before with other content"},
        422: {"model": ErrorResponse},
        429: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
)
async def score(body: CheckoutRequest, service: ServiceDep, _: ScoreKey) -> CheckoutResponse:
    """Score one checkout event: its account as it stands with the event, and the payment.

    The user, device and IP may be new: the event's own edges attach them to the in-memory
    graph and GraphSAGE scores that neighbourhood. The event is journaled durably before the
    answer and reaches the graph store in the background."""
    return CheckoutResponse.from_result(await service.score(body.to_event(time.time())))
