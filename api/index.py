"""The in-memory scoring index: everything the API serves, built once from a snapshot and scores.

The request path never touches the store (DESIGN §3, §7): account look-ups, reasons and
neighbourhoods are answered from arrays prepared here. Per-identifier user counts and
high-tier counts are precomputed, so an account's risk costs O(its degree); neighbourhoods walk a
CSR adjacency of the whole graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gnn.serving.reasons import NOT_SCORED, account_shares, active_for, busiest_hour, ring_member, verdict
from graph.errors import NotFoundError, ValidationError
from graph.store import check_walk
from graph.types import (
    EVENT_KINDS,
    EdgeType,
    Event,
    EventKind,
    NodeType,
    Ring,
    ScoreWriteback,
    Snapshot,
    Subgraph,
    SubgraphEdge,
    SubgraphNode,
    Tier,
)

#: At most this many reasons per account, most relevant first.
MAX_REASONS = 4
#: A subgraph returns at most ``EDGES_PER_NODE * limit`` edges; a user with thousands of payments
#: to one merchant would otherwise blow up the response.
EDGES_PER_NODE = 4

# Global node numbering for the neighbourhood walk: one block per node type, in this order.
_NODE_ORDER: tuple[NodeType, ...] = (
    NodeType.USER,
    NodeType.DEVICE,
    NodeType.IP,
    NodeType.MERCHANT,
    NodeType.RING,
)
_EDGE_ORDER: tuple[EdgeType, ...] = (
    EdgeType.TRANSACTED,
    EdgeType.USED_DEVICE,
    EdgeType.USED_IP,
    EdgeType.SEEN_AT,
    EdgeType.MEMBER_OF,
)
_NO_TIER = -1
_TIERS_BY_RANK: tuple[Tier, ...] = tuple(sorted(Tier, key=lambda t: t.rank))
_HOUR = 3600.0
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account as the API reports it. ``score`` and ``tier`` are None until scored; ``mode``
    is the scoring artefact's (``"supervised"`` / ``"unsupervised"``), None when unknown."""

    user_id: str
    score: float | None
    tier: Tier | None
    ring_id: str | None
    model_version: str | None
    mode: str | None
    reasons: tuple[str, ...]
    devices: tuple[str, ...]
    ips: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdentifierFacts:
    """One device or IP as the snapshot knows it (``ScoringIndex.identifier``): ``accounts`` on
    it, ``fraud`` of them confirmed fraud and ``high`` more in the high tier without a fraud
    verdict (counted as ``gnn.serving.explain.NeighbourFact`` counts them)."""

    node_type: NodeType
    key: str
    accounts: int
    high: int
    fraud: int
    ring: Ring | None


@dataclass(frozen=True, slots=True)
class _Csr:
    """Compressed adjacency: the neighbours of row ``i`` are ``indices[indptr[i]:indptr[i+1]]``,
    sorted by neighbour id. ``order[k]`` is the input edge that entry ``k`` came from."""

    indptr: np.ndarray  # int64 [N+1]
    indices: np.ndarray  # int64 [E]
    order: np.ndarray  # int64 [E]

    @classmethod
    def build(cls, src: np.ndarray, dst: np.ndarray, num_rows: int) -> _Csr:
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        order = np.lexsort((dst, src)).astype(np.int64)
        indptr = np.searchsorted(src[order], np.arange(num_rows + 1, dtype=np.int64), side="left")
        return cls(indptr=indptr.astype(np.int64), indices=dst[order], order=order)

    def span(self, row: int) -> tuple[int, int]:
        return int(self.indptr[row]), int(self.indptr[row + 1])

    def neighbours(self, row: int) -> np.ndarray:
        lo, hi = self.span(row)
        return self.indices[lo:hi]

    def has(self, row: int, neighbour: int) -> bool:
        """Whether ``neighbour`` is among row ``row``'s (sorted) neighbours."""
        ids = self.neighbours(row)
        at = int(np.searchsorted(ids, neighbour))
        return at < ids.size and int(ids[at]) == neighbour


@dataclass(frozen=True, slots=True)
class _Share:
    """A user's strongest shared identifier of one kind (device or IP)."""

    key: str
    others: int
    high_others: int
    fraud_others: int


class ScoringIndex:
    """Everything the API serves, in memory: built once from a store's snapshot + last scores.

    Build with :meth:`build`; the instance is read-only afterwards and safe to share between
    request handlers.
    """

    def __init__(self) -> None:  # filled by build(); not meant to be called directly
        self.mode: str | None = None
        self.model_version: str | None = None
        self.scored_at: float | None = None
        self.snapshot_taken_at: float = 0.0
        self.num_users = 0
        self.num_transactions = 0

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def build(cls, snapshot: Snapshot, scores: ScoreWriteback | None, *, mode: str | None = None) -> ScoringIndex:
        """Prepare lookups, per-identifier counts and the adjacency from one snapshot.

        Args:
            snapshot: the graph as the store holds it now.
            scores: the last scoring run, or None if the store was never scored.
            mode: how the scores were made, from their artefact ("supervised" or "unsupervised");
                None when unknown. Reported as is; ignored (None) when ``scores`` is None.
        """
        index = cls()
        index.mode = mode if scores is not None else None
        index.model_version = scores.model_version if scores is not None else None
        index.scored_at = scores.scored_at if scores is not None else None
        index.snapshot_taken_at = float(snapshot.taken_at)

        index._keys = {
            t: np.asarray(snapshot.nodes[t], dtype=object) for t in _NODE_ORDER if t is not NodeType.RING
        }
        index._user_pos = {k: i for i, k in enumerate(index._keys[NodeType.USER].tolist())}
        n_users = len(index._user_pos)
        index.num_users = n_users
        index.num_transactions = len(snapshot.transactions)
        index._txns = snapshot.transactions
        index._txn_pos = {k: i for i, k in enumerate(snapshot.transactions.txn_id.tolist())}

        index._build_scores(snapshot, scores)
        index._build_labels(snapshot)
        index._build_shares(snapshot)
        index._build_activity(snapshot)
        index._build_graph(snapshot)
        return index

    def _build_scores(self, snapshot: Snapshot, scores: ScoreWriteback | None) -> None:
        n_users = len(self._user_pos)
        self._user_score = np.full(n_users, np.nan)
        self._user_tier = np.full(n_users, _NO_TIER, dtype=np.int8)
        self._user_ring = np.full(n_users, -1, dtype=np.int64)
        self._txn_score = np.full(len(snapshot.transactions), np.nan)
        rings = list(scores.rings) if scores is not None else []
        # Rings by id (their node order in the graph); the listing goes highest score first,
        # ring id breaking ties.
        self._rings: list[Ring] = sorted(rings, key=lambda r: r.ring_id)
        self._ring_pos = {r.ring_id: i for i, r in enumerate(self._rings)}
        self._ring_listing: list[Ring] = sorted(rings, key=lambda r: (-r.score, r.ring_id))
        if scores is None:
            return
        for s in scores.accounts:
            pos = self._user_pos.get(s.key)
            if pos is not None:  # a score for an account the snapshot lacks is stale: ignored
                self._user_score[pos] = s.score
                self._user_tier[pos] = s.tier.rank
        for ring in self._ring_listing:  # an account in two rings reports the riskier one
            ring_pos = self._ring_pos[ring.ring_id]
            for member in ring.members:
                pos = self._user_pos.get(member)
                if pos is not None and self._user_ring[pos] < 0:
                    self._user_ring[pos] = ring_pos
        if scores.transactions:
            for s in scores.transactions:
                pos = self._txn_pos.get(s.key)
                if pos is not None:
                    self._txn_score[pos] = s.score

    def _build_labels(self, snapshot: Snapshot) -> None:
        n_users = len(self._user_pos)
        # -1 unlabelled, 0 legit, 1 fraud; plus the source of the winning verdict.
        self._user_label = np.full(n_users, -1, dtype=np.int8)
        self._user_label_source: dict[int, str] = {}
        labels = snapshot.user_labels
        if len(labels):
            idx = np.asarray(labels.index, dtype=np.int64)
            self._user_label[idx] = np.asarray(labels.is_fraud, dtype=np.int8)
            self._user_label_source = {int(i): str(s) for i, s in zip(idx.tolist(), labels.source.tolist())}

    def _build_shares(self, snapshot: Snapshot) -> None:
        """Per device and per IP: how many distinct users, high-tier users, fraud-labelled users
        and high-tier users without a fraud label touch it, and each user's devices and IPs."""
        is_high = (self._user_tier == Tier.HIGH.rank).astype(np.float64)
        is_fraud = (self._user_label == 1).astype(np.float64)
        self._share: dict[NodeType, tuple[_Csr, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._high_unconfirmed: dict[NodeType, np.ndarray] = {}
        n_users = len(self._user_pos)
        for node_type, links in ((NodeType.DEVICE, snapshot.user_device), (NodeType.IP, snapshot.user_ip)):
            n = len(self._keys[node_type])
            src = np.asarray(links.src, dtype=np.int64)
            dst = np.asarray(links.dst, dtype=np.int64)
            users = np.bincount(dst, minlength=n).astype(np.int64)
            high = np.bincount(dst, weights=is_high[src], minlength=n).astype(np.int64)
            fraud = np.bincount(dst, weights=is_fraud[src], minlength=n).astype(np.int64)
            self._share[node_type] = (_Csr.build(src, dst, n_users), users, high, fraud)
            unconfirmed = (is_high * (1.0 - is_fraud))[src]
            self._high_unconfirmed[node_type] = np.bincount(dst, weights=unconfirmed, minlength=n).astype(np.int64)
        self._identifier_pos = {t: {k: i for i, k in enumerate(self._keys[t].tolist())} for t in (NodeType.DEVICE, NodeType.IP)}
        # The highest-scoring ring that shares each device / IP (rings are listed best first).
        self._identifier_ring: dict[NodeType, dict[str, int]] = {NodeType.DEVICE: {}, NodeType.IP: {}}
        for ring in self._ring_listing:
            pos = self._ring_pos[ring.ring_id]
            for node_type, keys in ((NodeType.DEVICE, ring.shared_devices), (NodeType.IP, ring.shared_ips)):
                for key in keys:
                    self._identifier_ring[node_type].setdefault(key, pos)

    def _build_activity(self, snapshot: Snapshot) -> None:
        """Per user: first and last event time and the most payments in one clock hour."""
        n_users = len(self._user_pos)
        txns = snapshot.transactions
        user = np.asarray(txns.user, dtype=np.int64)
        ts = np.asarray(txns.ts, dtype=np.float64)
        self._first_ts = np.full(n_users, np.inf)
        self._last_ts = np.full(n_users, -np.inf)
        np.minimum.at(self._first_ts, user, ts)
        np.maximum.at(self._last_ts, user, ts)
        self._busiest_hour = np.zeros(n_users, dtype=np.int64)
        paid = np.asarray(txns.event) == EVENT_KINDS.index(EventKind.PAYMENT.value)
        if paid.any():
            hour = np.floor(ts[paid] / _HOUR).astype(np.int64)
            hour -= hour.min()
            width = int(hour.max()) + 1
            keys, counts = np.unique(user[paid] * width + hour, return_counts=True)
            np.maximum.at(self._busiest_hour, keys // width, counts)

    def _build_graph(self, snapshot: Snapshot) -> None:
        """One undirected CSR over every node type (users, devices, IPs, merchants, rings)."""
        sizes = [len(self._keys[t]) if t is not NodeType.RING else len(self._rings) for t in _NODE_ORDER]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        off = {t: int(self._offsets[i]) for i, t in enumerate(_NODE_ORDER)}
        txns = snapshot.transactions
        has_merchant = np.asarray(txns.merchant, dtype=np.int64) >= 0
        txn_rows = np.flatnonzero(has_merchant).astype(np.int64)
        ring_src = [self._user_pos[m] for r in self._rings for m in r.members if m in self._user_pos]
        ring_dst = [i for i, r in enumerate(self._rings) for m in r.members if m in self._user_pos]
        parts: list[tuple[EdgeType, np.ndarray, np.ndarray, np.ndarray]] = [
            (
                EdgeType.TRANSACTED,
                np.asarray(txns.user, dtype=np.int64)[txn_rows] + off[NodeType.USER],
                np.asarray(txns.merchant, dtype=np.int64)[txn_rows] + off[NodeType.MERCHANT],
                txn_rows,
            ),
        ]
        for edge_type, links, s_type, d_type in (
            (EdgeType.USED_DEVICE, snapshot.user_device, NodeType.USER, NodeType.DEVICE),
            (EdgeType.USED_IP, snapshot.user_ip, NodeType.USER, NodeType.IP),
            (EdgeType.SEEN_AT, snapshot.device_ip, NodeType.DEVICE, NodeType.IP),
        ):
            src = np.asarray(links.src, dtype=np.int64) + off[s_type]
            parts.append((edge_type, src, np.asarray(links.dst, dtype=np.int64) + off[d_type], np.full(len(src), -1)))
        parts.append(
            (
                EdgeType.MEMBER_OF,
                np.asarray(ring_src, dtype=np.int64) + off[NodeType.USER],
                np.asarray(ring_dst, dtype=np.int64) + off[NodeType.RING],
                np.full(len(ring_src), -1),
            )
        )
        self._e_src = np.concatenate([p[1] for p in parts]).astype(np.int64)
        self._e_dst = np.concatenate([p[2] for p in parts]).astype(np.int64)
        self._e_type = np.concatenate(
            [np.full(len(p[1]), _EDGE_ORDER.index(p[0]), dtype=np.int8) for p in parts]
        )
        self._e_txn = np.concatenate([p[3] for p in parts]).astype(np.int64)
        self._txn_ids = np.asarray(txns.txn_id, dtype=object)
        # Rank of each edge's txn_id among all txn ids (-1: not a transaction), so parallel
        # payment edges sort by txn_id.
        txn_rank = np.empty(len(txns), dtype=np.int64)
        txn_rank[np.argsort(self._txn_ids, kind="stable")] = np.arange(len(txns), dtype=np.int64)
        is_txn = self._e_txn >= 0
        self._e_rank = np.full(len(self._e_txn), -1, dtype=np.int64)
        self._e_rank[is_txn] = txn_rank[self._e_txn[is_txn]]
        n_edges = len(self._e_src)
        both_src = np.concatenate([self._e_src, self._e_dst])
        both_dst = np.concatenate([self._e_dst, self._e_src])
        self._graph = _Csr.build(both_src, both_dst, int(self._offsets[-1]))
        # Each edge sits twice in the CSR; the copy stored at its source is the one reported.
        self._entry_edge = self._graph.order % max(n_edges, 1)
        self._entry_forward = self._graph.order < n_edges

    # -- reads ----------------------------------------------------------------------------

    @property
    def scored(self) -> bool:
        return self.model_version is not None

    @property
    def num_rings(self) -> int:
        return len(self._rings)

    def account(self, user_id: str) -> AccountView:
        """Score, tier, ring, devices, IPs and reasons for one account.

        Raises:
            NotFoundError: the snapshot has no such account.
        """
        pos = self._position(user_id)
        tier = self._tier_at(pos)
        ring_pos = int(self._user_ring[pos])
        score = float(self._user_score[pos])
        dev_csr = self._share[NodeType.DEVICE][0]
        ip_csr = self._share[NodeType.IP][0]
        return AccountView(
            user_id=user_id,
            score=None if math.isnan(score) else score,
            tier=tier,
            ring_id=self._rings[ring_pos].ring_id if ring_pos >= 0 else None,
            model_version=self.model_version,
            mode=self.mode,
            reasons=self._reasons(pos),
            devices=tuple(self._keys[NodeType.DEVICE][dev_csr.neighbours(pos)].tolist()),
            ips=tuple(self._keys[NodeType.IP][ip_csr.neighbours(pos)].tolist()),
        )

    def subgraph(self, user_id: str, hops: int, limit: int = 500, *, min_tier: Tier | None = None) -> Subgraph:
        """Nodes within ``hops`` of an account (breadth first, at most ``limit`` nodes) and the
        edges among them (at most ``EDGES_PER_NODE * limit``). ``truncated`` says a cap was hit.
        With ``min_tier`` the walk neither enters nor passes through other accounts below that
        tier (unscored ones included), as the Browser query ``account_subgraph`` does.

        Raises:
            ValidationError: ``hops`` outside 1..3 or ``limit`` < 1.
            NotFoundError: no such account.
        """
        check_walk(hops, limit)
        return self._walk(self._position(user_id) + int(self._offsets[0]), (NodeType.USER, user_id), hops, limit, min_tier)

    def identifier_subgraph(
        self, node_type: NodeType, key: str, hops: int, limit: int = 500, *, min_tier: Tier | None = None
    ) -> Subgraph | None:
        """``subgraph`` around a device, IP or merchant (``hops`` 0..3; 0: the node alone), or
        None when the snapshot does not hold it."""
        order = _NODE_ORDER.index(node_type)
        keys = self._keys[node_type]
        pos = int(np.searchsorted(keys, key)) if len(keys) else 0
        if pos >= len(keys) or keys[pos] != key:
            return None
        return self._walk(pos + int(self._offsets[order]), (node_type, key), hops, limit, min_tier)

    def _walk(
        self, center: int, center_key: tuple[NodeType, str], hops: int, limit: int, min_tier: Tier | None
    ) -> Subgraph:
        graph = self._graph
        selected = np.zeros(int(self._offsets[-1]), dtype=bool)
        blocked = np.zeros_like(selected)
        if min_tier is not None:
            users = slice(int(self._offsets[0]), int(self._offsets[0]) + len(self._user_pos))
            blocked[users] = self._user_tier < min_tier.rank
            blocked[center] = False
        selected[center] = True
        order = [center]  # by (depth, node id): node ids follow (type, key) order
        frontier = [center]
        truncated = False
        for depth in range(hops):
            nxt: list[int] = []
            for node in frontier:
                room = limit - len(order) - len(nxt)
                if room <= 0:
                    break
                nbrs = graph.neighbours(node)
                # unique: parallel edges (many payments to one merchant) repeat a neighbour
                fresh = np.unique(nbrs[~selected[nbrs] & ~blocked[nbrs]])[:room]
                selected[fresh] = True
                nxt.extend(fresh.tolist())
            nxt.sort()
            order.extend(nxt)
            if len(order) >= limit:
                # The cap stopped the walk: truncated if any node it did not finish expanding
                # still has an unseen neighbour.
                pending = frontier + (nxt if depth + 1 < hops else [])
                truncated = self._has_unselected_neighbour(pending, selected)
                break
            frontier = nxt
        nodes = self._nodes(order)
        names = {g: (n.node_type, n.key) for g, n in zip(order, nodes)}
        edges, edges_cut = self._edges_among(order, names, selected, EDGES_PER_NODE * limit)
        return Subgraph(
            center=center_key,
            hops=hops,
            nodes=nodes,
            edges=edges,
            truncated=truncated or edges_cut,
        )

    def rings(self, *, min_tier: Tier | None = None, min_size: int = 0) -> list[Ring]:
        """Rings of the last scoring run, highest score first, filtered by tier and size.

        Raises:
            ValidationError: ``min_size`` < 0.
        """
        if min_size < 0:
            raise ValidationError("min_size", min_size, "must be at least 0")
        floor = min_tier.rank if min_tier is not None else 0
        return [r for r in self._ring_listing if r.tier.rank >= floor and r.size >= min_size]

    def ring(self, ring_id: str) -> Ring:
        """One ring by id. Raises NotFoundError when the last scoring run has no such ring."""
        pos = self._ring_pos.get(ring_id)
        if pos is None:
            raise NotFoundError("ring", ring_id)
        return self._rings[pos]

    def find_ring(self, ring_id: str) -> Ring | None:
        pos = self._ring_pos.get(ring_id)
        return self._rings[pos] if pos is not None else None

    def event(self, txn_id: str) -> Event | None:
        """The snapshot's event with this ``txn_id``, or None."""
        row = self._txn_pos.get(txn_id)
        if row is None:
            return None
        t = self._txns

        def key(node_type: NodeType, column: np.ndarray) -> str | None:
            i = int(column[row])
            return None if i < 0 else str(self._keys[node_type][i])

        amount = float(t.amount[row])
        return Event(
            txn_id=txn_id,
            ts=float(t.ts[row]),
            user_id=str(self._keys[NodeType.USER][int(t.user[row])]),
            device_id=key(NodeType.DEVICE, t.device),
            ip=key(NodeType.IP, t.ip),
            merchant_id=key(NodeType.MERCHANT, t.merchant),
            amount=None if math.isnan(amount) else amount,
            currency=t.currency[row],
            event=EventKind(EVENT_KINDS[int(t.event[row])]),
            status=t.status[row],
        )

    def has_account(self, user_id: str) -> bool:
        return user_id in self._user_pos

    def identifier(self, node_type: NodeType, key: str, *, excluding: str | None = None) -> IdentifierFacts | None:
        """What the snapshot knows about one device or IP: how many accounts use it, how many of
        them are confirmed fraud and how many more high tier, and the ring (highest score) that
        shares it. ``excluding``: an account left out of those counts when the snapshot has it on
        the identifier (an account new to it is in none of them). None when the snapshot has no
        such identifier."""
        pos = self._identifier_pos[node_type].get(key)
        if pos is None:
            return None
        csr, users, _, fraud = self._share[node_type]
        accounts, high, fraud_n = int(users[pos]), int(self._high_unconfirmed[node_type][pos]), int(fraud[pos])
        user = self._user_pos.get(excluding) if excluding is not None else None
        if user is not None and csr.has(user, pos):
            is_fraud = int(self._user_label[user] == 1)
            accounts -= 1
            fraud_n -= is_fraud
            high -= int(self._user_tier[user] == Tier.HIGH.rank) * (1 - is_fraud)
        ring = self._identifier_ring[node_type].get(key)
        return IdentifierFacts(
            node_type=node_type,
            key=key,
            accounts=accounts,
            high=high,
            fraud=fraud_n,
            ring=self._rings[ring] if ring is not None else None,
        )

    # -- helpers --------------------------------------------------------------------------

    def _position(self, user_id: str) -> int:
        pos = self._user_pos.get(user_id)
        if pos is None:
            raise NotFoundError("account", user_id)
        return pos

    def _tier_at(self, pos: int) -> Tier | None:
        rank = int(self._user_tier[pos])
        return _TIERS_BY_RANK[rank] if rank != _NO_TIER else None

    def _strongest_share(self, pos: int, node_type: NodeType) -> _Share | None:
        """The identifier of ``node_type`` this user shares with the most risky accounts."""
        csr, users, high, fraud = self._share[node_type]
        ids = csr.neighbours(pos)
        if ids.size == 0:
            return None
        others = users[ids] - 1
        high_others = high[ids] - int(self._user_tier[pos] == Tier.HIGH.rank)
        fraud_others = fraud[ids] - int(self._user_label[pos] == 1)
        # Most risky neighbours, then most neighbours; lexsort's last key is the primary one.
        best = int(np.lexsort((-others, -fraud_others, -high_others))[0])
        if others[best] <= 0:
            return None
        return _Share(
            key=str(self._keys[node_type][ids[best]]),
            others=int(others[best]),
            high_others=int(high_others[best]),
            fraud_others=int(fraud_others[best]),
        )

    def _reasons(self, pos: int) -> tuple[str, ...]:
        """Short sentences about the facts behind a score, most relevant first (DESIGN §6)."""
        found: list[tuple[float, str]] = []
        if not self.scored:
            found.append((1000.0, NOT_SCORED))
        label = int(self._user_label[pos])
        if label >= 0:
            source = self._user_label_source.get(pos, "unknown")
            found.append((100.0 if label == 1 else 95.0, verdict(label == 1, source)))
        ring_pos = int(self._user_ring[pos])
        if ring_pos >= 0:
            ring = self._rings[ring_pos]
            found.append((90.0 + ring.tier.rank, ring_member(ring)))
        for node_type, bonus in ((NodeType.DEVICE, 2.0), (NodeType.IP, 1.0)):
            share = self._strongest_share(pos, node_type)
            if share is None:
                continue
            text = account_shares(
                node_type, share.key, share.others, high=share.high_others, fraud=share.fraud_others
            )
            risky = share.high_others > 0 or share.fraud_others > 0
            found.append(((60.0 if risky else 30.0) + bonus, text))
        busiest = int(self._busiest_hour[pos])
        if busiest >= 3:
            found.append((55.0 if busiest >= 10 else 25.0, busiest_hour(busiest)))
        first, last = float(self._first_ts[pos]), float(self._last_ts[pos])
        if math.isfinite(first):
            days = (last - first) / _DAY
            found.append((20.0 if days < 7 else 5.0, active_for(days)))
        found.sort(key=lambda item: -item[0])  # stable: equal weights keep insertion order
        return tuple(text for _, text in found[:MAX_REASONS])

    def _nodes(self, gids: list[int]) -> tuple[SubgraphNode, ...]:
        """Subgraph nodes for global ids, with write-back properties on users and rings.
        Batched: one searchsorted and array gathers rather than work per node."""
        ids = np.asarray(gids, dtype=np.int64)
        type_idx = np.searchsorted(self._offsets, ids, side="right") - 1
        local = ids - self._offsets[type_idx]
        out: list[SubgraphNode] = []
        for t, pos in zip(type_idx.tolist(), local.tolist()):
            node_type = _NODE_ORDER[t]
            if node_type is NodeType.USER:
                score = float(self._user_score[pos])
                ring_pos = int(self._user_ring[pos])
                out.append(
                    SubgraphNode(
                        node_type=node_type,
                        key=self._keys[node_type][pos],
                        risk_score=None if math.isnan(score) else score,
                        risk_tier=self._tier_at(pos),
                        ring_id=self._rings[ring_pos].ring_id if ring_pos >= 0 else None,
                    )
                )
            elif node_type is NodeType.RING:
                ring = self._rings[pos]
                out.append(SubgraphNode(node_type, ring.ring_id, ring.score, ring.tier, ring.ring_id))
            else:
                out.append(SubgraphNode(node_type=node_type, key=self._keys[node_type][pos]))
        return tuple(out)

    def _has_unselected_neighbour(self, nodes: list[int], selected: np.ndarray) -> bool:
        return any(bool((~selected[self._graph.neighbours(n)]).any()) for n in nodes)

    def _edges_among(
        self, nodes: list[int], names: dict[int, tuple[NodeType, str]], selected: np.ndarray, cap: int
    ) -> tuple[tuple[SubgraphEdge, ...], bool]:
        """Edges whose both ends are selected, each once (the copy in its source's CSR row),
        ordered by (type, source, target, txn_id); at most ``cap``, the flag says more existed."""
        graph = self._graph
        found: list[np.ndarray] = []
        for node in nodes:
            lo, hi = graph.span(node)
            keep = self._entry_forward[lo:hi] & selected[graph.indices[lo:hi]]
            found.append(self._entry_edge[lo:hi][keep])
        eids = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        eids = eids[np.lexsort((self._e_rank[eids], self._e_dst[eids], self._e_src[eids], self._e_type[eids]))]
        cut = eids.size > cap
        return self._edges(eids[:cap], names), cut

    def _edges(self, eids: np.ndarray, names: dict[int, tuple[NodeType, str]]) -> tuple[SubgraphEdge, ...]:
        """Subgraph edges for edge ids; ``names`` gives (type, key) of every endpoint."""
        rows = self._e_txn[eids]
        has_txn = rows >= 0
        safe_rows = np.where(has_txn, rows, 0)
        scores = np.where(has_txn, self._txn_score[safe_rows] if len(self._txn_score) else np.nan, np.nan)
        txn_ids = self._txn_ids[safe_rows] if len(self._txn_ids) else np.full(len(eids), None, dtype=object)
        out: list[SubgraphEdge] = []
        for etype, src, dst, txn, txn_id, score in zip(
            self._e_type[eids].tolist(),
            self._e_src[eids].tolist(),
            self._e_dst[eids].tolist(),
            has_txn.tolist(),
            txn_ids.tolist(),
            scores.tolist(),
        ):
            out.append(
                SubgraphEdge(
                    edge_type=_EDGE_ORDER[etype],
                    source=names[src],
                    target=names[dst],
                    txn_id=txn_id if txn else None,
                    risk_score=None if math.isnan(score) else score,
                )
            )
        return tuple(out)
