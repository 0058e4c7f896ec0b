"""Inductive scoring: one account, or one unseen checkout event, from its k-hop neighbourhood.

GraphSAGE with k layers computes a node's output from the input features of the nodes within k
hops and the edges into the nodes within k - 1 hops; nothing else in the graph matters. An
``InductiveScorer`` holds what a serving index holds (the standardised node features of the
whole snapshot and its adjacency, both built exactly as ``gnn.model.build_graph_input`` builds
them) and, per call, cuts that neighbourhood out and runs the shipped model on it alone.

* ``score_account`` (a known account): the same score as ``gnn.scoring.score_snapshot`` on the
  same graph, up to float32 summation order (tested with ``np.allclose``).
* ``score_event`` (an event whose user, device, IP or merchant may be new): the event is added to
  the neighbourhood (new nodes, new user–device / user–IP / user–merchant / device–IP edges) and
  the features of the nodes it touches (its user, device, IP, merchant, and the event's own
  transaction features) are recomputed with ``gnn.features.build_features`` on a small snapshot of
  every stored event of those nodes plus the new one, so they follow the batch definitions
  exactly. **Approximation:** features of nodes the event does not touch are read from the
  serving snapshot and not recomputed, although the event changes a few of them (e.g. the other
  accounts on the event's device now share it with one more account: their
  ``max_device_users_log`` is stale by one). These are 2-hop effects, damped by the mean
  aggregation; the event's own score reads them only through its neighbours' embeddings.

**Incremental updates.** ``add_events`` folds events that arrived after the snapshot into the
scorer's graph without a rebuild: new nodes get ids past the snapshot's, new edges join the
adjacency, and the features of every node an event touches are recomputed (as above, from all
of that node's stored and added events). Later calls see them: a second payment from a new
device is scored with the first one counted. The scorer is not locked: the API calls
``add_events`` and the ``score_*`` methods from one thread (its event loop).

**Layer-1 cache.** The first message-passing layer of a node reads the encoded inputs
``relu(encode(x))`` of its in-neighbours, and a hub (a busy merchant, whose sources are every
account that paid there) makes that most of a call's work. The scorer keeps, per node, its encoded
input and, per relation and destination, the sum and count of its sources' encoded inputs;
``add_events`` updates both (a touched node's change is added to its out-neighbours' sums, a new
edge adds its source), so a call runs layer 1 from the sums for the nodes within k - 1 hops and the
remaining layers on that smaller neighbourhood. A pending event's own feature changes and new edges
are applied to the sums of that call only. Equal to the direct computation up to summation order.

The event's transaction score needs the final embeddings of the event's merchant, device and IP
as well, so its neighbourhood is k hops around all four; a popular merchant makes that the
largest part of the call (see ``bench/explain_bench.py``). Unsupervised artefacts have no
network to run, and artefacts whose model selection shipped a tree scorer score with trees over
neighbour aggregates: ``InductiveScorer.build`` raises ``ModelError`` for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from gnn.artefact import SUPERVISED, ModelArtefact
from gnn.calibrate import assign_tiers
from gnn.features import NODE_TYPES, FeatureSet, build_features
from gnn.model import RELATIONS, GraphInput, build_graph_input
from gnn.scoring import load_model
from graph.errors import ModelError, NotFoundError, ValidationError
from graph.types import EVENT_KINDS, Event, LabelTable, LinkTable, NodeType, Snapshot, Tier, TransactionTable

__all__ = ["AccountScore", "EventScore", "InductiveScorer"]

Relation = tuple[str, str, str]
#: Model node-type name -> the event column that names it.
_EVENT_KEY = {"user": "user_id", "device": "device_id", "ip": "ip", "merchant": "merchant_id"}


@dataclass(frozen=True, slots=True)
class AccountScore:
    """A known account's score from its k-hop neighbourhood; ``nodes``/``edges`` the size of the
    neighbourhood the model ran on past layer 1 (k - 1 hops; layer 1 comes from the cache)."""

    user_id: str
    score: float
    tier: Tier
    model_version: str
    nodes: int
    edges: int


@dataclass(frozen=True, slots=True)
class EventScore:
    """Scores of one unseen event: its account after the event (``account_score``) and the event
    itself as a transaction (``txn_score``). ``new`` lists the node types the snapshot did not
    know (e.g. ``("user", "device")``); ``nodes``/``edges`` as in ``AccountScore``."""

    user_id: str
    account_score: float
    account_tier: Tier
    txn_score: float
    txn_tier: Tier
    model_version: str
    new: tuple[str, ...]
    nodes: int
    edges: int


@dataclass(frozen=True, slots=True)
class _Csr:
    """Rows ``indices[indptr[v]:indptr[v + 1]]`` of node ``v``."""

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def build(cls, key: np.ndarray, value: np.ndarray, n: int) -> _Csr:
        order = np.argsort(key, kind="stable")
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=n)[:n], out=indptr[1:])
        return cls(indptr=indptr, indices=value[order].astype(np.int64))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner row, entry) pairs for every entry of ``rows``; rows >= n (new nodes) have none."""
        rows = rows[rows < self.indptr.size - 1]
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        owner = np.repeat(rows, lengths)
        offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return owner, self.indices[np.repeat(starts, lengths) + offs]


@dataclass(slots=True)
class _Hood:
    """A neighbourhood: per node type the sorted global ids and each node's hop distance from
    the roots, and per relation the (source, destination) local index pairs of the edges into
    nodes closer than k - 1 hops. ``x`` is unused (empty): layer 1 reads the layer-1 cache."""

    ids: dict[str, np.ndarray]
    depth: dict[str, np.ndarray]
    x: dict[str, torch.Tensor]
    edges: dict[Relation, tuple[torch.Tensor, torch.Tensor]]

    @property
    def size(self) -> tuple[int, int]:
        return sum(int(v.size) for v in self.ids.values()), sum(int(e[0].shape[0]) for e in self.edges.values())


@dataclass(slots=True)
class _Delta:
    """What ``add_events`` added since the snapshot: new node ids per type (past the snapshot's),
    the events with the node ids they touch, and the new edges (both directions) as destination
    -> sources per relation (``arrays``: the same as (source, destination) arrays, built on
    demand for lookups of many destinations at once)."""

    pos: dict[str, dict[str, int]] = field(default_factory=lambda: {t: {} for t in NODE_TYPES})
    events: list[tuple[Event, dict[str, int]]] = field(default_factory=list)
    by_node: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    into: dict[Relation, dict[int, list[int]]] = field(default_factory=dict)
    edge_set: set[tuple[Relation, int, int]] = field(default_factory=set)
    txn_ids: set[str] = field(default_factory=set)
    arrays: dict[Relation, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


#: Destination sets at most this large look up added edges one by one (else with ``np.isin``).
_FEW = 64


class InductiveScorer:
    """Scores from k-hop neighbourhoods (see the module docstring). Build once per snapshot and
    artefact with :meth:`build`; ``add_events`` folds later events in. Scoring calls only read
    (torch runs in inference mode) and may run in parallel with each other, not with
    ``add_events``."""

    def __init__(self) -> None:  # filled by build()
        self.model_version = ""

    @classmethod
    def build(cls, artefact: ModelArtefact, snapshot: Snapshot, *, features: FeatureSet | None = None) -> InductiveScorer:
        """Prepare the standardised features, the model's adjacency and per-node event rows.

        Args:
            artefact: a supervised artefact (its network, normalisation and thresholds).
            snapshot: the graph the serving index holds.
            features: ``build_features(snapshot)`` (raw); computed when ``None``.

        Raises:
            ModelError: the artefact is unsupervised or ships a tree scorer, its features differ
                from this code's, or its weights do not load.
        """
        if artefact.mode != SUPERVISED:
            raise ModelError(f"artefact {artefact.version} is {artefact.mode!r}: inductive scoring needs GraphSAGE weights")
        # Artefacts whose selection shipped a tree family score with trees over neighbour
        # aggregates, which this module does not compute per request (yet).
        scorer = str(getattr(artefact, "scorer", "graphsage"))
        if scorer != "graphsage":
            raise ModelError(f"artefact {artefact.version} ships the {scorer!r} scorer: inductive scoring covers GraphSAGE only")
        self = cls()
        self._artefact = artefact
        self.model_version = artefact.version
        self._model = load_model(artefact, "cpu")
        self.layers = int(self._model.config.layers)
        raw = features if features is not None else build_features(snapshot)
        if {k: tuple(v) for k, v in artefact.feature_names.items()} != raw.names:
            raise ModelError(f"artefact {artefact.version} was trained on other features; retrain the model (`ringwatch train`)")
        g = build_graph_input(snapshot, artefact.normalisation.apply(raw))
        self._x = {t: g.data[t].x.numpy() for t in NODE_TYPES}
        self._n = {t: int(self._x[t].shape[0]) for t in NODE_TYPES}
        # In-adjacency per relation: the sources that send messages to each destination node.
        self._in: dict[Relation, _Csr] = {}
        for rel in RELATIONS:
            ei = g.data[rel].edge_index.numpy()
            self._in[rel] = _Csr.build(ei[1], ei[0], self._n[rel[2]])
        self._snapshot = snapshot
        self._pos = {t: {k: i for i, k in enumerate(snapshot.nodes[nt].tolist())} for t, nt in NODE_TYPES.items()}
        t = snapshot.transactions
        rows = np.arange(len(t), dtype=np.int64)
        self._rows = {}
        for name, col in (("user", t.user), ("device", t.device), ("ip", t.ip), ("merchant", t.merchant)):
            col = col.astype(np.int64)
            ok = col >= 0
            self._rows[name] = _Csr.build(col[ok], rows[ok], self._n[name])
        self._txn_ids = frozenset(t.txn_id.tolist())
        self._delta = _Delta()
        self._last_touch: tuple[Event, int, dict[str, dict[int, np.ndarray]]] | None = None
        self._build_layer1_cache(g)
        return self

    def _build_layer1_cache(self, g: GraphInput) -> None:
        """Encoded inputs per node and, per relation, the sum and count of the sources' encoded
        inputs per destination (see "Layer-1 cache" in the module docstring)."""
        with torch.inference_mode():
            h0 = {t: torch.relu(self._model.encode[t](torch.from_numpy(self._x[t]))) for t in NODE_TYPES}
        self._count = dict(self._n)  # nodes with rows: the snapshot's, then the added ones
        self._h0 = {t: h0[t].numpy().copy() for t in NODE_TYPES}
        self._s1: dict[Relation, np.ndarray] = {}
        self._deg: dict[Relation, np.ndarray] = {}
        for rel in RELATIONS:
            src, dst = g.data[rel].edge_index
            n = self._n[rel[2]]
            self._s1[rel] = torch.zeros(n, h0[rel[0]].shape[1]).index_add_(0, dst, h0[rel[0]][src]).numpy()
            self._deg[rel] = np.bincount(dst.numpy(), minlength=n)[:n].astype(np.float32)

    def _ensure_rows(self, name: str, gid: int) -> None:
        """Room for node ``gid`` of type ``name`` in the layer-1 cache (zero rows; doubling)."""
        self._count[name] = max(self._count[name], gid + 1)
        cap = self._h0[name].shape[0]
        if gid < cap:
            return
        size = max(gid + 1, 2 * cap, 16)
        self._h0[name] = _grown(self._h0[name], size)
        for rel in RELATIONS:
            if rel[2] == name:
                self._s1[rel] = _grown(self._s1[rel], size)
                self._deg[rel] = _grown(self._deg[rel], size)

    @property
    def added_events(self) -> int:
        """How many events ``add_events`` folded in since the snapshot."""
        return len(self._delta.events)

    def knows_account(self, user_id: str) -> bool:
        """Whether the snapshot or an added event has this account."""
        return user_id in self._pos["user"] or user_id in self._delta.pos["user"]

    def touched_since_snapshot(self, user_id: str) -> bool:
        """Whether an added event involves this account (its batch score may be stale)."""
        gid = self._gid("user", user_id)
        return gid is not None and ("user", gid) in self._delta.by_node

    def add_events(self, events: list[Event]) -> int:
        """Fold ``events`` into the graph (see the module docstring), in the order given; an
        event whose ``txn_id`` the snapshot or an earlier call holds is skipped. Returns how
        many were added.

        Raises:
            ValidationError: an event's ``user_id`` is empty (nothing is added from it on).
        """
        added = 0
        d = self._delta
        for event in events:
            if event.txn_id in self._txn_ids or event.txn_id in d.txn_ids:
                continue
            if not event.user_id:
                raise ValidationError("user_id", event.user_id, "must not be empty")
            gid, _ = self._event_gids(event)
            last = self._last_touch
            if last is not None and last[0] == event and last[1] == len(d.events):
                override = last[2]  # score_event just computed them for this event
            else:
                override, _ = self._touched_features(event, gid)
            self._last_touch = None
            for name, g in gid.items():
                key = getattr(event, _EVENT_KEY[name])
                if g >= self._n[name] and key not in d.pos[name]:
                    d.pos[name][key] = g
                self._ensure_rows(name, g)
            # Layer-1 cache: first the touched nodes' new inputs reach their existing
            # out-neighbours, then the new edges add their (new) sources.
            with torch.inference_mode():
                for name, vecs in override.items():
                    for g, vec in vecs.items():
                        h0 = torch.relu(self._model.encode[name](torch.from_numpy(np.asarray(vec, dtype=np.float32)))).numpy()
                        dh = h0 - self._h0[name][g]
                        for rel in RELATIONS:
                            if rel[0] == name:
                                out = self._sources(_reverse(rel), np.array([g], dtype=np.int64), {})[0]
                                np.add.at(self._s1[rel], out, dh)
                        self._h0[name][g] = h0
            for rel, (src, dst) in self._new_edges(gid).items():
                a, b = int(src[0]), int(dst[0])
                d.into.setdefault(rel, {}).setdefault(b, []).append(a)
                d.edge_set.add((rel, a, b))
                d.arrays.pop(rel, None)
                self._s1[rel][b] += self._h0[rel[0]][a]
                self._deg[rel][b] += 1.0
            d.events.append((event, gid))
            for name, g in gid.items():
                d.by_node.setdefault((name, g), []).append(len(d.events) - 1)
            d.txn_ids.add(event.txn_id)
            added += 1
        return added

    # -- public calls ---------------------------------------------------------------------

    def score_account(self, user_id: str) -> AccountScore:
        """The account's score from its k-hop neighbourhood alone (equal to batch scoring).

        Raises:
            NotFoundError: the snapshot has no such account.
        """
        pos = self._gid("user", user_id)
        if pos is None:
            raise NotFoundError("account", user_id)
        hood = self._neighbourhood({"user": np.array([pos])}, {})
        with torch.inference_mode():
            h = self._embed_roots(hood, {}, {})
            logit = self._model.user_head(h["user"][0]).squeeze(-1)
        score = self._prob(logit, self._model.config.user_prior_shift)
        nodes, edges = hood.size
        return AccountScore(user_id, score, self._tier(score, account=True), self.model_version, nodes, edges)

    def score_event(self, event: Event) -> EventScore:
        """Score an event that the snapshot does not hold: its account (as it stands with the
        event) and the event as a transaction. Its user, device, IP and merchant may be new.

        Raises:
            ValidationError: ``event.user_id`` is empty.
        """
        if not event.user_id:
            raise ValidationError("user_id", event.user_id, "must not be empty")
        gid, new = self._event_gids(event)
        x_event, txn_x = self._touched_features(event, gid)
        self._last_touch = (event, len(self._delta.events), x_event)
        extra = self._new_edges(gid)
        roots = {name: np.array([g]) for name, g in gid.items()}
        hood = self._neighbourhood(roots, extra)
        model, cfg = self._model, self._model.config
        idx = {name: torch.tensor([0 if name in gid else -1]) for name in NODE_TYPES}  # one root per type
        g = GraphInput(
            data=None,  # type: ignore[arg-type]  # the edge head reads only the index tensors
            txn_x=torch.from_numpy(txn_x[None, :]),
            txn_user=idx["user"],
            txn_merchant=idx["merchant"],
            txn_device=idx["device"],
            txn_ip=idx["ip"],
        )
        with torch.inference_mode():
            h = self._embed_roots(hood, x_event, extra)
            user_logit = model.user_head(h["user"][0]).squeeze(-1)
            txn_logit = model.txn_logits(h, g)[0]
        account = self._prob(user_logit, cfg.user_prior_shift)
        txn = self._prob(txn_logit, cfg.txn_prior_shift)
        nodes, edges = hood.size
        return EventScore(
            user_id=event.user_id,
            account_score=account,
            account_tier=self._tier(account, account=True),
            txn_score=txn,
            txn_tier=self._tier(txn, account=False),
            model_version=self.model_version,
            new=tuple(new),
            nodes=nodes,
            edges=edges,
        )

    def _gid(self, name: str, key: str) -> int | None:
        """The node id of ``key``: the snapshot's position, else the id ``add_events`` gave it."""
        pos = self._pos[name].get(key)
        return pos if pos is not None else self._delta.pos[name].get(key)

    def _event_gids(self, event: Event) -> tuple[dict[str, int], list[str]]:
        """The node id of the event's user, device, IP and merchant (absent ones left out), and
        the types that neither the snapshot nor an added event knows (they get the next id)."""
        gid: dict[str, int] = {}
        new: list[str] = []
        for name, attr in _EVENT_KEY.items():
            key = getattr(event, attr)
            if key is None or key == "":
                continue
            pos = self._gid(name, key)
            if pos is None:
                pos = self._n[name] + len(self._delta.pos[name])  # one past every known node
                new.append(name)
            gid[name] = pos
        return gid, new

    # -- the neighbourhood ----------------------------------------------------------------

    def _sources(self, rel: Relation, dst: np.ndarray, extra: dict[Relation, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """(source, destination) pairs of ``rel`` into the nodes ``dst``: the snapshot's edges,
        the added events' and ``extra`` (a pending event's)."""
        owner, src = self._in[rel].gather(dst)
        srcs, owners = [src], [owner]
        into = self._delta.into.get(rel)
        if into:
            if dst.size <= _FEW:
                for v in dst.tolist():
                    if (found := into.get(v)) is not None:
                        srcs.append(np.array(found, dtype=np.int64))
                        owners.append(np.full(len(found), v, dtype=np.int64))
            else:
                arrays = self._delta.arrays.get(rel)
                if arrays is None:
                    pairs = [(s, v) for v, ss in into.items() for s in ss]
                    arrays = self._delta.arrays[rel] = (np.array([p[0] for p in pairs], dtype=np.int64),
                                                        np.array([p[1] for p in pairs], dtype=np.int64))  # fmt: skip
                keep = np.isin(arrays[1], dst)
                srcs.append(arrays[0][keep])
                owners.append(arrays[1][keep])
        if rel in extra:
            es, ed = extra[rel]
            keep = np.isin(ed, dst)
            srcs.append(es[keep])
            owners.append(ed[keep])
        if len(srcs) == 1:
            return src, owner
        return np.concatenate(srcs), np.concatenate(owners)

    def _neighbourhood(self, roots: dict[str, np.ndarray], extra: dict[Relation, tuple[np.ndarray, np.ndarray]]) -> _Hood:
        """Nodes within k - 1 hops of ``roots`` and every edge into the nodes within k - 2 hops:
        what rounds 2..k of message passing read for the roots (round 1 comes from the layer-1
        cache). ``extra``: a pending event's new edges."""
        hops = self.layers - 1
        empty = np.zeros(0, dtype=np.int64)
        frontier = {t: np.unique(roots.get(t, empty)).astype(np.int64) for t in NODE_TYPES}
        seen = dict(frontier)
        levels = {t: [frontier[t]] for t in NODE_TYPES}
        for _ in range(hops):
            found: dict[str, list[np.ndarray]] = {t: [] for t in NODE_TYPES}
            for rel in RELATIONS:
                if frontier[rel[2]].size:
                    found[rel[0]].append(self._sources(rel, frontier[rel[2]], extra)[0])
            for t in NODE_TYPES:
                cand = np.unique(np.concatenate(found[t])) if found[t] else empty
                frontier[t] = np.setdiff1d(cand, seen[t], assume_unique=True)
                seen[t] = np.union1d(seen[t], frontier[t])
                levels[t].append(frontier[t])
        depth: dict[str, np.ndarray] = {}
        for t in NODE_TYPES:
            d = np.concatenate([np.full(lv.size, i, dtype=np.int64) for i, lv in enumerate(levels[t])])
            order = np.argsort(np.concatenate(levels[t]), kind="stable")
            depth[t] = d[order]
        edges: dict[Relation, tuple[torch.Tensor, torch.Tensor]] = {}
        for rel in RELATIONS:
            inner = seen[rel[2]][depth[rel[2]] < hops]
            src, dst = self._sources(rel, inner, extra) if inner.size else (empty, empty)
            edges[rel] = (
                torch.from_numpy(np.searchsorted(seen[rel[0]], src)),
                torch.from_numpy(np.searchsorted(seen[rel[2]], dst)),
            )
        return _Hood(ids=seen, depth=depth, x={}, edges=edges)

    def _layer1(
        self,
        hood: _Hood,
        x_event: dict[str, dict[int, np.ndarray]],
        extra: dict[Relation, tuple[np.ndarray, np.ndarray]],
    ) -> dict[str, torch.Tensor]:
        """Layer-1 outputs of every node of ``hood`` from the cache, with a pending event's
        changes (``x_event``: its touched nodes' new standardised features; ``extra``: its new
        edges) applied to this call's copy only."""
        model = self._model
        conv = model.convs[0]
        ids = hood.ids
        h0: dict[str, np.ndarray] = {}
        changed: dict[str, dict[int, np.ndarray]] = {t: {} for t in NODE_TYPES}  # new h0 - cached h0
        for t in NODE_TYPES:
            known = ids[t] < self._count[t]
            rows = np.zeros((ids[t].size, self._h0[t].shape[1]), dtype=np.float32)
            rows[known] = self._h0[t][ids[t][known]]
            for gid, vec in x_event.get(t, {}).items():
                new = torch.relu(model.encode[t](torch.from_numpy(np.asarray(vec, dtype=np.float32)))).numpy()
                old = self._h0[t][gid] if gid < self._count[t] else 0.0
                changed[t][gid] = new - old
                i = int(np.searchsorted(ids[t], gid))
                if i < ids[t].size and ids[t][i] == gid:
                    rows[i] = new
            h0[t] = rows
        out: dict[str, torch.Tensor | None] = {t: None for t in NODE_TYPES}
        for rel in RELATIONS:
            s_t, _, d_t = rel
            dst_ids = ids[d_t]
            if dst_ids.size == 0:  # nothing of this type within reach: skip its linear maps
                continue
            known = dst_ids < self._count[d_t]
            total = np.zeros((dst_ids.size, self._s1[rel].shape[1]), dtype=np.float32)
            total[known] = self._s1[rel][dst_ids[known]]
            deg = np.zeros(dst_ids.size, dtype=np.float32)
            deg[known] = self._deg[rel][dst_ids[known]]
            for gid, dh in changed[s_t].items():  # a touched node's existing out-edges
                if gid >= self._count[s_t]:
                    continue
                targets = self._sources(_reverse(rel), np.array([gid], dtype=np.int64), {})[0]
                pos = np.searchsorted(dst_ids, targets)
                ok = pos < dst_ids.size
                ok[ok] = dst_ids[pos[ok]] == targets[ok]
                np.add.at(total, pos[ok], dh)
            if rel in extra:  # the event's new edges, from its (new) sources
                es, ed = extra[rel]
                for a, b in zip(es.tolist(), ed.tolist(), strict=True):
                    j = int(np.searchsorted(dst_ids, b))
                    if j < dst_ids.size and dst_ids[j] == b:
                        i = int(np.searchsorted(ids[s_t], a))
                        total[j] += h0[s_t][i]
                        deg[j] += 1.0
            mean = torch.from_numpy(total / np.maximum(deg, np.float32(1.0))[:, None])
            sage = conv.convs[rel]  # type: ignore[index]
            o = sage.lin_l(mean) + sage.lin_r(torch.from_numpy(h0[d_t]))
            out[d_t] = o if out[d_t] is None else out[d_t] + o
        hidden = self._h0["user"].shape[1]
        return {t: torch.relu(v) if v is not None else torch.zeros(0, hidden) for t, v in out.items()}

    def _embed_roots(
        self,
        hood: _Hood,
        x_event: dict[str, dict[int, np.ndarray]],
        extra: dict[Relation, tuple[np.ndarray, np.ndarray]],
    ) -> dict[str, torch.Tensor]:
        """Final embeddings [n_roots_t, hidden] of the roots (depth 0) per node type.

        The same function as ``RingSAGE.embed`` in eval mode (``SAGEConv`` with mean
        aggregation: ``lin_l(mean of sources) + lin_r(self)`` per relation, summed per
        destination type, then ReLU; dropout is the identity), but layer ``l`` computes only
        the nodes within ``k - l`` hops, which is all the roots need. PyG's generic
        ``HeteroConv`` costs milliseconds of Python per call here; this costs a few
        tensor ops. Layer 1 comes from the layer-1 cache (``_layer1``), for every node of the
        (k - 1)-hop ``hood``. The equality with batch scoring is tested."""
        model, k = self._model, self.layers
        h = self._layer1(hood, x_event, extra)
        rows = {t: torch.arange(hood.ids[t].size) for t in NODE_TYPES}  # h[t][i] is node rows[t][i]
        for layer, conv in enumerate(model.convs[1:], start=2):
            keep = {t: torch.from_numpy(np.flatnonzero(hood.depth[t] <= k - layer)) for t in NODE_TYPES}
            pos = {t: torch.full((hood.ids[t].size,), -1, dtype=torch.long) for t in NODE_TYPES}
            prev = {t: torch.full((hood.ids[t].size,), -1, dtype=torch.long) for t in NODE_TYPES}
            for t in NODE_TYPES:
                pos[t][keep[t]] = torch.arange(keep[t].numel())
                prev[t][rows[t]] = torch.arange(rows[t].numel())
            out: dict[str, torch.Tensor | None] = {t: None for t in NODE_TYPES}
            for rel in RELATIONS:
                s_t, _, d_t = rel
                sage = conv.convs[rel]  # type: ignore[index]
                src, dst = hood.edges[rel]
                n = keep[d_t].numel()
                if n == 0:  # no node of this type is needed from this layer on
                    continue
                p = pos[d_t][dst]
                ok = p >= 0
                src, p = src[ok], p[ok]
                agg = torch.zeros(n, h[s_t].shape[1]).index_add_(0, p, h[s_t][prev[s_t][src]])
                deg = torch.zeros(n).index_add_(0, p, torch.ones(p.numel()))
                o = sage.lin_l(agg / deg.clamp(min=1.0)[:, None]) + sage.lin_r(h[d_t][prev[d_t][keep[d_t]]])
                out[d_t] = o if out[d_t] is None else out[d_t] + o
            h = {t: torch.relu(v) if v is not None else torch.zeros(0, h[t].shape[1]) for t, v in out.items()}
            rows = keep
        return h

    # -- the event ------------------------------------------------------------------------

    def _new_edges(self, gid: dict[str, int]) -> dict[Relation, tuple[np.ndarray, np.ndarray]]:
        """The event's edges that the snapshot lacks, both directions, as 1-element arrays."""
        pairs = {"uses_device": ("user", "device"), "uses_ip": ("user", "ip"), "pays": ("user", "merchant"),
                 "seen_at": ("device", "ip")}  # fmt: skip
        extra: dict[Relation, tuple[np.ndarray, np.ndarray]] = {}
        for rel_name, (a, b) in pairs.items():
            if a not in gid or b not in gid:
                continue
            rel = (a, rel_name, b)
            owner, src = self._in[rel].gather(np.array([gid[b]]))
            if np.any(src == gid[a]) or (rel, gid[a], gid[b]) in self._delta.edge_set:
                continue  # the snapshot or an added event has this edge already
            extra[rel] = (np.array([gid[a]]), np.array([gid[b]]))
            extra[(b, f"rev_{rel_name}", a)] = (np.array([gid[b]]), np.array([gid[a]]))
        return extra

    def _touched_features(self, event: Event, gid: dict[str, int]) -> tuple[dict[str, dict[int, np.ndarray]], np.ndarray]:
        """Standardised features of the event's user, device, IP and merchant with the event
        counted, and of the event itself: ``build_features`` on every stored event of those
        nodes plus the new one (the batch definitions, exactly)."""
        t = self._snapshot.transactions
        parts = [self._rows[name].gather(np.array([g]))[1] for name, g in gid.items()]
        rows = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        # Events added since the snapshot that touch the same nodes, in the order added, then
        # the event itself (once, even when it was added before).
        d = self._delta
        later = sorted({i for name, g in gid.items() for i in d.by_node.get((name, g), ())})
        added = [d.events[i] for i in later if d.events[i][0].txn_id != event.txn_id] + [(event, gid)]
        cols: dict[str, np.ndarray] = {}
        local: dict[str, int] = {}
        nodes: dict[NodeType, np.ndarray] = {}
        for name, nt in NODE_TYPES.items():
            col = getattr(t, name)[rows].astype(np.int64)
            col = np.concatenate([col, [g.get(name, -1) for _, g in added]])
            present = np.unique(col[col >= 0])
            cols[name] = np.where(col >= 0, np.searchsorted(present, col), -1)
            nodes[nt] = present.astype(object)  # only the count matters to build_features
            if name in gid:
                local[name] = int(np.searchsorted(present, gid[name]))
        evs = [e for e, _ in added]
        ts = np.concatenate([t.ts[rows], [float(e.ts) for e in evs]])
        table = TransactionTable(
            txn_id=np.concatenate([t.txn_id[rows], [e.txn_id for e in evs]]).astype(object),
            ts=ts,
            user=cols["user"],
            merchant=cols["merchant"],
            device=cols["device"],
            ip=cols["ip"],
            amount=np.concatenate([t.amount[rows], [np.nan if e.amount is None else float(e.amount) for e in evs]]),
            currency=np.concatenate([t.currency[rows], np.array([e.currency for e in evs], dtype=object)]).astype(object),
            event=np.concatenate([t.event[rows], [EVENT_KINDS.index(e.event.value) for e in evs]]).astype(np.int8),
            status=np.concatenate([t.status[rows], np.array([e.status for e in evs], dtype=object)]).astype(object),
        )
        no_labels = LabelTable(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), np.zeros(0, object))
        mini = Snapshot(
            nodes=nodes,
            transactions=table,
            user_device=_links(table.user, table.device, ts),
            user_ip=_links(table.user, table.ip, ts),
            device_ip=_links(table.device, table.ip, ts),
            user_labels=no_labels,
            txn_labels=no_labels,
        )
        z = self._artefact.normalisation.apply(build_features(mini))
        override = {name: {gid[name]: z.block(name)[local[name]]} for name in gid}
        return override, z.txn[-1]

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _prob(logit: torch.Tensor, shift: float) -> float:
        return float(torch.sigmoid(logit.double() - shift))

    def _tier(self, score: float, *, account: bool) -> Tier:
        thr = self._artefact.account_thresholds if account else self._artefact.transaction_thresholds
        return assign_tiers(np.array([score]), thr)[0]


def _reverse(rel: Relation) -> Relation:
    """The relation with the same edges the other way (``gnn.model.RELATIONS`` has both)."""
    s, name, d = rel
    return (d, name[4:], s) if name.startswith("rev_") else (d, f"rev_{name}", s)


def _grown(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with zero rows appended up to ``size`` rows."""
    out = np.zeros((size, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _links(src: np.ndarray, dst: np.ndarray, ts: np.ndarray) -> LinkTable:
    """The distinct (src, dst) pairs of events with first/last seen and count, -1 = absent: what
    a store (and ``gnn.leakage.link_table``) derives, in numpy (pandas' groupby costs
    milliseconds per call, too much per request)."""
    keep = (src >= 0) & (dst >= 0)
    s, d, t = src[keep].astype(np.int64), dst[keep].astype(np.int64), ts[keep]
    if s.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return LinkTable(src=z, dst=z, first_seen=np.zeros(0), last_seen=np.zeros(0), count=z)
    order = np.lexsort((t, d, s))
    s, d, t = s[order], d[order], t[order]
    start = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (d[1:] != d[:-1])])
    end = np.r_[start[1:], s.size]
    return LinkTable(src=s[start], dst=d[start], first_seen=t[start], last_seen=t[end - 1], count=(end - start).astype(np.int64))
