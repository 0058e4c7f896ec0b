"""``POST /v1/score``: a checkout event's risk, for the checkout service (scope ``score``).

The checkout hot path: the route takes the bare ``Request``, checks the key, and reads and
validates the body itself (``read_checkout``), so FastAPI has no dependency or body field to
solve per call. The outcome is FastAPI's own: the same JSON parsing, content-type rule and
``RequestValidationError`` locations (``("body", field)``), so a bad request gets the same 422.
The request body is documented from ``CheckoutRequest`` (``openapi_extra``)."""

from __future__ import annotations

import email.message
import json
import time

import pydantic
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError

from api.deps import SECURITY_DOC, score_service
from api.models import CheckoutRequest, CheckoutResponse, ErrorResponse
from api.routes import API_PREFIX

router = APIRouter(prefix=API_PREFIX, tags=["checkout"])

_MISSING = object()
#: The request body in the OpenAPI schema (inline: a body FastAPI does not read is not collected
#: into the schema's components).
_BODY_DOC = {"required": True, "content": {"application/json": {"schema": CheckoutRequest.model_json_schema()}}}


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
    openapi_extra={"security": SECURITY_DOC, "requestBody": _BODY_DOC},
)
async def score(request: Request) -> Response:
    """Score one checkout event: its account as it stands with the event, and the payment.

    The user, device and IP may be new: the event's own edges attach them to the in-memory
    graph and GraphSAGE scores that neighbourhood. The event is journaled durably before the
    answer and reaches the graph store in the background."""
    return await answer_checkout(request)


async def answer_checkout(request: Request) -> Response:
    """The route's answer (``score``): shared with ``api.app.CheckoutFastPath``, which calls it
    without FastAPI's router for the same request.

    Raises:
        the key check's, ``read_checkout``'s and the service's errors, for the app's handlers.
    """
    service = await score_service(request)
    body = await read_checkout(request)
    answer = CheckoutResponse.from_result(await service.score(body.to_event(time.time())))
    # Serialised here: returned as a model, FastAPI would validate it a second time against
    # ``response_model`` (kept for the schema) before encoding it.
    return Response(answer.model_dump_json(), media_type="application/json")


async def read_checkout(request: Request) -> CheckoutRequest:
    """The request body as a ``CheckoutRequest``, read as FastAPI reads a body parameter (strict
    content type, its default): JSON when the content type says so, else the raw bytes (which fail
    validation).

    Raises:
        RequestValidationError: the body is missing, not JSON, or not a valid checkout event
            (locations ``("body", ...)``, as FastAPI gives them).
        HTTPException: 400, the body is not UTF-8 text.
    """
    raw = await request.body()
    content: object = _MISSING  # an empty body is a missing one
    if raw:
        content = raw
        kind = request.headers.get("content-type")
        if kind == "application/json" or (kind is not None and _is_json(kind)):
            try:
                content = json.loads(raw)
            except json.JSONDecodeError as e:
                raise RequestValidationError([{"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error",
                                               "input": {}, "ctx": {"error": e.msg}}], body=e.doc) from e  # fmt: skip
            except ValueError as e:  # not UTF-8 text
                raise HTTPException(status_code=400, detail="There was an error parsing the body") from e
    if content is _MISSING:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        return CheckoutRequest.model_validate(content, from_attributes=True)  # as FastAPI validates a body
    except pydantic.ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()], body=content) from None


def _is_json(content_type: str) -> bool:
    """FastAPI's rule: ``application/json`` or ``application/*+json``, parameters allowed."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
