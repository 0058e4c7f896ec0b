"""The unsupervised fallback: a graph anomaly score that needs no labels (DESIGN §6).

Used when there are too few fraud labels to train on. Each account gets percentiles (against
the training graph's distribution, stored in the artefact) of:

* ``shared_device`` / ``shared_ip``: the most users on one of its devices / IPs, counted only
  for identifiers shared by 2..``shared_cap`` users. Hubs above the cap (an office NAT, a mobile
  carrier gateway) are public and say nothing about a ring.
* ``behaviour``: mean percentile of payment velocity, tiny-payment share, declined share,
  night-time share and youth (a short active span).
* ``neighbour_behaviour``: the highest mean ``behaviour`` of the *other* users on one of its
  shared identifiers, so a quiet member of a busy farm is pulled up too.

The account score is a weighted mean of those percentiles, in [0, 1]. A transaction's score mixes
its account's score with the transaction's own oddness (tiny amount, declined, a short gap since
the user's previous event); signups and logins get half of that, as they move no money. Percentiles are taken against stored reference quantiles, so scoring
a snapshot with one new account does not move everyone else's score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gnn.core.features import FeatureSet, moves_money
from graph.types import NodeType, Snapshot

#: Behaviour signals per account: feature name and sign (+1: higher is odder).
BEHAVIOUR: tuple[tuple[str, float], ...] = (
    ("max_payments_per_hour_log", 1.0),
    ("tiny_share", 1.0),
    ("declined_share", 1.0),
    ("night_share", 1.0),
    ("active_days_log", -1.0),
)
#: Account-score components and their weights (sum to 1).
USER_WEIGHTS: dict[str, float] = {
    "shared_device": 0.25,
    "shared_ip": 0.15,
    "behaviour": 0.30,
    "neighbour_behaviour": 0.30,
}
#: Transaction score = TXN_USER_WEIGHT * account score + rest * transaction oddness...
TXN_USER_WEIGHT = 0.6
#: ...times this for signups and logins: they move no money, so they are never the loss itself.
NON_MONEY_FACTOR = 0.5
N_QUANTILES = 1001


@dataclass(frozen=True, slots=True)
class AnomalyReference:
    """Reference quantiles (sorted float64 arrays) for every percentile the score uses, fitted on
    the training snapshot. ``shared_cap`` bounds which identifiers count as privately shared."""

    quantiles: dict[str, np.ndarray]
    shared_cap: int = 50

    def percentile(self, name: str, x: np.ndarray) -> np.ndarray:
        """Share of the reference strictly below ``x`` (ties at a common value -> low)."""
        q = self.quantiles[name]
        return np.searchsorted(q, x, side="left") / float(q.size)

    def to_dict(self) -> dict[str, object]:
        return {
            "quantiles": {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in self.quantiles.items()},
            "shared_cap": int(self.shared_cap),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> AnomalyReference:
        qs = {str(k): v.numpy().astype(np.float64) for k, v in dict(d["quantiles"]).items()}  # type: ignore[union-attr]
        return cls(quantiles=qs, shared_cap=int(d["shared_cap"]))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AnomalyScores:
    """Account scores [N_user], transaction scores [T] and the account components
    [N_user, len(USER_WEIGHTS)] (in ``USER_WEIGHTS`` order) that made them."""

    account: np.ndarray
    txn: np.ndarray
    components: np.ndarray


def _quantiles(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return np.zeros(1)
    return np.quantile(x.astype(np.float64), np.linspace(0.0, 1.0, N_QUANTILES))


def _col(features: FeatureSet, block: str, name: str) -> np.ndarray:
    return features.block(block)[:, features.names[block].index(name)].astype(np.float64)


def _raw_signals(snapshot: Snapshot, features: FeatureSet, cap: int) -> dict[str, np.ndarray]:
    """Raw (un-percentiled) per-account sharing and behaviour signals, and per-txn oddness."""
    n_user = snapshot.num_nodes(NodeType.USER)
    out: dict[str, np.ndarray] = {}
    for name, sign in BEHAVIOUR:
        out[name] = sign * _col(features, "user", name)
    for key, links, n_nodes in (
        ("shared_device", snapshot.user_device, snapshot.num_nodes(NodeType.DEVICE)),
        ("shared_ip", snapshot.user_ip, snapshot.num_nodes(NodeType.IP)),
    ):
        deg = np.bincount(links.dst.astype(np.int64), minlength=n_nodes)[:n_nodes]
        d = deg[links.dst] if len(links) else np.zeros(0, dtype=np.int64)
        private = (d >= 2) & (d <= cap)
        best = np.zeros(n_user)
        np.maximum.at(best, links.src[private].astype(np.int64), np.log(d[private].astype(np.float64)))
        out[key] = best
    t_feat = features.txn
    names = features.names["txn"]
    gap = t_feat[:, names.index("gap_log")].astype(np.float64)
    first = t_feat[:, names.index("is_first")] > 0.5
    out["txn_tiny"] = t_feat[:, names.index("is_tiny")].astype(np.float64)
    out["txn_declined"] = t_feat[:, names.index("declined")].astype(np.float64)
    out["txn_fast"] = np.where(first, -np.inf, -gap)  # a first event is never "fast"
    return out


def _neighbour_behaviour(snapshot: Snapshot, behaviour: np.ndarray, cap: int) -> np.ndarray:
    """Per account: max over its privately shared devices/IPs of the other users' mean behaviour."""
    n_user = behaviour.shape[0]
    best = np.zeros(n_user)
    for links, n_nodes in (
        (snapshot.user_device, snapshot.num_nodes(NodeType.DEVICE)),
        (snapshot.user_ip, snapshot.num_nodes(NodeType.IP)),
    ):
        if not len(links):
            continue
        src = links.src.astype(np.int64)
        dst = links.dst.astype(np.int64)
        deg = np.bincount(dst, minlength=n_nodes)[:n_nodes].astype(np.float64)
        total = np.bincount(dst, weights=behaviour[src], minlength=n_nodes)[:n_nodes]
        d = deg[dst]
        private = (d >= 2) & (d <= cap)
        others = np.where(private, (total[dst] - behaviour[src]) / np.maximum(d - 1.0, 1.0), 0.0)
        np.maximum.at(best, src, others)
    return best


def _behaviour(raw: dict[str, np.ndarray], ref: AnomalyReference) -> np.ndarray:
    return np.mean([ref.percentile(name, raw[name]) for name, _ in BEHAVIOUR], axis=0)


def fit_reference(snapshot: Snapshot, features: FeatureSet, *, shared_cap: int = 50) -> AnomalyReference:
    """Reference quantiles of every signal on ``snapshot`` (raw, unstandardised ``features``)."""
    raw = _raw_signals(snapshot, features, shared_cap)
    qs = {name: _quantiles(raw[name]) for name, _ in BEHAVIOUR}
    qs["txn_tiny"] = _quantiles(raw["txn_tiny"])
    qs["txn_declined"] = _quantiles(raw["txn_declined"])
    fast = raw["txn_fast"]
    qs["txn_fast"] = _quantiles(fast[np.isfinite(fast)])
    partial = AnomalyReference(quantiles=qs, shared_cap=shared_cap)
    behaviour = _behaviour(raw, partial)
    qs["shared_device"] = _quantiles(raw["shared_device"])
    qs["shared_ip"] = _quantiles(raw["shared_ip"])
    qs["behaviour"] = _quantiles(behaviour)
    qs["neighbour_behaviour"] = _quantiles(_neighbour_behaviour(snapshot, behaviour, shared_cap))
    return AnomalyReference(quantiles=qs, shared_cap=shared_cap)


def anomaly_scores(snapshot: Snapshot, features: FeatureSet, reference: AnomalyReference) -> AnomalyScores:
    """Score every account and transaction of ``snapshot`` without a trained model."""
    raw = _raw_signals(snapshot, features, reference.shared_cap)
    behaviour = _behaviour(raw, reference)
    values = {
        "shared_device": raw["shared_device"],
        "shared_ip": raw["shared_ip"],
        "behaviour": behaviour,
        "neighbour_behaviour": _neighbour_behaviour(snapshot, behaviour, reference.shared_cap),
    }
    comps = np.stack([reference.percentile(k, values[k]) for k in USER_WEIGHTS], axis=1)
    weights = np.array(list(USER_WEIGHTS.values()))
    account = np.clip(comps @ weights, 0.0, 1.0)
    txn_odd = np.mean(
        [reference.percentile(k, raw[k]) for k in ("txn_tiny", "txn_declined", "txn_fast")], axis=0
    ) if len(snapshot.transactions) else np.zeros(0)
    t = snapshot.transactions
    money = moves_money(t.event)
    mixed = TXN_USER_WEIGHT * account[t.user.astype(np.int64)] + (1.0 - TXN_USER_WEIGHT) * txn_odd
    txn = np.clip(np.where(money, mixed, NON_MONEY_FACTOR * mixed), 0.0, 1.0)
    return AnomalyScores(account=account, txn=txn, components=comps.astype(np.float32))
