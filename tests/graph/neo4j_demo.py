"""A small scored demo graph in the session's test Neo4j, shared by the investigation and Browser
tests.

``neo4j_demo`` runs the real main job once per test session (``ringwatch.pipeline.run_demo``:
synthetic data with planted rings → Neo4jGraphStore → GraphSAGE → scores and rings written back)
and remembers its home folder. Other Neo4j tests empty the database between tests, so every call
first checks, through the ``GraphStore`` interface, that the database still holds this demo's last
scoring run; if not it loads the same events and labels again and re-scores them with the model
already trained (no second training run).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from gnn.artefact.model_artefact import GRAPHSAGE
from gnn.training.train import TrainConfig
from graph.neo4j_store import Neo4jGraphStore
from graph.types import Ring, Snapshot
from ringwatch import pipeline
from ringwatch.settings import Settings

USERS = 2000  # enough for every ring kind to be planted; small enough to load and train quickly
SEED = 7
# Fewer epochs than the CLI default: the queries are under test here, not the model's last point of AUPRC.
TRAIN = TrainConfig(seed=SEED, epochs=30, patience=8)


@dataclass(frozen=True, slots=True)
class Neo4jDemo:
    """What the investigation tests compare the queries with."""

    settings: Settings
    model_version: str
    scored_at: float
    rings: tuple[Ring, ...]  # as the pipeline wrote them, highest score first
    snapshot: Snapshot  # the graph as stored (read back from Neo4j)
    truth_users: pd.DataFrame  # user_id, is_fraud, ring_id, ring_kind
    truth_identifiers: pd.DataFrame  # kind, identifier, role


_demo: list[Neo4jDemo] = []


def neo4j_demo(server: object, tmp_path_factory: pytest.TempPathFactory) -> Neo4jDemo:
    """The demo graph, loaded into ``server`` (a ``tests.conftest.Neo4jServer``) if it is not there."""
    if not _demo:
        home = tmp_path_factory.mktemp("neo4j-demo")
        settings = Settings(
            home=home,
            neo4j_uri=server.uri,  # type: ignore[attr-defined]
            neo4j_user=server.user,  # type: ignore[attr-defined]
            neo4j_password=server.password,  # type: ignore[attr-defined]
        )
        with pipeline.store_for(settings) as store:
            assert isinstance(store, Neo4jGraphStore)
            store.delete_all()
        # GraphSAGE ships, so that the API tests on this graph score unseen events inductively.
        outcome = pipeline.run_demo(settings, users=USERS, seed=SEED, train_config=TRAIN, candidates=(GRAPHSAGE,))
        _demo.append(_describe(settings, outcome.train.artefact.version, outcome.score))
        return _demo[0]

    demo = _demo[0]
    with pipeline.store_for(demo.settings) as store:
        last = store.last_scores()
        if last is not None and last.model_version == demo.model_version and last.scored_at == demo.scored_at:
            return demo
        assert isinstance(store, Neo4jGraphStore)
        store.delete_all()
    data = demo.settings.data_dir
    pipeline.step_ingest(demo.settings, [data / "events.csv"])
    pipeline.step_label(demo.settings, data / "labels.csv")
    scored = pipeline.step_score(demo.settings, model_version=demo.model_version)
    _demo[0] = _describe(demo.settings, demo.model_version, scored)
    return _demo[0]


def _describe(settings: Settings, model_version: str, scored: pipeline.ScoreOutcome) -> Neo4jDemo:
    with pipeline.store_for(settings) as store:
        last = store.last_scores()
    assert last is not None, "the demo wrote no scores"
    data = settings.data_dir
    return Neo4jDemo(
        settings=settings,
        model_version=model_version,
        scored_at=last.scored_at,
        rings=tuple(scored.rings),
        snapshot=scored.snapshot,
        truth_users=pd.read_csv(data / "truth_users.csv", dtype=str, keep_default_na=False),
        truth_identifiers=pd.read_csv(data / "truth_identifiers.csv", dtype=str, keep_default_na=False),
    )

