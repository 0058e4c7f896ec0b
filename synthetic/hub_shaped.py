"""Hub-shaped synthetic events: the shape of a real signup-and-purchase dataset, for benchmarks
and tests that must not rely on the demo generator's many merchants.

Each user signs up and makes one purchase. The "merchant" is a traffic source: three merchants
(``m01``–``m03``) carry every payment, so every merchant is a giant hub. Most users are labelled
(``labelled_share``, 70 % by default), on the account, some weeks after the purchase. Fraud (about
``fraud_share`` of users) hides in plain fields: fraud accounts come in crews that share a device
and often an IP, and many buy within seconds of signing up. Legitimate users share too (families
on one device, carrier NAT IPs used by hundreds), so sharing alone is not proof.

``generate_hub`` writes ``events.csv`` and ``labels.csv`` in the canonical schema (DESIGN §5) and
``truth_users.csv`` (``user_id,is_fraud``). Seeded: the same config gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from graph.errors import ValidationError
from synthetic.generator import EVENT_COLUMNS, LABEL_COLUMNS

__all__ = ["HubConfig", "HubDataset", "generate_hub", "HUB_MERCHANTS"]

#: The three traffic sources every payment goes through, with their shares.
HUB_MERCHANTS: tuple[str, ...] = ("m01", "m02", "m03")
_MERCHANT_SHARE = np.array([0.4, 0.4, 0.2])
_DAY = 86_400
_START = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp())


@dataclass(frozen=True, slots=True)
class HubConfig:
    users: int = 30_000
    seed: int = 7
    days: int = 120  # signups spread over this many days
    fraud_share: float = 0.09
    labelled_share: float = 0.7  # share of users with an account verdict


@dataclass(frozen=True, slots=True)
class HubDataset:
    events: Path
    labels: Path
    truth_users: Path
    n_events: int
    n_users: int
    n_fraud_users: int
    n_labels: int


def generate_hub(config: HubConfig, out_dir: Path) -> HubDataset:
    """Write the hub-shaped dataset of ``config`` into ``out_dir`` (created if missing).

    Raises ``ValidationError`` for a config value out of range."""
    _validate(config)
    rng = np.random.default_rng(config.seed)
    n = config.users
    fraud = np.zeros(n, dtype=bool)
    fraud[rng.choice(n, int(round(config.fraud_share * n)), replace=False)] = True

    device = np.arange(n, dtype=np.int64)  # own device unless shared below
    ip = np.arange(n, dtype=np.int64) + n  # own IP unless shared below
    # Fraud crews of 1-20 accounts (half alone): one device each crew, one IP in 70 % of crews.
    crooks = rng.permutation(np.flatnonzero(fraud))
    start = 0
    while start < crooks.shape[0]:
        size = 1 if rng.random() < 0.5 else int(rng.integers(2, 21))
        crew = crooks[start : start + size]
        device[crew] = device[crew[0]]
        if rng.random() < 0.7:
            ip[crew] = ip[crew[0]]
        start += size
    legit = np.flatnonzero(~fraud)
    # Families: 3 % of legitimate users share a device and an IP with the next one.
    fam = rng.choice(legit.shape[0] - 1, int(0.03 * legit.shape[0]), replace=False)
    device[legit[fam + 1]] = device[legit[fam]]
    ip[legit[fam + 1]] = ip[legit[fam]]
    # Carrier NAT: 5 % of legitimate users behind one of a few IPs shared by hundreds.
    nat = rng.choice(legit, int(0.05 * legit.shape[0]), replace=False)
    ip[nat] = 2 * n + rng.integers(0, max(1, nat.shape[0] // 200), nat.shape[0])

    signup = _START + rng.integers(0, config.days * _DAY, n)
    wait = rng.exponential(50 * _DAY, n).astype(np.int64) + rng.integers(60, 3600, n)
    quick = fraud & (rng.random(n) < 0.5)  # bots buy within seconds of signing up
    wait[quick] = rng.integers(1, 10, int(quick.sum()))
    purchase = signup + wait
    merchant = rng.choice(len(HUB_MERCHANTS), n, p=_MERCHANT_SHARE)
    amount = np.round(np.exp(rng.normal(3.4, 0.6, n)), 2)

    users = np.array([f"u{i + 1:06d}" for i in range(n)], dtype=object)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = HubDataset(
        events=out / "events.csv",
        labels=out / "labels.csv",
        truth_users=out / "truth_users.csv",
        n_events=2 * n,
        n_users=n,
        n_fraud_users=int(fraud.sum()),
        n_labels=0,
    )
    rows: list[tuple[int, str]] = []
    for i in range(n):
        dev, addr = f"d{device[i] + 1:06d}", _ip(int(ip[i]))
        rows.append((int(signup[i]), f"s{i + 1:06d},{_iso(signup[i])},{users[i]},{dev},{addr},,,,signup,approved"))
        rows.append((
            int(purchase[i]),
            f"p{i + 1:06d},{_iso(purchase[i])},{users[i]},{dev},{addr},{HUB_MERCHANTS[merchant[i]]},"
            f"{amount[i]:.2f},USD,payment,approved",
        ))
    rows.sort()
    paths.events.write_text(",".join(EVENT_COLUMNS) + "\n" + "\n".join(r for _, r in rows) + "\n", encoding="utf-8")

    labelled = np.sort(rng.choice(n, int(round(config.labelled_share * n)), replace=False))
    verdict_at = purchase[labelled] + rng.integers(2 * _DAY, 45 * _DAY, labelled.shape[0])
    order = np.argsort(verdict_at, kind="stable")
    label_rows = [
        f"user,{users[u]},{'fraud' if fraud[u] else 'legit'},{_iso(t)},{'chargeback' if fraud[u] else 'investigator'}"
        for u, t in zip(labelled[order].tolist(), verdict_at[order].tolist(), strict=True)
    ]
    paths.labels.write_text(",".join(LABEL_COLUMNS) + "\n" + "\n".join(label_rows) + "\n", encoding="utf-8")
    truth = [f"{users[i]},{int(fraud[i])}" for i in range(n)]
    paths.truth_users.write_text("user_id,is_fraud\n" + "\n".join(truth) + "\n", encoding="utf-8")
    return dataclasses.replace(paths, n_labels=len(label_rows))


def _validate(config: HubConfig) -> None:
    if isinstance(config.users, bool) or not isinstance(config.users, int) or config.users < 100:
        raise ValidationError("users", config.users, "must be an integer >= 100")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValidationError("seed", config.seed, "must be a non-negative integer")
    if isinstance(config.days, bool) or not isinstance(config.days, int) or config.days < 1:
        raise ValidationError("days", config.days, "must be an integer >= 1")
    if not 0.0 < config.fraud_share < 0.5:
        raise ValidationError("fraud_share", config.fraud_share, "must be in (0, 0.5)")
    if not 0.0 <= config.labelled_share <= 1.0:
        raise ValidationError("labelled_share", config.labelled_share, "must be in [0, 1]")


def _iso(epoch: object) -> str:
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[call-overload]


def _ip(k: int) -> str:
    """A distinct public-looking IPv4 address for each integer id."""
    return f"{24 + (k >> 16) % 200}.{(k >> 8) & 255}.{k & 255}.{1 + k % 250}"
