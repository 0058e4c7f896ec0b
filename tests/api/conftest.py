"""Fixtures for the API tests: the hand-made graph, a fake store and a client with lifespan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import ApiConfig, create_app
from api.index import ScoringIndex
from graph.types import Snapshot
from tests.api.fixtures import FakeGraphStore, T0, events, labels, make_snapshot, scores


@pytest.fixture
def snapshot() -> Snapshot:
    return make_snapshot(events(), labels(), taken_at=T0 + 60 * 86400.0)


@pytest.fixture
def index(snapshot: Snapshot) -> ScoringIndex:
    return ScoringIndex.build(snapshot, scores())


@pytest.fixture
def store(snapshot: Snapshot) -> FakeGraphStore:
    return FakeGraphStore(snapshot, scores())


@pytest.fixture
def client(store: FakeGraphStore) -> Iterator[TestClient]:
    with TestClient(create_app(ApiConfig(store_factory=lambda: store))) as c:
        yield c
