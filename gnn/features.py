"""Node and transaction features computed from a ``Snapshot``, and their standardisation.

Everything is vectorised numpy/pandas so that a million transactions take about a second. Labels
are never an input here: a verdict used as a feature would leak the answer into the model. The
graph carries the fraud signal instead (shared devices and IPs, see ``gnn.model``).

Feature blocks are keyed by the model's node-type names ``"user"``, ``"device"``, ``"ip"``,
``"merchant"`` plus ``"txn"`` for the per-transaction edge features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from graph.errors import ModelError
from graph.types import EVENT_KINDS, EventKind, NodeType, Snapshot

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
        out: dict[str, np.ndarray] = {}
        for b in BLOCKS:
            x = features.block(b)
            if x.shape[1] != self.means[b].shape[0]:
                raise ModelError(
                    f"feature block {b!r} has {x.shape[1]} columns, the model expects "
                    f"{self.means[b].shape[0]}; retrain the model (`ringwatch train`)"
                )
            # In place after the first subtraction: one [n, F] float32 array, not three.
            z = np.subtract(x, self.means[b], dtype=np.float32)
            z /= self.stds[b]
            out[b] = np.clip(z, -CLIP_STD, CLIP_STD, out=z)
        return FeatureSet(**out, names=features.names)


def build_features(snapshot: Snapshot) -> FeatureSet:
    """Compute raw features for every user, device, IP, merchant and transaction.

    User: event counts per kind, declined share, payment amount mean/max/std (log1p), share of
    tiny payments, distinct merchants/devices/IPs, the most other accounts met on one of its
    devices / IPs, active span, peak payments per clock hour, night-time share. Device/IP/merchant: how many users and transactions touch them (log1p),
    plus merchant tiny/declined shares. Transaction: amount, tiny/declined flags, event one-hot,
    hour of day (sin/cos), time since the user's previous event and the user's event count so
    far. No labels are read.
    """
    t = snapshot.transactions
    n_user = snapshot.num_nodes(NodeType.USER)
    n_dev = snapshot.num_nodes(NodeType.DEVICE)
    n_ip = snapshot.num_nodes(NodeType.IP)
    n_mer = snapshot.num_nodes(NodeType.MERCHANT)

    u = t.user.astype(np.int64)
    ev = t.event.astype(np.int64)
    ts = t.ts.astype(np.float64)
    amount = t.amount.astype(np.float64)
    has_amount = np.isfinite(amount)
    amount0 = np.where(has_amount, amount, 0.0)
    log_amount = np.log1p(np.maximum(amount0, 0.0))
    declined = pd.Series(t.status, dtype=object).isin(DECLINED_STATUSES).to_numpy(dtype=bool)
    is_pay = ev == _PAY
    is_money = is_pay | (ev == _REFUND)
    is_tiny = has_amount & (amount0 < TINY_AMOUNT)
    pay_amt = is_pay & has_amount

    user = _user_features(snapshot, n_user, u, ev, ts, log_amount, declined, is_pay, is_money, is_tiny, pay_amt)
    device = np.stack(
        [
            _log_count(snapshot.user_device.dst, n_dev),
            _log_count(t.device[t.device >= 0], n_dev),
            _log_count(snapshot.device_ip.src, n_dev),
        ],
        axis=1,
    )
    ip = np.stack(
        [
            _log_count(snapshot.user_ip.dst, n_ip),
            _log_count(snapshot.device_ip.dst, n_ip),
            _log_count(t.ip[t.ip >= 0], n_ip),
        ],
        axis=1,
    )
    merchant = _merchant_features(t.merchant.astype(np.int64), u, n_mer, n_user, log_amount, declined, is_money, is_tiny, pay_amt)
    txn = _txn_features(t.device, t.ip, u, ev, ts, log_amount, has_amount, is_tiny, declined)

    names = {
        "user": USER_FEATURES,
        "device": DEVICE_FEATURES,
        "ip": IP_FEATURES,
        "merchant": MERCHANT_FEATURES,
        "txn": TXN_FEATURES,
    }
    out = FeatureSet(
        user=user.astype(np.float32),
        device=device.astype(np.float32),
        ip=ip.astype(np.float32),
        merchant=merchant.astype(np.float32),
        txn=txn.astype(np.float32, copy=False),  # built float32 already (the biggest block)
        names=names,
    )
    for b in BLOCKS:
        if out.block(b).shape[1] != len(names[b]):  # a programming error, caught by the tests
            raise ModelError(f"feature block {b!r}: {out.block(b).shape[1]} columns vs {len(names[b])} names")
    return out


# -- helpers ------------------------------------------------------------------------------------


def _log_count(index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.log1p(np.bincount(index.astype(np.int64), weights=weights, minlength=n)[:n].astype(np.float64))


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


def _user_features(
    snapshot: Snapshot,
    n: int,
    u: np.ndarray,
    ev: np.ndarray,
    ts: np.ndarray,
    log_amount: np.ndarray,
    declined: np.ndarray,
    is_pay: np.ndarray,
    is_money: np.ndarray,
    is_tiny: np.ndarray,
    pay_amt: np.ndarray,
) -> np.ndarray:
    n_pay = _count(u[is_pay], n)
    n_ref = _count(u[ev == _REFUND], n)
    n_login = _count(u[ev == _LOGIN], n)
    n_signup = _count(u[ev == _SIGNUP], n)
    n_money = _count(u[is_money], n)
    declined_share = _share(_count(u[is_money & declined], n), n_money)

    n_amt = _count(u[pay_amt], n)
    s1 = _count(u[pay_amt], n, log_amount[pay_amt])
    s2 = _count(u[pay_amt], n, log_amount[pay_amt] ** 2)
    mean = _share(s1, n_amt)
    std = np.sqrt(np.maximum(_share(s2, n_amt) - mean**2, 0.0))
    amax = np.zeros(n)
    np.maximum.at(amax, u[pay_amt], log_amount[pay_amt])
    tiny_share = _share(_count(u[pay_amt & is_tiny], n), n_amt)

    merchant = snapshot.transactions.merchant.astype(np.int64)
    with_m = is_money & (merchant >= 0)
    n_merchants = _count(_distinct_pairs(u[with_m], merchant[with_m], snapshot.num_nodes(NodeType.MERCHANT)), n)
    n_devices = _count(snapshot.user_device.src, n)
    n_ips = _count(snapshot.user_ip.src, n)
    max_dev_users = _max_other_users(snapshot.user_device.src, snapshot.user_device.dst, n, snapshot.num_nodes(NodeType.DEVICE))
    max_ip_users = _max_other_users(snapshot.user_ip.src, snapshot.user_ip.dst, n, snapshot.num_nodes(NodeType.IP))

    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, u, ts)
    np.maximum.at(last, u, ts)
    active_days = np.where(np.isfinite(first), (last - first) / 86400.0, 0.0)

    # Peak payments within one clock hour: count per (user, hour bin), then max per user.
    peak = np.zeros(n)
    if is_pay.any():
        hours = np.floor(ts[is_pay] / 3600.0).astype(np.int64)
        span = int(hours.max() - hours.min()) + 1
        keys, counts = np.unique(u[is_pay] * span + (hours - hours.min()), return_counts=True)
        np.maximum.at(peak, keys // span, counts.astype(np.float64))
    hour_of_day = np.floor((ts % 86400.0) / 3600.0)
    night = is_pay & (hour_of_day < NIGHT_END_HOUR)
    night_share = _share(_count(u[night], n), n_pay)

    return np.stack(
        [
            np.log1p(n_pay),
            np.log1p(n_ref),
            np.log1p(n_login),
            np.log1p(n_signup),
            declined_share,
            mean,
            amax,
            std,
            tiny_share,
            np.log1p(n_merchants),
            np.log1p(n_devices),
            np.log1p(n_ips),
            np.log1p(max_dev_users),
            np.log1p(max_ip_users),
            np.log1p(active_days),
            np.log1p(peak),
            night_share,
        ],
        axis=1,
    )


def _merchant_features(
    merchant: np.ndarray,
    u: np.ndarray,
    n: int,
    n_user: int,
    log_amount: np.ndarray,
    declined: np.ndarray,
    is_money: np.ndarray,
    is_tiny: np.ndarray,
    pay_amt: np.ndarray,
) -> np.ndarray:
    with_m = merchant >= 0
    m = merchant[with_m]
    n_txn = _count(m, n)
    n_users = _count(_distinct_pairs(merchant[with_m & is_money], u[with_m & is_money], n_user), n)
    amt = with_m & pay_amt
    n_amt = _count(merchant[amt], n)
    tiny_share = _share(_count(merchant[amt & is_tiny], n), n_amt)
    n_money = _count(merchant[with_m & is_money], n)
    declined_share = _share(_count(merchant[with_m & is_money & declined], n), n_money)
    amount_mean = _share(_count(merchant[amt], n, log_amount[amt]), n_amt)
    return np.stack([np.log1p(n_users), np.log1p(n_txn), tiny_share, declined_share, amount_mean], axis=1)


def _txn_features(
    device: np.ndarray,
    ip: np.ndarray,
    u: np.ndarray,
    ev: np.ndarray,
    ts: np.ndarray,
    log_amount: np.ndarray,
    has_amount: np.ndarray,
    is_tiny: np.ndarray,
    declined: np.ndarray,
) -> np.ndarray:
    n_txn = u.shape[0]
    one_hot = np.zeros((n_txn, len(EVENT_KINDS)), dtype=np.float32)
    if n_txn:
        one_hot[np.arange(n_txn), ev] = 1.0
    hour = (ts % 86400.0) / 3600.0
    angle = 2.0 * np.pi * hour / 24.0

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

    # Filled column by column into float32 (the values computed in float64, then rounded, as
    # a float64 table cast at the end would be): at millions of rows a float64 table and its
    # float32 copy would double the peak of this step.
    columns = [
        log_amount,
        has_amount,
        is_tiny,
        declined,
        *(one_hot[:, k] for k in range(one_hot.shape[1])),
        np.sin(angle),
        np.cos(angle),
        np.log1p(gap),
        is_first,
        np.log1p(so_far),
        device >= 0,
        ip >= 0,
    ]
    out = np.empty((n_txn, len(columns)), dtype=np.float32)
    for k, col in enumerate(columns):
        out[:, k] = col
    return out
