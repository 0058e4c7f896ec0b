"""Fit the models that may ship, on one split: GraphSAGE and the tree families.

``fit_candidates`` fits the families asked for (some of ``FAMILIES``) on the split of
``gnn.training.split`` (the time-ordered one, or cross-validation's folds), all with the same
targets, features and seed, and scores every account and transaction with each:

* the tree families of ``gnn.core.tree_features`` (``trees_own``, ``trees_known_fraud``,
  ``trees_aggregated``, ``hybrid``): account trees on the training accounts, then transaction
  trees stacked on their account scores (``gnn.core.trees.fit_tree_scorer``) on the training
  transactions that move money (signups and logins are never positive targets), seeded with
  ``TrainConfig.seed``;
* ``graphsage``: ``gnn.training.train.train`` (or an artefact already trained on this snapshot
  with the same config), scored with ``gnn.serving.scoring.score_snapshot``; the hybrid reads
  its embeddings.

``gnn.training.selection`` ships one of these; ``gnn.evaluation.baselines`` adds the rules and
compares them all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gnn.artefact.model_artefact import GRAPHSAGE, ModelArtefact
from gnn.core.features import FeatureSet, build_features, moves_money
from gnn.core.timing import StageTime, Stopwatch
from gnn.core.tree_features import HYBRID, TREES_AGGREGATED, TREES_KNOWN_FRAUD, TREES_OWN, TreeInputs
from gnn.core.trees import TreeConfig, TreeScorer, fit_tree_scorer
from gnn.serving.scoring import score_snapshot
from gnn.training.split import Split, Targets, targets_and_splits
from gnn.training.train import TrainConfig, train
from graph.errors import ModelError, ValidationError
from graph.types import NodeType, Snapshot

__all__ = ["FAMILIES", "CandidateScores", "CandidateRun", "fit_candidates"]

#: The model families ``fit_candidates`` fits, in report order.
FAMILIES: tuple[str, ...] = (TREES_OWN, TREES_KNOWN_FRAUD, TREES_AGGREGATED, GRAPHSAGE, HYBRID)


@dataclass(frozen=True, slots=True)
class CandidateScores:
    """One model's scores: ``account`` float64 [N_user], ``txn`` float64 [T], both in [0, 1]
    and aligned with the snapshot; ``seconds`` is its fitting + scoring time (not reproducible,
    kept out of the compared numbers)."""

    name: str
    account: np.ndarray
    txn: np.ndarray
    seconds: float


@dataclass(frozen=True, slots=True)
class CandidateRun:
    """Models fitted on one snapshot, with the targets and split they were fitted on, the
    GraphSAGE artefact (``None`` if GraphSAGE was not run), the neighbour-aggregate names and the
    fitted tree families by name (``models``: what ``gnn.training.selection`` ships when trees win).
    ``features`` / ``inputs``: the feature set and tree columns the run was made with (``None``
    in hand-made runs), for callers that fit again on the same graph (``gnn.evaluation.label_budget``).
    ``gnn.evaluation.baselines.run_baselines`` adds the rules' scores to ``scores``."""

    scores: tuple[CandidateScores, ...]
    targets: Targets
    users: Split
    txns: Split
    artefact: ModelArtefact | None
    aggregate_names: tuple[str, ...]
    models: dict[str, TreeScorer] = field(default_factory=dict)
    features: FeatureSet | None = None
    inputs: TreeInputs | None = None
    stages: tuple[StageTime, ...] = ()

    def get(self, name: str) -> CandidateScores:
        """The scores of model ``name``.

        Raises:
            ModelError: that model was not run.
        """
        for s in self.scores:
            if s.name == name:
                return s
        raise ModelError(f"baseline {name!r} not in this run ({', '.join(s.name for s in self.scores)})")


def fit_candidates(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    *,
    trees: TreeConfig = TreeConfig(),
    names: Sequence[str] = FAMILIES,
    artefact: ModelArtefact | None = None,
    features: FeatureSet | None = None,
    inputs: TreeInputs | None = None,
    splits: tuple[Split, Split] | None = None,
) -> CandidateRun:
    """Fit and score the model families ``names`` (default all, see the module docstring) on the
    time-ordered split (``config.val_fraction`` / ``test_fraction``, seed ``config.seed``). Same
    snapshot and config give the same scores on the CPU.

    ``artefact``: a GraphSAGE artefact already trained on this snapshot with ``config`` (what
    ``gnn.training.selection`` has in hand); ``None`` trains one when ``graphsage`` or ``hybrid``
    is asked for. The fitted tree families are kept in ``CandidateRun.models``.

    ``features`` / ``inputs``: ``build_features(snapshot)`` and ``TreeInputs.build`` of this graph
    when the caller has them (built here otherwise; ``inputs`` must hold the aggregates when a
    graph family is asked for). Labels never enter either, so snapshots that differ only in their
    labels (``gnn.evaluation.label_budget``) share them. ``splits``: (accounts, transactions) to
    fit and validate on instead of the time-ordered split (``gnn.training.cross_validation``'s folds).

    Raises:
        ValidationError: an unknown family, or ``artefact`` does not score with GraphSAGE.
        ModelError: the snapshot has no users.
    """
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValidationError("names", unknown, f"unknown model(s); expected some of {FAMILIES}")
    if artefact is not None and artefact.scorer != GRAPHSAGE:
        raise ValidationError("artefact", artefact.scorer, "must be a GraphSAGE artefact (scorer 'graphsage')")
    if snapshot.num_nodes(NodeType.USER) == 0:
        raise ModelError("snapshot has no users: load events first (`ringwatch ingest`)")
    watch = Stopwatch()
    if features is None:
        features = build_features(snapshot)
        watch.lap("features")
    y, users, txns = targets_and_splits(snapshot, config, splits)
    txn_fit = txns.train[moves_money(snapshot.transactions.event)[txns.train]]

    out: dict[str, CandidateScores] = {}
    models: dict[str, TreeScorer] = {}

    def fit(family: str, inputs: TreeInputs, embeddings: np.ndarray | None, extra_seconds: float) -> None:
        started = time.perf_counter()
        watch.restart()
        scorer, account, txn = fit_tree_scorer(
            family, inputs, y.user, y.txn, users.train, txn_fit, config.seed, trees, embeddings
        )
        watch.lap(f"{family} trees")
        models[family] = scorer
        out[family] = CandidateScores(family, account, txn, time.perf_counter() - started + extra_seconds)

    started = time.perf_counter()
    graph_families = TREES_KNOWN_FRAUD in names or TREES_AGGREGATED in names or HYBRID in names
    if inputs is None or (graph_families and inputs.account_agg is None):
        inputs = TreeInputs.build(snapshot, features, aggregates=graph_families, label_delay=config.label_delay)
    elif graph_families:
        # Inputs built on the same graph with other labels (gnn.evaluation.label_budget): only this
        # snapshot's verdicts may feed the known-fraud columns.
        inputs = inputs.relabel(snapshot, config.label_delay)
    input_seconds = time.perf_counter() - started
    watch.lap("tree inputs")
    if TREES_OWN in names:
        fit(TREES_OWN, inputs, None, input_seconds)
    if TREES_KNOWN_FRAUD in names:
        fit(TREES_KNOWN_FRAUD, inputs, None, input_seconds)
    if TREES_AGGREGATED in names:
        fit(TREES_AGGREGATED, inputs, None, input_seconds)

    if GRAPHSAGE in names or HYBRID in names:
        started = time.perf_counter()
        watch.restart()
        if artefact is None:
            artefact = train(snapshot, config, features=features, splits=splits)
            watch.lap("graphsage")
        scored = score_snapshot(artefact, snapshot, device=config.device)
        watch.lap("graphsage embeddings")
        gnn_seconds = time.perf_counter() - started
        if GRAPHSAGE in names:
            out[GRAPHSAGE] = CandidateScores(GRAPHSAGE, scored.account_scores.astype(np.float64), scored.txn_scores.astype(np.float64), gnn_seconds)
        if HYBRID in names:
            # Unsupervised fallback (too few labels): the embeddings are the anomaly components.
            fit(HYBRID, inputs, scored.embeddings.astype(np.float64), gnn_seconds + input_seconds)

    return CandidateRun(
        scores=tuple(out[n] for n in FAMILIES if n in out),
        targets=y,
        users=users,
        txns=txns,
        artefact=artefact,
        aggregate_names=inputs.aggregate_names,
        models=models,
        features=features,
        inputs=inputs,
        stages=tuple(watch.stages),
    )
