"""Reasons for every account and transaction score: short sentences, cheap enough for every API call.

``Explainer.build`` runs once per snapshot and its batch scores: it counts, per device and IP, the
confirmed-fraud and HIGH-tier accounts on it, and fits a tree surrogate of the model's logit per
entity whose prediction ``TreePaths`` splits exactly into per-feature contributions (Saabas path
attribution). ``Explainer.account`` and ``Explainer.transaction`` then only read arrays: the
risky-neighbour facts first ("device D-81 is shared with 5 other accounts: 4 confirmed fraud,
1 more high risk"), then the feature concepts that pushed the score, worded by ``TEMPLATES``.
The attribution is exact for the surrogate; how well the surrogate follows the model is
``Explainer.fidelity_*`` (R²).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.features import (
    DEVICE_FEATURES,
    IP_FEATURES,
    MERCHANT_FEATURES,
    TINY_AMOUNT,
    TXN_FEATURES,
    USER_FEATURES,
    FeatureSet,
    build_features,
)
from gnn.core.known_fraud import (
    KNOWN_FRAUD_TXN_FEATURES,
    KNOWN_FRAUD_USER_FEATURES,
    KnownFraudFeatures,
    known_fraud_features,
)
from gnn.core.tree_features import neighbour_aggregates, txn_velocity
from gnn.serving.reasons import identifier_shared
from gnn.serving.scoring import ScoreResult, score_snapshot
from graph.errors import ModelError, NotFoundError, ValidationError
from graph.types import NodeType, Snapshot, Tier

__all__ = [
    "MAX_REASONS",
    "TEMPLATES",
    "ReasonKind",
    "Reason",
    "Explanation",
    "SurrogateConfig",
    "NeighbourFact",
    "Explainer",
    "TreePaths",
]

#: At most this many reasons per explanation, most relevant first.
MAX_REASONS = 4
#: Probabilities are clipped to [EPS, 1 - EPS] before taking the logit the surrogate learns.
_EPS = 1e-6
#: Rows per chunk of the vectorised path walk (bounds the [rows, trees] temporaries).
_CHUNK = 4096


class ReasonKind(str, enum.Enum):
    """What a reason is built from."""

    RISKY_NEIGHBOURS = "risky_neighbours"  # a named device/IP shared with risky accounts
    BEHAVIOUR = "behaviour"  # the account's own features
    NEIGHBOURHOOD = "neighbourhood"  # features of its devices/IPs/merchants and the accounts behind them
    TRANSACTION = "transaction"  # the transaction's own features
    ACCOUNT = "account"  # a transaction's account risk


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason. ``contribution`` is in logit units of the surrogate (positive pushes the score
    up); for a risky-neighbour fact it is the summed contribution of that relation's graph
    features. ``node`` names the device/IP/account the sentence is about, if any; ``concept`` is
    the feature concept (``None`` for neighbour facts)."""

    kind: ReasonKind
    text: str
    contribution: float
    node: tuple[NodeType, str] | None = None
    concept: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """The reasons behind one score. ``entity`` is ``"account"`` or ``"transaction"``, ``key`` its
    id; ``score``/``tier`` the batch score; ``surrogate_logit = base_logit + Σ contributions`` of
    all features (not only the reasons shown)."""

    entity: str
    key: str
    score: float
    tier: Tier
    reasons: tuple[Reason, ...]
    base_logit: float
    surrogate_logit: float

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(r.text for r in self.reasons)


@dataclass(frozen=True, slots=True)
class SurrogateConfig:
    """Knobs of the surrogate trees. ``max_txn_rows`` caps the transactions the transaction
    surrogate is fitted on (a seeded sample; all transactions are still explained).

    Raises:
        ValidationError: a value out of range (names the field).
    """

    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 10
    max_txn_rows: int = 50_000
    seed: int = 7

    def __post_init__(self) -> None:
        for name in ("max_iter", "max_leaf_nodes", "min_samples_leaf", "max_txn_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValidationError(f"SurrogateConfig.{name}", v, "must be an integer >= 1")
        if not self.learning_rate > 0:
            raise ValidationError("SurrogateConfig.learning_rate", self.learning_rate, "must be > 0")


@dataclass(frozen=True, slots=True)
class NeighbourFact:
    """One identifier's neighbourhood as a fact about it: other accounts on it, how many of them
    are confirmed fraud, and how many more are HIGH tier."""

    node: tuple[NodeType, str]
    others: int
    fraud: int
    high: int

    @property
    def risky(self) -> int:
        return self.fraud + self.high

    def text(self) -> str:
        return identifier_shared(self.node[0], self.node[1], self.others, fraud=self.fraud, high=self.high)


# -- sentence templates -------------------------------------------------------------------------
#
# One place for every sentence about a feature (``gnn.serving.reasons`` words the risky-neighbour facts).
# A template has the slots {who} (whose value it is), {q} (a qualifier: "" for the account's own
# value, "on average " / "up to " for a mean / max over neighbours), {v} (the formatted value) and
# {s} ("s" unless {v} is 1); the second item says how to format the raw value.
#   count: log1p count -> integer    share: fraction -> percent    money: log1p amount -> 2 decimals
#   factor: std of log amounts -> "x1.8"    days: log1p days -> 1 decimal    raw: plain integer

TEMPLATES: dict[str, tuple[str, str]] = {
    # account features (gnn.core.features.USER_FEATURES); hop-2 aggregates reuse them
    "user:n_payments_log": ("{who} made {q}{v} payment{s}", "count"),
    "user:n_refunds_log": ("{who} received {q}{v} refund{s}", "count"),
    "user:n_logins_log": ("{who} logged in {q}{v} time{s}", "count"),
    "user:n_signups_log": ("{who} signed up {q}{v} time{s}", "count"),
    "user:declined_share": ("{q}{v} of payments by {who} were declined", "share"),
    "user:amount_mean_log": ("typical payment by {who} was {q}{v}", "money"),
    "user:amount_max_log": ("largest payment by {who} was {q}{v}", "money"),
    "user:amount_std_log": ("payment amounts of {who} varied by a factor of {q}{v}", "factor"),
    "user:tiny_share": (f"{{q}}{{v}} of payments by {{who}} were under {TINY_AMOUNT:.2f}", "share"),
    "user:n_merchants_log": ("{who} paid {q}{v} merchant{s}", "count"),
    "user:n_devices_log": ("{who} used {q}{v} device{s}", "count"),
    "user:n_ips_log": ("{who} used {q}{v} IP{s}", "count"),
    "user:max_device_users_log": ("{who} shared one device with {q}{v} other account{s}", "count"),
    "user:max_ip_users_log": ("{who} shared one IP with {q}{v} other account{s}", "count"),
    "user:active_days_log": ("{who} stayed active {q}{v} days", "days"),
    "user:max_payments_per_hour_log": ("{who} made {q}{v} payment{s} within one hour", "count"),
    "user:night_share": ("{q}{v} of payments by {who} were at night (00-06 UTC)", "share"),
    # identifier features (1-hop aggregates and a transaction's device/IP/merchant)
    "device:n_users_log": ("{q}{v} account{s} used {who}", "count"),
    "device:n_txns_log": ("{q}{v} event{s} came from {who}", "count"),
    "device:n_ips_log": ("{who} appeared at {q}{v} IP{s}", "count"),
    "ip:n_users_log": ("{q}{v} account{s} used {who}", "count"),
    "ip:n_devices_log": ("{q}{v} device{s} used {who}", "count"),
    "ip:n_txns_log": ("{q}{v} event{s} came from {who}", "count"),
    "merchant:n_users_log": ("{q}{v} account{s} paid {who}", "count"),
    "merchant:n_txns_log": ("{q}{v} event{s} went to {who}", "count"),
    "merchant:tiny_share": (f"{{q}}{{v}} of payments to {{who}} were under {TINY_AMOUNT:.2f}", "share"),
    "merchant:declined_share": ("{q}{v} of payments to {who} were declined", "share"),
    "merchant:amount_mean_log": ("typical payment to {who} was {q}{v}", "money"),
    # counts from the neighbour aggregates
    "agg:device_n": ("the account used {v} device{s}", "raw"),
    "agg:ip_n": ("the account used {v} IP{s}", "raw"),
    "agg:merchant_n": ("the account paid {v} merchant{s}", "raw"),
    "agg:device2_n": ("its devices are shared with {v} other account{s} in all", "raw"),
    "agg:ip2_n": ("its IPs are shared with {v} other account{s} in all", "raw"),
    "agg:merchant2_n": ("its merchants have {v} other customer{s} in all", "raw"),
    # transaction features (gnn.core.features.TXN_FEATURES + velocity); event_* and hour_* are
    # rendered from the whole row (see _txn_text)
    "txn:amount_log": ("the amount is {v}", "money"),
    "txn:gap_log": ("{v} since the account's previous event", "duration"),
    "txn:user_count_so_far_log": ("the account had {v} event{s} before this one", "count"),
    "txn:velocity_1h": ("the account made {v} payment{s} in the hour up to this one", "raw"),
    "txn:account_logit": ("account {who} scores {v}{tier}", "prob"),
}
# Known-fraud features (gnn.core.known_fraud): what was known before, near the account or event.
_KF_NOUN = {"account": "account", "device": "device", "ip": "IP", "ip_prefix": "IP prefix", "merchant": "merchant"}
_KF_WINDOW = {"1d": " in the day before", "30d": " in the 30 days before", "all": ""}
for _k, _noun in _KF_NOUN.items():
    for _w, _when in _KF_WINDOW.items():
        TEMPLATES[f"kf:kf_{_k}_fraud_txns_{_w}"] = (
            f"{{v}} payment{{s}} on the same {_noun} had been charged back{_when}", "count")
    TEMPLATES[f"kf:kf_{_k}_fraud_accounts"] = (f"{{v}} other account{{s}} on the same {_noun} were known fraud", "count")
    TEMPLATES[f"kf:kf_{_k}_fraud_accounts_sum"] = (
        f"its {_noun}s were used by {{v}} other known-fraud account{{s}} in all", "count")
    TEMPLATES[f"kf:kf_{_k}_fraud_accounts_max"] = (
        f"one of its {_noun}s was used by {{v}} other known-fraud account{{s}}", "count")
    TEMPLATES[f"kf:kf_{_k}_fraud_txns_sum"] = (
        f"{{v}} payment{{s}} of other accounts on its {_noun}s had been charged back", "count")
for _w, _when in _KF_WINDOW.items():
    TEMPLATES[f"kf:kf_merchant_fraud_rate_{_w}"] = (
        f"{{v}} of the merchant's payments{_when} had been charged back", "log_share")
#: Binary transaction features: text when set, text when not.
FLAG_TEMPLATES: dict[str, tuple[str, str]] = {
    "kf_account_known_fraud": ("the account was already known as fraud", "the account was not known as fraud"),
    "has_amount": ("the event carries an amount", "the event carries no amount"),
    "is_tiny": (f"the amount is under {TINY_AMOUNT:.2f}", f"the amount is {TINY_AMOUNT:.2f} or more"),
    "declined": ("the payment was declined", "the payment was not declined"),
    "is_first": ("it is the account's first event", "the account had earlier events"),
    "has_device": ("the event names a device", "the event names no device"),
    "has_ip": ("the event names an IP", "the event names no IP"),
}
#: Whose value a column describes, per aggregate scope.
_WHO = {
    "own": "the account",
    "device2": "accounts on its devices",
    "ip2": "accounts on its IPs",
    "merchant2": "other customers of its merchants",
    "device": "its devices",
    "ip": "its IPs",
    "merchant": "its merchants",
    "txn_device": "the event's device",
    "txn_ip": "the event's IP",
    "txn_merchant": "the merchant",
}
_Q = {"own": "", "mean": "on average ", "max": "up to "}
_IDENT_FEATURES = {"device": DEVICE_FEATURES, "ip": IP_FEATURES, "merchant": MERCHANT_FEATURES}


def _fmt(value: float, how: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if how == "count":
        return str(int(round(math.expm1(max(value, 0.0)))))
    if how == "raw":
        return str(int(round(value)))
    if how == "share":
        return f"{100.0 * value:.0f}%"
    if how == "log_share":  # a share stored as log1p
        return f"{100.0 * math.expm1(max(value, 0.0)):.0f}%"
    if how == "money":
        return f"{math.expm1(max(value, 0.0)):.2f}"
    if how == "factor":
        return f"x{math.exp(value):.1f}"
    if how == "days":
        return f"{math.expm1(max(value, 0.0)):.1f}"
    if how == "prob":
        return f"{1.0 / (1.0 + math.exp(-value)):.2f}"
    if how == "duration":
        secs = math.expm1(max(value, 0.0))
        for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
            if secs >= size:
                return f"{secs / size:.1f} {unit}"
        return f"{secs:.0f} s"
    raise ModelError(f"unknown value format {how!r}")  # a programming error, caught by the tests


@dataclass(frozen=True, slots=True)
class _Column:
    """How one surrogate input column is worded and grouped: ``template`` is a TEMPLATES key,
    ``who``/``q`` keys of _WHO/_Q, ``concept`` the group whose contributions are summed,
    ``relation`` the identifier type the column is about (for merging with neighbour facts)."""

    name: str
    concept: str
    kind: ReasonKind
    template: str | None
    who: str = "own"
    q: str = "own"
    relation: str | None = None


def _known_fraud_columns(names: tuple[str, ...]) -> list[_Column]:
    """Known-fraud columns: grouped with the sharing of their identifier's kind, so that a
    risky-neighbour fact (which device, how many confirmed) can stand for them."""
    cols: list[_Column] = []
    for name in names:
        if name in FLAG_TEMPLATES:
            cols.append(_Column(name, f"txn:{name}", ReasonKind.ACCOUNT, None))
            continue
        key = next(k for k in sorted(_KF_NOUN, key=len, reverse=True) if name.startswith(f"kf_{k}_"))
        relation = {"ip_prefix": "ip", "account": None}.get(key, key)
        concept = f"share:{relation}" if relation else "account"
        kind = ReasonKind.NEIGHBOURHOOD if relation else ReasonKind.ACCOUNT
        cols.append(_Column(name, concept, kind, f"kf:{name}", relation=relation))
    return cols


def _account_columns(agg_names: tuple[str, ...]) -> tuple[_Column, ...]:
    cols: list[_Column] = []
    for f in USER_FEATURES:
        relation = {"max_device_users_log": "device", "max_ip_users_log": "ip"}.get(f)
        concept = f"share:{relation}" if relation else f"own:{f}"
        cols.append(_Column(f, concept, ReasonKind.BEHAVIOUR if relation is None else ReasonKind.NEIGHBOURHOOD,
                            f"user:{f}", relation=relation))  # fmt: skip
    for name in agg_names:
        rel, _, rest = name.partition("_")
        hop2 = rel.endswith("2")
        base_rel = rel.rstrip("2")
        if rest == "n":
            if hop2:
                cols.append(_Column(name, f"share:{base_rel}", ReasonKind.NEIGHBOURHOOD, f"agg:{name}", relation=base_rel))
            else:
                own = {"device": "n_devices_log", "ip": "n_ips_log", "merchant": "n_merchants_log"}[base_rel]
                cols.append(_Column(name, f"own:{own}", ReasonKind.BEHAVIOUR, f"agg:{name}"))
            continue
        stat, _, feat = rest.partition("_")
        if stat not in ("mean", "max"):
            raise ModelError(f"neighbour aggregate column {name!r} not understood")  # caught by the tests
        if hop2:
            cols.append(_Column(name, f"hop2:{base_rel}:{feat}", ReasonKind.NEIGHBOURHOOD, f"user:{feat}",
                                who=rel, q=stat, relation=base_rel))  # fmt: skip
        else:
            shares = feat == "n_users_log" and base_rel != "merchant"
            concept = f"share:{base_rel}" if shares else f"ident:{base_rel}:{feat}"
            cols.append(_Column(name, concept, ReasonKind.NEIGHBOURHOOD, f"{base_rel}:{feat}",
                                who=base_rel, q=stat, relation=base_rel))  # fmt: skip
    cols += _known_fraud_columns(KNOWN_FRAUD_USER_FEATURES)
    return tuple(cols)


def _txn_columns() -> tuple[_Column, ...]:
    cols: list[_Column] = []
    for f in TXN_FEATURES:
        if f.startswith("event_"):
            cols.append(_Column(f, "txn:event", ReasonKind.TRANSACTION, None))
        elif f.startswith("hour_"):
            cols.append(_Column(f, "txn:hour", ReasonKind.TRANSACTION, None))
        elif f in FLAG_TEMPLATES:
            cols.append(_Column(f, f"txn:{f}", ReasonKind.TRANSACTION, None))
        else:
            cols.append(_Column(f, f"txn:{f}", ReasonKind.TRANSACTION, f"txn:{f}"))
    cols.append(_Column("velocity_1h", "txn:velocity_1h", ReasonKind.TRANSACTION, "txn:velocity_1h"))
    for rel, names in _IDENT_FEATURES.items():
        for f in names:
            shares = f == "n_users_log" and rel != "merchant"
            concept = f"share:{rel}" if shares else f"ident:{rel}:{f}"
            cols.append(_Column(f"{rel}_{f}", concept, ReasonKind.NEIGHBOURHOOD, f"{rel}:{f}", who=f"txn_{rel}",
                                relation=rel))  # fmt: skip
    cols += _known_fraud_columns(KNOWN_FRAUD_TXN_FEATURES)
    cols.append(_Column("account_logit", "account", ReasonKind.ACCOUNT, "txn:account_logit"))
    return tuple(cols)


# -- tree paths (Saabas) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreePaths:
    """A fitted ``HistGradientBoostingRegressor`` flattened into node arrays for path
    attribution: all trees' nodes concatenated, ``roots`` [n_trees] their first nodes, ``value``
    the count-weighted mean of each node's leaves (leaves: the shrunk leaf values the model
    adds up), ``base`` = baseline + Σ root values (the expected prediction).

    Walking a row's path through each tree, every split adds ``value(child) - value(node)`` to
    its feature, so ``base + Σ contributions`` is the tree prediction to float precision."""

    feature: np.ndarray  # int64 [nodes]
    threshold: np.ndarray  # float64 [nodes]
    missing_left: np.ndarray  # bool [nodes]
    left: np.ndarray  # int64 [nodes], global index
    right: np.ndarray  # int64 [nodes]
    is_leaf: np.ndarray  # bool [nodes]
    value: np.ndarray  # float64 [nodes]
    roots: np.ndarray  # int64 [n_trees]
    base: float
    n_features: int

    @classmethod
    def from_model(cls, model: HistGradientBoostingRegressor) -> TreePaths:
        feats, thr, miss, left, right, leaf, vals, roots = [], [], [], [], [], [], [], []
        offset = 0
        base = float(np.ravel(model._baseline_prediction)[0])
        for (pred,) in model._predictors:
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise ModelError("surrogate trees with categorical splits are not supported")
            n = nodes.shape[0]
            value = nodes["value"].astype(np.float64).copy()
            count = nodes["count"].astype(np.float64)
            is_leaf = nodes["is_leaf"].astype(bool)
            # Children always come after their parent in HGB's node array: fill bottom-up.
            for i in range(n - 1, -1, -1):
                if not is_leaf[i]:
                    lc, rc = int(nodes["left"][i]), int(nodes["right"][i])
                    total = count[lc] + count[rc]
                    value[i] = (count[lc] * value[lc] + count[rc] * value[rc]) / total if total > 0 else 0.5 * (value[lc] + value[rc])
            roots.append(offset)
            base += value[0]
            feats.append(nodes["feature_idx"].astype(np.int64))
            thr.append(nodes["num_threshold"].astype(np.float64))
            miss.append(nodes["missing_go_to_left"].astype(bool))
            left.append(nodes["left"].astype(np.int64) + offset)
            right.append(nodes["right"].astype(np.int64) + offset)
            leaf.append(is_leaf)
            vals.append(value)
            offset += n
        cat = np.concatenate
        return cls(cat(feats), cat(thr), cat(miss), cat(left), cat(right), cat(leaf), cat(vals),
                   np.asarray(roots, dtype=np.int64), base, int(model.n_features_in_))  # fmt: skip

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-row, per-feature path contributions float64 [rows, F]; each row sums to its
        prediction minus ``base``. Vectorised over rows × trees (chunked)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.zeros((x.shape[0], self.n_features))
        for lo in range(0, x.shape[0], _CHUNK):
            self._walk(x[lo : lo + _CHUNK], out[lo : lo + _CHUNK])
        return out

    def _walk(self, x: np.ndarray, out: np.ndarray) -> None:
        rows = np.repeat(np.arange(x.shape[0]), self.roots.size)
        node = np.tile(self.roots, x.shape[0])
        while True:
            active = ~self.is_leaf[node]
            if not active.any():
                return
            rows, node = rows[active], node[active]
            f = self.feature[node]
            v = x[rows, f]
            nan = np.isnan(v)
            go_left = np.where(nan, self.missing_left[node], v <= self.threshold[node])
            child = np.where(go_left, self.left[node], self.right[node])
            # np.add.at is slow; a bincount over flat (row, feature) cells adds the same values.
            flat = rows * self.n_features + f
            out += np.bincount(flat, weights=self.value[child] - self.value[node], minlength=out.size).reshape(out.shape)
            node = child

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The surrogate's prediction from the paths: ``base + Σ contributions``."""
        return self.base + self.contributions(x).sum(axis=1)


def _fit_surrogate(x: np.ndarray, y: np.ndarray, config: SurrogateConfig) -> TreePaths:
    model = HistGradientBoostingRegressor(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        early_stopping=False,
        random_state=config.seed,
    )
    # Single-threaded: deterministic and kind to a shared two-core machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(x, y)
    return TreePaths.from_model(model)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` against ``y`` (1.0 when ``y`` is constant and
    matched)."""
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0.0)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q / (1.0 - q))


def _cap_rows(rows: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """``rows``, or a sorted seeded sample of ``cap`` of them when there are more."""
    if rows.size > cap:
        return np.sort(rng.choice(rows, cap, replace=False))
    return rows


def _check_aligned(snapshot: Snapshot, scores: ScoreResult, features: FeatureSet) -> None:
    """Raise ``ModelError`` unless ``scores`` and ``features`` have one row per account and transaction."""
    n_user, n_txn = snapshot.num_nodes(NodeType.USER), len(snapshot.transactions)
    if scores.account_scores.shape[0] != n_user or scores.txn_scores.shape[0] != n_txn:
        raise ModelError(
            f"scores ({scores.account_scores.shape[0]} accounts, {scores.txn_scores.shape[0]} transactions) "
            f"do not match the snapshot ({n_user} accounts, {n_txn} transactions)"
        )
    if features.user.shape[0] != n_user or features.txn.shape[0] != n_txn:
        raise ModelError("features are not aligned with the snapshot: pass build_features(snapshot)")


def _account_inputs(
    snapshot: Snapshot, features: FeatureSet, known: KnownFraudFeatures
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The account surrogate's inputs: own features, neighbour aggregates (and their names),
    known-fraud features."""
    agg, agg_names = neighbour_aggregates(snapshot, features)
    x = np.concatenate([features.user.astype(np.float64), agg, known.user.astype(np.float64)], axis=1)
    return x, agg_names


def _txn_inputs(
    snapshot: Snapshot, features: FeatureSet, known: KnownFraudFeatures, account_logit: np.ndarray
) -> np.ndarray:
    """The transaction surrogate's inputs: own features, velocity, the device/IP/merchant
    features, known-fraud features and the account's model logit (in ``_txn_columns`` order)."""
    t = snapshot.transactions
    x = np.concatenate(
        [
            features.txn.astype(np.float64),
            txn_velocity(snapshot)[:, None],
            _gather(features.device, t.device),
            _gather(features.ip, t.ip),
            _gather(features.merchant, t.merchant),
            known.txn.astype(np.float64),
            account_logit[:, None],
        ],
        axis=1,
    )
    return x


@dataclass(frozen=True, slots=True)
class _Surrogate:
    """One entity's surrogate and what the reasons read from it, per row: raw inputs ``x``
    (float32), target logits ``y``, per-concept contributions ``contrib`` [rows, C], surrogate
    logit ``total`` and each concept's strongest column. ``paths`` is ``None`` when there was
    nothing to fit (then ``fidelity`` is NaN)."""

    paths: TreePaths | None
    cols: tuple[_Column, ...]
    concepts: tuple[str, ...]
    relations: tuple[str | None, ...]
    x: np.ndarray
    y: np.ndarray
    contrib: np.ndarray
    total: np.ndarray
    strongest: np.ndarray
    fidelity: float

    @property
    def base(self) -> float:
        return self.paths.base if self.paths is not None else 0.0

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        cols: tuple[_Column, ...],
        config: SurrogateConfig,
        rows: np.ndarray | None = None,
    ) -> _Surrogate:
        """Fit on ``rows`` (all when ``None``), then attribute every row and group by concept."""
        if x.shape[1] != len(cols):  # a programming error, caught by the tests
            raise ModelError(f"surrogate: {x.shape[1]} input columns vs {len(cols)} column names")
        xf, yf = (x, y) if rows is None else (x[rows], y[rows])
        if yf.shape[0]:
            paths: TreePaths | None = _fit_surrogate(xf, yf, config)
            contrib = paths.contributions(x)
            fidelity = r2(y, paths.base + contrib.sum(axis=1))
        else:
            paths, contrib, fidelity = None, np.zeros((0, len(cols))), float("nan")
        concepts, member = _concept_index(cols)
        base = paths.base if paths is not None else 0.0
        return cls(
            paths=paths,
            cols=cols,
            concepts=concepts,
            relations=_concept_relations(cols, concepts),
            x=x.astype(np.float32),
            y=y,
            contrib=(contrib @ member).astype(np.float32),
            total=(base + contrib.sum(axis=1)).astype(np.float64),
            strongest=_strongest_column(contrib, cols, concepts),
            fidelity=fidelity,
        )


# -- the explainer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Facts:
    """Per identifier of one type: distinct accounts, confirmed-fraud accounts and HIGH-tier
    accounts without a fraud verdict; per account its riskiest identifier (-1: none)."""

    users: np.ndarray
    fraud: np.ndarray
    high: np.ndarray
    best: np.ndarray


class Explainer:
    """Reasons for the accounts and transactions of one scored snapshot.

    Build with :meth:`build` (fits the surrogates, precomputes every account's and transaction's
    concept contributions and every account's riskiest device and IP); read with
    :meth:`account` and :meth:`transaction`. Read-only afterwards, safe to share. The surrogates
    are seeded and fitted single-threaded: the same snapshot, scores and config give the same
    reasons. ``fidelity_accounts`` / ``fidelity_transactions``: R² of surrogate vs model logit
    over the snapshot, in-sample (``holdout_fidelity`` gives held-out values).
    """

    fidelity_accounts: float
    fidelity_transactions: float

    def __init__(self) -> None:  # filled by build()
        self.model_version = ""

    @classmethod
    def build(
        cls,
        artefact: ModelArtefact,
        snapshot: Snapshot,
        *,
        scores: ScoreResult | None = None,
        features: FeatureSet | None = None,
        config: SurrogateConfig = SurrogateConfig(),
    ) -> Explainer:
        """Fit the surrogates to ``scores`` (``score_snapshot(artefact, snapshot)`` when not
        given) and precompute the explanations' parts.

        Args:
            artefact: the model that made the scores (its thresholds give the tiers).
            snapshot: the graph the scores belong to.
            scores: batch scores of ``snapshot``; computed when ``None``.
            features: ``build_features(snapshot)`` (raw); computed when ``None``.
            config: surrogate knobs and seed.

        Raises:
            ModelError: ``scores`` or ``features`` are not aligned with ``snapshot``, or the
                snapshot has no accounts.
        """
        if snapshot.num_nodes(NodeType.USER) == 0:
            raise ModelError("snapshot has no accounts to explain: load events first (`ringwatch ingest`)")
        features = features if features is not None else build_features(snapshot)
        scores = scores if scores is not None else score_snapshot(artefact, snapshot)
        _check_aligned(snapshot, scores, features)
        self = cls()
        self.model_version = scores.model_version
        self._config = config
        self._index(snapshot, scores)
        self._build_facts(snapshot)
        delay = artefact.model_config.label_delay if artefact.model_config is not None else None
        known = known_fraud_features(snapshot, label_delay=delay)
        xa, agg_names = _account_inputs(snapshot, features, known)
        ya = _logit(self._account_scores)
        self._acc = _Surrogate.fit(xa, ya, _account_columns(agg_names), config)
        xt = _txn_inputs(snapshot, features, known, ya[self._txn_user])
        rows = _cap_rows(np.arange(xt.shape[0]), config.max_txn_rows, np.random.default_rng(config.seed))
        self._txn = _Surrogate.fit(xt, _logit(self._txn_scores), _txn_columns(), config, rows=rows)
        self.fidelity_accounts = self._acc.fidelity
        self.fidelity_transactions = self._txn.fidelity
        return self

    def _index(self, snapshot: Snapshot, scores: ScoreResult) -> None:
        """Keys, positions and batch scores of the snapshot's accounts and transactions."""
        t = snapshot.transactions
        self._snapshot = snapshot
        self._users = np.asarray(snapshot.nodes[NodeType.USER], dtype=object)
        self._user_pos = {k: i for i, k in enumerate(self._users.tolist())}
        self._txn_pos = {k: i for i, k in enumerate(t.txn_id.tolist())}
        self._keys = {nt: np.asarray(snapshot.nodes[nt], dtype=object) for nt in (NodeType.DEVICE, NodeType.IP)}
        self._account_scores = np.asarray(scores.account_scores, dtype=np.float64)
        self._account_tiers = list(scores.account_tiers)
        self._txn_scores = np.asarray(scores.txn_scores, dtype=np.float64)
        self._txn_tiers = list(scores.txn_tiers)
        self._txn_user = t.user.astype(np.int64)
        self._txn_device = t.device.astype(np.int64)
        self._txn_ip = t.ip.astype(np.int64)

    def _build_facts(self, snapshot: Snapshot) -> None:
        n_user = snapshot.num_nodes(NodeType.USER)
        fraud = np.zeros(n_user, dtype=bool)
        ul = snapshot.user_labels
        fraud[ul.index[ul.is_fraud].astype(np.int64)] = True
        high = np.array([t is Tier.HIGH for t in self._account_tiers], dtype=bool) & ~fraud
        self._is_fraud, self._is_high = fraud, high
        self._facts: dict[NodeType, _Facts] = {}
        for nt, links in ((NodeType.DEVICE, snapshot.user_device), (NodeType.IP, snapshot.user_ip)):
            n = snapshot.num_nodes(nt)
            src, dst = links.src.astype(np.int64), links.dst.astype(np.int64)
            users = np.bincount(dst, minlength=n)[:n].astype(np.int64)
            nf = np.bincount(dst, weights=fraud[src], minlength=n)[:n].astype(np.int64)
            nh = np.bincount(dst, weights=high[src], minlength=n)[:n].astype(np.int64)
            # Per link, counted without the account itself; the account's riskiest identifier
            # is the one with most risky others, then most confirmed fraud, then most others,
            # then the smallest index (deterministic).
            of = nf[dst] - fraud[src]
            oh = nh[dst] - high[src]
            others = users[dst] - 1
            order = np.lexsort((dst, -others, -of, -(of + oh), src))
            first = np.r_[True, src[order][1:] != src[order][:-1]] if order.size else np.zeros(0, dtype=bool)
            best = np.full(n_user, -1, dtype=np.int64)
            pick = order[first]
            keep = (of[pick] + oh[pick]) > 0
            best[src[pick][keep]] = dst[pick][keep]
            self._facts[nt] = _Facts(users=users, fraud=nf, high=nh, best=best)

    def holdout_fidelity(self, share: float = 0.2) -> tuple[float, float]:
        """R² of the surrogates on rows they were not fitted on: refit on a seeded ``1 - share``
        of the accounts (transactions, capped as in ``build``) and score the rest. Returns
        (accounts, transactions); the in-sample values are ``fidelity_*``. For reports; the
        explanations keep using the surrogates fitted on every row.

        Raises:
            ValidationError: ``share`` outside (0, 1).
        """
        if not 0.0 < share < 1.0:
            raise ValidationError("share", share, "must be in (0, 1)")
        rng = np.random.default_rng(self._config.seed)
        out = []
        for x, y in ((self._acc.x, self._acc.y), (self._txn.x, self._txn.y)):
            test = rng.random(y.shape[0]) < share
            fit = _cap_rows(np.flatnonzero(~test), self._config.max_txn_rows, rng)
            if fit.size == 0 or not test.any():
                out.append(float("nan"))
                continue
            paths = _fit_surrogate(x[fit].astype(np.float64), y[fit], self._config)
            out.append(r2(y[test], paths.predict(x[test].astype(np.float64))))
        return out[0], out[1]

    # -- reads ----------------------------------------------------------------------------

    def fact(self, node_type: NodeType, index: int, *, exclude_user: int = -1) -> NeighbourFact:
        """The neighbourhood fact of one device/IP (by position), not counting ``exclude_user``."""
        f = self._facts[node_type]
        me_f = int(exclude_user >= 0 and self._is_fraud[exclude_user])
        me_h = int(exclude_user >= 0 and self._is_high[exclude_user])
        return NeighbourFact(
            node=(node_type, str(self._keys[node_type][index])),
            others=int(f.users[index]) - int(exclude_user >= 0),
            fraud=int(f.fraud[index]) - me_f,
            high=int(f.high[index]) - me_h,
        )

    def account(self, user_id: str, top: int = MAX_REASONS) -> Explanation:
        """Reasons for one account's batch score: its device and IP that connect it to the most
        risky accounts (confirmed fraud, then HIGH tier) when they pushed the score up, then the
        concepts that drove the score.

        Raises:
            NotFoundError: the snapshot has no such account.
        """
        pos = self._user_pos.get(user_id)
        if pos is None:
            raise NotFoundError("account", user_id)
        facts = []
        for nt in (NodeType.DEVICE, NodeType.IP):
            best = int(self._facts[nt].best[pos])
            if best >= 0:
                facts.append(self.fact(nt, best, exclude_user=pos))
        return Explanation(
            entity="account",
            key=user_id,
            score=float(self._account_scores[pos]),
            tier=self._account_tiers[pos],
            reasons=self._reasons(facts, self._acc, pos, top, user_id),
            base_logit=float(self._acc.base),
            surrogate_logit=float(self._acc.total[pos]),
        )

    def transaction(self, txn_id: str, top: int = MAX_REASONS) -> Explanation:
        """Reasons for one transaction's batch score: its device and IP when they connect to
        risky accounts, then the concepts that drove the score (its account's risk among them).

        Raises:
            NotFoundError: the snapshot has no such transaction.
        """
        row = self._txn_pos.get(txn_id)
        if row is None or self._txn.paths is None:
            raise NotFoundError("transaction", txn_id)
        user = int(self._txn_user[row])
        facts = []
        for nt, idx in ((NodeType.DEVICE, self._txn_device[row]), (NodeType.IP, self._txn_ip[row])):
            if idx >= 0:
                fact = self.fact(nt, int(idx), exclude_user=user)
                if fact.risky > 0:
                    facts.append(fact)
        return Explanation(
            entity="transaction",
            key=txn_id,
            score=float(self._txn_scores[row]),
            tier=self._txn_tiers[row],
            reasons=self._reasons(facts, self._txn, row, top, str(self._users[user]), self._account_tiers[user].value),
            base_logit=float(self._txn.base),
            surrogate_logit=float(self._txn.total[row]),
        )

    # -- helpers --------------------------------------------------------------------------

    def _reasons(
        self,
        facts: list[NeighbourFact],
        part: _Surrogate,
        row: int,
        top: int,
        user_id: str,
        account_tier: str = "",
    ) -> tuple[Reason, ...]:
        """The ``top`` reasons of one row of ``part``: risky-neighbour facts, then the concepts
        that pushed its surrogate logit away from the base (above it: the largest positive
        contributions; below: the largest negative ones), strongest first."""
        contrib, strongest, x = part.contrib[row], part.strongest[row], part.x[row]
        concepts, cols, relations = part.concepts, part.cols, part.relations
        delta = part.total[row] - part.base
        sign = 1.0 if delta >= 0 else -1.0
        found: list[Reason] = []
        covered: set[int] = set()
        rel_of = {NodeType.DEVICE: "device", NodeType.IP: "ip"}
        for fact in facts:
            # A risky identifier is a reason only when its side of the neighbourhood pushed the
            # score up; the fact then stands for all of that relation's concepts.
            members = [c for c, r in enumerate(relations) if r == rel_of[fact.node[0]]]
            weight = float(sum(float(contrib[c]) for c in members))
            if fact.risky > 0 and weight > 0 and not covered.intersection(members):
                found.append(Reason(ReasonKind.RISKY_NEIGHBOURS, fact.text(), weight, node=fact.node))
                covered.update(members)
        for c in np.argsort(-sign * contrib, kind="stable").tolist():
            if len(found) >= top + len(facts):
                break
            value = float(contrib[c])
            if sign * value <= 0:
                break
            if c in covered:
                continue
            ci = int(strongest[c])
            col = cols[ci]
            node = (NodeType.USER, user_id) if col.kind is ReasonKind.ACCOUNT else None
            text = _text(ci, cols, x, user_id, account_tier if col.kind is ReasonKind.ACCOUNT else "")
            found.append(Reason(col.kind, text, value, node=node, concept=concepts[c]))
        found.sort(key=lambda r: -sign * r.contribution)  # stable: facts first on ties
        return tuple(found[:top])


def _gather(block: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Rows ``block[index]`` as float64; NaN rows where ``index`` is -1 (absent)."""
    index = index.astype(np.int64)
    out = np.full((index.shape[0], block.shape[1]), np.nan)
    ok = index >= 0
    out[ok] = block[index[ok]]
    return out


def _concept_index(cols: tuple[_Column, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Concept names in first-seen order and the column -> concept membership [F, C]."""
    names: list[str] = []
    for c in cols:
        if c.concept not in names:
            names.append(c.concept)
    member = np.zeros((len(cols), len(names)))
    for i, c in enumerate(cols):
        member[i, names.index(c.concept)] = 1.0
    return tuple(names), member


def _concept_relations(cols: tuple[_Column, ...], concepts: tuple[str, ...]) -> tuple[str | None, ...]:
    rel: dict[str, str | None] = {}
    for c in cols:
        rel.setdefault(c.concept, c.relation)
    return tuple(rel[name] for name in concepts)


def _strongest_column(contrib: np.ndarray, cols: tuple[_Column, ...], concepts: tuple[str, ...]) -> np.ndarray:
    """Per row and concept, the column with the largest |contribution| in it (uint16 [rows, C])."""
    out = np.zeros((contrib.shape[0], len(concepts)), dtype=np.uint16)
    for ci, name in enumerate(concepts):
        idx = np.asarray([i for i, c in enumerate(cols) if c.concept == name], dtype=np.int64)
        if idx.size == 1 or contrib.shape[0] == 0:
            out[:, ci] = idx[0]
        else:
            out[:, ci] = idx[np.argmax(np.abs(contrib[:, idx]), axis=1)]
    return out


_EVENT_COLS = tuple(i for i, f in enumerate(TXN_FEATURES) if f.startswith("event_"))
_HOUR_SIN, _HOUR_COS = TXN_FEATURES.index("hour_sin"), TXN_FEATURES.index("hour_cos")
_NOUN = {"device": "devices", "ip": "IPs", "merchant": "merchants"}


def _text(ci: int, cols: tuple[_Column, ...], x: np.ndarray, user_id: str, tier: str = "") -> str:
    """The sentence for column ``ci`` of one row (``x`` the row's raw surrogate inputs)."""
    col = cols[ci]
    value = float(x[ci])
    if col.concept == "txn:event":
        hot = [TXN_FEATURES[i][len("event_") :] for i in _EVENT_COLS if float(x[i]) > 0.5]
        return f"the event is a {hot[0]}" if hot else "the event kind is unknown"
    if col.concept == "txn:hour":
        angle = math.atan2(float(x[_HOUR_SIN]), float(x[_HOUR_COS]))
        if not math.isfinite(angle):
            return "the hour is unknown"
        hour = int((angle / (2.0 * math.pi) * 24.0) % 24.0)
        return f"made at {hour:02d}:00-{(hour + 1) % 24:02d}:00 UTC"
    if col.name in FLAG_TEMPLATES:
        on, off = FLAG_TEMPLATES[col.name]
        return on if value > 0.5 else off
    if not math.isfinite(value):  # an absent neighbour: say so rather than print "nan"
        noun = _NOUN.get(col.relation or "", "neighbours")
        if col.who.startswith("txn_"):
            return f"the event names no {noun[:-1]}"
        if col.who.endswith("2"):
            return f"no other account shares its {noun}"
        return f"the account has no {noun} on record"
    assert col.template is not None
    template, how = TEMPLATES[col.template]
    who = user_id if col.kind is ReasonKind.ACCOUNT else _WHO[col.who]
    v = _fmt(value, how)
    return template.format(who=who, q=_Q[col.q], v=v, s="" if v == "1" else "s", tier=f" ({tier} risk)" if tier else "")
