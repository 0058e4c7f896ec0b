"""Batch scoring: every account and transaction of a snapshot, with tiers, from an artefact.

Scoring is inductive: features and edges come from the snapshot being scored, so accounts,
devices and IPs the model never saw get scores from their neighbourhood (a new account on a
ring's device inherits the ring's risk).

The artefact's ``scorer`` decides what makes the scores: GraphSAGE itself, or a tree family
(``gnn.core.trees``) that won the selection, fed with the columns it was fitted on (the hybrid's
include GraphSAGE's embeddings, so the network runs in every supervised mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gnn.artefact.model_artefact import GRAPHSAGE, SUPERVISED, ModelArtefact
from gnn.core.anomaly import anomaly_scores
from gnn.core.device import pick_device
from gnn.core.features import build_features
from gnn.core.model import RingSAGE, build_graph_input, known_inputs, predict
from gnn.core.thresholds import assign_tiers
from gnn.core.tree_features import TREES_OWN, TreeInputs
from graph.errors import ModelError
from graph.types import EntityScore, NodeType, Ring, ScoreWriteback, Snapshot, Tier


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Scores of one snapshot.

    ``account_scores`` float64 [N_user] aligned with ``snapshot.nodes[NodeType.USER]``;
    ``txn_scores`` float64 [T] aligned with ``snapshot.transactions`` rows; tiers as lists of
    ``Tier`` aligned the same way. ``embeddings`` float32 [N_user, D]: the final GraphSAGE user
    embedding (D = hidden) in supervised mode, the anomaly components (D = 4, see
    ``gnn.core.anomaly.USER_WEIGHTS``) in unsupervised mode, whatever the ``scorer``. ``mode`` is the
    artefact's mode; ``scorer`` what made the scores (``ModelArtefact.shipped``: ``"graphsage"``,
    a tree family, or ``"anomaly"``).
    """

    account_scores: np.ndarray
    account_tiers: list[Tier]
    txn_scores: np.ndarray
    txn_tiers: list[Tier]
    embeddings: np.ndarray
    mode: str
    model_version: str
    scorer: str = GRAPHSAGE


def load_model(artefact: ModelArtefact, device: str | None = None) -> RingSAGE:
    """Rebuild the network of a supervised artefact and load its weights (eval mode).

    Raises:
        ModelError: the artefact is unsupervised, or its weights do not fit the network.
    """
    if artefact.mode != SUPERVISED or artefact.model_config is None:
        raise ModelError(f"artefact {artefact.version} is {artefact.mode!r}: it has no GraphSAGE weights")
    model = RingSAGE(artefact.model_config)
    try:
        model.load_state_dict(artefact.state_dict)
    except RuntimeError as e:
        raise ModelError(f"artefact {artefact.version}: weights do not fit the model ({e})") from e
    return model.to(pick_device(device)).eval()


def score_snapshot(artefact: ModelArtefact, snapshot: Snapshot, *, device: str | None = None) -> ScoreResult:
    """Score every account and transaction of ``snapshot`` with ``artefact``.

    Raises:
        ModelError: the artefact's features differ from the ones this code computes (an
            artefact from another ringwatch version: retrain), or its weights do not load.
    """
    features = build_features(snapshot)
    if {k: tuple(v) for k, v in artefact.feature_names.items()} != features.names:
        raise ModelError(
            f"artefact {artefact.version} was trained on other features "
            f"({ {k: len(v) for k, v in artefact.feature_names.items()} } columns); retrain the model (`ringwatch train`)"
        )
    if artefact.mode == SUPERVISED:
        model = load_model(artefact, device)
        known = known_inputs(model.config, snapshot)
        g = build_graph_input(snapshot, artefact.normalisation.apply(features), known).to(next(model.parameters()).device)
        # Layer-wise and chunked under inference mode (``gnn.core.model.predict``): this holds a few
        # [nodes, hidden] tables, not every activation, so large graphs score too.
        pred = predict(model, g)
        del g  # the standardised copy of the features: the trees below read the raw ones
        account, txn, emb = pred.account, pred.txn, pred.embeddings
        if artefact.scorer != GRAPHSAGE:
            if artefact.trees is None:
                raise ModelError(f"artefact {artefact.version} scores with {artefact.scorer!r} but holds no trees")
            delay = None if artefact.model_config is None else artefact.model_config.label_delay
            inputs = TreeInputs.build(snapshot, features, aggregates=artefact.trees.family != TREES_OWN, label_delay=delay)
            account, txn = artefact.trees.predict(inputs, emb.astype(np.float64))
    else:
        if artefact.anomaly is None:
            raise ModelError(f"artefact {artefact.version} is unsupervised but has no anomaly reference")
        scores = anomaly_scores(snapshot, features, artefact.anomaly)
        account, txn, emb = scores.account, scores.txn, scores.components
    return ScoreResult(
        account_scores=account,
        account_tiers=assign_tiers(account, artefact.account_thresholds),
        txn_scores=txn,
        txn_tiers=assign_tiers(txn, artefact.transaction_thresholds),
        embeddings=emb,
        mode=artefact.mode,
        model_version=artefact.version,
        scorer=artefact.shipped,
    )


def to_writeback(result: ScoreResult, snapshot: Snapshot, rings: Sequence[Ring], scored_at: float) -> ScoreWriteback:
    """Pair the scores with their keys for ``GraphStore.write_scores``.

    Raises:
        ModelError: ``result`` is not aligned with ``snapshot`` (scored on another snapshot).
    """
    users = snapshot.nodes[NodeType.USER]
    txn_ids = snapshot.transactions.txn_id
    if result.account_scores.shape[0] != users.shape[0] or result.txn_scores.shape[0] != txn_ids.shape[0]:
        raise ModelError(
            f"scores ({result.account_scores.shape[0]} accounts, {result.txn_scores.shape[0]} transactions) "
            f"do not match the snapshot ({users.shape[0]} accounts, {txn_ids.shape[0]} transactions)"
        )
    accounts = tuple(
        EntityScore(key=str(k), score=float(s), tier=t)
        for k, s, t in zip(users.tolist(), result.account_scores.tolist(), result.account_tiers, strict=True)
    )
    transactions = tuple(
        EntityScore(key=str(k), score=float(s), tier=t)
        for k, s, t in zip(txn_ids.tolist(), result.txn_scores.tolist(), result.txn_tiers, strict=True)
    )
    return ScoreWriteback(
        model_version=result.model_version,
        scored_at=float(scored_at),
        accounts=accounts,
        transactions=transactions,
        rings=tuple(rings),
    )
