"""What was known to be fraud, and when: account targets from verdicts of either kind, and the
known-fraud neighbourhood features that the tree candidates and GraphSAGE's heads read.

Verdicts arrive late (a chargeback comes weeks after its payment), so ``known_labels`` gives
every verdict the time it became *known*, and ``known_fraud_features`` counts for every row only
what was known *strictly before* it, leaving out the row's own verdict; the tests in
``tests/gnn/core/test_known_fraud.py`` fail when a verdict leaks. The features feed the heads of
GraphSAGE, not its message passing, so an account's label cannot come back to it through a
neighbour.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

import numpy as np

from gnn.core.features import moves_money
from graph.errors import ValidationError
from graph.types import NodeType, Snapshot

__all__ = [
    "KNOWN_FRAUD_WINDOWS",
    "KNOWN_FRAUD_TXN_FEATURES",
    "KNOWN_FRAUD_USER_FEATURES",
    "KnownLabels",
    "KnownFraudFeatures",
    "known_labels",
    "known_fraud_features",
    "ip_prefixes",
]

_DAY = 86_400.0
#: Windows (name, seconds) over which fraud transaction verdicts are counted.
KNOWN_FRAUD_WINDOWS: tuple[tuple[str, float], ...] = (("1d", _DAY), ("30d", 30 * _DAY), ("all", math.inf))
_TXN_KEYS = ("account", "device", "ip", "ip_prefix", "merchant")
_IDENT_KEYS = ("device", "ip", "ip_prefix", "merchant")
#: Transaction columns: fraud transaction verdicts known before it per key and window, known
#: fraud accounts (other than its own) per identifier, and whether its account was known fraud.
#: The merchant rates: fraud verdicts known in the window over the merchant's payments and
#: refunds in it (a small merchant charged back in bulk stands out; a busy one does not).
_RATE_WINDOWS = ("1d", "30d")
KNOWN_FRAUD_TXN_FEATURES: tuple[str, ...] = (
    *(f"kf_{k}_fraud_txns_{w}" for k in _TXN_KEYS for w, _ in KNOWN_FRAUD_WINDOWS),
    *(f"kf_{k}_fraud_accounts" for k in _IDENT_KEYS),
    "kf_account_known_fraud",
    *(f"kf_merchant_fraud_rate_{w}" for w in _RATE_WINDOWS),
)
#: Account columns, over the account's identifiers and leaving the account itself out: known
#: fraud accounts (sum and max over its identifiers of a kind), fraud transaction verdicts (sum).
KNOWN_FRAUD_USER_FEATURES: tuple[str, ...] = (
    *(f"kf_{k}_fraud_accounts_{agg}" for k in _IDENT_KEYS for agg in ("sum", "max")),
    *(f"kf_{k}_fraud_txns_sum" for k in _IDENT_KEYS),
)


@dataclass(frozen=True, slots=True)
class KnownLabels:
    """The snapshot's fraud verdicts with the time each became known.

    ``txn_rows`` int64 [F]: transaction rows with a winning fraud verdict, ``txn_known_at``
    float64 [F] when each was known. ``user_fraud`` bool [N_user]: the account targets
    (``known_labels``); ``user_known_at`` float64 [N_user], ``inf`` for accounts not known fraud.
    ``from_transactions``: accounts that are fraud through a transaction verdict only.
    ``delays`` float64 [F]: known time minus payment time, in seconds (what the data says about
    label delay). ``label_delay``: the configured delay, None when the verdicts' own times rule.
    """

    txn_rows: np.ndarray
    txn_known_at: np.ndarray
    user_fraud: np.ndarray
    user_known_at: np.ndarray
    from_transactions: int
    delays: np.ndarray
    label_delay: float | None

    def describe(self) -> str:
        """One line on the labels and their delay, for logs and reports."""
        n_acc = int(self.user_fraud.sum())
        how = "from the verdicts' own timestamps" if self.label_delay is None else f"set to {self.label_delay / _DAY:g} days"
        line = (
            f"{self.txn_rows.size} fraud transaction verdicts, {n_acc} fraud accounts "
            f"({self.from_transactions} of them through a transaction verdict only); label delay {how}"
        )
        if self.delays.size:
            q = np.percentile(self.delays, [50, 90]) / _DAY
            line += f": median {q[0]:.1f} days, 90th percentile {q[1]:.1f} days after the payment"
        return line


def known_labels(snapshot: Snapshot, label_delay: float | None = None) -> KnownLabels:
    """The fraud verdicts of ``snapshot`` and when each became known.

    A transaction verdict is known at its own ``ts`` (the chargeback's arrival) by default; with
    ``label_delay`` set, at the payment's time plus that delay instead (for exports whose verdict
    timestamps are not arrival times); never before the payment itself. An account is fraud when
    its winning account verdict is ``fraud``, or, without an account verdict, when any of its
    transactions has a winning ``fraud`` verdict (an account verdict ``legit`` overrides its
    transactions' verdicts). It is known from the earliest of those verdicts' known times.

    Raises:
        ValidationError: ``label_delay`` is negative or not finite.
    """
    if label_delay is not None and not (math.isfinite(label_delay) and label_delay >= 0):
        raise ValidationError("label_delay", label_delay, "must be a finite number of seconds >= 0, or None")
    t = snapshot.transactions
    n_user = snapshot.num_nodes(NodeType.USER)
    tl = snapshot.txn_labels
    fraud = tl.is_fraud.astype(bool)
    rows = tl.index[fraud].astype(np.int64)
    event_ts = t.ts[rows].astype(np.float64)
    stated = tl.ts[fraud].astype(np.float64)
    known = event_ts + label_delay if label_delay is not None else np.maximum(stated, event_ts)
    order = np.argsort(rows, kind="stable")
    rows, known, event_ts = rows[order], known[order], event_ts[order]

    ul = snapshot.user_labels
    verdict = np.zeros(n_user, dtype=np.int8)  # 0 none, 1 fraud, -1 legit
    u_idx = ul.index.astype(np.int64)
    verdict[u_idx] = np.where(ul.is_fraud.astype(bool), 1, -1)
    user_known = np.full(n_user, np.inf)
    user_known[u_idx[ul.is_fraud.astype(bool)]] = ul.ts[ul.is_fraud.astype(bool)].astype(np.float64)
    via_txn = np.full(n_user, np.inf)
    np.minimum.at(via_txn, t.user[rows].astype(np.int64), known)
    user_known = np.minimum(user_known, via_txn)
    user_known[verdict < 0] = np.inf
    user_fraud = np.isfinite(user_known)
    return KnownLabels(
        txn_rows=rows,
        txn_known_at=known,
        user_fraud=user_fraud,
        user_known_at=user_known,
        from_transactions=int((user_fraud & (verdict == 0)).sum()),
        delays=known - event_ts,
        label_delay=label_delay,
    )


@dataclass(frozen=True, slots=True)
class KnownFraudFeatures:
    """``txn`` float32 [T, len(KNOWN_FRAUD_TXN_FEATURES)] and ``user`` float32
    [N_user, len(KNOWN_FRAUD_USER_FEATURES)]: raw counts (``log1p`` applied), aligned with the
    snapshot."""

    txn: np.ndarray
    user: np.ndarray
    labels: KnownLabels


# A dotted-quad IPv4 address as ipaddress writes it: octets 0-255 without leading zeros.
_PLAIN_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def ip_prefixes(ips: np.ndarray) -> np.ndarray:
    """int64 [N_ip]: an id per IP prefix (/24 for IPv4, /64 for IPv6, the text itself when it is
    not an address), equal ids for IPs in the same prefix."""
    keys = []
    for text in ips.tolist():
        text = str(text)
        if _PLAIN_IPV4.fullmatch(text):
            # The common case, without building ipaddress objects (the slow part): the same key
            # as below.
            keys.append(text[: text.rfind(".")] + ".0/24")
            continue
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            keys.append(f"?{text}")
            continue
        bits = 24 if addr.version == 4 else 64
        keys.append(str(ipaddress.ip_network(f"{addr}/{bits}", strict=False)))
    if not keys:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.asarray(keys, dtype=object), return_inverse=True)[1].astype(np.int64)


class _Counter:
    """Counts marks (a key and a time each) with a given key and a time in ``[lo, hi)``.

    Times are ranked once over every time the caller will ask about, so that (key, time) packs
    into one exact int64 and each query is two binary searches."""

    def __init__(self, times: np.ndarray) -> None:
        self._grid = np.unique(times[np.isfinite(times)])

    def _rank(self, x: np.ndarray) -> np.ndarray:
        # Rank in 1..R+1 of the first grid time >= x (inf -> R+1): [lo, hi) is rank range.
        return np.searchsorted(self._grid, x, side="left").astype(np.int64) + 1

    def count(self, mark_key: np.ndarray, mark_time: np.ndarray, q_key: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        stride = self._grid.size + 2
        ok = (mark_key >= 0) & np.isfinite(mark_time)
        packed = np.sort(mark_key[ok] * stride + self._rank(mark_time[ok]))
        q = np.maximum(q_key, 0) * stride
        out = np.searchsorted(packed, q + self._rank(hi), side="left") - np.searchsorted(packed, q + self._rank(lo), side="left")
        return np.where(q_key >= 0, out, 0).astype(np.float64)


def _pairs(a: np.ndarray, b: np.ndarray, t: np.ndarray, n_b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs with the earliest ``t`` of each (rows with b < 0 dropped)."""
    ok = b >= 0
    key = a[ok] * max(n_b, 1) + b[ok]
    uniq, inv = np.unique(key, return_inverse=True)
    first = np.full(uniq.size, np.inf)
    np.minimum.at(first, inv, t[ok])
    return uniq // max(n_b, 1), uniq % max(n_b, 1), first


def known_fraud_features(
    snapshot: Snapshot, labels: KnownLabels | None = None, *, label_delay: float | None = None
) -> KnownFraudFeatures:
    """The known-fraud neighbourhood features of every transaction and account. ``labels``:
    ``known_labels(snapshot, label_delay)`` when the caller has it.

    For every transaction, at its own time, what was known *strictly before* it on the same
    account, device, IP, IP prefix (/24 for IPv4, /64 for IPv6) and merchant: fraud transaction
    verdicts over recent windows and known-fraud accounts. For every account the same over its
    devices, IPs, prefixes and merchants, as of its last event, leaving out everything known
    about the account itself. So a row's own verdict never reaches its features, nor does any
    verdict known after the row's time."""
    if labels is None:
        labels = known_labels(snapshot, label_delay)
    t = snapshot.transactions
    n_user = snapshot.num_nodes(NodeType.USER)
    u = t.user.astype(np.int64)
    ts = t.ts.astype(np.float64)
    prefix_of_ip = ip_prefixes(snapshot.nodes[NodeType.IP])
    ip = t.ip.astype(np.int64)
    row_keys = {
        "account": u,
        "device": t.device.astype(np.int64),
        "ip": ip,
        "ip_prefix": np.where(ip >= 0, prefix_of_ip[np.maximum(ip, 0)] if prefix_of_ip.size else -1, -1),
        "merchant": np.where(moves_money(t.event), t.merchant.astype(np.int64), -1),
    }
    n_keys = {
        "device": snapshot.num_nodes(NodeType.DEVICE),
        "ip": snapshot.num_nodes(NodeType.IP),
        "ip_prefix": int(prefix_of_ip.max()) + 1 if prefix_of_ip.size else 0,
        "merchant": snapshot.num_nodes(NodeType.MERCHANT),
    }
    # Each account's identifiers with the time it first used each: the links of the graph.
    links = {k: _pairs(u, row_keys[k], ts, n_keys[k]) for k in _IDENT_KEYS}
    as_of = np.full(n_user, -np.inf)  # accounts are scored as of their last event
    np.maximum.at(as_of, u, ts)

    mark_rows, mark_known = labels.txn_rows, labels.txn_known_at
    windows = [w for _, w in KNOWN_FRAUD_WINDOWS]
    grid = [ts, mark_known, as_of, labels.user_known_at, *(ts - w for w in windows if math.isfinite(w))]
    grid += [np.maximum(labels.user_known_at[a], first) for a, _, first in links.values()]
    counter = _Counter(np.concatenate(grid))
    neg_inf = np.full(ts.shape[0], -np.inf)

    txn_cols: list[np.ndarray] = []
    for k in _TXN_KEYS:
        key = row_keys[k]
        for w in windows:
            lo = ts - w if math.isfinite(w) else neg_inf
            txn_cols.append(counter.count(key[mark_rows], mark_known, key, lo, ts))
    user_known = labels.user_known_at
    for k in _IDENT_KEYS:
        a, b, first = links[k]
        since = np.maximum(user_known[a], first)  # a known-fraud account on identifier b from then
        n = counter.count(b, since, row_keys[k], neg_inf, ts)
        own = (row_keys[k] >= 0) & (user_known[u] < ts)  # the row's account is one of them
        txn_cols.append(n - own)
    txn_cols.append((user_known[u] < ts).astype(np.float64))
    merchant = row_keys["merchant"]
    for w in (dict(KNOWN_FRAUD_WINDOWS)[name] for name in _RATE_WINDOWS):
        fraud = counter.count(merchant[mark_rows], mark_known, merchant, ts - w, ts)
        traffic = counter.count(merchant, ts, merchant, ts - w, ts)
        txn_cols.append(fraud / (traffic + 1.0))

    user_cols: list[np.ndarray] = []
    acc_sums: list[np.ndarray] = []
    for k in _IDENT_KEYS:
        a, b, first = links[k]
        since = np.maximum(user_known[a], first)
        at = as_of[a]
        n_acc = counter.count(b, since, b, np.full(a.size, -np.inf), at) - (since < at)
        total = np.bincount(a, weights=n_acc, minlength=n_user)[:n_user]
        peak = np.zeros(n_user)
        np.maximum.at(peak, a, n_acc)
        user_cols += [total, peak]
        # Fraud transaction verdicts on the identifier before the account's last event, less
        # the account's own ones there.
        key = row_keys[k][mark_rows]
        n_txn = counter.count(key, mark_known, b, np.full(a.size, -np.inf), at)
        pair_of_mark = np.searchsorted(a * max(n_keys[k], 1) + b, u[mark_rows] * max(n_keys[k], 1) + np.maximum(key, 0))
        own_mark = (key >= 0) & (mark_known < as_of[u[mark_rows]])
        own = np.bincount(pair_of_mark[own_mark], minlength=a.size)[: a.size] if a.size else np.zeros(0)
        acc_sums.append(np.bincount(a, weights=n_txn - own, minlength=n_user)[:n_user])
    user_cols += acc_sums
    txn = np.log1p(np.maximum(np.stack(txn_cols, axis=1), 0.0)).astype(np.float32)
    user = np.log1p(np.maximum(np.stack(user_cols, axis=1), 0.0)).astype(np.float32) if n_user else np.zeros((0, len(KNOWN_FRAUD_USER_FEATURES)), np.float32)
    return KnownFraudFeatures(txn=txn, user=user, labels=labels)
