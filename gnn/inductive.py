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

The event's transaction score needs the final embeddings of the event's merchant, device and IP
as well, so its neighbourhood is k hops around all four; a popular merchant makes that the
largest part of the call (see ``bench/explain_bench.py``). Unsupervised artefacts have no
network to run, and artefacts whose model selection shipped a tree scorer score with trees over
neighbour aggregates: ``InductiveScorer.build`` raises ``ModelError`` for both.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    neighbourhood the model ran on."""

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
    know (e.g. ``("user", "device")``)."""

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
    """A neighbourhood: per node type the sorted global ids, each node's hop distance from the
    roots, its standardised input features, and per relation the (source, destination) local
    index pairs of the edges into nodes closer than k hops."""

    ids: dict[str, np.ndarray]
    depth: dict[str, np.ndarray]
    x: dict[str, torch.Tensor]
    edges: dict[Relation, tuple[torch.Tensor, torch.Tensor]]

    @property
    def size(self) -> tuple[int, int]:
        return sum(int(v.size) for v in self.ids.values()), sum(int(e[0].shape[0]) for e in self.edges.values())


class InductiveScorer:
    """Scores from k-hop neighbourhoods (see the module docstring). Build once per snapshot and
    artefact with :meth:`build`; calls are read-only and thread-safe (torch runs in no-grad
    inference mode)."""

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
        return self

    # -- public calls ---------------------------------------------------------------------

    def score_account(self, user_id: str) -> AccountScore:
        """The account's score from its k-hop neighbourhood alone (equal to batch scoring).

        Raises:
            NotFoundError: the snapshot has no such account.
        """
        pos = self._pos["user"].get(user_id)
        if pos is None:
            raise NotFoundError("account", user_id)
        hood = self._neighbourhood({"user": np.array([pos])}, {}, {})
        with torch.inference_mode():
            h = self._embed_roots(hood)
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
        gid: dict[str, int] = {}
        new: list[str] = []
        for name, attr in _EVENT_KEY.items():
            key = getattr(event, attr)
            if key is None or key == "":
                continue
            pos = self._pos[name].get(key)
            if pos is None:
                pos = self._n[name]  # the new node's id: one past the snapshot's nodes
                new.append(name)
            gid[name] = pos
        x_override, txn_x = self._touched_features(event, gid)
        extra = self._new_edges(gid)
        roots = {name: np.array([g]) for name, g in gid.items()}
        hood = self._neighbourhood(roots, extra, x_override)
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
            h = self._embed_roots(hood)
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

    # -- the neighbourhood ----------------------------------------------------------------

    def _sources(self, rel: Relation, dst: np.ndarray, extra: dict[Relation, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """(source, destination) pairs of ``rel`` into the nodes ``dst``, new edges included."""
        owner, src = self._in[rel].gather(dst)
        if rel in extra:
            es, ed = extra[rel]
            keep = np.isin(ed, dst)
            src, owner = np.concatenate([src, es[keep]]), np.concatenate([owner, ed[keep]])
        return src, owner

    def _neighbourhood(
        self,
        roots: dict[str, np.ndarray],
        extra: dict[Relation, tuple[np.ndarray, np.ndarray]],
        x_override: dict[str, dict[int, np.ndarray]],
    ) -> _Hood:
        """Nodes within k hops of ``roots`` and every edge into the nodes within k - 1 hops:
        exactly what k rounds of message passing read for the roots."""
        empty = np.zeros(0, dtype=np.int64)
        frontier = {t: np.unique(roots.get(t, empty)).astype(np.int64) for t in NODE_TYPES}
        seen = dict(frontier)
        levels = {t: [frontier[t]] for t in NODE_TYPES}
        for _ in range(self.layers):
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
            inner = seen[rel[2]][depth[rel[2]] < self.layers]
            src, dst = self._sources(rel, inner, extra) if inner.size else (empty, empty)
            edges[rel] = (
                torch.from_numpy(np.searchsorted(seen[rel[0]], src)),
                torch.from_numpy(np.searchsorted(seen[rel[2]], dst)),
            )
        x: dict[str, torch.Tensor] = {}
        for t in NODE_TYPES:
            ids = seen[t]
            known = ids[ids < self._n[t]]
            rows = self._x[t][known]
            if known.size < ids.size or x_override.get(t):
                rows = np.concatenate([rows, np.zeros((ids.size - known.size, rows.shape[1]), dtype=np.float32)])
                for gid, vec in x_override.get(t, {}).items():
                    rows[np.searchsorted(ids, gid)] = vec
            x[t] = torch.from_numpy(np.ascontiguousarray(rows))
        return _Hood(ids=seen, depth=depth, x=x, edges=edges)

    def _embed_roots(self, hood: _Hood) -> dict[str, torch.Tensor]:
        """Final embeddings [n_roots_t, hidden] of the roots (depth 0) per node type.

        The same function as ``RingSAGE.embed`` in eval mode (``SAGEConv`` with mean
        aggregation: ``lin_l(mean of sources) + lin_r(self)`` per relation, summed per
        destination type, then ReLU; dropout is the identity), but layer ``l`` computes only
        the nodes within ``k - l`` hops, which is all the roots need. PyG's generic
        ``HeteroConv`` costs milliseconds of Python per call here; this costs a few
        tensor ops. The equality with batch scoring is tested."""
        model, k = self._model, self.layers
        h = {t: torch.relu(model.encode[t](hood.x[t])) for t in NODE_TYPES}
        rows = {t: torch.arange(hood.ids[t].size) for t in NODE_TYPES}  # h[t][i] is node rows[t][i]
        for layer, conv in enumerate(model.convs, start=1):
            keep = {t: torch.from_numpy(np.flatnonzero(hood.depth[t] <= k - layer)) for t in NODE_TYPES}
            pos = {t: torch.full((hood.ids[t].size,), -1, dtype=torch.long) for t in NODE_TYPES}
            prev = {t: torch.full((hood.ids[t].size,), -1, dtype=torch.long) for t in NODE_TYPES}
            for t in NODE_TYPES:
                pos[t][keep[t]] = torch.arange(keep[t].numel())
                prev[t][rows[t]] = torch.arange(rows[t].numel())
            out = {t: None for t in NODE_TYPES}
            for rel in RELATIONS:
                s_t, _, d_t = rel
                sage = conv.convs[rel]  # type: ignore[index]
                src, dst = hood.edges[rel]
                p = pos[d_t][dst]
                ok = p >= 0
                src, p = src[ok], p[ok]
                n = keep[d_t].numel()
                agg = torch.zeros(n, h[s_t].shape[1]).index_add_(0, p, h[s_t][prev[s_t][src]])
                deg = torch.zeros(n).index_add_(0, p, torch.ones(p.numel()))
                o = sage.lin_l(agg / deg.clamp(min=1.0)[:, None]) + sage.lin_r(h[d_t][prev[d_t][keep[d_t]]])
                out[d_t] = o if out[d_t] is None else out[d_t] + o
            h = {t: torch.relu(v) for t, v in out.items()}  # type: ignore[arg-type]
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
            if np.any(src == gid[a]):
                continue  # the snapshot has this edge already
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
        amount = np.nan if event.amount is None else float(event.amount)
        cols: dict[str, np.ndarray] = {}
        local: dict[str, int] = {}
        nodes: dict[NodeType, np.ndarray] = {}
        for name, nt in NODE_TYPES.items():
            col = getattr(t, name)[rows].astype(np.int64)
            col = np.concatenate([col, [gid.get(name, -1)]])
            present = np.unique(col[col >= 0])
            cols[name] = np.where(col >= 0, np.searchsorted(present, col), -1)
            nodes[nt] = present.astype(object)  # only the count matters to build_features
            if name in gid:
                local[name] = int(np.searchsorted(present, gid[name]))
        ts = np.concatenate([t.ts[rows], [float(event.ts)]])
        table = TransactionTable(
            txn_id=np.concatenate([t.txn_id[rows], [event.txn_id]]).astype(object),
            ts=ts,
            user=cols["user"],
            merchant=cols["merchant"],
            device=cols["device"],
            ip=cols["ip"],
            amount=np.concatenate([t.amount[rows], [amount]]),
            currency=np.concatenate([t.currency[rows], [event.currency]]).astype(object),
            event=np.concatenate([t.event[rows], [EVENT_KINDS.index(event.event.value)]]).astype(np.int8),
            status=np.concatenate([t.status[rows], [event.status]]).astype(object),
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
