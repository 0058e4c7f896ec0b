"""The baselines the shipped model is judged against, all on the split and targets of
``gnn.training.split``: the rules defined here, and the model families that training fits
(``gnn.training.candidates``). Each gives every account and transaction a score in [0, 1]:

1. Rules, no training (``rule_scores``): other accounts met on the account's devices
   (``rule_shared_device``) or IPs (``rule_shared_ip``); most payments in one hour (``rule_velocity``).
2. ``trees_own``: gradient-boosted trees on the account's own features, no graph features.
2b. ``trees_known_fraud``: the strongest generic baseline, what a user builds in an afternoon:
   the trees on every user feature (tabular and sharing counts) plus the known-fraud
   neighbourhood features of ``gnn.core.known_fraud``, with the training config's label delay.
3. ``trees_aggregated``: the columns of 2b plus 1- and 2-hop neighbour aggregates.
4. ``graphsage``: ``gnn.training.train.train``, scored with ``gnn.serving.scoring.score_snapshot``.
5. ``hybrid``: the trees on the columns of 3 plus GraphSAGE's final user embeddings.

Tree columns: ``gnn.core.tree_features`` (transactions: stacked on their account's score).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

from gnn.artefact.model_artefact import GRAPHSAGE, ModelArtefact
from gnn.core.features import USER_FEATURES, FeatureSet
from gnn.core.timing import Stopwatch
from gnn.core.tree_features import HYBRID, TREES_AGGREGATED, TREES_KNOWN_FRAUD, TREES_OWN, TreeInputs, txn_velocity
from gnn.core.trees import TreeConfig
from gnn.training.candidates import FAMILIES, CandidateRun, CandidateScores, fit_candidates
from gnn.training.split import Split
from gnn.training.train import TrainConfig
from graph.errors import ValidationError
from graph.types import NodeType, Snapshot

__all__ = ["BASELINES", "BASELINE_TITLES", "rule_scores", "run_baselines"]

RULE_SHARED_DEVICE = "rule_shared_device"
RULE_SHARED_IP = "rule_shared_ip"
RULE_VELOCITY = "rule_velocity"
#: Every baseline, in report order.
BASELINES: tuple[str, ...] = (
    RULE_SHARED_DEVICE,
    RULE_SHARED_IP,
    RULE_VELOCITY,
    TREES_OWN,
    TREES_KNOWN_FRAUD,
    TREES_AGGREGATED,
    GRAPHSAGE,
    HYBRID,
)
BASELINE_TITLES: dict[str, str] = {
    RULE_SHARED_DEVICE: "1a rules: shared-device count",
    RULE_SHARED_IP: "1b rules: shared-IP count",
    RULE_VELOCITY: "1c rules: payment velocity",
    TREES_OWN: "2 trees, own features (no graph)",
    TREES_KNOWN_FRAUD: "2b trees: tabular + sharing + known-fraud neighbours",
    TREES_AGGREGATED: "3 trees + neighbour aggregates",
    GRAPHSAGE: "4 GraphSAGE",
    HYBRID: "5 hybrid: GraphSAGE embeddings + aggregates -> trees",
}


# -- rules --------------------------------------------------------------------------------------


def _squash(count: np.ndarray) -> np.ndarray:
    c = np.maximum(np.asarray(count, dtype=np.float64), 0.0)
    return c / (1.0 + c)


def _others_via(src: np.ndarray, dst: np.ndarray, n_user: int, n_ident: int) -> np.ndarray:
    """Per user: sum over its identifiers of the other users on each (linear in the links)."""
    if src.size == 0:
        return np.zeros(n_user)
    deg = np.bincount(dst.astype(np.int64), minlength=n_ident).astype(np.float64)
    return np.bincount(src.astype(np.int64), weights=deg[dst.astype(np.int64)] - 1.0, minlength=n_user)[:n_user]


def rule_scores(snapshot: Snapshot, features: FeatureSet) -> tuple[CandidateScores, ...]:
    """The three rules of baseline 1 as scores. ``rule_shared_device``: the sum over the
    account's devices of the other accounts on each; ``rule_shared_ip``: the same over IPs;
    ``rule_velocity``: the account's most payments in one clock hour. A count ``c`` becomes
    ``c / (1 + c)`` (same ranking). Transactions take their account's score for the sharing
    rules and, for velocity, the account's payments in the hour up to the transaction (point in
    time, ``txn_velocity``)."""
    started = time.perf_counter()
    t = snapshot.transactions
    n_user = snapshot.num_nodes(NodeType.USER)
    u = t.user.astype(np.int64)
    ud, ui = snapshot.user_device, snapshot.user_ip
    dev = _squash(_others_via(ud.src, ud.dst, n_user, snapshot.num_nodes(NodeType.DEVICE)))
    ip = _squash(_others_via(ui.src, ui.dst, n_user, snapshot.num_nodes(NodeType.IP)))
    peak = np.expm1(features.user[:, USER_FEATURES.index("max_payments_per_hour_log")].astype(np.float64))
    vel = _squash(peak)
    vel_txn = _squash(txn_velocity(snapshot))
    each = (time.perf_counter() - started) / 3.0
    return (
        CandidateScores(RULE_SHARED_DEVICE, dev, dev[u], each),
        CandidateScores(RULE_SHARED_IP, ip, ip[u], each),
        CandidateScores(RULE_VELOCITY, vel, vel_txn, each),
    )


# -- all of them --------------------------------------------------------------------------------


def run_baselines(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    *,
    trees: TreeConfig = TreeConfig(),
    names: Sequence[str] = BASELINES,
    artefact: ModelArtefact | None = None,
    features: FeatureSet | None = None,
    inputs: TreeInputs | None = None,
    splits: tuple[Split, Split] | None = None,
) -> CandidateRun:
    """Score the baselines ``names`` (default all, see the module docstring) on one split: the
    fitted ones through ``gnn.training.candidates.fit_candidates`` (the fit of the models that
    training may ship; the arguments after ``names`` are its), then the rules, all with the
    same targets, split and seed. The run's ``scores`` are in report order (``BASELINES``). Same
    snapshot and config give the same scores on the CPU.

    Raises:
        ValidationError: an unknown baseline name, or ``artefact`` does not score with GraphSAGE.
        ModelError: the snapshot has no users.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValidationError("names", unknown, f"unknown baseline(s); expected some of {BASELINES}")
    run = fit_candidates(
        snapshot,
        config,
        trees=trees,
        names=[n for n in names if n in FAMILIES],
        artefact=artefact,
        features=features,
        inputs=inputs,
        splits=splits,
    )
    scores = {s.name: s for s in run.scores}
    stages = run.stages
    if any(n.startswith("rule_") for n in names):
        assert run.features is not None  # fit_candidates keeps the features it used
        watch = Stopwatch()
        scores.update((s.name, s) for s in rule_scores(snapshot, run.features))
        watch.lap("rules")
        stages = (*stages, *watch.stages)
    return dataclasses.replace(run, scores=tuple(scores[n] for n in BASELINES if n in scores and n in names), stages=stages)
