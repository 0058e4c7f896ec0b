"""Helpers for the analysts' notebooks (``notebooks/``): facts, tables and figures from a snapshot.

Everything here reads the same typed objects the command line produces (``Snapshot``,
``ScoreWriteback``, ``Ring``) and returns typed records, pandas frames for display, or matplotlib
figures; nothing writes to a store. Figures use matplotlib's object API (no global ``pyplot``
state), so they render the same in a notebook, a script or a test.

* Graph exploration: ``node_degrees``, ``degree_summary``, ``plot_degree_distributions``,
  ``shared_identifiers`` (the devices and IPs shared by the most accounts, read as a legitimate
  giant or a suspicious cluster from facts about their accounts), ``activity_by_day``,
  ``plot_activity``.
* Thresholds: ``operating_points``, ``choose_thresholds`` (a target precision for HIGH and a
  review capacity for MEDIUM), ``tier_costs``, ``plot_tradeoff``, ``metric_interval``.
* Rings: ``rings_frame``, ``ring_subgraph``, ``draw_ring``, ``ring_timeline``,
  ``plot_ring_timeline``, ``ring_member_risk``, ``export_ring``, ``browser_snippet``.
* Data: ``load_or_generate`` (reuse what the store holds, or generate a synthetic dataset).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import pandas as pd

from api.index import AccountView, ScoringIndex
from gnn.core.metrics import auprc
from gnn.core.thresholds import Thresholds
from gnn.training.calibrate import calibrate
from graph.errors import ValidationError
from graph.investigation import browser_snippet
from graph.rings import RingConfig
from graph.types import EVENT_KINDS, EdgeType, EventKind, NodeType, Ring, ScoreWriteback, Snapshot, StoreStats, Tier
from ingestion.loader import LabelLoadSummary, LoadSummary
from ingestion.synthetic import GeneratedDataset
from ringwatch.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "FIGURES_DIR",
    "TIER_COLOURS",
    "GIANT_ACCOUNTS",
    "figures_dir",
    "save_figure",
    "DataSource",
    "load_or_generate",
    "node_degrees",
    "degree_summary",
    "plot_degree_distributions",
    "SharedIdentifier",
    "shared_identifiers",
    "identifiers_frame",
    "activity_by_day",
    "plot_activity",
    "OperatingPoint",
    "operating_points",
    "points_frame",
    "TierChoice",
    "choose_thresholds",
    "TierCosts",
    "tier_costs",
    "plot_tradeoff",
    "MetricInterval",
    "metric_interval",
    "rings_frame",
    "ring_subgraph",
    "draw_ring",
    "ring_timeline",
    "plot_ring_timeline",
    "ring_member_risk",
    "RingExport",
    "export_ring",
    "browser_snippet",
]

#: Where notebooks save their figures, under ``Settings.reports_dir``.
FIGURES_DIR = "notebooks"
#: Tier colours, the same as the Neo4j Browser style (``neo4j/ringwatch.grass``).
TIER_COLOURS: dict[Tier | None, str] = {
    Tier.LOW: "#4caf50",
    Tier.MEDIUM: "#ffb300",
    Tier.HIGH: "#e53935",
    None: "#b0bec5",  # not scored
}
_TYPE_COLOURS = {NodeType.DEVICE: "#8e6bbf", NodeType.IP: "#64b5f6", NodeType.MERCHANT: "#d7b98e"}
_TYPE_MARKERS = {NodeType.USER: "o", NodeType.DEVICE: "s", NodeType.IP: "^", NodeType.MERCHANT: "D"}
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


def _plt_figure(*args: object, **kwargs: object) -> Figure:
    """A figure that is not registered with pyplot (no global state, no display side effects)."""
    from matplotlib.figure import Figure

    return Figure(*args, **kwargs)  # type: ignore[arg-type]


def figures_dir(settings: Settings) -> Path:
    """``HOME/reports/notebooks``, created if missing."""
    path = settings.reports_dir / FIGURES_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Figure, folder: Path, name: str) -> Path:
    """Write ``fig`` as ``folder/name`` (PNG, 110 dpi, tight box) and return the path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    return path


# -- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataSource:
    """What ``load_or_generate`` did. ``generated`` False: the store already held accounts and
    was used as it is (``dataset``, ``ingest``, ``labels`` are then None). ``truth_dir`` is the
    folder with the planted truth (``truth_users.csv`` ...) when there is one."""

    generated: bool
    stats: StoreStats
    dataset: GeneratedDataset | None
    ingest: LoadSummary | None
    labels: LabelLoadSummary | None
    truth_dir: Path | None


def load_or_generate(settings: Settings, users: int, seed: int) -> DataSource:
    """Use the graph the configured store holds; when it holds no account, generate a synthetic
    dataset of ``users`` accounts (``seed``) into ``HOME/data`` and load its events and labels,
    exactly as ``ringwatch demo`` does (``ringwatch.pipeline`` steps)."""
    from ringwatch import pipeline

    with pipeline.store_for(settings) as store:
        stats = store.stats()
    truth = settings.data_dir if (settings.data_dir / "truth_users.csv").is_file() else None
    if stats.nodes.get(NodeType.USER.value, 0) > 0:
        return DataSource(False, stats, None, None, None, truth)
    dataset = pipeline.step_generate(settings, users, seed)
    ingest = pipeline.step_ingest(settings, [dataset.events])
    labels = pipeline.step_label(settings, dataset.labels)
    with pipeline.store_for(settings) as store:
        stats = store.stats()
    return DataSource(True, stats, dataset, ingest, labels, settings.data_dir)


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
    fig = _plt_figure(figsize=(12, 8))
    axes = fig.subplots(2, 2).ravel()
    for ax, (t, d) in zip(axes, degrees.items(), strict=False):
        d = np.asarray(d)
        d = d[d > 0]
        colour = _TYPE_COLOURS.get(t, "#1976d2")
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
    fig = _plt_figure(figsize=(12, 7), constrained_layout=True)
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


# -- thresholds ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Flagging every score ``>= threshold``: ``flagged`` of ``n`` (share ``flagged_share``),
    ``true_positives`` frauds caught, ``false_positives`` legitimate accounts flagged, ``missed``
    frauds below it. ``precision`` is nan when nothing is flagged, ``recall`` nan without frauds."""

    threshold: float
    n: int
    flagged: int
    flagged_share: float
    true_positives: int
    false_positives: int
    missed: int
    precision: float
    recall: float


def _check_scores(scores: np.ndarray, is_fraud: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_fraud).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValidationError("is_fraud", f"shape {y.shape}", f"must match scores shape {s.shape}")
    if s.size == 0:
        raise ValidationError("scores", "[]", "need at least one score")
    return s, y


def operating_points(scores: np.ndarray, is_fraud: np.ndarray, thresholds: Sequence[float] | None = None) -> list[OperatingPoint]:
    """The operating point at each threshold (default: every distinct score), highest first.

    Raises:
        ValidationError: empty or mismatched inputs.
    """
    s, y = _check_scores(scores, is_fraud)
    ths = np.unique(s)[::-1] if thresholds is None else np.asarray(sorted(thresholds, reverse=True), dtype=np.float64)
    order = np.sort(s)
    pos = np.sort(s[y])
    n, n_pos = s.size, int(y.sum())
    flagged = n - np.searchsorted(order, ths, side="left")
    tp = n_pos - np.searchsorted(pos, ths, side="left")
    out = []
    for thr, f, p in zip(ths.tolist(), flagged.tolist(), tp.tolist(), strict=True):
        out.append(
            OperatingPoint(
                threshold=float(thr),
                n=n,
                flagged=int(f),
                flagged_share=f / n,
                true_positives=int(p),
                false_positives=int(f - p),
                missed=n_pos - int(p),
                precision=p / f if f else math.nan,
                recall=p / n_pos if n_pos else math.nan,
            )
        )
    return out


def points_frame(points: Sequence[OperatingPoint]) -> pd.DataFrame:
    """Operating points as a table."""
    return pd.DataFrame([{f: getattr(p, f) for f in OperatingPoint.__slots__} for p in points])



@dataclass(frozen=True, slots=True)
class TierChoice:
    """Tier thresholds chosen for a target precision (HIGH, blocked) and a review capacity
    (MEDIUM: at most ``review_rate`` of all accounts between ``medium`` and ``high``).
    ``high_point`` / ``medium_point`` are the operating points at the two thresholds on the data
    they were chosen on; ``precision_met`` says whether HIGH reached the target (otherwise the
    quantile fallback of ``gnn.training.calibrate`` stands in)."""

    thresholds: Thresholds
    target_precision: float
    review_rate: float
    high_point: OperatingPoint
    medium_point: OperatingPoint
    review_share: float
    precision_met: bool


def choose_thresholds(scores: np.ndarray, is_fraud: np.ndarray, *, target_precision: float, review_rate: float) -> TierChoice:
    """HIGH: the lowest threshold whose precision reaches ``target_precision`` (``gnn.training.calibrate``'s
    rule, the same as training uses). MEDIUM: the lowest threshold that keeps the review queue
    (scores in [medium, high)) within ``review_rate`` of all accounts; never above HIGH.

    Raises:
        ValidationError: empty or mismatched inputs; a target outside (0, 1] or a rate outside [0, 1].
    """
    s, y = _check_scores(scores, is_fraud)
    if not 0.0 <= review_rate <= 1.0:
        raise ValidationError("review_rate", review_rate, "must be in [0, 1]")
    # The review queue is sized below by ``review_rate``; HIGH follows the precision target alone.
    high = calibrate(s, y, target_precision=target_precision, target_recall=1.0, review_capacity=1.0).high
    n = s.size
    n_high = int((s >= high).sum())
    allowed = int(math.floor(review_rate * n + 1e-9))
    distinct = np.unique(s[s < high])  # ascending
    at_or_above = n - np.searchsorted(np.sort(s), distinct, side="left")
    ok = distinct[at_or_above - n_high <= allowed]
    medium = float(ok[0]) if ok.size else float(high)
    th = Thresholds(medium=min(medium, high), high=high)
    hp = operating_points(s, y, [th.high])[0]
    mp = operating_points(s, y, [th.medium])[0]
    review = int(((s >= th.medium) & (s < th.high)).sum())
    return TierChoice(
        thresholds=th,
        target_precision=target_precision,
        review_rate=review_rate,
        high_point=hp,
        medium_point=mp,
        review_share=review / n,
        precision_met=bool(hp.flagged and hp.precision >= target_precision),
    )


@dataclass(frozen=True, slots=True)
class TierCosts:
    """What a pair of thresholds does to a set of accounts: ``blocked`` (HIGH) of which
    ``blocked_legit`` are not fraud (customers wrongly blocked), ``reviewed`` (MEDIUM) of which
    ``reviewed_fraud`` are fraud, ``missed_fraud`` frauds left in LOW."""

    n: int
    frauds: int
    blocked: int
    blocked_legit: int
    reviewed: int
    reviewed_fraud: int
    missed_fraud: int

    @property
    def block_precision(self) -> float:
        return (self.blocked - self.blocked_legit) / self.blocked if self.blocked else math.nan

    @property
    def caught_share(self) -> float:
        """Share of frauds in HIGH or MEDIUM (nan without frauds)."""
        return (self.frauds - self.missed_fraud) / self.frauds if self.frauds else math.nan


def tier_costs(scores: np.ndarray, is_fraud: np.ndarray, thresholds: Thresholds) -> TierCosts:
    """Count blocked, reviewed and missed accounts for ``thresholds``.

    Raises:
        ValidationError: empty or mismatched inputs.
    """
    s, y = _check_scores(scores, is_fraud)
    high = s >= thresholds.high
    medium = (s >= thresholds.medium) & ~high
    return TierCosts(
        n=int(s.size),
        frauds=int(y.sum()),
        blocked=int(high.sum()),
        blocked_legit=int((high & ~y).sum()),
        reviewed=int(medium.sum()),
        reviewed_fraud=int((medium & y).sum()),
        missed_fraud=int((~high & ~medium & y).sum()),
    )


def plot_tradeoff(points: Sequence[OperatingPoint], choice: TierChoice | None = None, *, title: str = "") -> Figure:
    """Precision, recall and the share of accounts flagged against the threshold, with the chosen
    MEDIUM and HIGH thresholds marked."""
    fig = _plt_figure(figsize=(11, 5))
    ax = fig.subplots()
    th = np.array([p.threshold for p in points])
    ax.plot(th, [p.precision for p in points], label="precision (flagged that are fraud)", color="#c62828", lw=1.6)
    ax.plot(th, [p.recall for p in points], label="recall (frauds flagged)", color="#1565c0", lw=1.6)
    ax.plot(th, [p.flagged_share for p in points], label="share of accounts flagged", color="#616161", lw=1.4, ls="--")
    if choice is not None:
        t = choice.thresholds
        ax.axvline(t.high, color=TIER_COLOURS[Tier.HIGH], lw=2, label=f"high >= {t.high:.3f} (block)")
        ax.axvline(t.medium, color=TIER_COLOURS[Tier.MEDIUM], lw=2, label=f"medium >= {t.medium:.3f} (review)")
        ax.axhline(choice.target_precision, color="#c62828", lw=0.8, ls=":", label=f"target precision {choice.target_precision:.0%}")
    ax.set_xlabel("score threshold (flag every account scoring at or above it)")
    ax.set_ylabel("precision / recall / share flagged")
    # Scores of a rare class crowd near 0: show the range they use, not all of [0, 1].
    ax.set_xlim(0, min(1.0, max(float(th.max()) if th.size else 1.0, 1e-3) * 1.05))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title(title or "What each threshold costs")
    fig.tight_layout()
    return fig


@dataclass(frozen=True, slots=True)
class MetricInterval:
    """A metric on ``n`` items (``n_fraud`` positive) with a bootstrap interval at ``level``."""

    point: float
    low: float
    high: float
    level: float
    n: int
    n_fraud: int


def metric_interval(
    scores: np.ndarray,
    is_fraud: np.ndarray,
    *,
    metric: Callable[[np.ndarray, np.ndarray], float] = auprc,
    resamples: int = 500,
    level: float = 0.9,
    seed: int = 7,
) -> MetricInterval:
    """``metric`` (default AUPRC) with a percentile bootstrap interval: how much the number could
    move with another sample of the same size. Resamples without a fraud are redrawn.

    Raises:
        ValidationError: mismatched inputs, no fraud at all, ``level`` outside (0, 1).
    """
    s, y = _check_scores(scores, is_fraud)
    if not y.any():
        raise ValidationError("is_fraud", 0, "need at least one fraud for an interval")
    if not 0.0 < level < 1.0:
        raise ValidationError("level", level, "must be in (0, 1)")
    rng = np.random.default_rng(seed)
    values = []
    while len(values) < resamples:
        idx = rng.integers(0, s.size, s.size)
        if y[idx].any():
            values.append(metric(s[idx], y[idx]))
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return MetricInterval(float(metric(s, y)), float(lo), float(hi), level, int(s.size), int(y.sum()))


# -- rings --------------------------------------------------------------------------------------


def rings_frame(rings: Sequence[Ring], truth_users: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rings as a table, in the given order. With the planted truth (``truth_users.csv``:
    ``user_id, is_fraud, ring_id``) it adds the planted ring most members come from, its share of
    the members and the share of members that are truly fraud."""
    planted: dict[str, str] = {}
    fraud: set[str] = set()
    if truth_users is not None:
        tu = truth_users.fillna("")
        planted = {str(u): str(r) for u, r in zip(tu["user_id"], tu["ring_id"], strict=True) if str(r)}
        kinds = {str(r): str(k) for r, k in zip(tu["ring_id"], tu["ring_kind"], strict=True) if str(r)}
        fraud = {str(u) for u, f in zip(tu["user_id"], tu["is_fraud"], strict=True) if str(f) in ("1", "True", "true")}
    rows = []
    for r in rings:
        row: dict[str, object] = {
            "ring_id": r.ring_id,
            "tier": r.tier.value,
            "score": round(r.score, 3),
            "size": r.size,
            "shared devices": len(r.shared_devices),
            "shared IPs": len(r.shared_ips),
            "shared merchants": len(r.shared_merchants),
        }
        if truth_users is not None:
            names = pd.Series([planted.get(m, "") for m in r.members])
            top = names[names != ""].value_counts()
            row["planted ring"] = top.index[0] if len(top) else ""
            row["planted kind"] = kinds.get(top.index[0], "") if len(top) else ""
            row["planted share"] = round(float(top.iloc[0]) / r.size, 2) if len(top) else 0.0
            row["truly fraud"] = round(sum(m in fraud for m in r.members) / r.size, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def _score_maps(scores: ScoreWriteback | None) -> tuple[dict[str, tuple[float, Tier]], dict[str, tuple[float, Tier]]]:
    if scores is None:
        return {}, {}
    return ({s.key: (s.score, s.tier) for s in scores.accounts}, {s.key: (s.score, s.tier) for s in scores.transactions})


def ring_subgraph(snapshot: Snapshot, ring: Ring, scores: ScoreWriteback | None = None, *, outsiders: int = 8) -> nx.Graph:
    """The ring as a networkx graph: its members, every device and IP they used, the ring's
    shared merchants and the small merchants (at most ``RingConfig.max_merchant_users`` paying
    accounts) that two or more members paid, and up to ``outsiders`` accounts
    outside the ring that use one of its shared devices or IPs (most shared identifiers first,
    then the highest score): accounts an investigator should look at next. Giant identifiers
    (more than ``GIANT_ACCOUNTS`` accounts) bring in no outsiders.

    Nodes are ``(NodeType, key)`` with attributes ``node_type``, ``key``, ``member`` (bool),
    ``shared`` (an identifier used by two or more members, or named by the ring), ``score`` and
    ``tier`` (accounts; None when unscored). Edges carry ``edge_type`` and, to merchants,
    ``payments`` and ``amount``.
    """
    user_pos = snapshot.index_of(NodeType.USER)
    members = [user_pos[m] for m in ring.members if m in user_pos]
    member_set = set(members)
    acc, _ = _score_maps(scores)
    users = snapshot.nodes[NodeType.USER]
    g = nx.Graph(ring_id=ring.ring_id)

    def add_user(i: int, member: bool) -> tuple[NodeType, str]:
        key = str(users[i])
        score, tier = acc.get(key, (None, None))
        node = (NodeType.USER, key)
        g.add_node(node, node_type=NodeType.USER, key=key, member=member, shared=False, score=score, tier=tier)
        return node

    for i in members:
        add_user(i, True)
    named = {NodeType.DEVICE: set(ring.shared_devices), NodeType.IP: set(ring.shared_ips), NodeType.MERCHANT: set(ring.shared_merchants)}
    shared_nodes: list[tuple[NodeType, int]] = []
    for t, links, etype in (
        (NodeType.DEVICE, snapshot.user_device, EdgeType.USED_DEVICE.value),
        (NodeType.IP, snapshot.user_ip, EdgeType.USED_IP.value),
    ):
        src, dst = np.asarray(links.src, np.int64), np.asarray(links.dst, np.int64)
        keep = np.isin(src, members)
        per = np.bincount(dst[keep], minlength=snapshot.num_nodes(t))
        for u, d in zip(src[keep].tolist(), dst[keep].tolist(), strict=True):
            key = str(snapshot.nodes[t][d])
            shared = bool(per[d] >= 2 or key in named[t])
            g.add_node((t, key), node_type=t, key=key, member=False, shared=shared, score=None, tier=None)
            g.add_edge((NodeType.USER, str(users[u])), (t, key), edge_type=etype)
            if shared:
                shared_nodes.append((t, d))
    tx = snapshot.transactions
    paid = np.isin(np.asarray(tx.user, np.int64), members) & (np.asarray(tx.merchant, np.int64) >= 0)
    if paid.any():
        frame = pd.DataFrame(
            {"user": np.asarray(tx.user, np.int64)[paid], "merchant": np.asarray(tx.merchant, np.int64)[paid], "amount": np.nan_to_num(np.asarray(tx.amount)[paid])}
        )
        payers = frame.groupby("merchant")["user"].nunique()
        popularity = node_degrees(snapshot)[NodeType.MERCHANT]
        merchant_keys = snapshot.nodes[NodeType.MERCHANT]
        for (u, m), grp in frame.groupby(["user", "merchant"]):
            key = str(merchant_keys[m])
            named_m = key in named[NodeType.MERCHANT]
            if not named_m and (payers[m] < 2 or popularity[m] > RingConfig().max_merchant_users):
                continue
            g.add_node((NodeType.MERCHANT, key), node_type=NodeType.MERCHANT, key=key, member=False, shared=named_m, score=None, tier=None)
            g.add_edge((NodeType.USER, str(users[u])), (NodeType.MERCHANT, key), edge_type=EdgeType.TRANSACTED.value, payments=len(grp), amount=float(grp["amount"].sum()))
    if outsiders > 0 and shared_nodes:
        found: dict[int, set[tuple[NodeType, str]]] = {}
        seen = set(shared_nodes)
        for t, d in seen:
            links = snapshot.user_device if t is NodeType.DEVICE else snapshot.user_ip
            src, dst = np.asarray(links.src, np.int64), np.asarray(links.dst, np.int64)
            on = src[dst == d]
            if on.size > GIANT_ACCOUNTS:  # a giant ties nobody to the ring
                continue
            for u in on.tolist():
                if u not in member_set:
                    found.setdefault(u, set()).add((t, str(snapshot.nodes[t][d])))
        def rank(u: int) -> tuple[int, float, str]:
            score = acc.get(str(users[u]), (None, None))[0]
            return (-len(found[u]), -(score if score is not None else -1.0), str(users[u]))

        ranked = sorted(found, key=rank)[:outsiders]
        for u in ranked:
            node = add_user(u, False)
            for ident in sorted(found[u], key=lambda x: (x[0].value, x[1])):
                link_type = EdgeType.USED_DEVICE if ident[0] is NodeType.DEVICE else EdgeType.USED_IP
                g.add_edge(node, ident, edge_type=link_type.value)
    return g


def draw_ring(graph: nx.Graph, ring: Ring, *, seed: int = 7, label_limit: int = 40) -> Figure:
    """Draw ``ring_subgraph``: accounts as circles coloured by tier (members with a black rim,
    outsiders with a dashed one), devices as squares, IPs as triangles, merchants as diamonds;
    shared identifiers larger, with a red rim and their name. Layout seeded: same graph, same
    picture. Members and shared devices and IPs are named (up to ``label_limit`` names)."""
    from matplotlib.lines import Line2D

    fig = _plt_figure(figsize=(12, 9.5))
    ax = fig.subplots()
    start = nx.spring_layout(graph, seed=seed)
    pos = nx.kamada_kawai_layout(graph, pos=start) if graph.number_of_nodes() > 2 else start
    nx.draw_networkx_edges(graph, pos, ax=ax, edge_color="#9e9e9e", width=0.8, alpha=0.7)
    for t, marker in _TYPE_MARKERS.items():
        nodes = [n for n, d in graph.nodes(data=True) if d["node_type"] is t]
        if not nodes:
            continue
        if t is NodeType.USER:
            for member, style in ((True, "solid"), (False, "dashed")):
                sel = [n for n in nodes if graph.nodes[n]["member"] is member]
                if sel:
                    nx.draw_networkx_nodes(
                        graph, pos, nodelist=sel, ax=ax, node_shape=marker, node_size=360 if member else 220,
                        node_color=[TIER_COLOURS[graph.nodes[n]["tier"]] for n in sel],
                        edgecolors="black", linewidths=1.4 if member else 1.0, alpha=1.0 if member else 0.8,
                    )
                    if not member:
                        ax.collections[-1].set_linestyle(style)
        else:
            shared = [graph.nodes[n]["shared"] for n in nodes]
            nx.draw_networkx_nodes(
                graph, pos, nodelist=nodes, ax=ax, node_shape=marker,
                node_size=[300 if s else 90 for s in shared], node_color=_TYPE_COLOURS[t],
                edgecolors=["#b71c1c" if s else "white" for s in shared], linewidths=[2.2 if s else 0.5 for s in shared],
            )
    labels = {}
    for n, d in graph.nodes(data=True):
        if (d["node_type"] is NodeType.USER and d["member"]) or (d["shared"] and d["node_type"] in _DIRECT):
            labels[n] = d["key"]
    if len(labels) <= label_limit:
        nx.draw_networkx_labels(graph, {n: (x, y + 0.035) for n, (x, y) in pos.items()}, labels=labels, ax=ax, font_size=7)
    handles = [
        Line2D([], [], marker="o", ls="", color=TIER_COLOURS[t], markeredgecolor="black", markersize=9, label=f"account, {t.value} tier")
        for t in (Tier.HIGH, Tier.MEDIUM, Tier.LOW)
    ]
    handles += [
        Line2D([], [], marker="o", ls="", color="white", markeredgecolor="black", markersize=9, label="solid rim: ring member"),
        Line2D([], [], marker="o", ls="", color="white", markeredgecolor="black", markersize=7, alpha=0.6, label="dashed rim: outside the ring, on a shared identifier"),
        Line2D([], [], marker="s", ls="", color=_TYPE_COLOURS[NodeType.DEVICE], markersize=8, label="device"),
        Line2D([], [], marker="^", ls="", color=_TYPE_COLOURS[NodeType.IP], markersize=9, label="IP"),
        Line2D([], [], marker="D", ls="", color=_TYPE_COLOURS[NodeType.MERCHANT], markersize=8, label="small merchant paid by 2+ members"),
        Line2D([], [], marker="s", ls="", color="white", markeredgecolor="#b71c1c", markeredgewidth=2, markersize=9, label="red rim: shared identifier that ties the ring"),
    ]
    present = {d["node_type"] for _, d in graph.nodes(data=True)}
    kinds = {"device": NodeType.DEVICE, "IP": NodeType.IP, "small merchant paid by 2+ members": NodeType.MERCHANT}
    handles = [h for h in handles if kinds.get(h.get_label(), NodeType.USER) in present]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    members = sum(1 for _, d in graph.nodes(data=True) if d["node_type"] is NodeType.USER and d["member"])
    outside = sum(1 for _, d in graph.nodes(data=True) if d["node_type"] is NodeType.USER and not d["member"])
    ax.set_title(
        f"{ring.ring_id}: {members} accounts, {ring.tier.value} tier, ring score {ring.score:.2f}\n"
        f"shared: {len(ring.shared_devices)} devices, {len(ring.shared_ips)} IPs, {len(ring.shared_merchants)} merchants; "
        f"{outside} account{'' if outside == 1 else 's'} outside the ring on its shared identifiers",
        fontsize=11,
    )
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def ring_timeline(snapshot: Snapshot, ring: Ring, scores: ScoreWriteback | None = None) -> pd.DataFrame:
    """Every event of the ring's members, oldest first: ``time`` (UTC), ``txn_id``, ``user_id``,
    ``event``, ``merchant_id``, ``amount``, ``currency``, ``status``, ``device_id``, ``ip`` and the
    transaction's ``risk_score`` / ``risk_tier`` from ``scores`` (empty when not given)."""
    user_pos = snapshot.index_of(NodeType.USER)
    members = np.array([user_pos[m] for m in ring.members if m in user_pos], dtype=np.int64)
    t = snapshot.transactions
    rows = np.flatnonzero(np.isin(np.asarray(t.user, np.int64), members))

    def keys(node_type: NodeType, idx: np.ndarray) -> list[str | None]:
        names = snapshot.nodes[node_type]
        return [str(names[i]) if i >= 0 else None for i in idx.tolist()]

    _, txn = _score_maps(scores)
    ids = [str(x) for x in t.txn_id[rows].tolist()]
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(np.asarray(t.ts, np.float64)[rows], unit="s", utc=True),
            "txn_id": ids,
            "user_id": keys(NodeType.USER, np.asarray(t.user, np.int64)[rows]),
            "event": np.asarray(EVENT_KINDS, dtype=object)[np.asarray(t.event, np.int64)[rows]],
            "merchant_id": keys(NodeType.MERCHANT, np.asarray(t.merchant, np.int64)[rows]),
            "amount": np.asarray(t.amount, np.float64)[rows],
            "currency": t.currency[rows],
            "status": t.status[rows],
            "device_id": keys(NodeType.DEVICE, np.asarray(t.device, np.int64)[rows]),
            "ip": keys(NodeType.IP, np.asarray(t.ip, np.int64)[rows]),
            "risk_score": [txn[i][0] if i in txn else np.nan for i in ids],
            "risk_tier": [txn[i][1].value if i in txn else "" for i in ids],
        }
    )
    return frame.sort_values(["time", "txn_id"], kind="stable").reset_index(drop=True)


def plot_ring_timeline(timeline: pd.DataFrame, ring: Ring) -> Figure:
    """One row per member, one mark per event over time: payments sized by amount and coloured by
    status (declined in red), refunds, signups and logins as their own marks."""
    fig = _plt_figure(figsize=(12, max(3.5, 0.32 * ring.size + 2)))
    ax = fig.subplots()
    members = sorted(timeline["user_id"].unique().tolist()) if len(timeline) else list(ring.members)
    row = {m: i for i, m in enumerate(members)}
    y = timeline["user_id"].map(row)
    styles = {
        "signup": dict(marker="*", color="#1976d2", s=90, label="signup"),
        "login": dict(marker="|", color="#78909c", s=60, label="login"),
        "refund": dict(marker="<", color="#8e24aa", s=50, label="refund"),
    }
    for kind, st in styles.items():
        sel = timeline["event"] == kind
        if sel.any():
            ax.scatter(timeline.loc[sel, "time"], y[sel], **st)  # type: ignore[arg-type]
    pay = timeline["event"] == "payment"
    amount = timeline["amount"].fillna(0.0)
    size = 12 + 60 * np.sqrt(amount / max(float(amount[pay].max()) if pay.any() else 1.0, 1e-9))
    for declined, colour, label in ((False, "#2e7d32", "payment, approved (size ~ amount)"), (True, "#d32f2f", "payment, declined")):
        sel = pay & ((timeline["status"] == "declined") == declined)
        if sel.any():
            ax.scatter(timeline.loc[sel, "time"], y[sel], s=size[sel], color=colour, alpha=0.6, edgecolor="black", linewidth=0.3, label=label)
    ax.set_yticks(range(len(members)), members, fontsize=7)
    ax.set_ylabel("ring member (user_id)")
    ax.set_xlabel("time (UTC)")
    ax.set_title(f"Transaction timeline of {ring.ring_id} ({ring.size} members, {len(timeline):,} events)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def ring_member_risk(
    snapshot: Snapshot, ring: Ring, scores: ScoreWriteback | None, *, mode: str | None = None
) -> list[AccountView]:
    """Each member of ``ring`` as the API's scoring index reports it (``api.index.ScoringIndex``):
    score, tier, ring, devices, IPs and the reasons read from the graph's facts (verdict, ring,
    devices and IPs shared with risky accounts, bursts of payments, account age). ``mode``: how
    ``scores`` were made, from their artefact ("supervised" or "unsupervised").

    Raises:
        NotFoundError: a member the snapshot does not hold.
    """
    index = ScoringIndex.build(snapshot, scores, mode=mode)
    return [index.account(m) for m in ring.members]


@dataclass(frozen=True, slots=True)
class RingExport:
    """The files of a ring's case file: one row per member, and every member event."""

    members_csv: Path
    transactions_csv: Path
    members: int
    transactions: int


def export_ring(
    snapshot: Snapshot,
    ring: Ring,
    out_dir: Path,
    scores: ScoreWriteback | None = None,
    reasons: Mapping[str, Sequence[str]] | None = None,
) -> RingExport:
    """Write ``<ring_id>.members.csv`` (ring id, tier and score; per member: score, tier, first
    and last event, payments, amount paid, declined payments, devices, IPs, which of them the ring
    shares, and ``reasons`` joined with " | ") and ``<ring_id>.transactions.csv``
    (``ring_timeline``) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline = ring_timeline(snapshot, ring, scores)
    acc, _ = _score_maps(scores)
    user_pos = snapshot.index_of(NodeType.USER)
    dev_links = snapshot.user_device
    ip_links = snapshot.user_ip
    shared_dev, shared_ip = set(ring.shared_devices), set(ring.shared_ips)
    rows = []
    for m in ring.members:
        mine = timeline[timeline["user_id"] == m]
        pays = mine[mine["event"] == "payment"]
        i = user_pos.get(m, -1)
        devices = [str(snapshot.nodes[NodeType.DEVICE][d]) for d in np.asarray(dev_links.dst)[np.asarray(dev_links.src) == i].tolist()]
        ips = [str(snapshot.nodes[NodeType.IP][d]) for d in np.asarray(ip_links.dst)[np.asarray(ip_links.src) == i].tolist()]
        score, tier = acc.get(m, (math.nan, None))
        rows.append(
            {
                "ring_id": ring.ring_id,
                "ring_tier": ring.tier.value,
                "ring_score": round(ring.score, 6),
                "user_id": m,
                "risk_score": score,
                "risk_tier": tier.value if tier is not None else "",
                "first_event": mine["time"].min() if len(mine) else pd.NaT,
                "last_event": mine["time"].max() if len(mine) else pd.NaT,
                "payments": len(pays),
                "amount_paid": float(pays["amount"].fillna(0).sum()),
                "declined_payments": int((pays["status"] == "declined").sum()),
                "devices": ";".join(devices),
                "ips": ";".join(ips),
                "shared_devices": ";".join(d for d in devices if d in shared_dev),
                "shared_ips": ";".join(p for p in ips if p in shared_ip),
                "reasons": " | ".join(reasons.get(m, ())) if reasons else "",
            }
        )
    members_csv = out_dir / f"{ring.ring_id}.members.csv"
    transactions_csv = out_dir / f"{ring.ring_id}.transactions.csv"
    pd.DataFrame(rows).to_csv(members_csv, index=False)
    timeline.to_csv(transactions_csv, index=False)
    return RingExport(members_csv, transactions_csv, len(rows), len(timeline))


