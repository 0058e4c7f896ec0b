"""Rings up close: a table of them, one ring's subgraph and picture, timeline, members' reasons, case file."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import pandas as pd

from api.index import AccountView, ScoringIndex
from graph.rings import RingConfig
from graph.types import EVENT_KINDS, EdgeType, NodeType, Ring, ScoreWriteback, Snapshot, Tier
from ringwatch.analysis.figures import TIER_COLOURS, TYPE_COLOURS, new_figure
from ringwatch.analysis.graph_shape import GIANT_ACCOUNTS, node_degrees

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "rings_frame",
    "ring_subgraph",
    "draw_ring",
    "ring_timeline",
    "plot_ring_timeline",
    "ring_member_risk",
    "RingExport",
    "export_ring",
]

_TYPE_MARKERS = {NodeType.USER: "o", NodeType.DEVICE: "s", NodeType.IP: "^", NodeType.MERCHANT: "D"}
_DIRECT = (NodeType.DEVICE, NodeType.IP)


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

    fig = new_figure(figsize=(12, 9.5))
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
                node_size=[300 if s else 90 for s in shared], node_color=TYPE_COLOURS[t],
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
        Line2D([], [], marker="s", ls="", color=TYPE_COLOURS[NodeType.DEVICE], markersize=8, label="device"),
        Line2D([], [], marker="^", ls="", color=TYPE_COLOURS[NodeType.IP], markersize=9, label="IP"),
        Line2D([], [], marker="D", ls="", color=TYPE_COLOURS[NodeType.MERCHANT], markersize=8, label="small merchant paid by 2+ members"),
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
    fig = new_figure(figsize=(12, max(3.5, 0.32 * ring.size + 2)))
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
