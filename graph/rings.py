"""Deterministic fraud-ring detection on a graph snapshot (DESIGN §6): ``detect_rings``.

A ring is a group of accounts tied together by shared devices, IPs or payment patterns whose
members are risky together. Candidate accounts are linked through the devices, IPs, merchants
and merchant time windows that may tie them (``RingConfig`` says which), a mid-risk account may
bridge two groups, and a connected component with enough members is a ring, scored, tiered and
named after its smallest member. Detection is a pure function of the snapshot, the account
scores and the configuration: the same graph gives the same rings, with the same ids, every
time. The cost is a few integer sorts and sparse connected-components passes over the
account--identifier edges: about linear in the number of transactions and links.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from graph.errors import ValidationError
from graph.types import NodeType, Ring, Snapshot, Tier

#: How many of the highest member scores make up a ring's core score.
TOP_K = 5
#: How far the share of high-risk members pulls the ring score from the core score towards 1.
HIGH_SHARE_WEIGHT = 0.5
#: Hex digits of the sha1 of the smallest member id used in a ring id.
RING_ID_HEX = 10


@dataclass(frozen=True, slots=True)
class RingConfig:
    """Knobs of ring detection; the defaults suit a typical e-commerce graph.

    Attributes:
        min_size: fewer members than this is not a ring.
        max_identifier_users: a device or IP used by more users than this is a "giant" (office,
            campus, carrier NAT) and does not link accounts.
        max_merchant_users: a merchant links accounts only if at most this many users pay it (and
            its users' mean score is at least the medium threshold); a merchant time window only
            if at most this many users burst there in it.
        member_threshold: score needed to be a ring member; ``None`` uses
            ``member_ratio * medium``.
        member_ratio: the member threshold as a share of the medium tier threshold. Below 1 so
            that a tightly linked group of mid-risk accounts (a mule chain) is still grouped; its
            ring score then tiers it low or medium.
        bridge_ratio: a non-candidate scoring at least ``bridge_ratio * threshold`` may join as a
            bridge between two candidate groups; ``None`` disables bridges.
        min_candidate_share: a device, IP or merchant window links only if at least this share
            of its users are candidates: a public Wi-Fi several rings pass through, mostly used
            by ordinary accounts, does not tie them into one ring.
        busy_identifier_users: a device or IP with more users than this is busy...
        min_use_share: ...and ties only the users for whom it carries at least this share of
            their events, not those who passed through it now and then.
        merchant_window_s: length of a merchant time window (fixed buckets from the epoch).
        burst_payments: payments a user must make at one merchant within one window to be tied
            by it (card testing: bursts of payments from many accounts at a few merchants).

    Raises:
        ValidationError: a value out of range.
    """

    min_size: int = 3
    max_identifier_users: int = 40
    max_merchant_users: int = 30
    member_threshold: float | None = None
    member_ratio: float = 0.6
    bridge_ratio: float | None = 0.5
    min_candidate_share: float = 0.5
    busy_identifier_users: int = 10
    min_use_share: float = 0.2
    merchant_window_s: float = 3600.0
    burst_payments: int = 3

    def __post_init__(self) -> None:
        if self.min_size < 2:
            raise ValidationError("RingConfig.min_size", self.min_size, "must be at least 2")
        if self.max_identifier_users < 2:
            raise ValidationError(
                "RingConfig.max_identifier_users", self.max_identifier_users, "must be at least 2"
            )
        if self.max_merchant_users < 2:
            raise ValidationError(
                "RingConfig.max_merchant_users", self.max_merchant_users, "must be at least 2"
            )
        if self.member_threshold is not None and not 0.0 < self.member_threshold <= 1.0:
            raise ValidationError(
                "RingConfig.member_threshold", self.member_threshold, "must be in (0, 1]"
            )
        if self.bridge_ratio is not None and not 0.0 < self.bridge_ratio < 1.0:
            raise ValidationError("RingConfig.bridge_ratio", self.bridge_ratio, "must be in (0, 1)")
        for name in ("member_ratio", "min_candidate_share", "min_use_share"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValidationError(f"RingConfig.{name}", value, "must be in (0, 1]")
        if self.busy_identifier_users < 2:
            raise ValidationError(
                "RingConfig.busy_identifier_users", self.busy_identifier_users, "must be at least 2"
            )
        if not self.merchant_window_s > 0.0:
            raise ValidationError("RingConfig.merchant_window_s", self.merchant_window_s, "must be > 0")
        if self.burst_payments < 1:
            raise ValidationError("RingConfig.burst_payments", self.burst_payments, "must be at least 1")


def detect_rings(
    snapshot: Snapshot,
    account_scores: np.ndarray,
    *,
    medium: float,
    high: float,
    config: RingConfig = RingConfig(),
) -> list[Ring]:
    """Find fraud rings in ``snapshot``.

    1. Candidates: accounts with ``score >= threshold`` (``config.member_threshold``, or
       ``config.member_ratio`` times ``medium`` when that is ``None``).
    2. Links: candidates are joined through the linking identifiers of ``_linking_edges``.
    3. One bridge step: a non-candidate scoring ``>= bridge_ratio * threshold`` that touches
       linking identifiers of at least two *different* candidate components joins the graph
       (through those identifiers only), so a mule chain held together by one mid-risk account
       stays one ring. Bridges are chosen once against the candidate components; a bridge never
       recruits a further bridge. ``bridge_ratio=None`` turns this off.
    4. Rings: connected components with at least ``min_size`` accounts (candidates plus
       bridges), scored by ``_ring_score``, tiered (``>= high`` high, ``>= medium`` medium, else
       low), named by ``_assign_ring_ids`` and listed with ``_shared_identifiers``.

    Args:
        snapshot: the graph; only users, devices, IPs, merchants, ``user_device``, ``user_ip``
            and the transactions' user/merchant/device/ip columns are read.
        account_scores: float array ``[num users]``, fraud probability per user in the order of
            ``snapshot.nodes[NodeType.USER]``.
        medium: medium tier threshold (also the default member threshold and the merchant risk
            bar).
        high: high tier threshold, ``medium <= high``.
        config: see ``RingConfig``.

    Returns:
        Rings sorted by score descending, then ring id. Empty when nothing qualifies.

    Raises:
        ValidationError: scores of the wrong shape, NaN or outside [0, 1]; thresholds outside
            [0, 1] or ``medium > high``.
    """
    scores = _check_args(snapshot, account_scores, medium, high)
    threshold = (
        config.member_threshold if config.member_threshold is not None else config.member_ratio * medium
    )
    n_users = scores.shape[0]
    if n_users == 0:
        return []

    candidate = scores >= threshold
    graph = _linking_edges(snapshot, scores, candidate, medium, config)
    if int(candidate.sum()) == 0:
        return []

    # Components of candidates and their linking identifiers.
    keep = candidate[graph.user]
    labels = _components(graph.n_nodes, graph.user[keep], graph.ident[keep])
    member = candidate.copy()
    edge_keep = keep

    if config.bridge_ratio is not None:
        n_labels = int(labels.max()) + 1
        has_candidate = np.bincount(labels[:n_users][candidate], minlength=n_labels) > 0
        into_candidates = has_candidate[labels[graph.ident]]
        eligible = ~candidate & (scores >= config.bridge_ratio * threshold)
        reach = eligible[graph.user] & into_candidates
        # Distinct candidate components each eligible user touches; >= 2 makes it a bridge.
        touched, _ = _sorted_unique(graph.user[reach] * n_labels + labels[graph.ident[reach]])
        bridge = np.bincount(touched // n_labels, minlength=n_users) >= 2
        if bridge.any():
            member |= bridge
            edge_keep = keep | (bridge[graph.user] & into_candidates)
            labels = _components(graph.n_nodes, graph.user[edge_keep], graph.ident[edge_keep])

    # Rings: components with enough members.
    member_idx = np.flatnonzero(member)
    member_label = labels[member_idx]
    size_per_label = np.bincount(member_label, minlength=int(labels.max()) + 1)
    in_ring = size_per_label[member_label] >= config.min_size
    member_idx, member_label = member_idx[in_ring], member_label[in_ring]
    if member_idx.shape[0] == 0:
        return []
    order = np.lexsort((member_idx, member_label))
    member_idx, member_label = member_idx[order], member_label[order]
    starts = np.flatnonzero(np.diff(member_label, prepend=-1))
    ring_labels = member_label[starts]
    groups = np.split(member_idx, starts[1:])

    shared = _shared_identifiers(snapshot, graph, labels, edge_keep, member, ring_labels)
    user_keys = snapshot.nodes[NodeType.USER]
    drafts: list[_Draft] = []
    for label, idx in zip(ring_labels.tolist(), groups):
        members = tuple(sorted(str(k) for k in user_keys[idx].tolist()))
        ring_score = _ring_score(scores[idx], high)
        drafts.append(_Draft(members, ring_score, shared.get(label, ((), (), ()))))

    ids = _assign_ring_ids([d.members[0] for d in drafts])
    rings = [
        Ring(
            ring_id=ring_id,
            members=d.members,
            shared_devices=d.shared[0],
            shared_ips=d.shared[1],
            shared_merchants=d.shared[2],
            score=d.score,
            tier=_tier(d.score, medium, high),
        )
        for d, ring_id in zip(drafts, ids)
    ]
    rings.sort(key=lambda r: (-r.score, r.ring_id))
    return rings


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LinkGraph:
    """Account -- linking-identifier edges. Node ids: users ``[0, U)``, then devices, IPs and
    merchants at ``dev_base``, ``ip_base``, ``mer_base``. Each (user, identifier) pair once."""

    user: np.ndarray  # int64 [E]
    ident: np.ndarray  # int64 [E], global node id
    n_nodes: int
    dev_base: int
    ip_base: int
    mer_base: int
    win_base: int
    win_merchant: np.ndarray  # int64 [windows], the merchant of each merchant time window


@dataclass(frozen=True, slots=True)
class _Draft:
    members: tuple[str, ...]
    score: float
    shared: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _check_args(
    snapshot: Snapshot, account_scores: np.ndarray, medium: float, high: float
) -> np.ndarray:
    """Validate the arguments; returns the scores as float64."""
    for name, value in (("medium", medium), ("high", high)):
        if not 0.0 <= value <= 1.0:
            raise ValidationError(name, value, "must be in [0, 1]")
    if medium > high:
        raise ValidationError("medium", medium, f"must not exceed high={high}")
    scores = np.asarray(account_scores, dtype=np.float64)
    n_users = snapshot.num_nodes(NodeType.USER)
    if scores.shape != (n_users,):
        raise ValidationError(
            "account_scores", f"shape {scores.shape}", f"must have shape ({n_users},), one per user"
        )
    if scores.size and (np.isnan(scores).any() or scores.min() < 0.0 or scores.max() > 1.0):
        raise ValidationError("account_scores", "NaN or out of range", "must all be in [0, 1]")
    return scores


def _sorted_unique(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their counts. Sort-based: for int64 codes this is faster than
    ``np.unique`` (hash-based in numpy >= 2.3)."""
    ordered = np.sort(codes, kind="stable")
    if ordered.shape[0] == 0:
        return ordered, np.zeros(0, dtype=np.int64)
    first = np.empty(ordered.shape[0], dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, ordered.shape[0]))
    return ordered[starts], counts


def _unique_pairs(
    user: np.ndarray, other: np.ndarray, n_other: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, other) pairs, dropping ``other < 0`` (absent)."""
    ok = other >= 0
    width = max(n_other, 1)
    code, _ = _sorted_unique(user[ok].astype(np.int64) * width + other[ok].astype(np.int64))
    return code // width, code % width


def _linking_edges(
    snapshot: Snapshot, scores: np.ndarray, candidate: np.ndarray, medium: float, config: RingConfig
) -> _LinkGraph:
    """Every (user, identifier) edge through a device, IP or merchant that may link accounts:

    - a device or IP used by at least 2 and at most ``max_identifier_users`` distinct users in
      the whole graph (risky or not): a "giant" (office NAT, campus, mobile carrier) never links,
      so the legitimate users behind a shared IP do not fall into rings wholesale;
    - ...and at least ``min_candidate_share`` of whose users are candidates: a public Wi-Fi or
      VPN exit that several rings pass through but ordinary accounts mostly use ties nobody;
    - a *busy* device or IP (more than ``busy_identifier_users`` users) ties only the users for
      whom it carries at least ``min_use_share`` of their events;
    - a merchant paid by at least 2 and at most ``max_merchant_users`` distinct users whose mean
      account score is ``>= medium`` (a colluding merchant); a popular merchant never links;
    - a merchant time window (one merchant, one ``merchant_window_s`` bucket) in which at least
      2 and at most ``max_merchant_users`` users each made ``burst_payments`` or more payments,
      mostly candidates: card testing at a merchant that also has ordinary customers.

    Device and IP use comes from the ``user_device``/``user_ip`` link tables and the
    transactions' device/IP columns (use shares from the transactions). The edges stay a
    bipartite graph, never expanded to account pairs: a busy identifier costs one edge per user.
    """
    n_users = scores.shape[0]
    n_dev = snapshot.num_nodes(NodeType.DEVICE)
    n_ip = snapshot.num_nodes(NodeType.IP)
    n_mer = snapshot.num_nodes(NodeType.MERCHANT)
    txn = snapshot.transactions

    (dev_u, dev), (ip_u, ip) = _device_and_ip_pairs(snapshot)
    dev_use = _use_share(txn.user, txn.device, n_dev, dev_u, dev)
    ip_use = _use_share(txn.user, txn.ip, n_ip, ip_u, ip)
    mer_u, mer = _unique_pairs(txn.user, txn.merchant, n_mer)

    def small(ident: np.ndarray, n: int, cap: int) -> np.ndarray:
        users = np.bincount(ident, minlength=n)
        return (users >= 2) & (users <= cap)

    def mostly_candidates(user: np.ndarray, ident: np.ndarray, n: int, cap: int) -> np.ndarray:
        """Per identifier: small (2..cap users), at least ``min_candidate_share`` candidates."""
        cands = np.bincount(ident, weights=candidate[user], minlength=n)
        return small(ident, n, cap) & (cands >= config.min_candidate_share * np.bincount(ident, minlength=n))

    def ties(user: np.ndarray, ident: np.ndarray, use: np.ndarray, n: int) -> np.ndarray:
        """Per (user, device or IP) edge: links, counting busy identifiers' rare users out."""
        ok = mostly_candidates(user, ident, n, config.max_identifier_users)
        busy = np.bincount(ident, minlength=n) > config.busy_identifier_users
        return ok[ident] & (~busy[ident] | (use >= config.min_use_share))

    dev_ok = ties(dev_u, dev, dev_use, n_dev)
    ip_ok = ties(ip_u, ip, ip_use, n_ip)
    mer_users = np.bincount(mer, minlength=n_mer)
    mer_mean = np.bincount(mer, weights=scores[mer_u], minlength=n_mer) / np.maximum(mer_users, 1)
    mer_risky = small(mer, n_mer, config.max_merchant_users) & (mer_mean >= medium)
    mer_ok = mer_risky[mer]

    # Merchant time windows: the users who paid one merchant within one window.
    paid = txn.merchant >= 0
    bucket = np.floor(txn.ts[paid] / config.merchant_window_s).astype(np.int64)
    bucket -= bucket.min(initial=0)
    width = int(bucket.max(initial=0)) + 1
    win_keys, win_of_row = np.unique(txn.merchant[paid] * width + bucket, return_inverse=True)
    n_win = int(win_keys.shape[0])
    # Only bursts tie: a user who paid the merchant at least ``burst_payments`` times in the window.
    burst_code, burst_n = _sorted_unique(txn.user[paid].astype(np.int64) * max(n_win, 1) + win_of_row)
    burst_code = burst_code[burst_n >= config.burst_payments]
    win_u, win = burst_code // max(n_win, 1), burst_code % max(n_win, 1)
    win_ok = mostly_candidates(win_u, win, n_win, config.max_merchant_users)[win]

    dev_base, ip_base, mer_base = n_users, n_users + n_dev, n_users + n_dev + n_ip
    win_base = mer_base + n_mer
    return _LinkGraph(
        user=np.concatenate([dev_u[dev_ok], ip_u[ip_ok], mer_u[mer_ok], win_u[win_ok]]),
        ident=np.concatenate(
            [dev[dev_ok] + dev_base, ip[ip_ok] + ip_base, mer[mer_ok] + mer_base, win[win_ok] + win_base]
        ),
        n_nodes=win_base + n_win,
        dev_base=dev_base,
        ip_base=ip_base,
        mer_base=mer_base,
        win_base=win_base,
        win_merchant=(win_keys // width).astype(np.int64),
    )


def _device_and_ip_pairs(snapshot: Snapshot) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Distinct (user, device) and (user, IP) pairs, from the link tables and the transactions."""
    txn = snapshot.transactions
    return (
        _unique_pairs(
            np.concatenate([snapshot.user_device.src, txn.user]),
            np.concatenate([snapshot.user_device.dst, txn.device]),
            snapshot.num_nodes(NodeType.DEVICE),
        ),
        _unique_pairs(
            np.concatenate([snapshot.user_ip.src, txn.user]),
            np.concatenate([snapshot.user_ip.dst, txn.ip]),
            snapshot.num_nodes(NodeType.IP),
        ),
    )


def account_components(
    snapshot: Snapshot, max_identifier_users: int = RingConfig().max_identifier_users
) -> np.ndarray:
    """Connected-component label per account (int64 [users]) through the devices and IPs
    accounts share, leaving out those used by more than ``max_identifier_users`` accounts (as
    ring links do); merchants never join accounts here."""
    n_user = snapshot.num_nodes(NodeType.USER)
    n_dev = snapshot.num_nodes(NodeType.DEVICE)
    (dev_u, dev), (ip_u, ip) = _device_and_ip_pairs(snapshot)
    dev_ok = np.bincount(dev, minlength=n_dev)[dev] <= max_identifier_users
    ip_ok = np.bincount(ip, minlength=snapshot.num_nodes(NodeType.IP))[ip] <= max_identifier_users
    src = np.concatenate([dev_u[dev_ok], ip_u[ip_ok]])
    dst = np.concatenate([dev[dev_ok] + n_user, ip[ip_ok] + n_user + n_dev])
    n_nodes = n_user + n_dev + snapshot.num_nodes(NodeType.IP)
    return _components(n_nodes, src, dst)[:n_user]


def _use_share(
    row_user: np.ndarray, row_other: np.ndarray, n_other: int, user: np.ndarray, other: np.ndarray
) -> np.ndarray:
    """Per (user, other) pair: the share of the user's events with an ``other`` that used this
    one (0 for a pair known only from the link tables)."""
    ok = row_other >= 0
    width = max(n_other, 1)
    codes, counts = _sorted_unique(row_user[ok].astype(np.int64) * width + row_other[ok])
    per_user = np.bincount(row_user[ok], minlength=int(user.max(initial=-1)) + 1)
    want = user.astype(np.int64) * width + other
    if codes.shape[0] == 0:
        return np.zeros(want.shape[0])
    pos = np.minimum(np.searchsorted(codes, want), codes.shape[0] - 1)
    hits = np.where(codes[pos] == want, counts[pos], 0)
    return hits / np.maximum(per_user[user], 1)


def _components(n_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected-component label per node of an undirected graph (int64 [n_nodes])."""
    adj = coo_matrix(
        (np.ones(src.shape[0], dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes)
    ).tocsr()
    _, labels = connected_components(adj, directed=False)
    return labels.astype(np.int64)


def _shared_identifiers(
    snapshot: Snapshot,
    graph: _LinkGraph,
    labels: np.ndarray,
    edge_keep: np.ndarray,
    member: np.ndarray,
    ring_labels: np.ndarray,
) -> dict[int, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """Per ring label: the linking devices, IPs and merchants used by >= 2 of its members,
    sorted. Giant IPs, popular merchants and public hangouts never link, so they are not listed."""
    sel = edge_keep & member[graph.user]
    ident = graph.ident[sel]
    # A merchant time window counts as its merchant; a user counts once per merchant.
    is_win = ident >= graph.win_base
    ident[is_win] = graph.mer_base + graph.win_merchant[ident[is_win] - graph.win_base]
    pairs, _ = _sorted_unique(graph.user[sel] * graph.n_nodes + ident)
    ident = pairs % graph.n_nodes
    ring = labels[pairs // graph.n_nodes]
    is_ring = np.zeros(int(labels.max()) + 1, dtype=bool)
    is_ring[ring_labels] = True
    wanted = is_ring[ring]
    # Each (user, identifier) edge is unique, so a (ring, identifier) count is a member count.
    codes, counts = _sorted_unique(ring[wanted] * graph.n_nodes + ident[wanted])
    codes = codes[counts >= 2]
    ring, ident = codes // graph.n_nodes, codes % graph.n_nodes

    found: dict[int, tuple[list[str], list[str], list[str]]] = {}
    kinds = (
        (0, NodeType.DEVICE, graph.dev_base, graph.ip_base),
        (1, NodeType.IP, graph.ip_base, graph.mer_base),
        (2, NodeType.MERCHANT, graph.mer_base, graph.win_base),
    )
    for slot, node_type, lo, hi in kinds:
        in_kind = (ident >= lo) & (ident < hi)
        keys = snapshot.nodes[node_type][ident[in_kind] - lo].tolist()
        for label, key in zip(ring[in_kind].tolist(), keys):
            found.setdefault(label, ([], [], []))[slot].append(str(key))
    return {
        label: (tuple(sorted(devs)), tuple(sorted(ips)), tuple(sorted(mers)))
        for label, (devs, ips, mers) in found.items()
    }


def _ring_score(member_scores: np.ndarray, high: float) -> float:
    """``m + HIGH_SHARE_WEIGHT * h * (1 - m)``: m = mean of the top-k scores, h = share >= high.

    Stays in [0, 1], is never below ``m`` (a ring whose top-k members are all medium is at least
    a medium ring), rises when many members are high-risk rather than only a few, and never
    falls when a member's score rises."""
    k = min(member_scores.shape[0], TOP_K)
    top = np.sort(member_scores)[::-1][:k]
    core = float(top.mean())
    share_high = float((member_scores >= high).mean())
    return min(1.0, core + HIGH_SHARE_WEIGHT * share_high * (1.0 - core))


def _tier(score: float, medium: float, high: float) -> Tier:
    if score >= high:
        return Tier.HIGH
    if score >= medium:
        return Tier.MEDIUM
    return Tier.LOW


def _assign_ring_ids(anchors: list[str], hex_digits: int = RING_ID_HEX) -> list[str]:
    """One id per ring, ``"ring-" + sha1(smallest member)[:hex_digits]``. It depends only on that
    member, not on graph indices or the rest of the graph, so an unrelated account or edge does
    not rename a ring. A truncated-hash collision is settled by anchor order: the smallest
    anchor keeps the plain id, the next gets ``-2``, ..."""
    ids = [""] * len(anchors)
    taken: set[str] = set()
    for i in sorted(range(len(anchors)), key=lambda j: anchors[j]):
        base = "ring-" + hashlib.sha1(anchors[i].encode("utf-8")).hexdigest()[:hex_digits]
        ring_id, n = base, 1
        while ring_id in taken:
            n += 1
            ring_id = f"{base}-{n}"
        taken.add(ring_id)
        ids[i] = ring_id
    return ids
