"""Dependencies of the routes, as ``Annotated[..., Depends(...)]`` aliases (one place): the
service and the API-key check per scope; ``POST /v1/score`` calls ``score_service`` itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.security import KEY_HEADER, ApiKey, KeyRing, RateLimiter, Scope
from api.service import RiskService

#: Document the two ways to send a key in the OpenAPI schema; the check itself is ``_authorise``.
_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="an API key with the route's scope")
_bearer = HTTPBearer(auto_error=False, description="the same API key as `Authorization: Bearer <key>`")
KeyHeader = Annotated[str | None, Security(_key_header)]
BearerHeader = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]

#: Who a request is when the service runs without keys (``ringwatch serve --no-auth``).
ANONYMOUS = ApiKey(name="anonymous", scopes=frozenset(Scope), digest=b"")


async def get_service(request: Request) -> RiskService:
    """The service the lifespan put on ``app.state.service``."""
    return request.app.state.service


ServiceDep = Annotated[RiskService, Depends(get_service)]


def _authorise(request: Request, header: str | None, bearer: HTTPAuthorizationCredentials | None, scope: Scope) -> ApiKey:
    keys: KeyRing | None = request.app.state.keys
    if keys is None:
        return ANONYMOUS
    presented = header or (bearer.credentials if bearer is not None else None)
    key = keys.authorise(presented, scope)
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        limiter.take(key.name)
    request.state.key_name = key.name
    return key


async def _investigate_key(request: Request, header: KeyHeader, bearer: BearerHeader) -> ApiKey:
    return _authorise(request, header, bearer, Scope.INVESTIGATE)


async def _label_key(request: Request, header: KeyHeader, bearer: BearerHeader) -> ApiKey:
    return _authorise(request, header, bearer, Scope.LABEL)


async def score_service(request: Request) -> RiskService:
    """The service, for a caller whose key has the ``score`` scope. Called by the checkout route
    itself, not as a dependency: the key schemes are called directly (same parsing as the
    ``Security`` ones) and the route documents them (``SECURITY_DOC``).

    Raises:
        AuthenticationError, PermissionDeniedError, RateLimitedError: as ``KeyRing.authorise``
            and ``RateLimiter.take``.
    """
    header = await _key_header(request)
    bearer = await _bearer(request)
    _authorise(request, header, bearer, Scope.SCORE)
    return request.app.state.service


#: The OpenAPI ``security`` of a route that checks keys without ``Security`` dependencies
#: (the same entry FastAPI writes for ``KeyHeader`` and ``BearerHeader``).
SECURITY_DOC: list[dict[str, list[str]]] = [{_key_header.scheme_name: []}, {_bearer.scheme_name: []}]

InvestigateKey = Annotated[ApiKey, Depends(_investigate_key)]
LabelKey = Annotated[ApiKey, Depends(_label_key)]
