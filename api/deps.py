"""Dependencies of the routes, as ``Annotated[..., Depends(...)]`` aliases (one place)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.index import ScoringIndex
from graph.store import GraphStore


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What the lifespan opens and the routes read: the store (off the hot path) and the index."""

    store: GraphStore
    index: ScoringIndex
    artifact_version: str | None = None


def get_service(request: Request) -> ServiceState:
    """The state the lifespan put on ``app.state.service``."""
    return request.app.state.service


def get_index(service: Annotated[ServiceState, Depends(get_service)]) -> ScoringIndex:
    return service.index


ServiceDep = Annotated[ServiceState, Depends(get_service)]
IndexDep = Annotated[ScoringIndex, Depends(get_index)]
