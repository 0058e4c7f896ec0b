"""A small synthetic graph with planted rings, scored by the planted truth, for the notebook helpers'
tests (``ringwatch.analysis``).

Scores here are the planted truth (fraud 0.95, else 0.05) rather than a trained model, so the
rings are known and the tests need no training run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.rings import detect_rings
from graph.types import EntityScore, NodeType, Ring, ScoreWriteback, Snapshot, Tier
from ringwatch import pipeline
from ringwatch.analysis.data import load_or_generate
from ringwatch.settings import Settings

USERS = 600
SEED = 11


@dataclass(frozen=True)
class World:
    settings: Settings
    snapshot: Snapshot
    events: pd.DataFrame
    truth_users: pd.DataFrame
    truth_identifiers: pd.DataFrame
    scores: ScoreWriteback
    rings: tuple[Ring, ...]


def build_world(home: Path) -> World:
    """Generate and load the graph into a store under ``home``; score it with the planted truth."""
    settings = Settings(home=home)
    source = load_or_generate(settings, USERS, SEED)
    assert source.generated
    with pipeline.store_for(settings) as store:
        snapshot = store.snapshot()
    data = settings.data_dir
    truth_users = pd.read_csv(data / "truth_users.csv", dtype=str, keep_default_na=False)
    fraud = set(truth_users.loc[truth_users["is_fraud"] == "1", "user_id"])
    users = snapshot.nodes[NodeType.USER].tolist()
    account = np.array([0.95 if u in fraud else 0.05 for u in users])
    rings = detect_rings(snapshot, account, medium=0.5, high=0.9)
    scores = ScoreWriteback(
        model_version="truth",
        scored_at=0.0,
        accounts=tuple(EntityScore(u, float(s), Tier.HIGH if s > 0.5 else Tier.LOW) for u, s in zip(users, account, strict=True)),
        transactions=tuple(EntityScore(str(t), 0.5, Tier.MEDIUM) for t in snapshot.transactions.txn_id.tolist()),
        rings=tuple(rings),
    )
    return World(
        settings=settings,
        snapshot=snapshot,
        events=pd.read_csv(data / "events.csv", dtype=str, keep_default_na=False),
        truth_users=truth_users,
        truth_identifiers=pd.read_csv(data / "truth_identifiers.csv", dtype=str, keep_default_na=False),
        scores=scores,
        rings=tuple(rings),
    )


def random_scores(n: int = 2000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels (about 5 % fraud, scored higher) with many ties."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    s = np.clip(rng.normal(0.25, 0.12, n) + y * rng.normal(0.45, 0.2, n), 0, 1).round(3)
    return s, y


def planted_ring(world: World) -> tuple[Ring, set[str]]:
    """A detected ring that holds every member of one planted ring, and those members."""
    planted = world.truth_users[world.truth_users["ring_id"] != ""].groupby("ring_id")["user_id"].apply(set)
    for ring in world.rings:
        for members in planted:
            if members <= set(ring.members):
                return ring, members
    pytest.fail("no detected ring holds a whole planted ring")
