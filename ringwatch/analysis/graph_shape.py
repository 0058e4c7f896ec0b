"""The graph's shape: degrees, the devices and IPs most shared (a giant or a cluster), activity over time."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from graph.errors import ValidationError
from graph.rings import RingConfig
from graph.types import EVENT_KINDS, EventKind, NodeType, Snapshot
from ringwatch.analysis.figures import TYPE_COLOURS, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "GIANT_ACCOUNTS",
    "node_degrees",
    "degree_summary",
    "plot_degree_distributions",
    "SharedIdentifier",
    "shared_identifiers",
    "identifiers_frame",
    "activity_by_day",
    "plot_activity",
]

#: A device or IP with more accounts than this is a "giant" (office, campus, carrier NAT): ring
#: detection never links accounts through it (``RingConfig.max_identifier_users``).
GIANT_ACCOUNTS = RingConfig().max_identifier_users
#: Accounts whose first events all fall within this many hours look created together (a farm).
BURST_HOURS = 12.0
#: A share of declined payments at or above this through one identifier looks like card testing.
DECLINED_SUSPICIOUS = 0.3
#: Two or more fraud-labelled accounts making up at least this share of an identifier's accounts.
FRAUD_SHARE_SUSPICIOUS = 0.2
_PAY = EVENT_KINDS.index(EventKind.PAYMENT.value)
_DAY = 86_400.0
_DIRECT = (NodeType.DEVICE, NodeType.IP)


# -- degrees ------------------------------------------------------------------------------------


def _distinct_pairs(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.unique(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _user_merchant(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    t = snapshot.transactions
    paid = np.asarray(t.merchant, np.int64) >= 0
    if not paid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return _distinct_pairs(t.user[paid], t.merchant[paid])


def node_degrees(snapshot: Snapshot) -> dict[NodeType, np.ndarray]:
    """Distinct neighbours per node, int64 arrays aligned with ``snapshot.nodes[type]``.

    Accounts: distinct devices + IPs + merchants they used. Devices, IPs, merchants: distinct
    accounts that used or paid them (what "shared by N accounts" means)."""
    n = {t: snapshot.num_nodes(t) for t in (NodeType.USER, NodeType.DEVICE, NodeType.IP, NodeType.MERCHANT)}
    um_user, um_merchant = _user_merchant(snapshot)
    user = (
        np.bincount(np.asarray(snapshot.user_device.src, np.int64), minlength=n[NodeType.USER])
        + np.bincount(np.asarray(snapshot.user_ip.src, np.int64), minlength=n[NodeType.USER])
        + np.bincount(um_user, minlength=n[NodeType.USER])
    )
    return {
        NodeType.USER: user.astype(np.int64),
        NodeType.DEVICE: np.bincount(np.asarray(snapshot.user_device.dst, np.int64), minlength=n[NodeType.DEVICE]),
        NodeType.IP: np.bincount(np.asarray(snapshot.user_ip.dst, np.int64), minlength=n[NodeType.IP]),
        NodeType.MERCHANT: np.bincount(um_merchant, minlength=n[NodeType.MERCHANT]),
    }


_DEGREE_MEANING = {
    NodeType.USER: "devices + IPs + merchants per account",
    NodeType.DEVICE: "accounts per device",
    NodeType.IP: "accounts per IP",
    NodeType.MERCHANT: "paying accounts per merchant",
}


def degree_summary(degrees: Mapping[NodeType, np.ndarray]) -> pd.DataFrame:
    """One row per node type: count, mean, median, 99th percentile and max degree."""
    rows = []
    for t, d in degrees.items():
        d = np.asarray(d)
        rows.append(
            {
                "node type": t.value,
                "degree means": _DEGREE_MEANING[t],
                "nodes": int(d.size),
                "mean": float(d.mean()) if d.size else math.nan,
                "median": float(np.median(d)) if d.size else math.nan,
                "p99": float(np.quantile(d, 0.99)) if d.size else math.nan,
                "max": int(d.max()) if d.size else 0,
            }
        )
    return pd.DataFrame(rows).set_index("node type")


def plot_degree_distributions(degrees: Mapping[NodeType, np.ndarray]) -> Figure:
    """One panel per node type. Accounts, devices, IPs: how many nodes have each degree (log
    counts; devices and IPs on a log axis, where a long tail is the shared identifiers and the
    giants sit far right). Merchants: accounts per merchant by popularity rank (log)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}")
    fig = new_figure(figsize=(12, 8))
    axes = fig.subplots(2, 2).ravel()
    for ax, (t, d) in zip(axes, degrees.items(), strict=False):
        d = np.asarray(d)
        d = d[d > 0]
        colour = TYPE_COLOURS.get(t, "#1976d2")
        title = f"{t.value}: {d.size:,} nodes, median {np.median(d) if d.size else 0:g}, max {d.max() if d.size else 0:,}"
        if t is NodeType.MERCHANT:
            ranked = np.sort(d)[::-1]
            ax.bar(np.arange(1, ranked.size + 1), ranked, color=colour, edgecolor="black", linewidth=0.3)
            ax.set_yscale("log")
            ax.set_xlabel("merchant, by popularity rank")
            ax.set_ylabel("paying accounts (log)")
        else:
            if d.size:
                values, counts = np.unique(d, return_counts=True)
                ax.scatter(values, counts, s=22, color=colour, edgecolor="black", linewidth=0.3)
            ax.set_yscale("log")
            if t in _DIRECT:
                ax.set_xscale("log")
                ax.axvline(GIANT_ACCOUNTS, color="grey", ls="--", lw=1, label=f"giant: > {GIANT_ACCOUNTS} accounts")
                ax.legend(fontsize=8)
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"degree ({_DEGREE_MEANING[t]})")
            ax.set_ylabel("number of nodes (log)")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle("Degree distributions per node type")
    fig.tight_layout()
    return fig


# -- shared identifiers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedIdentifier:
    """One device or IP with the facts that tell a legitimate giant from a suspicious cluster.

    ``signup_span_hours``: hours between the first and the last of its accounts' first events
    (accounts created together give a short span); ``declined_share``: declined payments through
    it over all its payments (nan without payments); ``fraud_labelled``: its accounts whose
    winning verdict is fraud. ``reading`` is ``"legitimate giant"``, ``"suspicious"`` or
    ``"ordinary"``; ``explanation`` says why in words."""

    node_type: NodeType
    key: str
    accounts: int
    fraud_labelled: int
    signup_span_hours: float
    payments: int
    declined_share: float
    merchants: int
    reading: str
    explanation: str


def _first_event(snapshot: Snapshot) -> np.ndarray:
    first = np.full(snapshot.num_nodes(NodeType.USER), np.inf)
    np.minimum.at(first, np.asarray(snapshot.transactions.user, np.int64), np.asarray(snapshot.transactions.ts, np.float64))
    return first


def _read_identifier(
    node_type: NodeType, accounts: int, fraud: int, span_h: float, declined: float, payments: int
) -> tuple[str, str]:
    noun, article = ("device", "a") if node_type is NodeType.DEVICE else ("IP", "an")
    span = f"{span_h / 24:.0f} days" if span_h >= 48 else f"{span_h:.1f} hours"
    facts = f"{accounts} accounts, first seen over {span}"
    if payments:
        facts += f", {declined:.0%} of {payments} payments declined"
    if fraud:
        facts += f", {fraud} labelled fraud"
    signals = []
    if accounts >= 3 and span_h <= BURST_HOURS:
        signals.append(f"the accounts were created within {BURST_HOURS:.0f} h of each other (an account farm)")
    if payments >= 5 and declined >= DECLINED_SUSPICIOUS:
        signals.append("many declined payments (card testing)")
    if fraud >= 2 and fraud / accounts >= FRAUD_SHARE_SUSPICIOUS:
        signals.append(f"{fraud / accounts:.0%} of its accounts are confirmed fraud")
    if signals:
        return "suspicious", f"{facts}: suspicious because " + "; ".join(signals) + "."
    if accounts >= GIANT_ACCOUNTS // 2:
        kind = "an office, campus or carrier NAT" if node_type is NodeType.IP else "a shared kiosk or test device"
        ignored = (
            f" Ring detection never links accounts through {article} {noun} this wide (> {GIANT_ACCOUNTS} accounts)."
            if accounts > GIANT_ACCOUNTS
            else ""
        )
        return "legitimate giant", (
            f"{facts}: a legitimate giant, like {kind}: unrelated accounts that arrived over a long time "
            f"and behave normally.{ignored}"
        )
    return "ordinary", f"{facts}: shared, but nothing unusual (a family, a café, a small office)."


def shared_identifiers(snapshot: Snapshot, node_type: NodeType, top: int = 10, *, min_accounts: int = 2) -> list[SharedIdentifier]:
    """The ``top`` devices (or IPs) shared by the most accounts (at least ``min_accounts``),
    most accounts first (key breaks ties), each read from facts about its accounts.

    Raises:
        ValidationError: ``node_type`` is not DEVICE or IP, or ``top`` < 1.
    """
    if node_type not in _DIRECT:
        raise ValidationError("node_type", node_type, "must be NodeType.DEVICE or NodeType.IP")
    if top < 1:
        raise ValidationError("top", top, "must be at least 1")
    links = snapshot.user_device if node_type is NodeType.DEVICE else snapshot.user_ip
    keys = snapshot.nodes[node_type]
    src, dst = np.asarray(links.src, np.int64), np.asarray(links.dst, np.int64)
    counts = np.bincount(dst, minlength=len(keys))
    order = np.lexsort((np.arange(len(keys)), -counts))
    chosen = [int(i) for i in order[:top] if counts[i] >= min_accounts]
    first = _first_event(snapshot)
    fraud_user = np.zeros(snapshot.num_nodes(NodeType.USER), dtype=bool)
    ul = snapshot.user_labels
    fraud_user[np.asarray(ul.index, np.int64)[np.asarray(ul.is_fraud, bool)]] = True
    t = snapshot.transactions
    via = np.asarray(t.device if node_type is NodeType.DEVICE else t.ip, np.int64)
    is_pay = np.asarray(t.event, np.int64) == _PAY
    declined = np.array([s == "declined" for s in t.status.tolist()], dtype=bool) if len(t) else np.zeros(0, bool)
    out = []
    for i in chosen:
        users = src[dst == i]
        f = first[users]
        f = f[np.isfinite(f)]
        span_h = float((f.max() - f.min()) / 3600.0) if f.size else 0.0
        rows = (via == i) & is_pay
        payments = int(rows.sum())
        dec = float(declined[rows].mean()) if payments else math.nan
        merchants = int(np.unique(np.asarray(t.merchant, np.int64)[rows]).size)
        n_fraud = int(fraud_user[users].sum())
        reading, text = _read_identifier(node_type, int(users.size), n_fraud, span_h, dec, payments)
        out.append(
            SharedIdentifier(node_type, str(keys[i]), int(users.size), n_fraud, span_h, payments, dec, merchants, reading, text)
        )
    return out


def identifiers_frame(items: Sequence[SharedIdentifier]) -> pd.DataFrame:
    """``shared_identifiers`` as a table for display."""
    return pd.DataFrame(
        [
            {
                "type": s.node_type.value,
                "key": s.key,
                "accounts": s.accounts,
                "fraud labelled": s.fraud_labelled,
                "signup span (h)": round(s.signup_span_hours, 1),
                "payments": s.payments,
                "declined": s.declined_share,
                "merchants": s.merchants,
                "reading": s.reading,
                "why": s.explanation,
            }
            for s in items
        ]
    )



# -- activity -----------------------------------------------------------------------------------


def activity_by_day(snapshot: Snapshot) -> pd.DataFrame:
    """Events per UTC day: one column per event kind, ``declined`` payments, ``new accounts``
    (accounts whose first event is that day) and ``fraud-labelled payments`` (payments of accounts
    labelled fraud). Index: the day (``datetime64``, UTC), every day from first to last event."""
    t = snapshot.transactions
    if not len(t):
        return pd.DataFrame(columns=[*EVENT_KINDS, "declined", "new accounts", "fraud-labelled payments"])
    day = pd.to_datetime(np.floor(np.asarray(t.ts, np.float64) / _DAY) * _DAY, unit="s", utc=True)
    kinds = np.asarray(EVENT_KINDS, dtype=object)[np.asarray(t.event, np.int64)]
    frame = pd.crosstab(day, kinds).reindex(columns=list(EVENT_KINDS), fill_value=0)
    pay = np.asarray(t.event, np.int64) == _PAY
    declined = pay & np.array([s == "declined" for s in t.status.tolist()], dtype=bool)
    frame["declined"] = pd.Series(declined, index=day).groupby(level=0).sum()
    fraud_user = np.zeros(snapshot.num_nodes(NodeType.USER), dtype=bool)
    ul = snapshot.user_labels
    fraud_user[np.asarray(ul.index, np.int64)[np.asarray(ul.is_fraud, bool)]] = True
    frame["fraud-labelled payments"] = pd.Series(pay & fraud_user[np.asarray(t.user, np.int64)], index=day).groupby(level=0).sum()
    first = _first_event(snapshot)
    first = first[np.isfinite(first)]
    new_day = pd.to_datetime(np.floor(first / _DAY) * _DAY, unit="s", utc=True)
    frame["new accounts"] = pd.Series(1, index=new_day).groupby(level=0).sum()
    full = pd.date_range(frame.index.min(), frame.index.max(), freq="D")
    frame = frame.reindex(full, fill_value=0).fillna(0).astype(np.int64)
    frame.index.name = "day"
    frame.columns.name = None
    return frame


def plot_activity(frame: pd.DataFrame) -> Figure:
    """Two panels over time: events per day by kind, then new accounts, declined payments and
    payments of accounts labelled fraud."""
    fig = new_figure(figsize=(12, 7), constrained_layout=True)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for kind in EVENT_KINDS:
        if kind in frame:
            top.plot(frame.index, frame[kind], label=kind, lw=1.4)
    top.set_ylabel("events per day")
    top.set_xlabel("day (UTC)")
    top.tick_params(labelbottom=True)
    top.set_title("Events per day by kind")
    top.legend(fontsize=8, ncols=4)
    top.grid(alpha=0.3)
    for col, colour in (("new accounts", "#1976d2"), ("declined", "#ff7043"), ("fraud-labelled payments", "#c62828")):
        if col in frame:
            bottom.plot(frame.index, frame[col], label=col, lw=1.4, color=colour)
    bottom.set_ylabel("count per day")
    bottom.set_xlabel("day (UTC)")
    bottom.set_title("New accounts, declined payments and payments of fraud-labelled accounts")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.suptitle("Activity over time")
    return fig
