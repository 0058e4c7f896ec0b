"""Training on a hub-shaped graph (three merchants carry every payment, most users labelled):
the shape of real signup-and-purchase data, unlike the demo generator's."""

from __future__ import annotations

import pytest

from gnn.training.train import TrainConfig
from graph.types import Tier
from ringwatch import pipeline
from ringwatch.settings import Settings
from synthetic.hub_shaped import HubConfig, generate_hub

pytestmark = pytest.mark.slow

CAPACITY = 0.03  # below the hub's fraud share (9 %), so the capacity, not the labels, sizes the queue


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[pipeline.TrainOutcome, pipeline.ScoreOutcome]:
    home = tmp_path_factory.mktemp("hub")
    settings = Settings.load(home)
    settings.ensure_dirs()
    data = generate_hub(HubConfig(users=3000, seed=3), home / "data")
    assert pipeline.step_ingest(settings, [data.events]).loaded == data.n_events
    pipeline.step_label(settings, data.labels)
    out = pipeline.step_train(settings, TrainConfig(seed=3, epochs=20, review_capacity=CAPACITY))
    return out, pipeline.step_score(settings)


def test_tiers_respect_the_review_capacity_on_a_hub_graph(
    trained: tuple[pipeline.TrainOutcome, pipeline.ScoreOutcome],
) -> None:
    out, scored = trained
    tiers = scored.result.account_tiers
    queue = out.artefact.metrics.account_queue
    assert queue is not None
    # The queue training prints is the one scoring gives.
    assert queue.high == tiers.count(Tier.HIGH) and queue.medium == tiers.count(Tier.MEDIUM)
    assert queue.high + queue.medium <= CAPACITY * len(tiers)
    # More fraud than capacity: the queue is filled up to it, not left empty.
    assert queue.high + queue.medium >= 0.8 * CAPACITY * len(tiers)


def test_training_reports_where_the_time_went(trained: tuple[pipeline.TrainOutcome, pipeline.ScoreOutcome]) -> None:
    out, _ = trained
    names = [s.stage for s in out.stages]
    assert names[0] == "snapshot" and names[-1] == "save"
    for stage in ("features", "tree inputs", "trees_known_fraud trees", "trees_aggregated trees", "hybrid trees"):
        assert stage in names
    assert any(n.startswith("graphsage ") and n.endswith(" epochs") for n in names)
    assert all(s.seconds >= 0 for s in out.stages)
