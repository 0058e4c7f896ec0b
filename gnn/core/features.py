"""Node and transaction features computed from a ``Snapshot``, and their standardisation.

Everything is vectorised numpy/pandas so that a million transactions take about a second. Each
feature is defined once (``_user_values``, ``_merchant_values``, ``_txn_values``) over an array
namespace: numpy for a snapshot's columns, ``_RowMath`` (Python floats) for the one row that a
serving call computes, where numpy's per-call overhead would dominate. Labels
are never an input here: a verdict used as a feature would leak the answer into the model. The
graph carries the fraud signal instead (shared devices and IPs, see ``gnn.core.model``).

Feature blocks are keyed by the model's node-type names ``"user"``, ``"device"``, ``"ip"``,
``"merchant"`` plus ``"txn"`` for the per-transaction edge features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from graph.errors import ModelError
from graph.types import EVENT_KINDS, Event, EventKind, NodeType, Snapshot

#: Model node-type name -> graph node type.
NODE_TYPES: dict[str, NodeType] = {
    "user": NodeType.USER,
    "device": NodeType.DEVICE,
    "ip": NodeType.IP,
    "merchant": NodeType.MERCHANT,
}
#: Feature blocks in a fixed order (node types, then transactions).
BLOCKS: tuple[str, ...] = ("user", "device", "ip", "merchant", "txn")

#: Payments below this amount are "tiny" (card testing, DESIGN's farm rings).
TINY_AMOUNT = 2.0
#: Statuses that count as a declined attempt.
DECLINED_STATUSES = frozenset({"declined", "rejected", "failed"})
#: UTC hours [0, NIGHT_END_HOUR) count as night-time.
NIGHT_END_HOUR = 6
#: Standardised values are clipped to this many standard deviations, so a value far outside
#: the training range (a brand-new hub IP) cannot blow up the activations.
CLIP_STD = 8.0

_PAY = EVENT_KINDS.index(EventKind.PAYMENT.value)
_REFUND = EVENT_KINDS.index(EventKind.REFUND.value)
_SIGNUP = EVENT_KINDS.index(EventKind.SIGNUP.value)
_LOGIN = EVENT_KINDS.index(EventKind.LOGIN.value)
#: Event codes (positions in ``EVENT_KINDS``) of the events that move money.
MONEY_EVENTS: tuple[int, ...] = (_PAY, _REFUND)

USER_FEATURES: tuple[str, ...] = (
    "n_payments_log",
    "n_refunds_log",
    "n_logins_log",
    "n_signups_log",
    "declined_share",
    "amount_mean_log",
    "amount_max_log",
    "amount_std_log",
    "tiny_share",
    "n_merchants_log",
    "n_devices_log",
    "n_ips_log",
    "max_device_users_log",  # most other accounts on one of its devices (log1p)
    "max_ip_users_log",  # most other accounts on one of its IPs (log1p)
    "active_days_log",
    "max_payments_per_hour_log",
    "night_share",
)
DEVICE_FEATURES: tuple[str, ...] = ("n_users_log", "n_txns_log", "n_ips_log")
IP_FEATURES: tuple[str, ...] = ("n_users_log", "n_devices_log", "n_txns_log")
MERCHANT_FEATURES: tuple[str, ...] = (
    "n_users_log",
    "n_txns_log",
    "tiny_share",
    "declined_share",
    "amount_mean_log",
)
TXN_FEATURES: tuple[str, ...] = (
    "amount_log",
    "has_amount",
    "is_tiny",
    "declined",
    *(f"event_{k}" for k in EVENT_KINDS),
    "hour_sin",
    "hour_cos",
    "gap_log",  # log1p seconds since the same user's previous event (0 for the first)
    "is_first",  # the user's first event in the snapshot
    "user_count_so_far_log",  # how many events the user had before this one
    "has_device",
    "has_ip",
)


def moves_money(event: np.ndarray) -> np.ndarray:
    """Which events move money (payments and refunds, not signups or logins): bool [n] for the
    event codes ``event`` [n] (positions in ``EVENT_KINDS``)."""
    return np.isin(np.asarray(event).astype(np.int64), MONEY_EVENTS)


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Raw (or standardised) features per node type and per transaction.

    Shapes: ``user`` [N_user, F_user], ``device`` [N_device, F_device], ``ip`` [N_ip, F_ip],
    ``merchant`` [N_merchant, F_merchant], ``txn`` [T, F_txn]; all float32, rows aligned with
    ``snapshot.nodes[...]`` and ``snapshot.transactions``. ``names`` maps each block to its
    column names.
    """

    user: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    merchant: np.ndarray
    txn: np.ndarray
    names: dict[str, tuple[str, ...]]

    def block(self, name: str) -> np.ndarray:
        """The array of one block (``"user"``, ..., ``"txn"``)."""
        if name not in BLOCKS:
            raise ModelError(f"feature block {name!r} unknown; expected one of {BLOCKS}")
        return getattr(self, name)


@dataclass(frozen=True, slots=True)
class Normalisation:
    """Per-block column means and standard deviations, fitted on the training graph and stored
    with the model so that scoring standardises new data exactly like training did."""

    means: dict[str, np.ndarray]
    stds: dict[str, np.ndarray]

    @classmethod
    def fit(cls, features: FeatureSet) -> Normalisation:
        """Column means and stds of every block (std 0 -> 1, so constant columns become 0)."""
        means: dict[str, np.ndarray] = {}
        stds: dict[str, np.ndarray] = {}
        for b in BLOCKS:
            x = features.block(b).astype(np.float64)
            if x.shape[0] == 0:
                mu = np.zeros(x.shape[1])
                sd = np.ones(x.shape[1])
            else:
                mu = x.mean(axis=0)
                sd = x.std(axis=0)
                sd = np.where(sd < 1e-6, 1.0, sd)
            means[b] = mu.astype(np.float32)
            stds[b] = sd.astype(np.float32)
        return cls(means=means, stds=stds)

    def apply(self, features: FeatureSet) -> FeatureSet:
        """Standardise every block: ``clip((x - mean) / std, ±CLIP_STD)``.

        Raises:
            ModelError: a block's width differs from the fitted one.
        """
        return FeatureSet(**{b: self.apply_block(b, features.block(b)) for b in BLOCKS}, names=features.names)

    def apply_block(self, name: str, x: np.ndarray) -> np.ndarray:
        """Standardise one block's rows ``x`` [n, F] (or one row [F]), as ``apply`` does.

        Raises:
            ModelError: the width differs from the fitted one.
        """
        if x.shape[-1] != self.means[name].shape[0]:
            raise ModelError(
                f"feature block {name!r} has {x.shape[-1]} columns, the model expects "
                f"{self.means[name].shape[0]}; retrain the model (`ringwatch train`)"
            )
        # In place after the first subtraction: one [n, F] float32 array, not three.
        z = np.subtract(x, self.means[name], dtype=np.float32)
        z /= self.stds[name]
        np.maximum(z, -CLIP_STD, out=z)  # np.clip, without its Python wrapper (one row per checkout call)
        return np.minimum(z, CLIP_STD, out=z)


def build_features(snapshot: Snapshot) -> FeatureSet:
    """Compute raw features for every user, device, IP, merchant and transaction.

    User: event counts per kind, declined share, payment amount mean/max/std (log1p), share of
    tiny payments, distinct merchants/devices/IPs, the most other accounts met on one of its
    devices / IPs, active span, peak payments per clock hour, night-time share. Device/IP/merchant: how many users and transactions touch them (log1p),
    plus merchant tiny/declined shares. Transaction: amount, tiny/declined flags, event one-hot,
    hour of day (sin/cos), time since the user's previous event and the user's event count so
    far. No labels are read. The node blocks are ``FeatureStats.from_snapshot(snapshot)``'s
    statistics turned into features, the definition that online updates share.
    """
    return build_features_and_stats(snapshot)[0]


def build_features_and_stats(snapshot: Snapshot) -> tuple[FeatureSet, FeatureStats]:
    """``build_features(snapshot)`` and the ``FeatureStats`` it was derived from (one pass)."""
    cols = _EventColumns.of(snapshot)
    stats = FeatureStats._from_columns(snapshot, cols)
    t = snapshot.transactions
    txn = _txn_features(t.device, t.ip, cols)
    out = FeatureSet(
        user=stats.features("user"),
        device=stats.features("device"),
        ip=stats.features("ip"),
        merchant=stats.features("merchant"),
        txn=txn.astype(np.float32, copy=False),  # built float32 already (the biggest block)
        names=dict(FEATURE_NAMES),
    )
    for b in BLOCKS:
        if out.block(b).shape[1] != len(FEATURE_NAMES[b]):  # a programming error, caught by the tests
            raise ModelError(f"feature block {b!r}: {out.block(b).shape[1]} columns vs {len(FEATURE_NAMES[b])} names")
    return out, stats


#: Column names per feature block.
FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "user": USER_FEATURES,
    "device": DEVICE_FEATURES,
    "ip": IP_FEATURES,
    "merchant": MERCHANT_FEATURES,
    "txn": TXN_FEATURES,
}

#: Per-node sufficient statistics behind the node features (``FeatureStats``): counts and sums
#: that one more event updates in O(1), from which ``FeatureStats.features`` derives the
#: features. Device and IP features are ``log1p`` of their statistics, column for column.
USER_STATS: tuple[str, ...] = (
    "n_payments",
    "n_refunds",
    "n_logins",
    "n_signups",
    "n_money",  # payments and refunds
    "n_money_declined",
    "n_amounts",  # payments with an amount
    "amount_log_sum",
    "amount_log_sq_sum",
    "amount_log_max",
    "n_tiny",  # payments with an amount below TINY_AMOUNT
    "n_merchants",  # distinct merchants of its payments and refunds
    "n_devices",
    "n_ips",
    "max_device_users",  # most other accounts on one of its devices
    "max_ip_users",
    "first_ts",  # +inf without events
    "last_ts",  # -inf without events
    "max_payments_per_hour",
    "n_night_payments",
)
DEVICE_STATS: tuple[str, ...] = ("n_users", "n_txns", "n_ips")
IP_STATS: tuple[str, ...] = ("n_users", "n_devices", "n_txns")
MERCHANT_STATS: tuple[str, ...] = ("n_users", "n_txns", "n_amounts", "n_tiny", "n_money", "n_money_declined", "amount_log_sum")
STAT_NAMES: dict[str, tuple[str, ...]] = {"user": USER_STATS, "device": DEVICE_STATS, "ip": IP_STATS, "merchant": MERCHANT_STATS}
_U = {n: i for i, n in enumerate(USER_STATS)}
_M = {n: i for i, n in enumerate(MERCHANT_STATS)}


@dataclass(frozen=True, slots=True)
class UserHistory:
    """One account's earlier events, for updating its statistics with one more: time, kind
    (index into ``EVENT_KINDS``), merchant node id (-1 none) and ``txn_id`` (orders events with
    the same time, as the snapshot's rows are ordered by (ts, txn_id))."""

    ts: np.ndarray
    kind: np.ndarray
    merchant: np.ndarray
    txn_id: np.ndarray


@dataclass(frozen=True, slots=True)
class EventContext:
    """What one event's statistics update reads from the graph around it (the caller gathers
    it from its adjacency): the node id per type the event names (absent types left out),
    which of its links are new, the account's devices and IPs *with* the event's, and the
    account's earlier events."""

    gid: dict[str, int]
    new_user_device: bool
    new_user_ip: bool
    new_device_ip: bool
    user_devices: np.ndarray
    user_ips: np.ndarray
    history: UserHistory


@dataclass(slots=True)
class FeatureStats:
    """Per-node sufficient statistics (``STAT_NAMES``), float64 [N_t, S_t] per node type.

    ``from_snapshot`` computes them in bulk; ``with_event`` gives the rows of the nodes one
    more event touches, as ``from_snapshot`` of the snapshot with that event would give them,
    and ``put`` stores such rows (a node past the arrays, i.e. new since the snapshot, in
    ``added``: a new node never copies the arrays, which hold millions of rows at scale).
    ``features`` turns
    statistics into raw features: ``build_features`` uses the same function, so a node's
    features after online updates equal the batch definition. Only the event's own nodes are
    updated: e.g. the other accounts on its device keep their ``max_device_users``.
    """

    user: np.ndarray
    device: np.ndarray
    ip: np.ndarray
    merchant: np.ndarray
    added: dict[str, dict[int, np.ndarray]] = field(default_factory=lambda: {t: {} for t in STAT_NAMES})

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> FeatureStats:
        """The statistics of every node of ``snapshot``."""
        return cls._from_columns(snapshot, _EventColumns.of(snapshot))

    @classmethod
    def _from_columns(cls, snapshot: Snapshot, c: _EventColumns) -> FeatureStats:
        t = snapshot.transactions
        n_user = snapshot.num_nodes(NodeType.USER)
        n_dev = snapshot.num_nodes(NodeType.DEVICE)
        n_ip = snapshot.num_nodes(NodeType.IP)
        n_mer = snapshot.num_nodes(NodeType.MERCHANT)
        device = np.stack(
            [_count(snapshot.user_device.dst, n_dev), _count(t.device[t.device >= 0], n_dev), _count(snapshot.device_ip.src, n_dev)],
            axis=1,
        )
        ip = np.stack(
            [_count(snapshot.user_ip.dst, n_ip), _count(snapshot.device_ip.dst, n_ip), _count(t.ip[t.ip >= 0], n_ip)],
            axis=1,
        )
        return cls(
            user=_user_stats(snapshot, n_user, c),
            device=device,
            ip=ip,
            merchant=_merchant_stats(t.merchant.astype(np.int64), n_mer, n_user, c),
        )

    def block(self, name: str) -> np.ndarray:
        """The statistics array of one node type (``"user"``, ``"device"``, ``"ip"``, ``"merchant"``)."""
        if name not in STAT_NAMES:
            raise ModelError(f"node type {name!r} unknown; expected one of {tuple(STAT_NAMES)}")
        return getattr(self, name)

    def row(self, name: str, gid: int) -> np.ndarray:
        """A copy of node ``gid``'s statistics; a new node that ``put`` has not stored has none."""
        return self._stored(name, gid).copy()

    def row_values(self, name: str, gid: int) -> list[float]:
        """``row(name, gid)`` as Python floats (the form ``with_event`` and ``row_features`` work in)."""
        return self._stored(name, gid).tolist()

    def _stored(self, name: str, gid: int) -> np.ndarray:
        """Node ``gid``'s statistics as stored (not a copy), or a blank row."""
        a = self.block(name)
        if gid < a.shape[0]:
            return a[gid]
        row = self.added[name].get(gid)
        return row if row is not None else _blank(name)

    def features(self, name: str, stats: np.ndarray | None = None) -> np.ndarray:
        """Raw features float32 [n, F] of ``stats`` rows of type ``name`` (all nodes when None)."""
        s = self.block(name) if stats is None else np.atleast_2d(stats)
        columns = _node_values(name, np, s.T)  # s.T[i]: statistic i of every row
        return np.stack(columns, axis=1).astype(np.float32)

    @staticmethod
    def row_features(name: str, stats: Sequence[float]) -> np.ndarray:
        """Raw features float32 [F] of one node's statistics: ``features`` of that row, computed
        on Python floats (the same definitions)."""
        return np.array(_node_values(name, _RowMath, stats), dtype=np.float32)

    def put(self, name: str, gid: int, stats: np.ndarray | Sequence[float]) -> None:
        """Store node ``gid``'s statistics (a node past the arrays in ``added``)."""
        a = self.block(name)
        if gid < a.shape[0]:
            a[gid] = stats
        else:
            self.added[name][gid] = np.array(stats, dtype=a.dtype)

    def with_event(self, event: Event, ctx: EventContext) -> dict[str, list[float]]:
        """The statistics rows of the event's user, device, IP and merchant with ``event``
        counted (keyed by node type, as Python floats; nothing is stored). One row each, so
        plain Python arithmetic: numpy would spend more on dispatch than on the numbers."""
        kind = EVENT_KINDS.index(event.event.value)
        amount = math.nan if event.amount is None else float(event.amount)
        has_amount = math.isfinite(amount)
        log_amount = math.log1p(max(amount, 0.0)) if has_amount else 0.0
        declined = event.status in DECLINED_STATUSES
        is_pay = kind == _PAY
        is_money = is_pay or kind == _REFUND
        pay_amt = is_pay and has_amount
        tiny = pay_amt and amount < TINY_AMOUNT
        ts = float(event.ts)
        h = ctx.history
        g = ctx.gid
        new_money_pair = False
        if is_money and "merchant" in g:
            new_money_pair = not (h.kind.size and bool(np.any(((h.kind == _PAY) | (h.kind == _REFUND)) & (h.merchant == g["merchant"]))))
        out: dict[str, list[float]] = {}
        if "device" in g:
            d = self.row_values("device", g["device"])
            d[0] += ctx.new_user_device
            d[1] += 1.0
            d[2] += ctx.new_device_ip
            out["device"] = d
        if "ip" in g:
            i = self.row_values("ip", g["ip"])
            i[0] += ctx.new_user_ip
            i[1] += ctx.new_device_ip
            i[2] += 1.0
            out["ip"] = i
        if "merchant" in g:
            m = self.row_values("merchant", g["merchant"])
            m[_M["n_users"]] += new_money_pair
            m[_M["n_txns"]] += 1.0
            m[_M["n_money"]] += is_money
            m[_M["n_money_declined"]] += is_money and declined
            if pay_amt:
                m[_M["n_amounts"]] += 1.0
                m[_M["n_tiny"]] += tiny
                m[_M["amount_log_sum"]] += log_amount
            out["merchant"] = m
        u = self.row_values("user", g["user"])
        u[_U["n_payments"]] += is_pay
        u[_U["n_refunds"]] += kind == _REFUND
        u[_U["n_logins"]] += kind == _LOGIN
        u[_U["n_signups"]] += kind == _SIGNUP
        u[_U["n_money"]] += is_money
        u[_U["n_money_declined"]] += is_money and declined
        if pay_amt:
            u[_U["n_amounts"]] += 1.0
            u[_U["amount_log_sum"]] += log_amount
            u[_U["amount_log_sq_sum"]] += log_amount**2
            u[_U["amount_log_max"]] = max(u[_U["amount_log_max"]], log_amount)
            u[_U["n_tiny"]] += tiny
        u[_U["n_merchants"]] += new_money_pair
        u[_U["n_devices"]] += ctx.new_user_device
        u[_U["n_ips"]] += ctx.new_user_ip
        u[_U["max_device_users"]] = self._most_other_users(ctx.user_devices, "device", g.get("device"), out.get("device"))
        u[_U["max_ip_users"]] = self._most_other_users(ctx.user_ips, "ip", g.get("ip"), out.get("ip"))
        u[_U["first_ts"]] = min(u[_U["first_ts"]], ts)
        u[_U["last_ts"]] = max(u[_U["last_ts"]], ts)
        if is_pay:
            hour = math.floor(ts / 3600.0)
            same_hour = int(np.count_nonzero((h.kind == _PAY) & (np.floor(h.ts / 3600.0) == hour))) if h.kind.size else 0
            u[_U["max_payments_per_hour"]] = max(u[_U["max_payments_per_hour"]], same_hour + 1.0)
            u[_U["n_night_payments"]] += math.floor((ts % 86400.0) / 3600.0) < NIGHT_END_HOUR
        out["user"] = u
        return out

    def _most_other_users(self, idents: np.ndarray, name: str, event_gid: int | None, event_row: list[float] | None) -> float:
        """The most other accounts on one of ``idents`` (devices or IPs, whose statistics start
        with ``n_users``), the event's identifier counted from its updated row."""
        a = self.block(name)
        best = 0.0
        for gid in idents.tolist():
            if gid == event_gid and event_row is not None:
                n = event_row[0]
            else:
                n = float(a[gid, 0]) if gid < a.shape[0] else self.row_values(name, gid)[0]
            best = max(best, n - 1.0)
        return best


def event_txn_features(event: Event, history: UserHistory) -> np.ndarray:
    """Raw transaction features float32 [F_txn] of ``event`` given its account's earlier events:
    ``build_features``' definition (``_txn_values``, on Python floats), with the events before it
    in (ts, txn_id) order."""
    ts = float(event.ts)
    n_before, gap = 0, 0.0
    if history.ts.size:
        before = history.ts < ts
        if (tie := history.ts == ts).any():
            before[tie] = [str(other) < event.txn_id for other in history.txn_id[tie]]
        n_before = int(np.count_nonzero(before))
        if n_before:
            gap = ts - float(history.ts[before].max())
    amount = math.nan if event.amount is None else float(event.amount)
    has_amount = math.isfinite(amount)
    amount0 = amount if has_amount else 0.0
    values = _txn_values(
        _RowMath,
        device=0 if event.device_id else -1,
        ip=0 if event.ip else -1,
        ev=EVENT_KINDS.index(event.event.value),
        ts=ts,
        log_amount=math.log1p(max(amount0, 0.0)),
        has_amount=has_amount,
        is_tiny=has_amount and amount0 < TINY_AMOUNT,
        declined=event.status in DECLINED_STATUSES,
        gap=gap,
        so_far=float(n_before),
        is_first=0.0 if n_before else 1.0,
    )
    return np.array(values, dtype=np.float32)


# -- helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EventColumns:
    """Per-transaction columns that several feature blocks read."""

    u: np.ndarray
    ev: np.ndarray
    ts: np.ndarray
    log_amount: np.ndarray
    has_amount: np.ndarray
    declined: np.ndarray
    is_pay: np.ndarray
    is_money: np.ndarray
    is_tiny: np.ndarray
    pay_amt: np.ndarray

    @classmethod
    def of(cls, snapshot: Snapshot) -> _EventColumns:
        t = snapshot.transactions
        ev = t.event.astype(np.int64)
        amount = t.amount.astype(np.float64)
        has_amount = np.isfinite(amount)
        amount0 = np.where(has_amount, amount, 0.0)
        is_pay = ev == _PAY
        return cls(
            u=t.user.astype(np.int64),
            ev=ev,
            ts=t.ts.astype(np.float64),
            log_amount=np.log1p(np.maximum(amount0, 0.0)),
            has_amount=has_amount,
            declined=pd.Series(t.status, dtype=object).isin(DECLINED_STATUSES).to_numpy(dtype=bool),
            is_pay=is_pay,
            is_money=is_pay | (ev == _REFUND),
            is_tiny=has_amount & (amount0 < TINY_AMOUNT),
            pay_amt=is_pay & has_amount,
        )


def _blank(name: str) -> np.ndarray:
    """The statistics of a node without events."""
    row = np.zeros(len(STAT_NAMES[name]))
    if name == "user":
        row[_U["first_ts"]] = np.inf
        row[_U["last_ts"]] = -np.inf
    return row


def _count(index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(index.astype(np.int64), weights=weights, minlength=n)[:n].astype(np.float64)


def _share(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.maximum(den, 1.0), 0.0)


def _distinct_pairs(a: np.ndarray, b: np.ndarray, n_b: int) -> np.ndarray:
    """Unique (a, b) pairs as a-indices (one entry per distinct pair)."""
    if a.size == 0:
        return a.astype(np.int64)
    keys = np.unique(a.astype(np.int64) * max(n_b, 1) + b.astype(np.int64))
    return keys // max(n_b, 1)


def _max_other_users(src: np.ndarray, dst: np.ndarray, n_user: int, n_ident: int) -> np.ndarray:
    """Per user: the most *other* users seen on one of its identifiers (devices or IPs)."""
    out = np.zeros(n_user)
    if src.size:
        deg = np.bincount(dst.astype(np.int64), minlength=n_ident)[:n_ident].astype(np.float64)
        np.maximum.at(out, src.astype(np.int64), deg[dst.astype(np.int64)] - 1.0)
    return out


def _user_stats(snapshot: Snapshot, n: int, c: _EventColumns) -> np.ndarray:
    u, ev, ts, log_amount, is_pay, is_money, pay_amt = c.u, c.ev, c.ts, c.log_amount, c.is_pay, c.is_money, c.pay_amt
    amax = np.zeros(n)
    np.maximum.at(amax, u[pay_amt], log_amount[pay_amt])
    merchant = snapshot.transactions.merchant.astype(np.int64)
    with_m = is_money & (merchant >= 0)
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, u, ts)
    np.maximum.at(last, u, ts)
    # Peak payments within one clock hour: count per (user, hour bin), then max per user.
    peak = np.zeros(n)
    if is_pay.any():
        hours = np.floor(ts[is_pay] / 3600.0).astype(np.int64)
        span = int(hours.max() - hours.min()) + 1
        keys, counts = np.unique(u[is_pay] * span + (hours - hours.min()), return_counts=True)
        np.maximum.at(peak, keys // span, counts.astype(np.float64))
    hour_of_day = np.floor((ts % 86400.0) / 3600.0)
    night = is_pay & (hour_of_day < NIGHT_END_HOUR)
    columns = {
        "n_payments": _count(u[is_pay], n),
        "n_refunds": _count(u[ev == _REFUND], n),
        "n_logins": _count(u[ev == _LOGIN], n),
        "n_signups": _count(u[ev == _SIGNUP], n),
        "n_money": _count(u[is_money], n),
        "n_money_declined": _count(u[is_money & c.declined], n),
        "n_amounts": _count(u[pay_amt], n),
        "amount_log_sum": _count(u[pay_amt], n, log_amount[pay_amt]),
        "amount_log_sq_sum": _count(u[pay_amt], n, log_amount[pay_amt] ** 2),
        "amount_log_max": amax,
        "n_tiny": _count(u[pay_amt & c.is_tiny], n),
        "n_merchants": _count(_distinct_pairs(u[with_m], merchant[with_m], snapshot.num_nodes(NodeType.MERCHANT)), n),
        "n_devices": _count(snapshot.user_device.src, n),
        "n_ips": _count(snapshot.user_ip.src, n),
        "max_device_users": _max_other_users(
            snapshot.user_device.src, snapshot.user_device.dst, n, snapshot.num_nodes(NodeType.DEVICE)
        ),
        "max_ip_users": _max_other_users(snapshot.user_ip.src, snapshot.user_ip.dst, n, snapshot.num_nodes(NodeType.IP)),
        "first_ts": first,
        "last_ts": last,
        "max_payments_per_hour": peak,
        "n_night_payments": _count(u[night], n),
    }
    return np.stack([columns[name] for name in USER_STATS], axis=1)


class _RowMath:
    """The array functions that the feature definitions call, for one row of Python floats:
    ``math``'s, and ``where``/``maximum`` for scalars. The definitions run on numpy columns for a
    snapshot and on this for one event; a test holds the two to the same float32 values."""

    pi = math.pi
    log1p = staticmethod(math.log1p)
    sqrt = staticmethod(math.sqrt)
    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    isfinite = staticmethod(math.isfinite)
    maximum = staticmethod(max)

    @staticmethod
    def where(cond: bool, a: float, b: float) -> float:
        return a if cond else b


def _share(xp: Any, num: Any, den: Any) -> Any:
    """``num / den`` where ``den > 0``, else 0."""
    return xp.where(den > 0, num / xp.maximum(den, 1.0), 0.0)


def _user_values(xp: Any, s: Any) -> list[Any]:
    """User features (``USER_FEATURES`` order) from user statistics ``s`` (``s[_U[name]]``: a
    numpy column of every node, or one node's float)."""
    mean = _share(xp, s[_U["amount_log_sum"]], s[_U["n_amounts"]])
    first, last = s[_U["first_ts"]], s[_U["last_ts"]]
    values = {
        "n_payments_log": xp.log1p(s[_U["n_payments"]]),
        "n_refunds_log": xp.log1p(s[_U["n_refunds"]]),
        "n_logins_log": xp.log1p(s[_U["n_logins"]]),
        "n_signups_log": xp.log1p(s[_U["n_signups"]]),
        "declined_share": _share(xp, s[_U["n_money_declined"]], s[_U["n_money"]]),
        "amount_mean_log": mean,
        "amount_max_log": s[_U["amount_log_max"]],
        "amount_std_log": xp.sqrt(xp.maximum(_share(xp, s[_U["amount_log_sq_sum"]], s[_U["n_amounts"]]) - mean**2, 0.0)),
        "tiny_share": _share(xp, s[_U["n_tiny"]], s[_U["n_amounts"]]),
        "n_merchants_log": xp.log1p(s[_U["n_merchants"]]),
        "n_devices_log": xp.log1p(s[_U["n_devices"]]),
        "n_ips_log": xp.log1p(s[_U["n_ips"]]),
        "max_device_users_log": xp.log1p(s[_U["max_device_users"]]),
        "max_ip_users_log": xp.log1p(s[_U["max_ip_users"]]),
        "active_days_log": xp.log1p(xp.where(xp.isfinite(first), (last - first) / 86400.0, 0.0)),
        "max_payments_per_hour_log": xp.log1p(s[_U["max_payments_per_hour"]]),
        "night_share": _share(xp, s[_U["n_night_payments"]], s[_U["n_payments"]]),
    }
    return [values[name] for name in USER_FEATURES]


def _merchant_values(xp: Any, s: Any) -> list[Any]:
    """Merchant features (``MERCHANT_FEATURES`` order) from merchant statistics ``s``."""
    values = {
        "n_users_log": xp.log1p(s[_M["n_users"]]),
        "n_txns_log": xp.log1p(s[_M["n_txns"]]),
        "tiny_share": _share(xp, s[_M["n_tiny"]], s[_M["n_amounts"]]),
        "declined_share": _share(xp, s[_M["n_money_declined"]], s[_M["n_money"]]),
        "amount_mean_log": _share(xp, s[_M["amount_log_sum"]], s[_M["n_amounts"]]),
    }
    return [values[name] for name in MERCHANT_FEATURES]


def _node_values(name: str, xp: Any, s: Any) -> list[Any]:
    """Features of node type ``name`` from its statistics ``s``; device and IP features are
    ``log1p`` of their statistics, column for column."""
    if name == "user":
        return _user_values(xp, s)
    if name == "merchant":
        return _merchant_values(xp, s)
    return [xp.log1p(s[k]) for k in range(len(STAT_NAMES[name]))]


def _merchant_stats(merchant: np.ndarray, n: int, n_user: int, c: _EventColumns) -> np.ndarray:
    with_m = merchant >= 0
    amt = with_m & c.pay_amt
    money = with_m & c.is_money
    columns = {
        "n_users": _count(_distinct_pairs(merchant[money], c.u[money], n_user), n),
        "n_txns": _count(merchant[with_m], n),
        "n_amounts": _count(merchant[amt], n),
        "n_tiny": _count(merchant[amt & c.is_tiny], n),
        "n_money": _count(merchant[money], n),
        "n_money_declined": _count(merchant[money & c.declined], n),
        "amount_log_sum": _count(merchant[amt], n, c.log_amount[amt]),
    }
    return np.stack([columns[name] for name in MERCHANT_STATS], axis=1)


def _txn_features(device: np.ndarray, ip: np.ndarray, c: _EventColumns) -> np.ndarray:
    """The transaction feature table of every row, with each row's point-in-time features
    computed from the same user's earlier rows."""
    u, ts = c.u, c.ts
    n_txn = u.shape[0]
    # Order by (user, ts, row) to find each event's predecessor from the same user.
    gap = np.zeros(n_txn)
    so_far = np.zeros(n_txn)
    is_first = np.zeros(n_txn)
    if n_txn:
        rows = np.arange(n_txn)
        order = np.lexsort((rows, ts, u))
        su = u[order]
        new_group = np.r_[True, su[1:] != su[:-1]]
        start = np.maximum.accumulate(np.where(new_group, rows, 0))
        gap_sorted = np.r_[0.0, np.diff(ts[order])]
        gap_sorted[new_group] = 0.0
        gap[order] = np.maximum(gap_sorted, 0.0)
        so_far[order] = rows - start
        is_first[order] = new_group.astype(np.float64)
    return _txn_columns(
        device, ip, c.ev, ts, c.log_amount, c.has_amount, c.is_tiny, c.declined, gap=gap, so_far=so_far, is_first=is_first
    )


def _txn_columns(
    device: np.ndarray,
    ip: np.ndarray,
    ev: np.ndarray,
    ts: np.ndarray,
    log_amount: np.ndarray,
    has_amount: np.ndarray,
    is_tiny: np.ndarray,
    declined: np.ndarray,
    *,
    gap: np.ndarray,
    so_far: np.ndarray,
    is_first: np.ndarray,
) -> np.ndarray:
    """The transaction feature table float32 [n, F_txn] from per-row columns (``_txn_values``)."""
    columns = _txn_values(np, device=device, ip=ip, ev=ev, ts=ts, log_amount=log_amount, has_amount=has_amount,
                          is_tiny=is_tiny, declined=declined, gap=gap, so_far=so_far, is_first=is_first)  # fmt: skip
    # Filled column by column into float32 (the values computed in float64, then rounded, as
    # a float64 table cast at the end would be): at millions of rows a float64 table and its
    # float32 copy would double the peak of this step.
    out = np.empty((ev.shape[0], len(columns)), dtype=np.float32)
    for k, col in enumerate(columns):
        out[:, k] = col
    return out


def _txn_values(
    xp: Any,
    *,
    device: Any,
    ip: Any,
    ev: Any,
    ts: Any,
    log_amount: Any,
    has_amount: Any,
    is_tiny: Any,
    declined: Any,
    gap: Any,
    so_far: Any,
    is_first: Any,
) -> list[Any]:
    """Transaction features (``TXN_FEATURES`` order) from per-row values (numpy columns, or one
    row's Python values) and the point-in-time ones: seconds since the user's previous event,
    its events before, whether it is the first."""
    hour = (ts % 86400.0) / 3600.0
    angle = 2.0 * xp.pi * hour / 24.0
    return [
        log_amount,
        has_amount,
        is_tiny,
        declined,
        *(ev == k for k in range(len(EVENT_KINDS))),
        xp.sin(angle),
        xp.cos(angle),
        xp.log1p(gap),
        is_first,
        xp.log1p(so_far),
        device >= 0,
        ip >= 0,
    ]
