"""``POST /v1/score``: a checkout event's risk, for the checkout service (scope ``score``)."""

from __future__ import annotations

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
    r = await service.score(body.to_event())
    return CheckoutResponse(
        txn_id=r.txn_id,
        user_id=r.user_id,
        score=r.score,
        tier=r.tier,
        decision=r.decision,
        reasons=list(r.reasons),
        ring_id=r.ring_id,
        model_version=r.model_version,
        mode=r.mode,  # type: ignore[arg-type]  # an artefact's mode is one of gnn.artefact.MODES
        account_score=r.account_score,
        transaction_score=r.transaction_score,
        new_entities=list(r.new_entities),
        scoring=r.scoring,  # type: ignore[arg-type]  # "inductive" or "identifiers"
    )
