"""The baselines GraphSAGE is judged against, all on the split and targets of ``gnn.training.train``.

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
live in ``gnn.core.tree_features`` and the fit in ``gnn.core.trees``, so that a tree family that
wins the selection (``gnn.training.selection``) can be shipped and scored with exactly these columns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.features import USER_FEATURES, FeatureSet, build_features, moves_money
from gnn.core.tree_features import HYBRID, TREES_AGGREGATED, TREES_KNOWN_FRAUD, TREES_OWN, TreeInputs, txn_velocity
from gnn.core.trees import TreeConfig, TreeScorer, fit_tree_scorer
from gnn.evaluation.metrics import StageTime, Stopwatch
from gnn.serving.scoring import score_snapshot
from gnn.training.split import Split, Targets, targets_and_splits
from gnn.training.train import TrainConfig, train
from graph.errors import ModelError, ValidationError
from graph.types import NodeType, Snapshot

__all__ = [
    "BASELINES",
    "BASELINE_TITLES",
    "GRAPHSAGE",
    "BaselineScores",
    "BaselineRun",
    "rule_scores",
    "run_baselines",
]

log = logging.getLogger(__name__)

RULE_SHARED_DEVICE = "rule_shared_device"
RULE_SHARED_IP = "rule_shared_ip"
RULE_VELOCITY = "rule_velocity"
GRAPHSAGE = "graphsage"
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


@dataclass(frozen=True, slots=True)
class BaselineScores:
    """One baseline's scores: ``account`` float64 [N_user], ``txn`` float64 [T], both in [0, 1]
    and aligned with the snapshot; ``seconds`` is its fitting + scoring time (not reproducible,
    kept out of the compared numbers)."""

    name: str
    account: np.ndarray
    txn: np.ndarray
    seconds: float

    @property
    def title(self) -> str:
        return BASELINE_TITLES[self.name]


@dataclass(frozen=True, slots=True)
class BaselineRun:
    """All baselines on one snapshot, with the targets and split they were fitted on, the
    GraphSAGE artefact (``None`` if GraphSAGE was not run), the neighbour-aggregate names and the
    fitted tree families by name (``models``: what ``gnn.training.selection`` ships when trees win).
    ``features`` / ``inputs``: the feature set and tree columns the run was made with (``None``
    in hand-made runs), for callers that fit again on the same graph (``gnn.evaluation.label_budget``)."""

    scores: tuple[BaselineScores, ...]
    targets: Targets
    users: Split
    txns: Split
    artefact: ModelArtefact | None
    aggregate_names: tuple[str, ...]
    models: dict[str, TreeScorer] = field(default_factory=dict)
    features: FeatureSet | None = None
    inputs: TreeInputs | None = None
    stages: tuple[StageTime, ...] = ()

    def get(self, name: str) -> BaselineScores:
        """The scores of baseline ``name``.

        Raises:
            ModelError: that baseline was not run.
        """
        for s in self.scores:
            if s.name == name:
                return s
        raise ModelError(f"baseline {name!r} not in this run ({', '.join(s.name for s in self.scores)})")


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


def rule_scores(snapshot: Snapshot, features: FeatureSet) -> tuple[BaselineScores, ...]:
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
        BaselineScores(RULE_SHARED_DEVICE, dev, dev[u], each),
        BaselineScores(RULE_SHARED_IP, ip, ip[u], each),
        BaselineScores(RULE_VELOCITY, vel, vel_txn, each),
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
) -> BaselineRun:
    """Fit and score the baselines ``names`` (default all, see the module docstring) on the
    time-ordered split of ``gnn.training.train`` (``config.val_fraction`` / ``test_fraction``, seed
    ``config.seed``). Same snapshot and config give the same scores on the CPU.

    ``artefact``: a GraphSAGE artefact already trained on this snapshot with ``config`` (what
    ``gnn.training.selection`` has in hand); ``None`` trains one when ``graphsage`` or ``hybrid`` is asked
    for. The fitted tree families are kept in ``BaselineRun.models``.

    ``features`` / ``inputs``: ``build_features(snapshot)`` and ``TreeInputs.build`` of this graph
    when the caller has them (built here otherwise; ``inputs`` must hold the aggregates when a
    graph family is asked for). Labels never enter either, so snapshots that differ only in their
    labels (``gnn.evaluation.label_budget``) share them. ``splits``: (accounts, transactions) to fit and
    validate on instead of the time-ordered split (``gnn.training.cross_validation``'s folds).

    Raises:
        ValidationError: an unknown baseline name, or ``artefact`` does not score with GraphSAGE.
        ModelError: the snapshot has no users.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValidationError("names", unknown, f"unknown baseline(s); expected some of {BASELINES}")
    if artefact is not None and artefact.scorer != GRAPHSAGE:
        raise ValidationError("artefact", artefact.scorer, "must be a GraphSAGE artefact (scorer 'graphsage')")
    if snapshot.num_nodes(NodeType.USER) == 0:
        raise ModelError("snapshot has no users: load events first (`ringwatch ingest`)")
    watch = Stopwatch()
    if features is None:
        features = build_features(snapshot)
        watch.lap("features")
    y, users, txns = targets_and_splits(snapshot, config, splits)
    money = moves_money(snapshot.transactions.event)
    txn_fit = txns.train[money[txns.train]]

    out: dict[str, BaselineScores] = {}
    models: dict[str, TreeScorer] = {}
    if any(n.startswith("rule_") for n in names):
        for s in rule_scores(snapshot, features):
            out[s.name] = s
        watch.lap("rules")

    def fit(family: str, inputs: TreeInputs, embeddings: np.ndarray | None, extra_seconds: float) -> None:
        started = time.perf_counter()
        watch.restart()
        scorer, account, txn = fit_tree_scorer(
            family, inputs, y.user, y.txn, users.train, txn_fit, config.seed, trees, embeddings
        )
        watch.lap(f"{family} trees")
        models[family] = scorer
        out[family] = BaselineScores(family, account, txn, time.perf_counter() - started + extra_seconds)

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
            out[GRAPHSAGE] = BaselineScores(GRAPHSAGE, scored.account_scores.astype(np.float64), scored.txn_scores.astype(np.float64), gnn_seconds)
        if HYBRID in names:
            # Unsupervised fallback (too few labels): the embeddings are the anomaly components.
            fit(HYBRID, inputs, scored.embeddings.astype(np.float64), gnn_seconds + input_seconds)

    ordered = tuple(out[n] for n in BASELINES if n in out and n in names)
    return BaselineRun(
        scores=ordered,
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
