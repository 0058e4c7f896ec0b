"""``POST /v1/labels``: investigators' verdicts, stored for the next training run (scope ``label``)."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import LabelKey, ServiceDep
from api.routes import API_PREFIX
from api.models import ErrorResponse, LabelsRequest, LabelsResponse

router = APIRouter(prefix=API_PREFIX, tags=["investigation"])


@router.post(
    "/labels",
    response_model=LabelsResponse,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
               429: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},  # fmt: skip
)
async def post_labels(body: LabelsRequest, service: ServiceDep, _: LabelKey) -> LabelsResponse:
    """Verdicts (fraud or legit, per account or transaction). The latest verdict per entity
    wins, so an investigator's "legit" clears an older chargeback. Written to the store now
    (503 when it is unreachable: nothing was stored, send again); the next `ringwatch train`
    reads them."""
    now = time.time()
    labels = body.to_labels(now)
    stored = await run_in_threadpool(service.add_labels, labels)  # off the loop: the store may be slow
    return LabelsResponse(received=len(labels), stored=stored)
