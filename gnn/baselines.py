"""The baselines GraphSAGE is judged against, all on the split and targets of ``gnn.train``.

Five families (issue 4), each giving a score in [0, 1] to every account and every transaction:

1. Rules, no training. ``rule_shared_device``: accounts met on the account's devices (the sum
   over its devices of the other accounts on each); ``rule_shared_ip``: the same over IPs;
   ``rule_velocity``: the account's most payments in one clock hour. A count ``c`` becomes the
   score ``c / (1 + c)`` (same ranking). Transactions take their account's score for the two
   sharing rules and, for velocity, the account's payments in the hour up to the transaction
   (point in time, see ``txn_velocity``).
2. ``trees_own``: gradient-boosted trees (``HistGradientBoostingClassifier``) on the account's
   own features, without graph features: ``gnn.features`` user block minus
   ``GRAPH_USER_FEATURES`` (the two columns that count *other* accounts on the account's devices
   and IPs). The account's own counts of devices, IPs and merchants stay: they describe the
   account, not its neighbours.
3. ``trees_aggregated``: the same trees on all user features plus ``neighbour_aggregates``:
   mean, max and count of neighbours' features over one hop (the account's devices, IPs and
   merchants) and two hops (the other accounts behind them), via sparse matrix products.
4. ``graphsage``: ``gnn.train.train`` scored with ``gnn.scoring.score_snapshot``.
5. ``hybrid``: the trees on the features of 3 plus GraphSAGE's final user embeddings
   (``ScoreResult.embeddings``).

Transactions, for the tree baselines: trees fitted on the training transactions that move money
(payments and refunds; signups and logins are never positive targets) with the columns
``TXN_FEATURES`` + ``velocity_1h`` + the score that the same baseline's account trees give the
transaction's account (stacking: one column instead of the ~150 account columns, which keeps the
fit a few seconds on two cores); 3 and 5 also get the transaction's device, IP and merchant
features (NaN when absent). For accounts in the training split that account score is in-sample,
so the transaction trees may trust it a little too much; that can only hurt the tree baselines.
Trees are weighted to balance the classes and their probabilities shifted back by the
class-weight ratio (like GraphSAGE's prior shift), seeded with ``TrainConfig.seed``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from gnn.artefact import ModelArtefact
from gnn.features import (
    DEVICE_FEATURES,
    IP_FEATURES,
    MERCHANT_FEATURES,
    TXN_FEATURES,
    USER_FEATURES,
    FeatureSet,
    build_features,
)
from gnn.scoring import score_snapshot
from gnn.train import Split, Targets, TrainConfig, targets, train, txn_split, user_split
from graph.errors import ModelError, ValidationError
from graph.types import EVENT_KINDS, EventKind, NodeType, Snapshot

__all__ = [
    "BASELINES",
    "BASELINE_TITLES",
    "GRAPH_USER_FEATURES",
    "OWN_USER_FEATURES",
    "TreeConfig",
    "BaselineScores",
    "BaselineRun",
    "neighbour_aggregates",
    "txn_velocity",
    "rule_scores",
    "run_baselines",
]

log = logging.getLogger(__name__)

RULE_SHARED_DEVICE = "rule_shared_device"
RULE_SHARED_IP = "rule_shared_ip"
RULE_VELOCITY = "rule_velocity"
TREES_OWN = "trees_own"
TREES_AGGREGATED = "trees_aggregated"
GRAPHSAGE = "graphsage"
HYBRID = "hybrid"
#: Every baseline, in report order.
BASELINES: tuple[str, ...] = (
    RULE_SHARED_DEVICE,
    RULE_SHARED_IP,
    RULE_VELOCITY,
    TREES_OWN,
    TREES_AGGREGATED,
    GRAPHSAGE,
    HYBRID,
)
BASELINE_TITLES: dict[str, str] = {
    RULE_SHARED_DEVICE: "1a rules: shared-device count",
    RULE_SHARED_IP: "1b rules: shared-IP count",
    RULE_VELOCITY: "1c rules: payment velocity",
    TREES_OWN: "2 trees, own features (no graph)",
    TREES_AGGREGATED: "3 trees + neighbour aggregates",
    GRAPHSAGE: "4 GraphSAGE",
    HYBRID: "5 hybrid: GraphSAGE embeddings + aggregates -> trees",
}
#: User-block columns that look at other accounts (graph features); dropped for baseline 2.
GRAPH_USER_FEATURES: tuple[str, ...] = ("max_device_users_log", "max_ip_users_log")
#: The account's own behaviour: every other user-block column.
OWN_USER_FEATURES: tuple[str, ...] = tuple(f for f in USER_FEATURES if f not in GRAPH_USER_FEATURES)
#: Window of the velocity rule and the ``velocity_1h`` transaction feature, in seconds.
VELOCITY_WINDOW = 3600.0

_PAY = EVENT_KINDS.index(EventKind.PAYMENT.value)
_MONEY = (_PAY, EVENT_KINDS.index(EventKind.REFUND.value))


@dataclass(frozen=True, slots=True)
class TreeConfig:
    """Knobs of the gradient-boosted trees (``sklearn.ensemble.HistGradientBoostingClassifier``);
    no early stopping, so the fit is a pure function of the data and the seed.

    Raises:
        ValidationError: a value out of range (names the field).
    """

    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_iter", "max_leaf_nodes", "min_samples_leaf"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValidationError(f"TreeConfig.{name}", v, "must be an integer >= 1")
        if not self.learning_rate > 0:
            raise ValidationError("TreeConfig.learning_rate", self.learning_rate, "must be > 0")
        if self.l2_regularization < 0:
            raise ValidationError("TreeConfig.l2_regularization", self.l2_regularization, "must be >= 0")


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
    GraphSAGE artefact (``None`` if GraphSAGE was not run) and the neighbour-aggregate names."""

    scores: tuple[BaselineScores, ...]
    targets: Targets
    users: Split
    txns: Split
    artefact: ModelArtefact | None
    aggregate_names: tuple[str, ...]

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


def txn_velocity(snapshot: Snapshot, window: float = VELOCITY_WINDOW) -> np.ndarray:
    """Per transaction: the same account's payments in ``(ts - window, ts]`` (itself included
    when it is a payment). float64 [T]. Point in time: reads only events at or before ``ts``."""
    t = snapshot.transactions
    n = len(t)
    if n == 0:
        return np.zeros(0)
    ts = t.ts.astype(np.float64)
    u = t.user.astype(np.int64)
    base = ts.min()
    stride = float(ts.max() - base) + 2.0 * window + 1.0  # users' time ranges never overlap
    key = u * stride + (ts - base)
    pay_key = np.sort(key[t.event.astype(np.int64) == _PAY])
    hi = np.searchsorted(pay_key, key, side="right")
    lo = np.searchsorted(pay_key, key - window, side="right")
    return (hi - lo).astype(np.float64)


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


# -- neighbour aggregates -----------------------------------------------------------------------


def _segment_max(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group the column-wise max of ``values`` rows [E, F]; NaN for empty groups."""
    out = np.full((n_groups, values.shape[1]), np.nan)
    if group.size == 0:
        return out
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    out[g[starts]] = np.maximum.reduceat(values[order], starts, axis=0)
    return out


def _mean_rows(mat: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """Row-normalised ``mat @ x``; NaN for rows with no entries."""
    deg = np.asarray(mat.sum(axis=1)).ravel()
    s = np.asarray(mat @ x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(deg[:, None] > 0, s / np.maximum(deg, 1.0)[:, None], np.nan)


def _merchant_pairs(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, merchant) pairs of payments and refunds (the model's ``pays`` relation)."""
    t = snapshot.transactions
    m = t.merchant.astype(np.int64)
    ok = (m >= 0) & np.isin(t.event.astype(np.int64), _MONEY)
    n_mer = max(snapshot.num_nodes(NodeType.MERCHANT), 1)
    pairs = np.unique(t.user[ok].astype(np.int64) * n_mer + m[ok])
    return pairs // n_mer, pairs % n_mer


def neighbour_aggregates(snapshot: Snapshot, features: FeatureSet) -> tuple[np.ndarray, tuple[str, ...]]:
    """Neighbour-aggregated account features over devices, IPs and merchants.

    For each relation ``r`` in (device, ip, merchant), with ``x`` = the own user features
    (``OWN_USER_FEATURES``, raw):

    * ``{r}_n``: how many distinct ``r`` the account used (hop-1 count);
    * ``{r}_mean_*`` / ``{r}_max_*``: mean / max of those identifiers' own features (hop 1);
    * ``{r}2_mean_*``: mean over its identifiers of the mean ``x`` of the *other* accounts on
      each (hop 2; identifiers it uses alone do not count);
    * ``{r}2_max_*``: max of ``x`` over all accounts on its identifiers (itself included);
    * ``{r}2_n``: sum over its identifiers of the other accounts on each (hop-2 count).

    Absent values (no identifier of that kind, no other account) are NaN, which the trees
    handle natively. Returns float64 [N_user, F_agg] and the column names.
    """
    n_user = snapshot.num_nodes(NodeType.USER)
    x = features.user[:, [USER_FEATURES.index(f) for f in OWN_USER_FEATURES]].astype(np.float64)
    pay_u, pay_m = _merchant_pairs(snapshot)
    relations = (
        ("device", snapshot.user_device.src, snapshot.user_device.dst, features.device, DEVICE_FEATURES),
        ("ip", snapshot.user_ip.src, snapshot.user_ip.dst, features.ip, IP_FEATURES),
        ("merchant", pay_u, pay_m, features.merchant, MERCHANT_FEATURES),
    )
    cols: list[np.ndarray] = []
    names: list[str] = []
    for rel, src, dst, ident_x, ident_names in relations:
        src = src.astype(np.int64)
        dst = dst.astype(np.int64)
        n_ident = ident_x.shape[0]
        b = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n_user, n_ident))
        b.data[:] = 1.0  # links are distinct pairs already; guard against duplicates
        deg_u = np.asarray(b.sum(axis=1)).ravel()
        deg_i = np.asarray(b.sum(axis=0)).ravel()
        fx = ident_x.astype(np.float64)
        # Hop 1: the identifiers themselves.
        mean1 = _mean_rows(b, fx)
        max1 = _segment_max(src, fx[dst], n_user)
        # Hop 2: the other accounts behind them. Per link: mean x of the others on that identifier.
        ident_sum = np.asarray(b.T @ x)
        others = deg_i[dst] - 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            other_mean = (ident_sum[dst] - x[src]) / np.where(others > 0, others, np.nan)[:, None]
        has = others > 0
        w = sp.csr_matrix((np.ones(int(has.sum())), (src[has], np.flatnonzero(has))), shape=(n_user, src.size))
        mean2 = _mean_rows(w, np.nan_to_num(other_mean))
        ident_max = _segment_max(dst, x[src], n_ident)
        max2 = _segment_max(src, ident_max[dst], n_user)
        n2 = np.bincount(src, weights=others, minlength=n_user)[:n_user] if src.size else np.zeros(n_user)
        cols += [deg_u[:, None], mean1, max1, mean2, max2, n2[:, None]]
        names += [f"{rel}_n"]
        names += [f"{rel}_mean_{f}" for f in ident_names] + [f"{rel}_max_{f}" for f in ident_names]
        names += [f"{rel}2_mean_{f}" for f in OWN_USER_FEATURES] + [f"{rel}2_max_{f}" for f in OWN_USER_FEATURES]
        names += [f"{rel}2_n"]
    out = np.concatenate(cols, axis=1)
    if out.shape[1] != len(names):  # a programming error, caught by the tests
        raise ModelError(f"neighbour aggregates: {out.shape[1]} columns vs {len(names)} names")
    return out, tuple(names)


# -- trees --------------------------------------------------------------------------------------


def _fit_predict(x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, seed: int, config: TreeConfig) -> np.ndarray:
    """Fit balanced trees on ``fit_rows`` and return prior-corrected probabilities for all rows."""
    yy = y[fit_rows].astype(bool)
    n_pos = int(yy.sum())
    n_neg = int(yy.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        log.warning("trees: the training rows hold only one class (%d fraud of %d); constant scores", n_pos, yy.size)
        return np.full(x.shape[0], n_pos / max(yy.size, 1), dtype=np.float64)
    clf = HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    )
    # One OpenMP thread: on a busy two-core machine (torch beside us, other jobs) the threads'
    # spin-waits at every barrier made a fit 3x slower than single-threaded.
    with threadpool_limits(limits=1, user_api="openmp"):
        clf.fit(x[fit_rows], yy)
        # Balanced weights inflate the odds by n_neg / n_pos; shift the logit back.
        logit = clf.decision_function(x).astype(np.float64) - math.log(n_neg / n_pos)
    return 1.0 / (1.0 + np.exp(-logit))


def _gather(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``block[index]``; NaN rows where ``index`` is -1 (absent)."""
    out = np.full((index.shape[0], block.shape[1]), np.nan)
    ok = index >= 0
    out[ok] = block[index[ok]]
    return out


def _tree_baseline(
    name: str,
    account_x: np.ndarray,
    txn_x: np.ndarray,
    txn_user: np.ndarray,
    y: Targets,
    users: Split,
    txn_fit_rows: np.ndarray,
    seed: int,
    config: TreeConfig,
) -> BaselineScores:
    started = time.perf_counter()
    account = _fit_predict(account_x, y.user, users.train, seed, config)
    stacked = np.concatenate([txn_x, account[txn_user][:, None]], axis=1)
    txn = _fit_predict(stacked, y.txn, txn_fit_rows, seed, config)
    return BaselineScores(name, account, txn, time.perf_counter() - started)


# -- all of them --------------------------------------------------------------------------------


def run_baselines(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    *,
    trees: TreeConfig = TreeConfig(),
    names: Sequence[str] = BASELINES,
) -> BaselineRun:
    """Fit and score the baselines ``names`` (default all, see the module docstring) on the
    time-ordered split of ``gnn.train`` (``config.val_fraction`` / ``test_fraction``, seed
    ``config.seed``). Same snapshot and config give the same scores on the CPU.

    Raises:
        ValidationError: an unknown baseline name.
        ModelError: the snapshot has no users.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValidationError("names", unknown, f"unknown baseline(s); expected some of {BASELINES}")
    if snapshot.num_nodes(NodeType.USER) == 0:
        raise ModelError("snapshot has no users: load events first (`ringwatch ingest`)")
    features = build_features(snapshot)
    y = targets(snapshot)
    users = user_split(snapshot, config.val_fraction, config.test_fraction)
    txns = txn_split(snapshot, config.val_fraction, config.test_fraction)
    t = snapshot.transactions
    u = t.user.astype(np.int64)
    money = np.isin(t.event.astype(np.int64), _MONEY)
    txn_fit = txns.train[money[txns.train]]

    out: dict[str, BaselineScores] = {}
    if any(n.startswith("rule_") for n in names):
        for s in rule_scores(snapshot, features):
            out[s.name] = s

    txn_base = np.concatenate([features.txn.astype(np.float64), txn_velocity(snapshot)[:, None]], axis=1)
    own = features.user[:, [USER_FEATURES.index(f) for f in OWN_USER_FEATURES]].astype(np.float64)
    if TREES_OWN in names:
        out[TREES_OWN] = _tree_baseline(
            TREES_OWN, own, txn_base, u, y, users, txn_fit, config.seed, trees
        )

    agg_names: tuple[str, ...] = ()
    account_agg = txn_ctx = None
    if TREES_AGGREGATED in names or HYBRID in names:
        started = time.perf_counter()
        agg, agg_names = neighbour_aggregates(snapshot, features)
        account_agg = np.concatenate([features.user.astype(np.float64), agg], axis=1)
        txn_ctx = np.concatenate(
            [
                txn_base,
                _gather(features.device.astype(np.float64), t.device.astype(np.int64)),
                _gather(features.ip.astype(np.float64), t.ip.astype(np.int64)),
                _gather(features.merchant.astype(np.float64), t.merchant.astype(np.int64)),
            ],
            axis=1,
        )
        agg_seconds = time.perf_counter() - started
        if TREES_AGGREGATED in names:
            s = _tree_baseline(
                TREES_AGGREGATED,
                account_agg,
                txn_ctx,
                u,
                y,
                users,
                txn_fit,
                config.seed,
                trees,
            )
            out[TREES_AGGREGATED] = BaselineScores(s.name, s.account, s.txn, s.seconds + agg_seconds)

    artefact: ModelArtefact | None = None
    if GRAPHSAGE in names or HYBRID in names:
        started = time.perf_counter()
        artefact = train(snapshot, config)
        scored = score_snapshot(artefact, snapshot, device=config.device)
        gnn_seconds = time.perf_counter() - started
        if GRAPHSAGE in names:
            out[GRAPHSAGE] = BaselineScores(GRAPHSAGE, scored.account_scores.astype(np.float64), scored.txn_scores.astype(np.float64), gnn_seconds)
        if HYBRID in names:
            assert account_agg is not None and txn_ctx is not None
            account_h = np.concatenate([account_agg, scored.embeddings.astype(np.float64)], axis=1)
            s = _tree_baseline(
                HYBRID,
                account_h,
                txn_ctx,
                u,
                y,
                users,
                txn_fit,
                config.seed,
                trees,
            )
            out[HYBRID] = BaselineScores(s.name, s.account, s.txn, s.seconds + gnn_seconds)

    ordered = tuple(out[n] for n in BASELINES if n in out and n in names)
    return BaselineRun(scores=ordered, targets=y, users=users, txns=txns, artefact=artefact, aggregate_names=agg_names)
