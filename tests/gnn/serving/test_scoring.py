from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnn.artefact.model_artefact import ModelArtefact
from gnn.serving.scoring import score_snapshot, to_writeback
from graph.errors import ModelError
from graph.types import NodeType, Ring, Tier
from tests.gnn.synth import SynthData, generate


def test_scores_are_aligned_probabilities(trained: ModelArtefact, synth: SynthData) -> None:
    snap = synth.snapshot
    r = score_snapshot(trained, snap)
    assert r.account_scores.shape == (snap.num_nodes(NodeType.USER),)
    assert r.txn_scores.shape == (len(snap.transactions),)
    assert len(r.account_tiers) == r.account_scores.shape[0] and len(r.txn_tiers) == r.txn_scores.shape[0]
    assert all(isinstance(t, Tier) for t in r.account_tiers[:5])
    for s in (r.account_scores, r.txn_scores):
        assert ((0.0 <= s) & (s <= 1.0)).all()
    assert r.embeddings.shape == (snap.num_nodes(NodeType.USER), trained.model_config.hidden)  # type: ignore[union-attr]
    assert r.mode == "supervised" and r.model_version == trained.version


def test_writeback(trained: ModelArtefact, synth: SynthData) -> None:
    snap = synth.snapshot
    r = score_snapshot(trained, snap)
    ring = Ring("ring-x", ("f0000",), ("farm-0-0",), (), (), 0.9, Tier.HIGH)
    wb = to_writeback(r, snap, [ring], scored_at=123.0)
    assert wb.model_version == trained.version and wb.scored_at == 123.0 and wb.rings == (ring,)
    assert wb.accounts[0].key == snap.nodes[NodeType.USER][0]
    assert wb.accounts[0].score == pytest.approx(r.account_scores[0])
    assert wb.transactions[-1].key == snap.transactions.txn_id[-1]
    other = generate(n_legit=50, n_rings=1, seed=5).snapshot
    with pytest.raises(ModelError, match="do not match"):
        to_writeback(r, other, [], scored_at=0.0)


def test_scores_a_different_graph_inductively(trained: ModelArtefact) -> None:
    other = generate(n_legit=150, n_rings=3, seed=99)
    r = score_snapshot(trained, other.snapshot)
    assert r.account_scores[other.user_is_fraud].mean() > r.account_scores[~other.user_is_fraud].mean()


def test_feature_mismatch_is_a_model_error(trained: ModelArtefact, synth: SynthData) -> None:
    names = dict(trained.feature_names)
    names["user"] = names["user"][:-1]
    stale = dataclasses.replace(trained, feature_names=names)
    with pytest.raises(ModelError, match="retrain"):
        score_snapshot(stale, synth.snapshot)


def test_unsupervised_embeddings_are_components(synth: SynthData) -> None:
    from gnn.training.train import TrainConfig, train

    art = train(synth.snapshot, TrainConfig(device="cpu", min_fraud_labels=10_000))
    r = score_snapshot(art, synth.snapshot)
    assert r.embeddings.shape == (synth.snapshot.num_nodes(NodeType.USER), 4)
    assert np.isfinite(r.embeddings).all()
