"""``POST /v1/score``: a checkout event's risk, for the checkout service (scope ``score``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from api.deps import SECURITY_DOC, ScoreService
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
    openapi_extra={"security": SECURITY_DOC},
)
async def score(body: CheckoutRequest, service: ScoreService) -> Response:
    """Score one checkout event: its account as it stands with the event, and the payment.

    The user, device and IP may be new: the event's own edges attach them to the in-memory
    graph and GraphSAGE scores that neighbourhood. The event is journaled durably before the
    answer and reaches the graph store in the background."""
    answer = CheckoutResponse.from_result(await service.score(body.to_event(time.time())))
    # Serialised here: returned as a model, FastAPI would validate it a second time against
    # ``response_model`` (kept for the schema) before encoding it.
    return Response(answer.model_dump_json(), media_type="application/json")
