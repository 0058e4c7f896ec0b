"""A small synthetic graph with planted fraud rings, built straight into a ``Snapshot``.

Independent of ``ingestion`` and the stores on purpose: the gnn tests must not break when those
change. ``snapshot_from_events`` derives nodes, links and winning labels the way a store does
(links from every event, the latest verdict wins), so a test can add a user and rebuild.

The planted world (about 400 users, 30 days):

* legitimate users with their own device(s) and home IP, daytime payments of ordinary amounts at
  Zipf-popular merchants, a few declines; families share a device and an IP (hard negatives);
  a big office IP shared by ~20 % of the legitimate users (a public hub, also a hard negative);
* farm rings of 6 members sharing 1–2 devices and 1–2 proxy IPs, members joining within a week
  of each other. Half of each ring is "noisy" (bursts of tiny, often declined, night payments),
  half is "quiet" (payments like anyone's): for the quiet ones the shared device is the tell;
* labels: ~60 % of fraud users get a fraud verdict, a few legit users a legit one, and 90 % of
  those users' payments a transaction verdict (transaction targets are those verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gnn.evaluation.leakage import snapshot_from_frames
from graph.types import EVENT_KINDS, NodeType, Snapshot

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0
EVENT_COLUMNS = ("txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount", "event", "status")


@dataclass(frozen=True, slots=True)
class SynthData:
    """The snapshot, the raw frames it came from, and the planted truth aligned with it."""

    snapshot: Snapshot
    events: pd.DataFrame  # EVENT_COLUMNS
    labels: pd.DataFrame  # entity, entity_id, label, ts
    user_is_fraud: np.ndarray  # bool [N_user], aligned with snapshot.nodes[USER]
    user_ring: np.ndarray  # object [N_user]: ring id or ""
    txn_is_fraud: np.ndarray  # bool [T]: payments/refunds of fraud users
    ring_devices: dict[str, tuple[str, ...]]


def _frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS[1:]))


def generate(
    *,
    n_legit: int = 360,
    n_rings: int = 8,
    ring_size: int = 6,
    n_merchants: int = 25,
    days: int = 30,
    label_share: float = 0.6,
    seed: int = 11,
    with_labels: bool = True,
) -> SynthData:
    """Build the planted world (see the module docstring). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    period = days * DAY
    rows: list[tuple[object, ...]] = []
    merchants = [f"m{i:03d}" for i in range(n_merchants)]
    pop = 1.0 / np.arange(1, n_merchants + 1)
    pop /= pop.sum()

    def day_time(start: float, end: float, k: int) -> np.ndarray:
        days_ = rng.uniform(start, max(end, start + 1.0), k)
        hour = rng.uniform(8.0, 22.0, k) * 3600.0
        return np.floor(days_ / DAY) * DAY + hour

    # -- legitimate users ---------------------------------------------------------------------
    legit = [f"u{i:04d}" for i in range(n_legit)]
    office_ip = "10.0.0.1"
    family_of = {}
    for j in range(0, 30, 2):  # 15 families of two sharing a device and an IP
        family_of[legit[j]] = family_of[legit[j + 1]] = j // 2
    for i, u in enumerate(legit):
        signup = rng.uniform(0.0, 0.85 * period)
        fam = family_of.get(u)
        devices = [f"fam-d{fam}"] if fam is not None else [f"d-{u}"]
        if rng.random() < 0.3:
            devices.append(f"d2-{u}")
        home = f"fam-ip{fam}" if fam is not None else f"ip-{u}"
        ips = [home] + ([office_ip] if rng.random() < 0.2 else [])
        rows.append((T0 + signup, u, devices[0], home, None, np.nan, "signup", "approved"))
        n_pay = int(rng.poisson(9)) + 1
        ts = day_time(signup + 600, period, n_pay)
        mer = rng.choice(merchants, n_pay, p=pop)
        amt = np.round(np.exp(rng.normal(3.6, 0.8, n_pay)), 2)
        for k in range(n_pay):
            status = "declined" if rng.random() < 0.03 else "approved"
            rows.append(
                (T0 + ts[k], u, devices[int(rng.integers(len(devices)))], ips[int(rng.integers(len(ips)))],
                 mer[k], float(amt[k]), "payment", status)
            )  # fmt: skip
        for t in day_time(signup + 300, period, int(rng.poisson(3))):
            rows.append((T0 + t, u, devices[0], ips[int(rng.integers(len(ips)))], None, np.nan, "login", "approved"))

    # -- rings ----------------------------------------------------------------------------------
    fraud_users: dict[str, str] = {}
    ring_devices: dict[str, tuple[str, ...]] = {}
    starts = np.sort(rng.uniform(0.02 * period, 0.8 * period, n_rings))
    for r in range(n_rings):
        rid = f"ring-{r:02d}"
        devs = tuple(f"farm-{r}-{k}" for k in range(int(rng.integers(1, 3))))
        proxies = [f"proxy-{r}-{k}" for k in range(int(rng.integers(1, 3)))]
        ring_devices[rid] = devs
        fav = rng.choice(merchants, 2, replace=False)
        for m in range(ring_size):
            u = f"f{r:02d}{m:02d}"
            fraud_users[u] = rid
            own_dev, own_ip = f"d-{u}", f"ip-{u}"
            signup = starts[r] + rng.uniform(0.0, 7 * DAY)
            noisy = m % 2 == 0

            def pick(p_shared: float, shared: list[str] | tuple[str, ...], own: str) -> str:
                return shared[int(rng.integers(len(shared)))] if rng.random() < p_shared else own

            rows.append((T0 + signup, u, devs[0], proxies[0], None, np.nan, "signup", "approved"))
            if noisy:
                n_burst = int(rng.integers(2, 4))
                for _ in range(n_burst):
                    t_burst = signup + rng.uniform(0.0, 5 * DAY)
                    t_burst = np.floor(t_burst / DAY) * DAY + rng.uniform(0.0, 5.0) * 3600.0  # night
                    for _k in range(int(rng.integers(4, 9))):
                        t = t_burst + rng.uniform(0.0, 1800.0)
                        tiny = rng.random() < 0.8
                        amt = round(float(rng.uniform(0.5, 1.99)), 2) if tiny else round(float(np.exp(rng.normal(5.0, 0.4))), 2)
                        status = "declined" if rng.random() < 0.5 else "approved"
                        rows.append(
                            (T0 + t, u, pick(0.85, devs, own_dev), pick(0.85, proxies, own_ip),
                             fav[int(rng.integers(2))], amt, "payment", status)
                        )  # fmt: skip
            else:
                n_pay = int(rng.poisson(6)) + 2
                ts = day_time(signup + 600, min(signup + 12 * DAY, period), n_pay)
                mer = rng.choice(merchants, n_pay, p=pop)
                amt = np.round(np.exp(rng.normal(3.8, 0.8, n_pay)), 2)
                for k in range(n_pay):
                    rows.append(
                        (T0 + ts[k], u, pick(0.6, devs, own_dev), pick(0.5, proxies, own_ip),
                         mer[k], float(amt[k]), "payment", "approved")
                    )  # fmt: skip

    events = _frame(rows)
    events = events[events["ts"] < T0 + period].reset_index(drop=True)
    events.insert(0, "txn_id", [f"t{i:06d}" for i in range(len(events))])

    # -- labels -----------------------------------------------------------------------------------
    label_rows: list[tuple[str, str, str, float]] = []
    if with_labels:
        fraud_list = sorted(fraud_users)
        revealed = rng.choice(fraud_list, int(round(label_share * len(fraud_list))), replace=False)
        for u in sorted(revealed.tolist()):
            label_rows.append(("user", u, "fraud", T0 + period + DAY))
        pays = events[(events["event"] == "payment") & events["user_id"].isin(set(revealed.tolist()))]
        for tid in pays["txn_id"].to_numpy()[rng.random(len(pays)) < 0.9].tolist():
            label_rows.append(("transaction", tid, "fraud", T0 + period + DAY))
        for u in rng.choice(legit, 10, replace=False).tolist():
            label_rows.append(("user", u, "legit", T0 + period + DAY))
    labels = pd.DataFrame(label_rows, columns=["entity", "entity_id", "label", "ts"])

    snap = snapshot_from_events(events, labels)
    users = snap.nodes[NodeType.USER]
    user_ring = np.array([fraud_users.get(u, "") for u in users.tolist()], dtype=object)
    user_is_fraud = user_ring != ""
    t = snap.transactions
    money = np.isin(t.event, [EVENT_KINDS.index("payment"), EVENT_KINDS.index("refund")])
    return SynthData(
        snapshot=snap,
        events=events,
        labels=labels,
        user_is_fraud=user_is_fraud,
        user_ring=user_ring,
        txn_is_fraud=user_is_fraud[t.user] & money,
        ring_devices=ring_devices,
    )


def snapshot_from_events(events: pd.DataFrame, labels: pd.DataFrame) -> Snapshot:
    """A ``Snapshot`` of ``events`` (EVENT_COLUMNS; None/NaN for absent values) and ``labels``."""
    return snapshot_from_frames(events, labels)


def with_events(data: SynthData, new_rows: list[tuple[object, ...]]) -> Snapshot:
    """The snapshot of ``data`` plus extra events (tuples in EVENT_COLUMNS order)."""
    extra = pd.DataFrame(new_rows, columns=list(EVENT_COLUMNS))
    return snapshot_from_events(pd.concat([data.events, extra], ignore_index=True), data.labels)
