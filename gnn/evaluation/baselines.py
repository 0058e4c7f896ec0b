"""The baselines the shipped model is judged against, all on the split and targets of
``gnn.training.split``: the rules defined here, and the model families that training fits
(``gnn.training.candidates``).

Five families, each giving a score in [0, 1] to every account and every transaction:

1. Rules, no training. ``rule_shared_device``: accounts met on the account's devices (the sum
   over its devices of the other accounts on each); ``rule_shared_ip``: the same over IPs;
   ``rule_velocity``: the account's most payments in one clock hour. A count ``c`` becomes the
   score ``c / (1 + c)`` (same ranking). Transactions take their account's score for the two
   sharing rules and, for velocity, the account's payments in the hour up to the transaction
   (point in time, see ``txn_velocity``).
2. ``trees_own``: gradient-boosted trees (``HistGradientBoostingClassifier``) on the account's
   own features, without graph features: ``gnn.core.features`` user block minus
   ``GRAPH_USER_FEATURES`` (the two columns that count *other* accounts on the account's devices
   and IPs). The account's own counts of devices, IPs and merchants stay: they describe the
   account, not its neighbours.
2b. ``trees_known_fraud``: the strongest generic baseline: the same trees on every user feature
   (tabular and sharing counts) plus the known-fraud neighbourhood features of
   ``gnn.core.known_fraud`` (verdicts known before, on the same devices, IPs, prefixes, merchants and
   account), with the training config's label delay. What a user builds in an afternoon; the
   shipped model is judged against it.
3. ``trees_aggregated``: the same trees on the columns of 2b plus ``neighbour_aggregates``:
   mean, max and count of neighbours' features over one hop (the account's devices, IPs and
   merchants) and two hops (the other accounts behind them), via sparse matrix products.
4. ``graphsage``: ``gnn.training.train.train`` scored with ``gnn.serving.scoring.score_snapshot``.
5. ``hybrid``: the trees on the features of 3 plus GraphSAGE's final user embeddings
   (``ScoreResult.embeddings``).

Transactions, for the tree baselines: trees fitted on the training transactions that move money
(payments and refunds; signups and logins are never positive targets) with the columns
``TXN_FEATURES`` + ``velocity_1h`` + the score that the same baseline's account trees give the
transaction's account (stacking: one column instead of all the account columns, which keeps the
fit small); 3 and 5 also get the transaction's device, IP and merchant
features (NaN when absent). For accounts in the training split that account score is in-sample,
so the transaction trees may trust it a little too much; that can only hurt the tree baselines.
Trees are weighted to balance the classes and their probabilities shifted back by the
class-weight ratio (like GraphSAGE's prior shift), seeded with ``TrainConfig.seed``. The columns
live in ``gnn.core.tree_features``, the trees in ``gnn.core.trees`` and the fit of every family but
the rules in ``gnn.training.candidates``, so that a tree family that wins the selection
(``gnn.training.selection``) is shipped and scored with exactly the columns measured here.
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
    """The three rules of baseline 1 as scores (see the module docstring)."""
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
