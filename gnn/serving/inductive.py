"""Inductive scoring: one account, or one unseen checkout event, in O(its own nodes) per call.

An ``InductiveScorer`` caches, for every node of the serving snapshot, its feature statistics,
its GraphSAGE layers and, for a hub (more than ``HUB_EDGES`` in-edges of one relation), the
running sum of those sources' layers. A call recomputes only its roots (an account; or an
event's user, device, IP and merchant) through all layers, with numpy copies of the model's
weights, so its cost does not depend on how many accounts paid at the event's merchant.
``score_account`` matches batch scoring up to float32 summation order; ``score_event`` scores an
event whose nodes may be new; ``add_events`` folds later events in, and ``defer_events`` takes
events to fold in only when a later call reads their user, device or IP. Nodes next to a root
keep their cached values, an approximation at two hops (see ``InductiveScorer``).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gnn.artefact.model_artefact import SUPERVISED, ModelArtefact
from gnn.core.features import (
    NODE_TYPES,
    EventContext,
    FeatureSet,
    FeatureStats,
    Normalisation,
    UserHistory,
    build_features_and_stats,
    event_txn_features,
)
from gnn.core.model import RELATIONS, GraphInput, build_graph_input
from gnn.core.thresholds import tier_of
from gnn.serving.scoring import load_model
from graph.errors import ModelError, NotFoundError, ValidationError
from graph.types import EVENT_KINDS, Event, Snapshot, Tier

__all__ = ["HUB_EDGES", "AccountScore", "EventScore", "InductiveScorer"]

Relation = tuple[str, str, str]
#: A node with more in-edges of one relation than this (a busy merchant's accounts, a shared
#: office IP's) keeps a running sum of those sources' layers; a smaller one sums them when asked.
HUB_EDGES = 64
#: Rows kept free past the snapshot's nodes, per type, for nodes that added events bring (zero
#: pages: no memory until used). Past them the caches double, which copies every row: a pause on
#: the event loop that grows with the rows, which this keeps out of the usual serving period.
RESERVE_ROWS = 1 << 17
#: The relations into each node type (the order of its rows in the sum caches), and each
#: relation's position there.
INTO: dict[str, tuple[Relation, ...]] = {t: tuple(r for r in RELATIONS if r[2] == t) for t in NODE_TYPES}
SLOT: dict[Relation, int] = {r: INTO[r[2]].index(r) for r in RELATIONS}
#: The relations out of each node type.
OUT: dict[str, tuple[Relation, ...]] = {t: tuple(r for r in RELATIONS if r[0] == t) for t in NODE_TYPES}
#: Each relation -> the one with the same edges the other way (``gnn.core.model.RELATIONS`` has both).
REVERSE: dict[Relation, Relation] = {r: (r[2], r[1][4:] if r[1].startswith("rev_") else f"rev_{r[1]}", r[0]) for r in RELATIONS}
#: The identifiers whose deferred events (``InductiveScorer.defer_events``) a call folds in
#: before it reads them. Not merchants: a merchant is on nearly every event, so folding for it
#: would fold everything; a merchant's statistics and hub sums wait for the next snapshot.
DEFER_KEYS = ("user", "device", "ip")
#: The most events kept deferred; past it the oldest are folded in.
DEFER_CAP = 200_000
#: Each node type's row in ``_Layer``'s stacked weights.
_TYPE_ROW = {t: i for i, t in enumerate(NODE_TYPES)}
#: Model node-type name -> the event column that names it.
_EVENT_KEY = {"user": "user_id", "device": "device_id", "ip": "ip", "merchant": "merchant_id"}
#: The edges one event creates between its own nodes: relation name -> (source, destination).
_PAIRS = {"uses_device": ("user", "device"), "uses_ip": ("user", "ip"), "pays": ("user", "merchant"), "seen_at": ("device", "ip")}


@dataclass(frozen=True, slots=True)
class AccountScore:
    """A known account's score as the scorer's graph stands."""

    user_id: str
    score: float
    tier: Tier
    model_version: str


@dataclass(frozen=True, slots=True)
class EventScore:
    """Scores of one unseen event: its account after the event (``account_score``) and the event
    itself as a transaction (``txn_score``). ``new`` lists the node types the scorer did not
    know (e.g. ``("user", "device")``)."""

    user_id: str
    account_score: float
    account_tier: Tier
    txn_score: float
    txn_tier: Tier
    model_version: str
    new: tuple[str, ...]


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

    def row(self, v: int) -> np.ndarray:
        """The entries of node ``v`` (none for a node past the snapshot's)."""
        if v >= self.indptr.size - 1:
            return np.zeros(0, dtype=np.int64)
        return self.indices[self.indptr[v] : self.indptr[v + 1]]


@dataclass(slots=True)
class _Delta:
    """What ``add_events`` added since the snapshot: new node ids per type (past the snapshot's),
    the events with the node ids they touch (and per node, which of them), and the new edges
    (both directions) as destination -> sources per relation."""

    pos: dict[str, dict[str, int]] = field(default_factory=lambda: {t: {} for t in NODE_TYPES})
    events: list[tuple[Event, dict[str, int]]] = field(default_factory=list)
    by_node: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    into: dict[Relation, dict[int, list[int]]] = field(default_factory=dict)
    edge_set: set[tuple[Relation, int, int]] = field(default_factory=set)
    txn_ids: set[str] = field(default_factory=set)


class _Deferred:
    """Events handed to ``InductiveScorer.defer_events`` and not folded in yet: by arrival number,
    and the arrival numbers per identifier (``DEFER_KEYS``). Lists per identifier are cleaned
    lazily: a number whose event was taken already is skipped."""

    def __init__(self) -> None:
        self.events: dict[int, Event] = {}
        self.by_key: dict[tuple[str, str], list[int]] = {}
        self.txn_ids: set[str] = set()
        self._next = 0

    def add(self, event: Event) -> None:
        seq = self._next
        self._next += 1
        self.events[seq] = event
        self.txn_ids.add(event.txn_id)
        for key in _defer_keys(event):
            self.by_key.setdefault(key, []).append(seq)

    def take(self, keys: list[tuple[str, str]]) -> list[Event]:
        """The deferred events that share an identifier with ``keys``, and, transitively, with
        those events (an event's roots must hold every earlier event on them), oldest first;
        they are no longer deferred."""
        chosen: set[int] = set()
        todo = [k for k in keys if k in self.by_key]
        while todo:
            for seq in self.by_key.pop(todo.pop(), ()):
                if seq in chosen or seq not in self.events:
                    continue
                chosen.add(seq)
                todo.extend(k for k in _defer_keys(self.events[seq]) if k in self.by_key)
        return self._pop(sorted(chosen))

    def take_oldest(self, n: int) -> list[Event]:
        """The ``n`` oldest deferred events (no longer deferred)."""
        return self._pop(sorted(self.events)[:n])

    def _pop(self, seqs: list[int]) -> list[Event]:
        out = [self.events.pop(seq) for seq in seqs]
        for event in out:
            self.txn_ids.discard(event.txn_id)
        return out


def _defer_keys(event: Event) -> list[tuple[str, str]]:
    return [(name, key) for name in DEFER_KEYS if (key := getattr(event, _EVENT_KEY[name]))]


@dataclass(frozen=True, slots=True)
class _Pending:
    """One event applied to the roots, not stored: node ids, new types, the roots' statistics,
    which of the event's pairs are new edges (``True``) or existed (``False``), the roots'
    layers ``0 .. k - 1`` (what the caches hold) and the account's earlier events. ``at``: how
    many events had been added when it was computed (valid for that state only)."""

    event: Event
    at: int
    gid: dict[str, int]
    new: tuple[str, ...]
    stats: dict[str, list[float]]
    pairs: dict[Relation, bool]
    layers: list[dict[str, np.ndarray]]
    sources: dict[Relation, np.ndarray | None]
    history: UserHistory


@dataclass(frozen=True, slots=True)
class _Layer:
    """One message-passing layer as numpy, all destination types stacked (``NODE_TYPES``
    order): per type the ``lin_l`` weights of the relations into it (``INTO`` order) over the
    sum of their ``lin_r`` weights, [(R + 1) * in, out], zero rows padding each to the widest,
    so the roots' inputs (their relations' means, then the node itself) go through one batched
    matrix product; and per type the sum of the ``lin_l`` biases [T, out]."""

    weight: np.ndarray  # [T, (R_max + 1) * in, out]
    bias: np.ndarray  # [T, out]

    @classmethod
    def of(cls, conv: torch.nn.Module) -> _Layer:
        weights, biases = [], []
        for t in NODE_TYPES:
            sage = [conv.convs[r] for r in INTO[t]]  # type: ignore[index]
            w_mean = [s.lin_l.weight.detach().numpy().T for s in sage]
            w_self = np.sum([s.lin_r.weight.detach().numpy().T for s in sage], axis=0).astype(np.float32)
            weights.append(np.concatenate([*w_mean, w_self], axis=0).astype(np.float32))
            biases.append(np.sum([s.lin_l.bias.detach().numpy() for s in sage], axis=0).astype(np.float32))
        width = max(w.shape[0] for w in weights)
        stacked = np.zeros((len(weights), width, weights[0].shape[1]), dtype=np.float32)
        for i, w in enumerate(weights):
            stacked[i, : w.shape[0]] = w
        return cls(weight=stacked, bias=np.stack(biases))


@dataclass(frozen=True, slots=True)
class _Heads:
    """The account and transaction heads as numpy (``RingSAGE.user_head`` and the edge head of
    ``RingSAGE.txn_logits`` for one transaction; dropout is the identity in eval mode)."""

    user: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # W1 [h, h], b1, W2 [h, 1], b2
    txn_user: tuple[np.ndarray, np.ndarray]  # W [h, h], b
    txn_ctx: dict[str, np.ndarray]  # per context type, W [h, h] (no bias)
    txn_feat: np.ndarray  # W [F_txn, h] (no bias)
    txn_out: tuple[np.ndarray, np.ndarray]  # W [h, 1], b

    @classmethod
    def of(cls, model: torch.nn.Module) -> _Heads:
        def w(lin: torch.nn.Module) -> np.ndarray:
            return lin.weight.detach().numpy().T.copy()

        def b(lin: torch.nn.Module) -> np.ndarray:
            return lin.bias.detach().numpy().copy()

        u1, u2 = model.user_head[0], model.user_head[3]
        out = model.txn_out[1]
        return cls(
            user=(w(u1), b(u1), w(u2), b(u2)),
            txn_user=(w(model.txn_user), b(model.txn_user)),
            txn_ctx={t: w(lin) for t, lin in model.txn_ctx.items()},
            txn_feat=w(model.txn_feat),
            txn_out=(w(out), b(out)),
        )

    def account_logit(self, h_user: np.ndarray) -> float:
        w1, b1, w2, b2 = self.user
        return float((np.maximum(h_user @ w1 + b1, 0.0) @ w2 + b2)[0])

    def txn_logit(self, h: dict[str, np.ndarray], x: np.ndarray) -> float:
        """``h``: the final layer of the transaction's user and of its merchant, device and IP
        where present (an absent one adds nothing, as the zero row of ``txn_table``)."""
        w, b = self.txn_user
        z = h["user"] @ w + b + x @ self.txn_feat
        for t, wt in self.txn_ctx.items():
            if t in h:
                z += h[t] @ wt
        wo, bo = self.txn_out
        return float((np.maximum(z, 0.0) @ wo + bo)[0])


class InductiveScorer:
    """Scores of accounts and unseen events from cached layers (see the module docstring). Build
    once per snapshot and artefact with :meth:`build`; ``add_events`` folds later events in.
    Scoring calls only read and may run in parallel with each other, not with ``add_events``
    (the scorer is not locked: the API calls all of them from its event loop).

    Only hubs have a row of running sums, so the sums cost memory for the few busy nodes, and a
    node added to a full cache copies its layers only (``_ensure_rows``).

    Approximation: only the roots are recomputed. A node next to a root keeps its cached layers
    and statistics although the event changes them a little (the other accounts on the event's
    device now share it with one more account; an account that paid at the merchant reads the
    merchant's new layer 0 in its layer 1). These are effects at two hops, damped by the mean
    aggregation, and they do not accumulate in the roots' own values; the API rebuilds the
    scorer from the store every few minutes (``api.reload``), which makes them exact again. Tests
    bound the difference to batch scoring of the same graph with the events added."""

    def __init__(self) -> None:  # filled by build()
        self.model_version = ""

    @classmethod
    def build(cls, artefact: ModelArtefact, snapshot: Snapshot, *, features: FeatureSet | None = None) -> InductiveScorer:
        """Prepare the statistics, the adjacency, per-account event rows and the layer caches.

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
        cfg = artefact.model_config
        if cfg is not None and (cfg.user_label_dim or cfg.txn_label_dim):
            raise ModelError(
                f"artefact {artefact.version} reads known-fraud inputs (earlier verdicts near each event), "
                "which inductive scoring does not compute per request"
            )
        self = cls()
        self._artefact = artefact
        self.model_version = artefact.version
        self._model = load_model(artefact, "cpu")
        self.layers = int(self._model.config.layers)
        self._norm = artefact.normalisation
        self._roots_norm = _roots_normalisation(artefact.normalisation)
        if features is None:
            raw, self._stats = build_features_and_stats(snapshot)
        else:
            raw, self._stats = features, FeatureStats.from_snapshot(snapshot)
        if {k: tuple(v) for k, v in artefact.feature_names.items()} != raw.names:
            raise ModelError(f"artefact {artefact.version} was trained on other features; retrain the model (`ringwatch train`)")
        g = build_graph_input(snapshot, artefact.normalisation.apply(raw))
        self._n = {t: int(g.data[t].x.shape[0]) for t in NODE_TYPES}
        self._count = dict(self._n)  # nodes with cache rows: the snapshot's, then the added ones
        # In-adjacency per relation: the sources that send messages to each destination node.
        self._in: dict[Relation, _Csr] = {}
        for rel in RELATIONS:
            ei = g.data[rel].edge_index.numpy()
            self._in[rel] = _Csr.build(ei[1], ei[0], self._n[rel[2]])
        self._pos = {t: {k: i for i, k in enumerate(snapshot.nodes[nt].tolist())} for t, nt in NODE_TYPES.items()}
        t = snapshot.transactions
        user = t.user.astype(np.int64)
        self._user_rows = _Csr.build(user, np.arange(len(t), dtype=np.int64), self._n["user"])
        self._txn = t
        self._txn_ids = frozenset(t.txn_id.tolist())
        self._delta = _Delta()
        self._deferred = _Deferred()
        self.late_folds = 0  # deferred events folded in since the snapshot
        self.late_fold_ns = 0  # their thread CPU time
        self._pending: _Pending | None = None
        self._encode = {
            name: (lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for name, lin in self._model.encode.items()
        }
        self._conv = [_Layer.of(conv) for conv in self._model.convs]
        self._heads = _Heads.of(self._model)
        self._hidden = int(self._model.config.hidden)
        self._build_caches(g)
        return self

    def _build_caches(self, g: GraphInput) -> None:
        """Layers ``0 .. k - 1`` of every node, the in-degree per relation [N_t, R_t] of every
        node, and the hubs' sums [H_t, R_t * hidden] of the sources' layers per relation
        (``INTO[t]`` order; the batch forward pass, layer by layer)."""
        k = self.layers
        self._h: list[dict[str, np.ndarray]] = []
        self._deg: dict[str, np.ndarray] = {}
        for t in NODE_TYPES:
            n = self._n[t]
            deg = np.stack([np.bincount(g.data[rel].edge_index[1].numpy(), minlength=n)[:n] for rel in INTO[t]], axis=1)
            self._deg[t] = _grown(deg.astype(np.float32), n + RESERVE_ROWS)
        #: Whether some node receives the relation from more than HUB_EDGES sources.
        self._has_hub = {rel: bool((self._deg[rel[2]][:, SLOT[rel]] > HUB_EDGES).any()) for rel in RELATIONS}
        # Only hubs have running sums (one row each, ``_hub_row`` maps node -> row, -1: none);
        # every other node's sources are summed when asked.
        hubs = {t: np.flatnonzero((self._deg[t] > HUB_EDGES).any(axis=1)) for t in NODE_TYPES}
        self._hub_row: dict[str, np.ndarray] = {}
        self._hubs = {t: int(hubs[t].size) for t in NODE_TYPES}
        for t in NODE_TYPES:
            self._hub_row[t] = np.full(self._n[t] + RESERVE_ROWS, -1, dtype=np.int64)
            self._hub_row[t][hubs[t]] = np.arange(hubs[t].size)
        self._sum: list[dict[str, np.ndarray]] = []
        rows = {t: torch.from_numpy(hubs[t]) for t in NODE_TYPES}
        with torch.inference_mode():
            h = {t: torch.relu(self._model.encode[t](g.data[t].x)) for t in NODE_TYPES}
            for layer in range(k):
                self._h.append({t: _grown(h[t].numpy(), self._n[t] + RESERVE_ROWS) for t in NODE_TYPES})
                sums = {}
                for rel in RELATIONS:
                    src, dst = g.data[rel].edge_index
                    sums[rel] = torch.zeros(self._n[rel[2]], h[rel[0]].shape[1]).index_add_(0, dst, h[rel[0]][src])
                self._sum.append({t: torch.cat([sums[rel][rows[t]] for rel in INTO[t]], dim=1).numpy() for t in NODE_TYPES})
                if layer == k - 1:
                    break
                conv = self._model.convs[layer]
                nxt = {}
                for t in NODE_TYPES:
                    acc = None
                    for j, rel in enumerate(INTO[t]):
                        sage = conv.convs[rel]  # type: ignore[index]
                        mean = sums[rel] / torch.from_numpy(np.maximum(self._deg[t][: self._n[t], j], 1.0))[:, None]
                        part = sage.lin_l(mean) + sage.lin_r(h[t])
                        acc = part if acc is None else acc + part
                    nxt[t] = torch.relu(acc)
                h = nxt

    # -- public calls ---------------------------------------------------------------------

    @property
    def added_events(self) -> int:
        """How many events ``add_events`` folded in since the snapshot."""
        return len(self._delta.events)

    @property
    def deferred_events(self) -> int:
        """How many events ``defer_events`` holds back, not folded in yet."""
        return len(self._deferred.events)

    def defer_events(self, events: list[Event]) -> int:
        """Take ``events`` to fold in later: each is folded in (``add_events``, in the order
        given) by the first call that reads one of its user, device or IP (scoring an event on
        them, an account's score, its features), before that call reads them. Until then, and
        for a merchant until the next snapshot, the cached values lack it: a merchant's
        statistics and hub sums, and the layers of a node next to a call's roots (an effect at
        two hops). An event the scorer holds or defers already is skipped. Returns how many
        were deferred.

        Costs a few dictionary entries per event, where ``add_events`` recomputes the event's
        roots through every layer: a service folds its own events at once and defers the other
        workers' (``api.tail``)."""
        deferred = 0
        for event in events:
            if self._holds(event.txn_id) or event.txn_id in self._deferred.txn_ids:
                continue
            self._deferred.add(event)
            deferred += 1
        if len(self._deferred.events) > DEFER_CAP:
            self._add(self._deferred.take_oldest(len(self._deferred.events) - DEFER_CAP))
        return deferred

    def knows_account(self, user_id: str) -> bool:
        """Whether the snapshot or an added (or deferred) event has this account."""
        self._fold_deferred([("user", user_id)])
        return user_id in self._pos["user"] or user_id in self._delta.pos["user"]

    def touched_since_snapshot(self, user_id: str) -> bool:
        """Whether an added (or deferred) event involves this account (its batch score may be stale)."""
        self._fold_deferred([("user", user_id)])
        gid = self._gid("user", user_id)
        return gid is not None and ("user", gid) in self._delta.by_node

    def node_features(self, name: str, key: str) -> np.ndarray:
        """Raw features float32 [F] of a node as the scorer holds them (diagnostics and tests).

        Raises:
            NotFoundError: the scorer knows no such node.
        """
        self._fold_deferred([(name, key)])
        gid = self._gid(name, key)
        if gid is None:
            raise NotFoundError(name, key)
        return self._stats.row_features(name, self._stats.row_values(name, gid))

    def transaction_features(self, event: Event) -> np.ndarray:
        """Raw transaction features float32 [F_txn] of ``event`` as ``score_event`` computes them
        (diagnostics and tests)."""
        if not event.user_id:
            raise ValidationError("user_id", event.user_id, "must not be empty")
        self._fold_deferred(_defer_keys(event))
        gid, _ = self._event_gids(event)
        return event_txn_features(event, self._history(gid["user"]))

    def score_account(self, user_id: str) -> AccountScore:
        """The account's score as the graph stands (equal to batch scoring on the snapshot, up
        to float32 summation order).

        Raises:
            NotFoundError: the scorer knows no such account.
        """
        self._fold_deferred([("user", user_id)])
        gid = self._gid("user", user_id)
        if gid is None:
            raise NotFoundError("account", user_id)
        roots = {"user": gid}
        layers = self._roots(roots, {"user": self._h[0]["user"][gid]}, {}, self.layers, self._sources(roots))
        score = _prob(self._heads.account_logit(layers[-1]["user"]), self._model.config.user_prior_shift)
        return AccountScore(user_id, score, self._tier(score, account=True), self.model_version)

    def score_event(self, event: Event) -> EventScore:
        """Score an event that the snapshot does not hold: its account (as it stands with the
        event) and the event as a transaction. Its user, device, IP and merchant may be new. An
        event the scorer holds already is scored as it stands (counted once). The roots'
        statistics are updated with the event (``FeatureStats.with_event``, the batch
        definitions exactly), its new nodes and edges added, and the roots recomputed; nothing
        is stored.

        Raises:
            ValidationError: ``event.user_id`` is empty.
        """
        if not event.user_id:
            raise ValidationError("user_id", event.user_id, "must not be empty")
        self._fold_deferred(_defer_keys(event))
        p = self._apply(event)
        self._pending = p
        cfg = self._model.config
        final = self._layer(self.layers - 1, p.layers[-1], p.gid, p.pairs, p.sources)
        txn_x = self._norm.apply_block("txn", event_txn_features(event, p.history))
        account = _prob(self._heads.account_logit(final["user"]), cfg.user_prior_shift)
        txn = _prob(self._heads.txn_logit(final, txn_x), cfg.txn_prior_shift)
        return EventScore(
            user_id=event.user_id,
            account_score=account,
            account_tier=self._tier(account, account=True),
            txn_score=txn,
            txn_tier=self._tier(txn, account=False),
            model_version=self.model_version,
            new=p.new,
        )

    def add_events(self, events: list[Event]) -> int:
        """Fold ``events`` into the graph without a rebuild, in the order given; an event whose
        ``txn_id`` the snapshot or an earlier call holds is skipped. Returns how many were added.

        New nodes get ids past the snapshot's, new edges join the adjacency, the roots'
        statistics and layers are stored, and each root's change of layer is added to the
        running sums of its hub out-neighbours (a new edge into a hub adds its source; a node
        that becomes a hub starts its sum). Later calls see them: a second payment from a new
        device is scored with the first one counted.

        Deferred events (``defer_events``) on an event's user, device or IP are folded in
        before it.

        Raises:
            ValidationError: an event's ``user_id`` is empty (nothing is added from it on).
        """
        added = 0
        for event in events:
            added += self._fold_deferred(_defer_keys(event))
            added += self._add([event])
        return added

    def _fold_deferred(self, keys: list[tuple[str, str]]) -> int:
        """Fold in the deferred events on these identifiers (see ``_Deferred.take``); their
        count and CPU time go to ``late_folds`` and ``late_fold_ns``."""
        if not self._deferred.events:
            return 0
        started = time.thread_time_ns()
        events = self._deferred.take(keys)
        if not events:
            return 0
        added = self._add(events)
        self.late_folds += added
        self.late_fold_ns += time.thread_time_ns() - started
        return added

    def _add(self, events: list[Event]) -> int:
        added = 0
        d = self._delta
        for event in events:
            if self._holds(event.txn_id):
                continue
            p = self._pending
            if p is None or p.event != event or p.at != len(d.events):
                p = self._apply(event)  # else: score_event just computed it for this event
            self._pending = None
            self._commit(p)
            added += 1
        return added

    # -- one event ------------------------------------------------------------------------

    def _apply(self, event: Event) -> _Pending:
        """The event applied to its roots (nothing stored). An event the scorer holds already
        changes nothing: its roots are recomputed as they stand."""
        if not event.user_id:
            raise ValidationError("user_id", event.user_id, "must not be empty")
        gid, new = self._event_gids(event)
        held = self._holds(event.txn_id)
        pairs = {} if held else self._event_pairs(gid)
        history = self._history(gid["user"])
        if held:
            stats = {name: self._stats.row_values(name, g) for name, g in gid.items()}
        else:
            linked = {rel[1] for rel, is_new in pairs.items() if is_new}
            ctx = EventContext(
                gid=gid,
                new_user_device="uses_device" in linked,
                new_user_ip="uses_ip" in linked,
                new_device_ip="seen_at" in linked,
                user_devices=self._neighbours_with(("device", "rev_uses_device", "user"), gid, pairs),
                user_ips=self._neighbours_with(("ip", "rev_uses_ip", "user"), gid, pairs),
                history=history,
            )
            stats = self._stats.with_event(event, ctx)
        # The roots' raw features side by side, standardised in one call (``_roots_norm``).
        raw = np.concatenate([self._stats.row_features(name, stats[name]) for name in gid])
        x = self._roots_norm.apply_block("+".join(gid), raw)
        h0 = {}
        at = 0
        for name in gid:
            w, b = self._encode[name]
            h0[name] = np.maximum(x[at : at + w.shape[0]] @ w + b, 0.0)
            at += w.shape[0]
        sources = self._sources(gid)
        return _Pending(
            event=event,
            at=len(self._delta.events),
            gid=gid,
            new=tuple(new),
            stats=stats,
            pairs=pairs,
            layers=self._roots(gid, h0, pairs, self.layers - 1, sources),
            sources=sources,
            history=history,
        )

    def _roots(
        self,
        gid: dict[str, int],
        h0: dict[str, np.ndarray],
        pairs: dict[Relation, bool],
        depth: int,
        sources: dict[Relation, np.ndarray | None],
    ) -> list[dict[str, np.ndarray]]:
        """Layers ``0 .. depth`` of the roots ``gid`` (at most one per type) from their layer 0
        ``h0`` (see ``_layer``; ``sources``: ``_sources(gid)``)."""
        out = [h0]
        for layer in range(depth):
            out.append(self._layer(layer, out[-1], gid, pairs, sources))
        return out

    def _sources(self, gid: dict[str, int]) -> dict[Relation, np.ndarray | None]:
        """Per relation into a root: its cached sources (``None``: a hub, whose running sum
        stands for them; see ``HUB_EDGES``), shared by every layer."""
        found: dict[Relation, np.ndarray | None] = {}
        for t, g in gid.items():
            if g >= self._count[t]:
                continue
            deg = self._deg[t][g]
            for j, rel in enumerate(INTO[t]):
                if deg[j] > HUB_EDGES:
                    found[rel] = None
                elif deg[j] > 0:
                    found[rel] = self._neighbours(rel, g)
        return found

    def _layer(
        self,
        layer: int,
        prev: dict[str, np.ndarray],
        gid: dict[str, int],
        pairs: dict[Relation, bool],
        sources: dict[Relation, np.ndarray | None],
    ) -> dict[str, np.ndarray]:
        """Layer ``layer + 1`` of the roots from their layer ``layer`` (``prev``): per relation,
        the sum of the sources' cached layer (a hub's running sum, else summed now) with each
        root source's new layer in place of its cached one (``pairs[rel]`` False) or added as a
        new edge (True), divided by the count."""
        conv, cached, hidden = self._conv[layer], self._h[layer], self._hidden
        # Per type, its relations' means, then the node's own layer: the input of
        # ``conv.weight``; a type without a root keeps its zero row (its output is unused).
        inputs = np.zeros(conv.weight.shape[:2], dtype=np.float32)
        for t, g in gid.items():
            rels = INTO[t]
            deg = self._deg[t][g].tolist() if g < self._count[t] else [0.0] * len(rels)
            x = inputs[_TYPE_ROW[t]]
            for j, rel in enumerate(rels):
                s = rel[0]
                part = x[j * hidden : (j + 1) * hidden]
                # The sources' sum: a row read in place where there is one (a hub's running sum,
                # the usual account's one device or IP), else summed into ``part``.
                total: np.ndarray | None = None
                if rel in sources:
                    idx = sources[rel]
                    if idx is None:
                        total = self._sum[layer][t][self._hub_row[t][g], j * hidden : (j + 1) * hidden]
                    elif idx.size == 1:
                        total = cached[s][idx[0]]
                    else:
                        np.add.reduce(cached[s][idx], axis=0, out=part)  # ``.sum`` without its Python wrapper
                        total = part
                n = deg[j]
                is_new = pairs.get(rel)
                change = None if is_new is None else prev[s] if is_new else prev[s] - cached[s][gid[s]]
                if is_new:
                    n += 1.0
                # One operation writes ``part`` where it can: the sum plus the root's change.
                if change is None:
                    if total is not None and total is not part:
                        part[:] = total
                elif total is None:
                    part[:] = change
                else:
                    np.add(total, change, out=part)
                if n > 1.0:
                    part /= np.float32(n)
            x[len(rels) * hidden : (len(rels) + 1) * hidden] = prev[t]
        y = np.matmul(inputs[:, None, :], conv.weight)[:, 0]
        y += conv.bias
        np.maximum(y, 0.0, out=y)
        return {t: y[_TYPE_ROW[t]] for t in gid}

    def _commit(self, p: _Pending) -> None:
        """Store a pending event: node ids, statistics, layers (each root's change reaches its
        out-neighbours' sums), new edges, and the event's bookkeeping."""
        d = self._delta
        event = p.event
        for name, g in p.gid.items():
            key = getattr(event, _EVENT_KEY[name])
            if g >= self._n[name] and key not in d.pos[name]:
                d.pos[name][key] = g
            self._ensure_rows(name, g)
            self._stats.put(name, g, p.stats[name])
        for name, g in p.gid.items():
            self._store_layers(name, g, [p.layers[layer][name] for layer in range(self.layers)])
        for rel, is_new in p.pairs.items():
            if not is_new:
                continue
            a, b = p.gid[rel[0]], p.gid[rel[2]]
            d.into.setdefault(rel, {}).setdefault(b, []).append(a)
            d.edge_set.add((rel, a, b))
            t, j = rel[2], SLOT[rel]
            self._deg[t][b, j] += 1.0
            cols = slice(j * self._hidden, (j + 1) * self._hidden)
            if self._deg[t][b, j] == HUB_EDGES + 1:  # a hub from now on: start its running sum
                self._has_hub[rel] = True
                row = self._hub(t, b)
                sources = self._neighbours(rel, b)
                for layer in range(self.layers):
                    self._sum[layer][t][row, cols] = self._h[layer][rel[0]][sources].sum(axis=0)
            elif self._deg[t][b, j] > HUB_EDGES:
                row = int(self._hub_row[t][b])
                for layer in range(self.layers):
                    self._sum[layer][t][row, cols] += self._h[layer][rel[0]][a]
        d.events.append((event, p.gid))
        for name, g in p.gid.items():
            d.by_node.setdefault((name, g), []).append(len(d.events) - 1)
        d.txn_ids.add(event.txn_id)

    def _store_layers(self, name: str, gid: int, layers: list[np.ndarray]) -> None:
        """Set a node's cached layers and pass the change to the running sums of its hub
        out-neighbours (``HUB_EDGES``)."""
        hubs = []
        for rel in OUT[name]:
            if not self._has_hub[rel]:  # no node receives this relation from more than HUB_EDGES
                continue
            targets = self._neighbours(REVERSE[rel], gid)  # out-edges = in-edges of the reverse
            if targets.size:
                j = SLOT[rel]
                big = targets[self._deg[rel[2]][targets, j] > HUB_EDGES]
                if big.size:
                    hubs.append((rel[2], self._hub_row[rel[2]][big], slice(j * self._hidden, (j + 1) * self._hidden)))
        for layer in range(self.layers):
            for t, rows, cols in hubs:
                self._sum[layer][t][rows, cols] += layers[layer] - self._h[layer][name][gid]
            self._h[layer][name][gid] = layers[layer]

    def _ensure_rows(self, name: str, gid: int) -> None:
        """Room for node ``gid`` of type ``name`` in the layer caches (zero rows; doubling)."""
        self._count[name] = max(self._count[name], gid + 1)
        cap = self._h[0][name].shape[0]
        if gid < cap:
            return
        size = max(gid + 1, 2 * cap, 16)
        for layer in range(self.layers):
            self._h[layer][name] = _grown(self._h[layer][name], size)
        self._deg[name] = _grown(self._deg[name], size)
        self._hub_row[name] = _grown(self._hub_row[name], size, fill=-1)

    def _hub(self, name: str, gid: int) -> int:
        """The running-sum row of node ``gid`` (a new zero row the first time it is a hub)."""
        row = int(self._hub_row[name][gid])
        if row < 0:
            row = self._hubs[name]
            self._hubs[name] += 1
            if row >= self._sum[0][name].shape[0]:
                for layer in range(self.layers):
                    self._sum[layer][name] = _grown(self._sum[layer][name], max(2 * row, 16))
            self._hub_row[name][gid] = row
        return row

    # -- the graph around an event --------------------------------------------------------

    def _holds(self, txn_id: str) -> bool:
        return txn_id in self._txn_ids or txn_id in self._delta.txn_ids

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

    def _neighbours(self, rel: Relation, dst: int) -> np.ndarray:
        """The sources of ``rel`` into node ``dst``: the snapshot's and the added events'."""
        src = self._in[rel].row(dst)
        found = self._delta.into.get(rel, {}).get(dst)
        return np.concatenate([src, np.asarray(found, dtype=np.int64)]) if found else src

    def _neighbours_with(self, rel: Relation, gid: dict[str, int], pairs: dict[Relation, bool]) -> np.ndarray:
        """``_neighbours`` of the event's ``rel[2]`` node, with the pending event's new edge."""
        src = self._neighbours(rel, gid[rel[2]])
        return np.append(src, gid[rel[0]]) if pairs.get(rel) else src

    def _event_pairs(self, gid: dict[str, int]) -> dict[Relation, bool]:
        """The edges between the event's nodes, both directions: True = new with the event,
        False = the snapshot or an added event has it already."""
        pairs: dict[Relation, bool] = {}
        for name, (a, b) in _PAIRS.items():
            if a not in gid or b not in gid:
                continue
            rel = (a, name, b)
            exists = (rel, gid[a], gid[b]) in self._delta.edge_set or self._snapshot_edge(rel, gid[a], gid[b])
            pairs[rel] = pairs[REVERSE[rel]] = not exists
        return pairs

    def _snapshot_edge(self, rel: Relation, a: int, b: int) -> bool:
        """Whether the snapshot has the edge ``a -> b`` of ``rel``, looked up on the end with
        fewer neighbours (a merchant has thousands of accounts, an account a few merchants)."""
        row, want = self._in[rel].row(b), a
        back = self._in[REVERSE[rel]].row(a)
        if back.size < row.size:
            row, want = back, b
        if row.size <= 8:  # the usual case (an account's few devices): no array search
            return want in row.tolist()
        i = int(np.searchsorted(row, want))  # each row is sorted (``gnn.core.model._edges``)
        return i < row.size and int(row[i]) == want

    def _history(self, user: int) -> UserHistory:
        """The account's events so far: the snapshot's rows, then the added events."""
        t = self._txn
        rows = self._user_rows.row(user)
        later = [self._delta.events[i] for i in self._delta.by_node.get(("user", user), ())]
        if not later:
            return UserHistory(ts=t.ts[rows], kind=t.event[rows].astype(np.int64), merchant=t.merchant[rows].astype(np.int64),
                               txn_id=t.txn_id[rows])  # fmt: skip
        return UserHistory(
            ts=np.append(t.ts[rows], [float(e.ts) for e, _ in later]),
            kind=np.append(t.event[rows].astype(np.int64), [EVENT_KINDS.index(e.event.value) for e, _ in later]),
            merchant=np.append(t.merchant[rows].astype(np.int64), [g.get("merchant", -1) for _, g in later]),
            txn_id=np.append(t.txn_id[rows].astype(object), np.array([e.txn_id for e, _ in later], dtype=object)),
        )

    # -- helpers --------------------------------------------------------------------------

    def _tier(self, score: float, *, account: bool) -> Tier:
        return tier_of(score, self._artefact.account_thresholds if account else self._artefact.transaction_thresholds)


def _roots_normalisation(norm: Normalisation) -> Normalisation:
    """``norm``'s node blocks joined for every set of roots an event can have (its user and any
    of its device, IP and merchant, in ``_EVENT_KEY`` order), keyed by their names joined with
    ``+`` (``"user+ip+merchant"``): an event's roots are standardised in one ``apply_block`` call,
    element by element as each block alone."""
    optional = [name for name in _EVENT_KEY if name != "user"]
    means, stds = {}, {}
    for k in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, k):
            names = [name for name in _EVENT_KEY if name == "user" or name in chosen]
            key = "+".join(names)
            means[key] = np.concatenate([norm.means[name] for name in names])
            stds[key] = np.concatenate([norm.stds[name] for name in names])
    return Normalisation(means=means, stds=stds)


def _prob(logit: float, shift: float) -> float:
    """The probability after the prior shift, in float64 as ``gnn.core.model.predict``."""
    return float(1.0 / (1.0 + np.exp(-(np.float64(logit) - shift))))


def _grown(a: np.ndarray, size: int, fill: float = 0) -> np.ndarray:
    """``a`` with rows of ``fill`` appended up to ``size`` rows. Zero rows cost no memory until
    written (``np.zeros`` maps zero pages lazily)."""
    out = np.zeros((size, *a.shape[1:]), dtype=a.dtype) if fill == 0 else np.full((size, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out
