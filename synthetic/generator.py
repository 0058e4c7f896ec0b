"""Synthetic e-commerce events with planted fraud rings, for demos, tests and benchmarks.

``generate`` writes five CSV files: the events in the canonical schema (DESIGN §5), the labels a
fraud team would have (partial, late and a little wrong), and three ground-truth files that the
labels only partly reveal (users, transactions, special identifiers). It plants ordinary users
with hard negatives (families, offices, carrier NAT, public Wi-Fi, VPN exits, kiosks), four kinds
of rings with late joiners whose only tell is the graph, lone fraudsters and compromised
merchants; the README's "The synthetic data" lists them, the truth columns and the labels.
Everything comes from one ``numpy`` Generator seeded with ``config.seed``: the same config gives
byte-identical files.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from graph.errors import ValidationError

__all__ = [
    "SyntheticConfig", "GeneratedDataset", "generate", "RING_KINDS", "SCENARIOS", "EVENT_COLUMNS",
    "TRUTH_USER_COLUMNS", "TRUTH_TXN_COLUMNS", "write_plain_csv",
]  # fmt: skip

RING_KINDS: tuple[str, ...] = ("account_farm", "card_testing", "mule_chain", "colluding_merchant")
#: ``SyntheticConfig.labels``: which verdicts labels.csv holds.
LABEL_KINDS: tuple[str, ...] = ("all", "transactions")
EVENT_COLUMNS: tuple[str, ...] = (
    "txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount", "currency", "event",
    "status",
)  # fmt: skip
LABEL_COLUMNS: tuple[str, ...] = ("entity", "entity_id", "label", "ts", "source")
TRUTH_USER_COLUMNS: tuple[str, ...] = ("user_id", "is_fraud", "ring_id", "ring_kind", "graph_only")
#: ``scenario``: how a fraudulent transaction came about (a ring kind, ``lone_fraudster`` or
#: ``compromised_merchant``); empty for legitimate ones.
TRUTH_TXN_COLUMNS: tuple[str, ...] = ("txn_id", "is_fraud", "scenario")
SCENARIOS: tuple[str, ...] = (*RING_KINDS, "lone_fraudster", "compromised_merchant")

# Ring sizes (members, late joiners included) per kind.
RING_SIZE: dict[str, tuple[int, int]] = {
    "account_farm": (5, 25),
    "card_testing": (4, 12),
    "mule_chain": (4, 10),
    "colluding_merchant": (6, 15),
}
LATE_JOIN_FROM = 0.75  # late joiners sign up after this share of the period

_DAY = 86_400
# Codes used in the in-memory event arrays.
_PAY, _REFUND, _SIGNUP, _LOGIN = 0, 1, 2, 3
_KIND_NAMES = np.array(["payment", "refund", "signup", "login"], dtype=object)
_STATUS_NAMES = np.array(["approved", "declined"], dtype=object)
_CURRENCIES = np.array(["USD", "EUR", "GBP", ""], dtype=object)  # index -1 -> ""
# IP address categories, each rendered from its own ranges.
_RES4, _RES6, _MOB6, _OFFICE, _CAMPUS, _CARRIER, _DC = range(7)
_RES4_FIRST = np.array([24, 50, 66, 67, 68, 69, 70, 71, 72, 73, 75, 76, 81, 82, 86, 88, 90, 92, 95,
                        98, 99, 108, 174, 176, 178, 184, 188, 212, 217])  # fmt: skip
_OFFICE_FIRST = np.array([12, 38, 63, 64, 144, 155, 158, 192, 199, 204])
_CAMPUS_FIRST = np.array([128, 129, 130, 131, 132, 140, 141, 152, 171])
_CARRIER_PREFIX = np.array([[172, 56], [172, 58], [107, 77], [174, 205], [166, 170], [100, 128]])
_DC_PREFIX = np.array([[45, 33], [45, 76], [104, 131], [104, 248], [167, 99], [185, 220],
                       [192, 241], [198, 199], [209, 97], [159, 65], [138, 68],
                       [64, 227]])  # fmt: skip
# Share of activity per hour of the day (quiet nights, busy evenings).
_DIURNAL = np.array([1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.2, 2.6, 2.8, 3.0,
                     3.2, 3.0, 2.8, 2.8, 3.0, 3.4, 3.8, 4.2, 4.4, 4.0, 3.0, 1.8])  # fmt: skip
_ROUND_AMOUNTS = np.array([10.0, 20.0, 25.0, 50.0, 100.0, 200.0])
_COLLUSION_AMOUNTS = np.array([50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 1000.0])


@dataclass(frozen=True, slots=True)
class SyntheticConfig:
    """How much to generate. ``users`` counts legitimate and fraud accounts together.

    Fraud is ≈ 4 % of users from about 1,000 users up; below that the minimum ring sizes push
    it higher (≈ 7 % at 300 users, 20 % at the minimum of 100)."""

    users: int = 5000
    seed: int = 7
    days: int = 60  # time span of the events
    start: str = "2026-01-01T00:00:00+00:00"
    label_reveal: float = 0.6  # share of fraud users whose fraud is revealed in labels.csv
    label_noise: float = 0.02  # share of revealed labels that are wrong
    # "all": account and transaction verdicts; "transactions": chargebacks on transactions only,
    # as card and payment teams have them (no account verdict at all).
    labels: str = "all"


@dataclass(frozen=True, slots=True)
class GeneratedDataset:
    """Paths of the written files and a few counts (the columns: README, "The synthetic data")."""

    events: Path
    labels: Path
    truth_users: Path
    truth_transactions: Path
    truth_identifiers: Path
    n_events: int
    n_users: int
    n_fraud_users: int
    rings: int


def generate(config: SyntheticConfig, out_dir: Path, progress: bool = False) -> GeneratedDataset:
    """Generate a dataset into ``out_dir`` (created if missing) and return where it went.

    Raises ``ValidationError`` for a config value out of range. ``progress`` prints one line per
    stage to stderr.
    """
    start_epoch = _validate(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = _Generator(config, start_epoch, progress)
    return gen.run(out)


def _validate(config: SyntheticConfig) -> int:
    """Check the config; return the start as UTC epoch seconds."""
    if isinstance(config.users, bool) or not isinstance(config.users, int) or config.users < 100:
        raise ValidationError("users", config.users, "must be an integer >= 100")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValidationError("seed", config.seed, "must be a non-negative integer")
    if isinstance(config.days, bool) or not isinstance(config.days, int) or config.days < 7:
        raise ValidationError("days", config.days, "must be an integer >= 7")
    if not 0.0 <= config.label_reveal <= 1.0:
        raise ValidationError("label_reveal", config.label_reveal, "must be in [0, 1]")
    if not 0.0 <= config.label_noise <= 0.5:
        raise ValidationError("label_noise", config.label_noise, "must be in [0, 0.5]")
    if config.labels not in LABEL_KINDS:
        raise ValidationError("labels", config.labels, f"must be one of {LABEL_KINDS}")
    try:
        parsed = datetime.fromisoformat(config.start.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as e:
        raise ValidationError("start", config.start, "must be an ISO-8601 timestamp") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


# Picks a device and an IP for each event of the given users (user indices in, two arrays out).
_DevIp = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class _Registry:
    """Allocates integer ids for devices or IPs and remembers planted roles (and IP categories)."""

    def __init__(self) -> None:
        self.count = 0
        self.roles: dict[int, str] = {}
        self._cats: list[np.ndarray] = []

    def alloc(self, n: int, role: str = "", cat: int | np.ndarray = _RES4) -> np.ndarray:
        ids = np.arange(self.count, self.count + n, dtype=np.int64)
        self.count += n
        if role:
            for i in ids.tolist():
                self.roles[i] = role
        self._cats.append(np.broadcast_to(np.asarray(cat, dtype=np.int8), (n,)).copy())
        return ids

    def categories(self) -> np.ndarray:
        return np.concatenate(self._cats) if self._cats else np.zeros(0, dtype=np.int8)


class _Events:
    """Column chunks of events, concatenated once at the end (ts in seconds from the start)."""

    _COLS = ("ts", "user", "device", "ip", "merchant", "amount", "currency", "kind", "status",
             "stolen")  # fmt: skip
    _DTYPES = (np.int64, np.int64, np.int64, np.int64, np.int64, np.float64, np.int8, np.int8,
               np.int8, np.bool_)  # fmt: skip

    def __init__(self) -> None:
        self._chunks: list[tuple[np.ndarray, ...]] = []

    def add(self, ts: np.ndarray, user: object, device: object, ip: object, kind: int,
            merchant: object = -1, amount: object = np.nan, currency: object = -1,
            status: object = 0, stolen: bool = False) -> None:  # fmt: skip
        """``stolen``: fraudulent payments on a legitimate user's card (not the user's doing)."""
        n = int(np.asarray(ts).shape[0])
        if n == 0:
            return
        vals = (ts, user, device, ip, merchant, amount, currency, kind, status, stolen)
        self._chunks.append(
            tuple(
                np.broadcast_to(np.asarray(v).astype(dt, copy=False), (n,))
                for v, dt in zip(vals, self._DTYPES, strict=True)
            )
        )

    def columns(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate([c[i] for c in self._chunks])
            for i, name in enumerate(self._COLS)
        }


@dataclass(slots=True)
class _RingPlan:
    index: int
    kind: str
    core: np.ndarray  # user indices of founding members
    late: np.ndarray  # user indices of late joiners


class _Generator:
    """One generation run; all randomness flows from ``self.rng`` in a fixed order."""

    def __init__(self, config: SyntheticConfig, start_epoch: int, progress: bool) -> None:
        self.cfg = config
        self.start_epoch = start_epoch
        self.progress = progress
        self.t0 = time.perf_counter()
        self.rng = np.random.default_rng(config.seed)
        self.P = config.days * _DAY
        self.N = config.users
        self.devices = _Registry()
        self.ips = _Registry()
        self.events = _Events()
        self.M = max(20, self.N // 25)
        self.merchant_roles: dict[int, str] = {}

    # ---------------------------------------------------------------------------------------
    # driver
    # ---------------------------------------------------------------------------------------

    def _say(self, msg: str) -> None:
        if self.progress:
            print(f"[generate] {msg} ({time.perf_counter() - self.t0:.1f}s)", file=sys.stderr)

    def run(self, out: Path) -> GeneratedDataset:
        rng = self.rng
        self._plan_population()
        self._setup_merchants()
        self.signup = np.zeros(self.N, dtype=np.int64)
        self.home_cur = rng.choice(3, self.N, p=[0.6, 0.25, 0.15]).astype(np.int8)
        self._legit_users()
        self._say(f"legit users: {self.n_legit}")
        for plan in self.plans:
            self._ring(plan)
        self._lone_fraudsters()
        n_compromised = self._compromised_merchants()
        self._say(f"rings: {len(self.plans)}, fraud users: {self.n_fraud}, "
                  f"compromised merchants: {n_compromised}")  # fmt: skip
        cols = self._finalise_events()
        self._say(f"events: {cols['ts'].shape[0]}")
        labels = self._labels(cols)
        paths = self._write(out, cols, labels)
        self._say("written")
        return GeneratedDataset(
            events=paths["events"],
            labels=paths["labels"],
            truth_users=paths["truth_users"],
            truth_transactions=paths["truth_transactions"],
            truth_identifiers=paths["truth_identifiers"],
            n_events=int(cols["ts"].shape[0]),
            n_users=self.N,
            n_fraud_users=self.n_fraud,
            rings=len(self.plans),
        )

    # ---------------------------------------------------------------------------------------
    # population and merchants
    # ---------------------------------------------------------------------------------------

    def _plan_population(self) -> None:
        """Decide ring kinds and sizes (≈ 3.6 % of users) and lone fraudsters (≈ 0.4 %)."""
        rng, N = self.rng, self.N
        n_rings = max(4, N // 250)
        extra = rng.choice(len(RING_KINDS), max(0, n_rings - len(RING_KINDS)))
        kinds = [RING_KINDS[i] for i in np.concatenate([np.arange(len(RING_KINDS)), extra])]
        kinds = [kinds[i] for i in rng.permutation(n_rings)]
        lo = np.array([RING_SIZE[k][0] for k in kinds])
        hi = np.array([RING_SIZE[k][1] for k in kinds])
        sizes = rng.integers(lo, hi + 1)
        target = 0.036 * N
        while sizes.sum() > 1.1 * target and (sizes > lo).any():
            sizes[int(np.argmax(sizes - lo))] -= 1
        while sizes.sum() < 0.85 * target and (sizes < hi).any():
            sizes[int(np.argmax(hi - sizes))] += 1
        late = np.zeros(n_rings, dtype=np.int64)
        for r in range(n_rings):
            if sizes[r] >= 4 and rng.random() < 0.65:
                late[r] = rng.integers(1, min(3, sizes[r] - 3) + 1)
        # At least half the rings get late joiners: they are the graph-only signal.
        while (late > 0).sum() < max(1, n_rings // 2):
            r = int(rng.choice(np.flatnonzero((late == 0) & (sizes >= 4))))
            late[r] = 1
        n_lone = max(1, round(0.004 * N))
        self.n_fraud = int(sizes.sum()) + n_lone
        self.n_legit = N - self.n_fraud
        if self.n_legit < 0.8 * N:
            raise ValidationError("users", N, "too few users for the minimum ring sizes")
        # Fraud users take indices n_legit .. N-1; ids are assigned later in signup order.
        self.is_fraud = np.zeros(N, dtype=bool)
        self.is_fraud[self.n_legit :] = True
        self.plans: list[_RingPlan] = []
        nxt = self.n_legit
        for r, kind in enumerate(kinds):
            members = np.arange(nxt, nxt + sizes[r])
            nxt += int(sizes[r])
            n_core = int(sizes[r] - late[r])
            self.plans.append(_RingPlan(r, kind, members[:n_core], members[n_core:]))
        self.lone = np.arange(nxt, N)

    def _setup_merchants(self) -> None:
        """Zipf popularity over merchants (rank order hidden by a permutation) and price levels."""
        rng, M = self.rng, self.M
        self.rank_to_m = rng.permutation(M)
        w = 1.0 / np.arange(1, M + 1) ** 1.1
        self.zipf_cdf = np.cumsum(w / w.sum())
        self.price_mu = rng.normal(3.3, 0.8, M)  # log of a typical basket at each merchant
        top = self.rank_to_m[: max(5, M // 3)]
        self.pricey = top[self.price_mu[top] >= np.median(self.price_mu[top])]
        self.used_merchants: set[int] = set()

    def _zipf(self, n: int) -> np.ndarray:
        ranks = np.searchsorted(self.zipf_cdf, self.rng.random(n), side="right")
        return self.rank_to_m[np.minimum(ranks, self.M - 1)]

    def _pick_merchants(self, n: int, rank_lo: float, rank_hi: float, role: str) -> np.ndarray:
        """``n`` distinct merchants from a popularity band not already given a role."""
        band = self.rank_to_m[int(rank_lo * self.M) : max(int(rank_hi * self.M), 1)]
        free = np.array([m for m in band.tolist() if m not in self.used_merchants], dtype=np.int64)
        if free.shape[0] < n:
            free = np.array([m for m in range(self.M) if m not in self.used_merchants])
        chosen = self.rng.choice(free, size=min(n, free.shape[0]), replace=False)
        for m in chosen.tolist():
            self.used_merchants.add(m)
            if role:
                self.merchant_roles[m] = role
        return chosen

    def _amount(self, merchants: np.ndarray, boost: float = 0.0, round_p: float = 0.08
                ) -> np.ndarray:  # fmt: skip
        """A basket price around each merchant's level (``boost`` raises it in log space); a
        share ``round_p`` are round amounts such as gift cards."""
        rng = self.rng
        n = merchants.shape[0]
        x = np.exp(self.price_mu[merchants] + boost + rng.normal(0.0, 0.55, n))
        x = np.clip(x, 1.0, 9_000.0)
        rounded = rng.random(n) < round_p
        x[rounded] = rng.choice(_ROUND_AMOUNTS, int(rounded.sum()))
        return np.round(x, 2)

    def _times(self, lo: np.ndarray, hi: np.ndarray, diurnal: bool = True) -> np.ndarray:
        """One time per row in (lo, hi), following the daily rhythm when it fits."""
        rng = self.rng
        lo = np.asarray(lo, dtype=np.int64)
        span = np.maximum(np.asarray(hi, dtype=np.int64) - lo - 1, 1)
        raw = lo + 1 + (rng.random(lo.shape[0]) * span).astype(np.int64)
        if not diurnal:
            return raw
        hour = rng.choice(24, lo.shape[0], p=_DIURNAL / _DIURNAL.sum())
        t = (raw // _DAY) * _DAY + hour * 3600 + rng.integers(0, 3600, lo.shape[0])
        bad = (t <= lo) | (t >= lo + 1 + span)
        return np.where(bad, raw, t)

    # ---------------------------------------------------------------------------------------
    # legitimate users
    # ---------------------------------------------------------------------------------------

    def _legit_users(self) -> None:
        """Signups, sessions, payments, refunds of ordinary users and their shared identifiers."""
        rng, L, P, N = self.rng, self.n_legit, self.P, self.N
        early = rng.random(L) < 0.45
        signup = np.where(early, rng.integers(0, P // 10, L), rng.integers(0, int(0.97 * P), L))
        self.signup[:L] = signup

        # Personal devices and IPs, contiguous per user.
        n_dev = rng.choice([1, 2, 3], L, p=[0.5, 0.35, 0.15])
        dev_start = self.devices.alloc(int(n_dev.sum()))[0] + _offsets(n_dev)
        n_ip = rng.choice([1, 2, 3, 4], L, p=[0.4, 0.3, 0.2, 0.1])
        ip_cat = rng.choice([_RES4, _RES6, _MOB6], int(n_ip.sum()), p=[0.86, 0.06, 0.08])
        ip_start = self.ips.alloc(int(n_ip.sum()), cat=ip_cat)[0] + _offsets(n_ip)

        # Families: ~8 % of users share a device (and often a home IP) with 1–4 relatives.
        fam_dev = np.full(L, -1, dtype=np.int64)
        fam_ip = np.full(L, -1, dtype=np.int64)
        target = int(round(0.08 * L))
        fam_sizes: list[int] = []
        while sum(fam_sizes) < target:
            fam_sizes.append(int(rng.integers(2, 6)))
        fam_sizes_a = np.array(fam_sizes, dtype=np.int64)
        G = fam_sizes_a.shape[0]
        if G:
            members = rng.permutation(L)[: int(fam_sizes_a.sum())]
            group = np.repeat(np.arange(G), fam_sizes_a)[: members.shape[0]]
            fam_dev[members] = self.devices.alloc(G, "family_device")[group]
            has_ip = rng.random(G) < 0.7
            gip = np.full(G, -1, dtype=np.int64)
            gip[has_ip] = self.ips.alloc(int(has_ip.sum()), "family_ip", _RES4)
            fam_ip[members] = gip[group]

        # Big shared IPs (office / campus / carrier NAT): hard negatives for "shared IP => fraud".
        big_ip = np.full(L, -1, dtype=np.int64)
        big_p = np.zeros(L)
        nb = 3 + N // 2500
        s = min(1.0, N / 5000)
        lo = max(10, int(100 * s))
        hi = max(lo + 5, int(600 * s))
        sizes = rng.integers(lo, hi + 1, nb)
        sizes = sizes[np.cumsum(sizes) <= int(0.6 * L)]
        order = rng.permutation(L)
        at = 0
        for b, size in enumerate(sizes.tolist()):
            kind = b % 3
            role, cat, use = [("office_ip", _OFFICE, 0.4), ("campus_ip", _CAMPUS, 0.45),
                              ("carrier_nat_ip", _CARRIER, 0.5)][kind]  # fmt: skip
            ipid = self.ips.alloc(1, role, cat)[0]
            mem = order[at : at + size]
            at += size
            big_ip[mem] = ipid
            big_p[mem] = use
        self.carrier_ips = np.array(
            [i for i, r in self.ips.roles.items() if r == "carrier_nat_ip"], dtype=np.int64
        )

        # Public Wi-Fi (cafés, airports) and VPN exits in datacenter ranges.
        wifi_ip = np.full(L, -1, dtype=np.int64)
        n_wifi = max(2, N // 500)
        wifi_ids = self.ips.alloc(n_wifi, "public_wifi_ip", _RES4)
        wsizes = rng.integers(8, 41, n_wifi)
        wmem = rng.permutation(L)[: int(min(wsizes.sum(), L))]
        wifi_ip[wmem] = np.repeat(wifi_ids, wsizes)[: wmem.shape[0]]
        vpn_ip = np.full(L, -1, dtype=np.int64)
        n_vpn = max(2, N // 400)
        vpn_ids = self.ips.alloc(n_vpn, "vpn_ip", _DC)
        vmem = rng.permutation(L)[: int(0.03 * L)]
        vpn_ip[vmem] = rng.choice(vpn_ids, vmem.shape[0])
        self.hangout_ips = np.concatenate([wifi_ids, vpn_ids])
        # Kiosks and internet-café machines: one device, many unrelated users.
        kiosk = np.full(L, -1, dtype=np.int64)
        n_kiosk = max(2, N // 1000)
        kiosk_ids = self.devices.alloc(n_kiosk, "kiosk_device")
        ksizes = rng.integers(6, 21, n_kiosk)
        kmem = rng.permutation(L)[: int(min(ksizes.sum(), L))]
        kiosk[kmem] = np.repeat(kiosk_ids, ksizes)[: kmem.shape[0]]

        def dev_ip(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            n = u.shape[0]
            r = rng.random((6, n))
            dev = dev_start[u] + (n_dev[u] * r[0] ** 1.6).astype(np.int64)
            dev = np.where((fam_dev[u] >= 0) & (r[1] < 0.25), fam_dev[u], dev)
            dev = np.where((kiosk[u] >= 0) & (r[1] > 0.9), kiosk[u], dev)
            ip = ip_start[u] + (n_ip[u] * r[2] ** 1.6).astype(np.int64)
            ip = np.where((fam_ip[u] >= 0) & (r[3] < 0.45), fam_ip[u], ip)
            ip = np.where((big_ip[u] >= 0) & (r[4] < big_p[u]), big_ip[u], ip)
            ip = np.where((wifi_ip[u] >= 0) & (r[5] < 0.08), wifi_ip[u], ip)
            ip = np.where((vpn_ip[u] >= 0) & (r[5] > 0.75), vpn_ip[u], ip)
            return dev, ip

        users = np.arange(L)
        self.events.add(signup, users, dev_start, ip_start, _SIGNUP)

        active_days = (P - signup) / _DAY
        lam_pay = rng.gamma(1.3, 0.17 / 1.3, L)
        lam_login = rng.gamma(1.5, 0.11 / 1.5, L)
        decline_p = np.where(rng.random(L) < 0.05, 0.15, 0.025)
        fav = self._zipf(L * 5).reshape(L, 5)
        self._activity(users, signup, np.full(L, P), lam_pay * active_days,
                       lam_login * active_days, dev_ip, decline_p, fav, refund_p=0.03)  # fmt: skip

    def _activity(self, users: np.ndarray, lo: np.ndarray, hi: np.ndarray, mean_pay: np.ndarray,
                  mean_login: np.ndarray, dev_ip: _DevIp, decline_p: np.ndarray, fav: np.ndarray,
                  refund_p: float, min_pay: int = 0) -> None:  # fmt: skip
        """Ordinary behaviour for ``users`` (row-aligned arrays): sessions of a login and a
        payment, short shopping bursts, extra logins and occasional refunds, all in (lo, hi).
        ``dev_ip(user_rows)`` picks a device and an IP per event; ``fav`` holds favourite
        merchants per row."""
        rng = self.rng
        n_pay = np.maximum(rng.poisson(mean_pay), min_pay)
        rows = np.repeat(np.arange(users.shape[0]), n_pay)
        t = self._times(lo[rows], hi[rows])
        dev, ip = dev_ip(users[rows])
        # Shopping bursts: some payments are followed by 1–3 more within minutes.
        n_follow = np.where(rng.random(rows.shape[0]) < 0.15, rng.integers(1, 4, rows.shape[0]), 0)
        src = np.repeat(np.arange(rows.shape[0]), n_follow)
        step = np.arange(src.shape[0]) - np.repeat(np.cumsum(n_follow) - n_follow, n_follow) + 1
        ft = t[src] + step * rng.integers(30, 600, src.shape[0])
        rows_all = np.concatenate([rows, rows[src]])
        t_all = np.concatenate([t, ft])
        dev_all = np.concatenate([dev, dev[src]])
        ip_all = np.concatenate([ip, ip[src]])
        n = rows_all.shape[0]
        merch = np.where(rng.random(n) < 0.7, fav[rows_all, rng.integers(0, fav.shape[1], n)],
                         self._zipf(n))  # fmt: skip
        amount = self._amount(merch)
        u_all = users[rows_all]
        cur = np.where(rng.random(n) < 0.04, rng.integers(0, 3, n), self.home_cur[u_all])
        status = (rng.random(n) < decline_p[rows_all]).astype(np.int8)
        keep = t_all < hi[rows_all]
        self.events.add(t_all[keep], u_all[keep], dev_all[keep], ip_all[keep], _PAY,
                        merch[keep], amount[keep], cur[keep], status[keep])  # fmt: skip
        # "Log in, then pay": half the session starts get a login shortly before.
        lg = rng.random(rows.shape[0]) < 0.5
        lt = t[lg] - rng.integers(10, 900, int(lg.sum()))
        ok = lt > lo[rows[lg]]
        self.events.add(lt[ok], users[rows[lg]][ok], dev[lg][ok], ip[lg][ok], _LOGIN,
                        status=(rng.random(int(ok.sum())) < 0.02).astype(np.int8))  # fmt: skip
        # Logins without a purchase.
        n_login = rng.poisson(mean_login)
        lrows = np.repeat(np.arange(users.shape[0]), n_login)
        ldev, lip = dev_ip(users[lrows])
        self.events.add(self._times(lo[lrows], hi[lrows]), users[lrows], ldev, lip, _LOGIN,
                        status=(rng.random(lrows.shape[0]) < 0.02).astype(np.int8))  # fmt: skip
        # Refunds of some approved payments, 1–20 days later (dropped past the period end).
        rf = keep & (status == 0) & (rng.random(n) < refund_p)
        rt = t_all[rf] + rng.integers(_DAY, 20 * _DAY, int(rf.sum()))
        part = rng.random(int(rf.sum())) < 0.25
        share = np.where(part, rng.uniform(0.2, 0.9, int(rf.sum())), 1.0)
        ramt = np.round(amount[rf] * share, 2)
        ok = rt < hi[rows_all[rf]]
        self.events.add(rt[ok], u_all[rf][ok], dev_all[rf][ok], ip_all[rf][ok], _REFUND,
                        merch[rf][ok], ramt[ok], cur[rf][ok], 0)  # fmt: skip

    # ---------------------------------------------------------------------------------------
    # rings
    # ---------------------------------------------------------------------------------------

    def _own(self, n: int, cat: int = _RES4) -> tuple[np.ndarray, np.ndarray]:
        """A fresh personal device and IP for each of ``n`` fraud users (shared with nobody)."""
        return self.devices.alloc(n), self.ips.alloc(n, cat=cat)

    def _mix(self, ring: np.ndarray, own: np.ndarray, p_own: float, n: int) -> np.ndarray:
        """Per event: the user's own identifier with probability ``p_own``, else a ring one."""
        rng = self.rng
        pick = ring[rng.integers(0, ring.shape[0], n)]
        return np.where(rng.random(n) < p_own, own, pick)

    def _hangout(self, ip: np.ndarray, p: float = 0.08) -> np.ndarray:
        """Replace a share ``p`` of ``ip`` by the ring's public Wi-Fi / VPN hangouts."""
        swap = self.rng.random(ip.shape[0]) < p
        out = ip.copy()
        out[swap] = self.rng.choice(self.hangouts, int(swap.sum()))
        return out

    def _ring(self, plan: _RingPlan) -> None:
        rng, P = self.rng, self.P
        core = plan.core
        # Public Wi-Fi / VPN exits this ring also uses now and then: fraud shares them with
        # ordinary users, so "neighbour of a fraudster" is not a perfect rule either.
        self.hangouts = rng.choice(self.hangout_ips, int(rng.integers(1, 3)), replace=False)
        t_r = int(rng.integers(int(0.03 * P), int(0.5 * P)))
        if plan.kind == "card_testing":
            # Card testing starts later (between 50 % and 70 % of the period, before the late
            # joiners), so that the later-in-time held-out split holds some of it.
            t_r = int(0.5 * P + (t_r - 0.03 * P) * (0.2 / 0.47))
        if plan.kind == "account_farm":
            ring_devs, ring_ips = self._account_farm(core, t_r)
        elif plan.kind == "card_testing":
            ring_devs, ring_ips = self._card_testing(core, t_r)
        elif plan.kind == "mule_chain":
            ring_devs, ring_ips = self._mule_chain(core, t_r)
        else:
            ring_devs, ring_ips = self._colluding_merchant(core, t_r)
        self._late_joiners(plan.late, ring_devs, ring_ips)

    def _account_farm(self, core: np.ndarray, t_r: int) -> tuple[np.ndarray, np.ndarray]:
        """Fresh accounts made in a burst on a few farm/emulator devices behind datacenter
        proxies, paying mostly higher amounts at a few target merchants."""
        rng, P = self.rng, self.P
        k = core.shape[0]
        nd = int(rng.integers(1, min(4, k) + 1))
        emu = rng.random(nd) < 0.4
        devs = np.array([self.devices.alloc(1, "emulator_device" if e else "farm_device")[0]
                         for e in emu.tolist()], dtype=np.int64)  # fmt: skip
        proxies = self.ips.alloc(int(rng.integers(2, min(5, k) + 1)), "proxy_ip", _DC)
        own_dev, own_ip = self._own(k)
        signup = t_r + np.cumsum(rng.exponential(600.0, k)).astype(np.int64)
        self.signup[core] = signup
        idx = np.arange(k)
        self.events.add(signup, core, devs[idx % nd], proxies[idx % proxies.shape[0]], _SIGNUP)
        targets = rng.choice(self.pricey, size=min(int(rng.integers(3, 7)), self.pricey.shape[0]),
                             replace=False)  # fmt: skip
        end = np.minimum(signup + (rng.uniform(0.05, 0.25, k) * P).astype(np.int64), P - 1)
        n_pay = 3 + rng.poisson(10, k)
        rows = np.repeat(idx, n_pay)
        n = rows.shape[0]
        t = self._times(signup[rows] + 60, end[rows], diurnal=False)
        dev = np.where(rng.random(n) < 0.7, devs[rows % nd], self._mix(devs, own_dev[rows], 0.5, n))
        ip = self._hangout(self._mix(proxies, own_ip[rows], 0.2, n))
        if self.carrier_ips.shape[0]:
            carrier = rng.random(n) < 0.05
            ip[carrier] = rng.choice(self.carrier_ips, int(carrier.sum()))
        target = targets[rng.integers(0, targets.shape[0], n)]
        merch = np.where(rng.random(n) < 0.6, target, self._zipf(n))
        high = rng.random(n) < 0.6
        amount = np.where(high, self._amount(merch, boost=0.9, round_p=0.0), self._amount(merch))
        status = (rng.random(n) < 0.12).astype(np.int8)
        self.events.add(t, core[rows], dev, ip, _PAY, merch, amount, self.home_cur[core[rows]],
                        status)  # fmt: skip
        self._fraud_logins(core, signup + 30, end, devs, own_dev, proxies, own_ip,
                           1 + rng.poisson(4, k))  # fmt: skip
        return devs, proxies

    def _card_testing(self, core: np.ndarray, t_r: int) -> tuple[np.ndarray, np.ndarray]:
        """Bursts of tiny payments within minutes at 1–3 merchants, mostly declined, then a few
        high cash-out payments."""
        rng, P = self.rng, self.P
        k = core.shape[0]
        devs = self.devices.alloc(int(rng.integers(1, 3)), "tester_device")
        ip_cat = _DC if rng.random() < 0.5 else _RES4
        ips = self.ips.alloc(int(rng.integers(1, 3)), "tester_ip", ip_cat)
        merchants = self._pick_merchants(int(rng.integers(1, 4)), 0.1, 0.6, "card_testing_merchant")
        own_dev, own_ip = self._own(k)
        signup = t_r + rng.integers(0, max(int(0.03 * P), 2), k)
        self.signup[core] = signup
        idx = np.arange(k)
        self.events.add(signup, core, devs[idx % devs.shape[0]], ips[idx % ips.shape[0]], _SIGNUP)
        end = np.minimum(signup + int(0.15 * P), P - 1)
        n_bursts = rng.integers(2, 6, k)
        b_member = np.repeat(idx, n_bursts)
        b_start = self._times(signup[b_member] + 600, end[b_member], diurnal=False)
        b_merch = merchants[rng.integers(0, merchants.shape[0], b_member.shape[0])]
        b_size = rng.integers(5, 21, b_member.shape[0])
        rows = np.repeat(np.arange(b_member.shape[0]), b_size)
        gaps = (rng.exponential(40.0, rows.shape[0]) + 5).astype(np.int64)
        first = np.concatenate([[0], np.cumsum(b_size)[:-1]])
        cum = np.cumsum(gaps)
        t = b_start[rows] + cum - cum[first][rows]
        n = rows.shape[0]
        m = b_member[rows]
        other = merchants[rng.integers(0, merchants.shape[0], n)]
        merch = np.where(rng.random(n) < 0.9, b_merch[rows], other)
        amount = np.round(rng.uniform(0.5, 2.0, n), 2)
        status = (rng.random(n) < 0.65).astype(np.int8)
        ok = t < P
        self.events.add(t[ok], core[m][ok], self._mix(devs, own_dev[m], 0.15, n)[ok],
                        self._mix(ips, own_ip[m], 0.15, n)[ok], _PAY, merch[ok], amount[ok],
                        self.home_cur[core[m]][ok], status[ok])  # fmt: skip
        # Cash-out with the cards that worked.
        n_out = rng.integers(1, 5, k)
        rows = np.repeat(idx, n_out)
        n = rows.shape[0]
        merch = rng.choice(self.pricey, n)
        self.events.add(
            self._times(signup[rows] + 3600, end[rows], diurnal=False),
            core[rows],
            self._mix(devs, own_dev[rows], 0.15, n),
            self._hangout(self._mix(ips, own_ip[rows], 0.15, n), 0.15),
            _PAY,
            merch,
            self._amount(merch, boost=0.7, round_p=0.0),
            self.home_cur[core[rows]],
            (rng.random(n) < 0.25).astype(np.int8),
        )
        self._fraud_logins(core, signup + 30, end, devs, own_dev, ips, own_ip,
                           rng.integers(1, 5, k))  # fmt: skip
        return devs, ips

    def _mule_chain(self, core: np.ndarray, t_r: int) -> tuple[np.ndarray, np.ndarray]:
        """A chain of accounts; neighbours share one device or one IP. Money comes in as refunds
        and goes out as payments."""
        rng, P = self.rng, self.P
        k = core.shape[0]
        own_dev, own_ip = self._own(k)
        signup = t_r + np.cumsum(rng.integers(int(0.005 * P), int(0.02 * P), k))
        self.signup[core] = signup
        self.events.add(signup, core, own_dev, own_ip, _SIGNUP)
        end = np.minimum(signup + int(0.2 * P), P - 1)
        dev_lists: list[list[int]] = [[int(d)] for d in own_dev]
        ip_lists: list[list[int]] = [[int(i)] for i in own_ip]
        link_devs: list[int] = []
        link_ips: list[int] = []
        use_dev = rng.random() < 0.5
        for i in range(k - 1):
            a, b = i, i + 1
            if use_dev:
                x = int(self.devices.alloc(1, "mule_device")[0])
                link_devs.append(x)
                dev_lists[a].append(x)
                dev_lists[b].append(x)
                d = np.array([x, x])
                p = np.array([own_ip[a], own_ip[b]])
            else:
                x = int(self.ips.alloc(1, "mule_ip", _RES4 if rng.random() < 0.7 else _MOB6)[0])
                link_ips.append(x)
                ip_lists[a].append(x)
                ip_lists[b].append(x)
                d = np.array([own_dev[a], own_dev[b]])
                p = np.array([x, x])
            # Explicit logins on the link so the chain is always there in the events.
            mem = np.array([a, b])
            self.events.add(self._times(signup[mem] + 60, end[mem]), core[mem], d, p, _LOGIN)
            use_dev = not use_dev
        sources = self._pick_merchants(int(rng.integers(1, 4)), 0.0, 0.5, "")
        outs = self._pick_merchants(int(rng.integers(1, 3)), 0.05, 0.7, "")
        for i in range(k):
            u, dl, il = core[i], np.array(dev_lists[i]), np.array(ip_lists[i])
            n_ref = int(rng.integers(3, 9))
            n_out = int(rng.integers(2, 7))
            n_small = int(rng.integers(0, 4))
            n = n_ref + n_out + n_small
            lo = np.full(n, signup[i] + 3600)
            t = self._times(lo, np.full(n, end[i]))
            merch = np.concatenate([
                sources[rng.integers(0, sources.shape[0], n_ref)],
                outs[rng.integers(0, outs.shape[0], n_out)],
                self._zipf(n_small),
            ])  # fmt: skip
            ref_amt = np.round(rng.uniform(80.0, 900.0, n_ref), 2)
            # Pay out most of what came in, in roughly equal parts.
            out_amt = np.round(ref_amt.sum() / n_out * rng.uniform(0.8, 1.0, n_out), 2)
            amount = np.concatenate([ref_amt, out_amt, self._amount(merch[n_ref + n_out :])])
            kind = np.concatenate([np.full(n_ref, _REFUND), np.full(n - n_ref, _PAY)])
            dev = dl[rng.integers(0, dl.shape[0], n)]
            ip = il[rng.integers(0, il.shape[0], n)]
            status = np.where(kind == _PAY, rng.random(n) < 0.05, 0).astype(np.int8)
            for kd in (_REFUND, _PAY):
                s = kind == kd
                self.events.add(t[s], u, dev[s], ip[s], kd, merch[s], amount[s],
                                self.home_cur[u], status[s])  # fmt: skip
            nl = int(rng.integers(1, 5))
            lt = self._times(np.full(nl, signup[i] + 60), np.full(nl, end[i]))
            self.events.add(lt, u, dl[rng.integers(0, dl.shape[0], nl)],
                            il[rng.integers(0, il.shape[0], nl)], _LOGIN)  # fmt: skip
        return np.array(link_devs, dtype=np.int64), np.array(link_ips, dtype=np.int64)

    def _colluding_merchant(self, core: np.ndarray, t_r: int) -> tuple[np.ndarray, np.ndarray]:
        """Accounts paying one merchant round amounts again and again, from a few shared IPs."""
        rng, P = self.rng, self.P
        k = core.shape[0]
        merchant = int(self._pick_merchants(1, 0.5, 1.0, "colluding_merchant")[0])
        n_sh = int(rng.integers(2, min(4, k) + 1))  # every shared IP is used by a founder
        shared = self.ips.alloc(n_sh, "collusion_ip", rng.choice([_RES4, _DC], n_sh, p=[0.7, 0.3]))
        own_dev, own_ip = self._own(k)
        signup = t_r + rng.integers(0, max(int(0.08 * P), 2), k)
        self.signup[core] = signup
        idx = np.arange(k)
        first = shared[idx % n_sh]
        second = np.where(rng.random(k) < 0.5, shared[rng.integers(0, n_sh, k)], first)
        self.events.add(signup, core, own_dev, first, _SIGNUP)
        end = np.minimum(signup + int(0.3 * P), P - 1)
        n_col = rng.integers(5, 16, k)
        n_cov = rng.integers(2, 7, k)
        rows = np.repeat(idx, n_col + n_cov)
        n = rows.shape[0]
        # Per member: first n_col collusion payments, then n_cov cover payments.
        is_col = (np.arange(n) - np.repeat(_offsets(n_col + n_cov), n_col + n_cov)) < n_col[rows]
        merch = np.where(is_col, merchant, self._zipf(n))
        amount = np.where(is_col, rng.choice(_COLLUSION_AMOUNTS, n), self._amount(merch))
        r = rng.random(n)
        ip = np.where(r < 0.25, own_ip[rows], np.where(r < 0.6, first[rows], second[rows]))
        ip = self._hangout(ip)
        status = (rng.random(n) < np.where(is_col, 0.05, 0.03)).astype(np.int8)
        self.events.add(self._times(signup[rows] + 600, end[rows]), core[rows], own_dev[rows], ip,
                        _PAY, merch, amount, self.home_cur[core[rows]], status)  # fmt: skip
        n_log = rng.integers(2, 6, k)
        lrows = np.repeat(idx, n_log)
        lip = np.where(rng.random(lrows.shape[0]) < 0.3, own_ip[lrows], first[lrows])
        self.events.add(self._times(signup[lrows] + 60, end[lrows]), core[lrows], own_dev[lrows],
                        lip, _LOGIN)  # fmt: skip
        return np.zeros(0, dtype=np.int64), shared

    def _fraud_logins(self, core: np.ndarray, lo: np.ndarray, hi: np.ndarray, devs: np.ndarray,
                      own_dev: np.ndarray, ips: np.ndarray, own_ip: np.ndarray,
                      counts: np.ndarray) -> None:  # fmt: skip
        rows = np.repeat(np.arange(core.shape[0]), counts)
        n = rows.shape[0]
        self.events.add(self._times(lo[rows], hi[rows], diurnal=False), core[rows],
                        self._mix(devs, own_dev[rows], 0.15, n),
                        self._hangout(self._mix(ips, own_ip[rows], 0.15, n)), _LOGIN)  # fmt: skip

    def _late_joiners(self, late: np.ndarray, ring_devs: np.ndarray, ring_ips: np.ndarray) -> None:
        """Members who join late and look ordinary, except that some of their events use one of
        the ring's devices or IPs (the graph-only signal)."""
        rng, P = self.rng, self.P
        k = late.shape[0]
        if k == 0:
            return
        signup = rng.integers(int(LATE_JOIN_FROM * P), int(0.95 * P), k)
        self.signup[late] = signup
        n_dev = rng.integers(1, 3, k)
        n_ip = rng.integers(1, 3, k)
        dev_start = self.devices.alloc(int(n_dev.sum()))[0] + _offsets(n_dev)
        ip_start = self.ips.alloc(int(n_ip.sum()))[0] + _offsets(n_ip)
        use_dev = np.zeros(k, dtype=bool)
        if ring_devs.shape[0] and ring_ips.shape[0]:
            use_dev = rng.random(k) < 0.5
        elif ring_devs.shape[0]:
            use_dev[:] = True
        x_dev = np.full(k, -1, dtype=np.int64)
        x_ip = np.full(k, -1, dtype=np.int64)
        if ring_devs.shape[0]:
            x_dev = ring_devs[rng.integers(0, ring_devs.shape[0], k)]
        if ring_ips.shape[0]:
            x_ip = ring_ips[rng.integers(0, ring_ips.shape[0], k)]
        share_p = rng.uniform(0.25, 0.5, k)
        pos = {int(u): i for i, u in enumerate(late.tolist())}

        def dev_ip(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            i = np.array([pos[int(v)] for v in u.tolist()], dtype=np.int64)
            n = i.shape[0]
            dev = dev_start[i] + (n_dev[i] * rng.random(n) ** 1.6).astype(np.int64)
            ip = ip_start[i] + (n_ip[i] * rng.random(n) ** 1.6).astype(np.int64)
            share = rng.random(n) < share_p[i]
            dev = np.where(share & use_dev[i], x_dev[i], dev)
            ip = np.where(share & ~use_dev[i], x_ip[i], ip)
            return dev, ip

        # The signup itself uses the ring identifier, so every late joiner has the tie.
        self.events.add(signup, late, np.where(use_dev, x_dev, dev_start),
                        np.where(use_dev, ip_start, x_ip), _SIGNUP)  # fmt: skip
        active_days = (P - signup) / _DAY
        fav = self._zipf(k * 5).reshape(k, 5)
        mean_pay = 1.5 + rng.gamma(1.3, 0.17 / 1.3, k) * active_days
        mean_login = 1.0 + rng.gamma(1.5, 0.11 / 1.5, k) * active_days
        self._activity(late, signup, np.full(k, P), mean_pay, mean_login, dev_ip,
                       np.full(k, 0.03), fav, refund_p=0.03, min_pay=1)  # fmt: skip

    def _lone_fraudsters(self) -> None:
        """Fraudsters in no ring: a short burst of high payments from their own device."""
        rng, P = self.rng, self.P
        lone = self.lone
        k = lone.shape[0]
        if k == 0:
            return
        signup = rng.integers(0, int(0.9 * P), k)
        self.signup[lone] = signup
        dev = self.devices.alloc(k)
        ip = self.ips.alloc(k, cat=rng.choice([_RES4, _DC, _MOB6], k, p=[0.5, 0.3, 0.2]))
        vpn = rng.random(k) < 0.3  # some hide behind the same commercial VPNs as ordinary users
        ip[vpn] = rng.choice(self.hangout_ips, int(vpn.sum()))
        self.events.add(signup, lone, dev, ip, _SIGNUP)
        end = np.minimum(signup + (rng.uniform(0.5, 5.0, k) * _DAY).astype(np.int64), P - 1)
        rows = np.repeat(np.arange(k), rng.integers(3, 11, k))
        n = rows.shape[0]
        merch = rng.choice(self.pricey, n)
        self.events.add(
            self._times(signup[rows] + 300, end[rows]),
            lone[rows],
            dev[rows],
            ip[rows],
            _PAY,
            merch,
            self._amount(merch, boost=0.8, round_p=0.0),
            self.home_cur[lone[rows]],
            (rng.random(n) < 0.25).astype(np.int8),
        )
        lrows = np.repeat(np.arange(k), rng.integers(1, 4, k))
        self.events.add(self._times(signup[lrows] + 60, end[lrows]), lone[lrows], dev[lrows],
                        ip[lrows], _LOGIN)  # fmt: skip

    def _compromised_merchants(self) -> int:
        """Merchants whose checkout is compromised for a while: it charges the cards of ordinary
        users active before the window, each charge carrying the device and IP of one of the
        victim's own earlier events, at ordinary amounts. The accounts are the victims' (not
        fraud users) and nothing about the payment itself is odd; what gives the later charges
        away is the merchant's earlier ones coming back as chargebacks, which victims raise
        within days (``_labels``). Returns how many merchants were compromised."""
        rng, P, N = self.rng, self.P, self.N
        seen = self.events.columns()  # every event planted so far
        merchants = self._pick_merchants(max(2, N // 1500), 0.3, 0.7, "compromised_merchant")
        for i, m in enumerate(merchants.tolist()):
            # The first one early (training sees one), the others late (held-out sees them).
            lo, hi = (0.1, 0.3) if i == 0 else (0.55, 0.65)
            start = int(rng.integers(int(lo * P), int(hi * P)))
            end = min(start + int(rng.uniform(0.25, 0.35) * P), P - 1)
            before = (seen["ts"] < start) & (seen["device"] >= 0) & (seen["ip"] >= 0)
            active = np.unique(seen["user"][before & ~self.is_fraud[seen["user"]]])
            k = min(int(rng.integers(max(15, N // 150), max(30, N // 60) + 1)), active.shape[0])
            victims = np.sort(rng.choice(active, k, replace=False))
            # One earlier event of each victim lends the charge its device and IP.
            rows = np.flatnonzero(before & np.isin(seen["user"], victims))
            rows = rows[np.argsort(seen["user"][rows], kind="stable")]
            first = np.searchsorted(seen["user"][rows], victims)
            count = np.diff(np.r_[first, rows.shape[0]])
            lend = rows[first + (rng.random(k) * count).astype(np.int64)]
            merch = np.full(k, m, dtype=np.int64)
            self.events.add(
                self._times(np.full(k, start), np.full(k, end)),
                victims,
                seen["device"][lend],
                seen["ip"][lend],
                _PAY,
                merch,
                self._amount(merch),
                self.home_cur[victims],
                (rng.random(k) < 0.1).astype(np.int8),
                stolen=True,
            )
        return int(merchants.shape[0])

    # ---------------------------------------------------------------------------------------
    # ids, labels, files
    # ---------------------------------------------------------------------------------------

    def _finalise_events(self) -> dict[str, np.ndarray]:
        """Concatenate, keep events inside the period and after each user's signup, sort by time."""
        cols = self.events.columns()
        ts, user, kind = cols["ts"], cols["user"], cols["kind"]
        keep = (ts < self.P) & ((kind == _SIGNUP) | (ts > self.signup[user]))
        order = np.flatnonzero(keep)
        order = order[np.argsort(ts[order], kind="stable")]
        cols = {name: arr[order] for name, arr in cols.items()}
        kind = cols["kind"]
        # Currency only on money events.
        money = (kind == _PAY) | (kind == _REFUND)
        cols["currency"] = np.where(money, cols["currency"], -1).astype(np.int8)
        cols["fraud"] = (self.is_fraud[cols["user"]] & money) | cols["stolen"]
        return cols

    def _labels(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Chargebacks for part of the fraud, investigator verdicts, and some wrong labels.

        A share ``label_reveal`` of fraud users get ``user,fraud,chargeback`` 1–45 days after
        their last fraudulent payment; about 30 % of those users' approved fraudulent payments
        get ``transaction,fraud,chargeback`` 2–60 days later; about 85 % of the approved
        stolen-card payments get one 2–10 days later, and their victims ``user,legit,investigator``
        1–7 days after their first; about 2 % of legitimate users get ``user,legit,investigator``.
        Noise (``label_noise`` × revealed labels, split in two, at least one each way when
        ``label_noise > 0``): legitimate users charged back as fraud (with one of their payments),
        and revealed fraudsters later cleared (a later ``legit`` verdict, which wins). With
        ``labels="transactions"`` only transaction verdicts are kept, at least one per revealed user.

        Returns int64 rows ``(entity 0=user 1=txn, index, fraud 0/1, ts, source 0=chargeback
        1=investigator)``; ``index`` is a user index or a row of the sorted events."""
        rng, cfg = self.rng, self.cfg
        ts, user, kind, status = cols["ts"], cols["user"], cols["kind"], cols["status"]
        n_ev = ts.shape[0]
        rows: list[tuple[int, int, int, int, int]] = []
        CB, INV = 0, 1
        fraud_users = np.flatnonzero(self.is_fraud)
        last = np.full(self.N, -1, dtype=np.int64)
        np.maximum.at(last, user[cols["fraud"]], ts[cols["fraud"]])
        last = np.where(last < 0, self.signup, last)
        n_rev = int(round(cfg.label_reveal * fraud_users.shape[0]))
        revealed = np.sort(rng.choice(fraud_users, n_rev, replace=False))
        rev_ts = last[revealed] + rng.integers(_DAY, 45 * _DAY + 1, n_rev)
        rows += [(0, int(u), 1, int(t), CB) for u, t in zip(revealed, rev_ts, strict=True)]
        # Transaction chargebacks for approved fraudulent payments of revealed users.
        is_rev = np.zeros(self.N, dtype=bool)
        is_rev[revealed] = True
        cand = np.flatnonzero(cols["fraud"] & (kind == _PAY) & (status == 0) & is_rev[user])
        cb = cand[rng.random(cand.shape[0]) < 0.3]
        if cfg.labels == "transactions":
            # Chargebacks are the only verdicts: every revealed user has at least one, on its
            # first approved fraudulent payment (no random draw, so the rest stays as in "all").
            first = np.unique(user[cand], return_index=True)[1]
            cb = np.union1d(cb, cand[first])
        cb_ts = ts[cb] + rng.integers(2 * _DAY, 60 * _DAY, cb.shape[0])
        rows += [(1, int(i), 1, int(t), CB) for i, t in zip(cb, cb_ts, strict=True)]
        # Victims of a compromised merchant dispute most of the approved payments, within days.
        stolen = np.flatnonzero(cols["stolen"] & (status == 0))
        stolen = stolen[rng.random(stolen.shape[0]) < 0.85]
        st_ts = ts[stolen] + rng.integers(2 * _DAY, 10 * _DAY, stolen.shape[0])
        rows += [(1, int(i), 1, int(t), CB) for i, t in zip(stolen, st_ts, strict=True)]
        # Where account verdicts exist, the fraud team clears each victim within days of its
        # first chargeback: the card was stolen, the account holder did nothing wrong.
        victims, first = np.unique(user[stolen], return_index=True)
        cleared = st_ts[first] + rng.integers(_DAY, 7 * _DAY, victims.shape[0])
        rows += [(0, int(u), 0, int(t), INV) for u, t in zip(victims, cleared, strict=True)]
        # Label noise: legit users charged back as fraud; revealed frauds cleared later.
        # Half of label_noise x revealed each way, at least one each way when noise is on.
        n_half = max(1, round(cfg.label_noise * n_rev / 2)) if cfg.label_noise > 0 and n_rev else 0
        n_fp = n_half
        n_fn = min(n_half, n_rev)
        legit_pay = np.flatnonzero(~self.is_fraud[user] & ~cols["stolen"] & (kind == _PAY) & (status == 0))
        payers = np.unique(user[legit_pay])
        fp = np.sort(rng.choice(payers, min(n_fp, payers.shape[0]), replace=False))
        if fp.shape[0]:
            first_pay = {}
            for i in legit_pay[np.isin(user[legit_pay], fp)].tolist():
                first_pay.setdefault(int(user[i]), i)
            for u in fp.tolist():
                i = first_pay[u]
                t = int(ts[i] + rng.integers(_DAY, 45 * _DAY))
                rows.append((0, u, 1, t, CB))
                rows.append((1, i, 1, t, CB))
        if n_fn:
            pick = rng.choice(n_rev, n_fn, replace=False)
            for j in np.sort(pick).tolist():
                cleared_at = int(rev_ts[j] + rng.integers(_DAY, 20 * _DAY))
                rows.append((0, int(revealed[j]), 0, cleared_at, INV))
        # Investigators confirm some ordinary accounts as legitimate.
        legit = np.setdiff1d(np.arange(self.n_legit), fp)
        ok = rng.choice(legit, int(round(0.02 * self.n_legit)), replace=False)
        ok_ts = self.signup[ok] + 7 * _DAY + (rng.random(ok.shape[0]) * np.maximum(
            self.P + 10 * _DAY - self.signup[ok] - 7 * _DAY, 1)).astype(np.int64)  # fmt: skip
        rows += [(0, int(u), 0, int(t), INV) for u, t in zip(ok, ok_ts, strict=True)]
        arr = np.array(rows, dtype=np.int64).reshape(-1, 5)
        assert arr[:, 1][arr[:, 0] == 1].max(initial=-1) < n_ev
        if cfg.labels == "transactions":
            arr = arr[arr[:, 0] == 1]
        return arr

    def _write(self, out: Path, cols: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, Path]:
        rng = self.rng
        n = cols["ts"].shape[0]
        # Public ids: users numbered in signup order (ties by internal index), devices and
        # merchants by a random permutation so that numbering reveals nothing. The extra ""
        # at the end of each table renders index -1 (absent) as an empty field.
        user_rank = np.empty(self.N, dtype=np.int64)
        user_rank[np.lexsort((np.arange(self.N), self.signup))] = np.arange(self.N)
        user_str = np.array([f"u{r + 1:06d}" for r in user_rank.tolist()], dtype=object)
        dev_perm = rng.permutation(self.devices.count)
        dev_str = np.array([f"d{r + 1:05d}" for r in dev_perm.tolist()] + [""], dtype=object)
        ip_str = np.append(self._ip_strings(self.ips.categories()), "").astype(object)
        m_perm = rng.permutation(self.M)
        m_str = np.array([f"m{r + 1:04d}" for r in m_perm.tolist()] + [""], dtype=object)
        txn_str = np.array([f"t{i + 1:07d}" for i in range(n)], dtype=object)
        amount = ["" if a != a else f"{a:.2f}" for a in cols["amount"].tolist()]
        paths = {
            "events": out / "events.csv",
            "labels": out / "labels.csv",
            "truth_users": out / "truth_users.csv",
            "truth_transactions": out / "truth_transactions.csv",
            "truth_identifiers": out / "truth_identifiers.csv",
        }
        write_plain_csv(paths["events"], EVENT_COLUMNS, [
            txn_str,
            self._iso(cols["ts"]),
            user_str[cols["user"]],
            dev_str[cols["device"]],
            ip_str[cols["ip"]],
            m_str[cols["merchant"]],
            amount,
            _CURRENCIES[cols["currency"]],
            _KIND_NAMES[cols["kind"]],
            _STATUS_NAMES[cols["status"]],
        ])  # fmt: skip

        lab = labels[np.lexsort((labels[:, 2], labels[:, 1], labels[:, 0], labels[:, 3]))]
        ent, idx = lab[:, 0], lab[:, 1]
        write_plain_csv(paths["labels"], LABEL_COLUMNS, [
            np.where(ent == 0, "user", "transaction"),
            np.where(ent == 0, user_str[np.where(ent == 0, idx, 0)],
                     txn_str[np.where(ent == 1, idx, 0)]),
            np.where(lab[:, 2] == 1, "fraud", "legit"),
            self._iso(lab[:, 3]),
            np.where(lab[:, 4] == 0, "chargeback", "investigator"),
        ])  # fmt: skip

        ring_id = np.full(self.N, "", dtype=object)
        ring_kind = np.full(self.N, "", dtype=object)
        graph_only = np.zeros(self.N, dtype=bool)
        for plan in self.plans:
            members = np.concatenate([plan.core, plan.late])
            ring_id[members] = f"ring-{plan.index + 1:04d}"
            ring_kind[members] = plan.kind
            graph_only[plan.late] = True
        by_id = np.argsort(user_rank)
        write_plain_csv(paths["truth_users"], TRUTH_USER_COLUMNS, [
            user_str[by_id],
            np.where(self.is_fraud[by_id], "1", "0"),
            ring_id[by_id],
            ring_kind[by_id],
            np.where(graph_only[by_id], "1", "0"),
        ])  # fmt: skip
        user_scenario = ring_kind.copy()
        user_scenario[self.lone] = "lone_fraudster"
        scenario = np.where(cols["stolen"], "compromised_merchant", user_scenario[cols["user"]])
        write_plain_csv(paths["truth_transactions"], TRUTH_TXN_COLUMNS,
                   [txn_str, np.where(cols["fraud"], "1", "0"),
                    np.where(cols["fraud"], scenario, "")])  # fmt: skip

        used_dev = np.zeros(self.devices.count, dtype=bool)
        used_dev[cols["device"][cols["device"] >= 0]] = True
        used_ip = np.zeros(self.ips.count, dtype=bool)
        used_ip[cols["ip"][cols["ip"] >= 0]] = True
        used_m = np.zeros(self.M, dtype=bool)
        used_m[cols["merchant"][cols["merchant"] >= 0]] = True
        ident = [("device", dev_str[i], r) for i, r in self.devices.roles.items() if used_dev[i]]
        ident += [("ip", ip_str[i], r) for i, r in self.ips.roles.items() if used_ip[i]]
        ident += [("merchant", m_str[i], r) for i, r in self.merchant_roles.items() if used_m[i]]
        ident.sort()
        kinds, names, roles = ([t[i] for t in ident] for i in range(3))
        header = ("kind", "identifier", "role")
        write_plain_csv(paths["truth_identifiers"], header, [kinds, names, roles])
        return paths

    def _iso(self, rel: np.ndarray) -> np.ndarray:
        stamps = (np.asarray(rel, dtype=np.int64) + self.start_epoch).astype("datetime64[s]")
        return np.char.add(np.datetime_as_string(stamps, unit="s"), "Z").astype(object)

    def _ip_strings(self, cats: np.ndarray) -> np.ndarray:
        """Render every allocated IP from its category's address ranges, all distinct."""
        rng = self.rng
        n = cats.shape[0]
        out = np.empty(n, dtype=object)
        v4 = ~np.isin(cats, [_RES6, _MOB6])
        todo = np.flatnonzero(v4)
        seen: set[str] = set()
        while todo.shape[0]:
            c = cats[todo]
            m = todo.shape[0]
            a = rng.choice(_RES4_FIRST, m)
            b = rng.integers(1, 255, m)
            for cat, first in ((_OFFICE, _OFFICE_FIRST), (_CAMPUS, _CAMPUS_FIRST)):
                s = c == cat
                a[s] = rng.choice(first, int(s.sum()))
            for cat, prefix in ((_CARRIER, _CARRIER_PREFIX), (_DC, _DC_PREFIX)):
                s = c == cat
                p = prefix[rng.integers(0, prefix.shape[0], int(s.sum()))]
                a[s], b[s] = p[:, 0], p[:, 1]
            cc = rng.integers(0, 256, m)
            d = rng.integers(1, 255, m)
            retry = []
            for i, w, x, y, z in zip(todo.tolist(), a.tolist(), b.tolist(), cc.tolist(),
                                     d.tolist(), strict=True):  # fmt: skip
                s = f"{w}.{x}.{y}.{z}"
                if s in seen:
                    retry.append(i)
                else:
                    seen.add(s)
                    out[i] = s
            todo = np.array(retry, dtype=np.int64)
        # IPv6: a carrier or ISP /32, random /64 and host bits; written in canonical form.
        six = np.flatnonzero(~v4)
        h = rng.integers(1, 65536, (six.shape[0], 4)).tolist()
        mob = (cats[six] == _MOB6).tolist()
        for i, w, is_mob in zip(six.tolist(), h, mob, strict=True):
            head = 0x2607FB90 if is_mob else 0x2A020C7F
            value = (head << 96) | (w[0] << 80) | (w[1] << 64) | (w[2] << 16) | w[3]
            out[i] = str(ipaddress.IPv6Address(value))
        return out


def write_plain_csv(path: Path, header: tuple[str, ...], columns: Sequence[Sequence[str]]) -> None:
    """Write string columns as CSV without quoting: for values that hold no comma, quote or
    newline (every value the generator makes); several times faster than ``DataFrame.to_csv``."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n")
        rows = map(",".join, zip(*columns, strict=True))
        chunk: list[str] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 200_000:
                f.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")


def _offsets(counts: np.ndarray) -> np.ndarray:
    """Start of each group in a flat array of groups with these sizes."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
