"""The API says which mode its scores were made in, read from the scoring artefact (issue 4):
``supervised`` (trained on fraud labels) or ``unsupervised`` (the graph anomaly score shipped
when labels are too few). Never guessed from the version name."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import ApiConfig, create_app
from api.index import ScoringIndex
from gnn.artefact.model_artefact import SUPERVISED, UNSUPERVISED, ModelArtefact
from gnn.core.anomaly import AnomalyReference
from gnn.core.features import Normalisation
from gnn.core.metrics import TrainMetrics
from gnn.core.model import ModelConfig
from gnn.core.thresholds import Thresholds
from graph.types import Snapshot
from tests.api.fixtures import MODEL_VERSION, FakeGraphStore, scores


def save_artefact(models_dir: Path, version: str, mode: str) -> None:
    """A minimal artefact of ``mode`` under ``version`` (nothing here scores with it)."""
    ModelArtefact(
        version=version,
        created_at=0.0,
        mode=mode,
        feature_names={},
        normalisation=Normalisation(means={}, stds={}),
        model_config=ModelConfig(in_dims={}, txn_dim=0) if mode == SUPERVISED else None,
        state_dict={},
        account_thresholds=Thresholds(medium=0.5, high=0.9),
        transaction_thresholds=Thresholds(medium=0.5, high=0.9),
        metrics=TrainMetrics(None, None, None, None, epochs_run=0, seconds=0.0, seed=7),
        device_trained_on="cpu",
        anomaly=AnomalyReference(quantiles={}) if mode == UNSUPERVISED else None,
    ).save(models_dir)


def _health_and_risk(store: FakeGraphStore, models_dir: Path | None) -> tuple[dict, dict]:
    with TestClient(create_app(ApiConfig(store_factory=lambda: store, models_dir=models_dir))) as client:
        return client.get("/healthz").json(), client.get("/v1/accounts/u03/risk").json()


@pytest.mark.parametrize("mode", [SUPERVISED, UNSUPERVISED])
def test_mode_comes_from_the_artefact_that_made_the_scores(store: FakeGraphStore, tmp_path: Path, mode: str) -> None:
    # The version "sage-test-1" looks like a GraphSAGE model: only the artefact can say otherwise.
    save_artefact(tmp_path, MODEL_VERSION, mode)
    health, risk = _health_and_risk(store, tmp_path)
    assert health["model_version"] == risk["model_version"] == MODEL_VERSION
    assert health["model_mode"] == mode
    assert risk["mode"] == mode
    assert risk["tier"] == "high"  # the rest of the answer is unchanged


def test_mode_is_read_for_the_scored_version_not_the_current_one(store: FakeGraphStore, tmp_path: Path) -> None:
    """A model trained after the last scoring run is CURRENT, but the served scores are older."""
    save_artefact(tmp_path, MODEL_VERSION, UNSUPERVISED)
    save_artefact(tmp_path, "20260101-000000-abcdef", SUPERVISED)  # now CURRENT, never scored
    health, risk = _health_and_risk(store, tmp_path)
    assert (health["model_mode"], risk["mode"]) == (UNSUPERVISED, UNSUPERVISED)


def test_mode_is_null_when_unknown_and_the_service_still_answers(store: FakeGraphStore, tmp_path: Path) -> None:
    save_artefact(tmp_path, "some-other-model", UNSUPERVISED)  # not the one that scored
    for models_dir in (None, tmp_path):
        health, risk = _health_and_risk(store, models_dir)
        assert health["scored"] is True and health["model_mode"] is None
        assert risk["mode"] is None and risk["score"] == pytest.approx(0.93)


def test_mode_is_null_until_scored(snapshot: Snapshot, tmp_path: Path) -> None:
    save_artefact(tmp_path, MODEL_VERSION, SUPERVISED)
    health, risk = _health_and_risk(FakeGraphStore(snapshot, None), tmp_path)
    assert health["scored"] is False and health["model_mode"] is None and risk["mode"] is None


def test_index_reports_the_mode_it_was_given(snapshot: Snapshot) -> None:
    assert ScoringIndex.build(snapshot, scores(), mode=UNSUPERVISED).account("u01").mode == UNSUPERVISED
    assert ScoringIndex.build(snapshot, scores()).account("u01").mode is None
    assert ScoringIndex.build(snapshot, None, mode=SUPERVISED).account("u01").mode is None
