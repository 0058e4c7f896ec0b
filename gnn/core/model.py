"""The heterogeneous GraphSAGE model and the graph tensors it reads.

Node types ``user``, ``device``, ``ip``, ``merchant``; relations user–device (USED_DEVICE),
user–ip (USED_IP), user–merchant (distinct pairs from payments/refunds, TRANSACTED) and
device–ip (SEEN_AT), each with an explicit ``rev_`` relation so information flows both ways.
Per relation a ``SAGEConv`` (mean aggregation), combined per destination type by
``HeteroConv(aggr="sum")``. Two heads:

* user head: MLP on the final user embedding -> one logit per account;
* transaction (edge) head: MLP on ``[h_user[u], h_merchant[m], h_device[d], h_ip[i], x_txn]``
  -> one logit per transaction; an absent merchant/device/IP contributes zeros.

With ``ModelConfig.user_label_dim`` / ``txn_label_dim`` set, the heads also read the known-fraud
features of ``gnn.core.known_fraud`` (``GraphInput.label_user`` / ``label_txn``), added to their first
layer. They never enter message passing: an account's own label, counted in a neighbour's
known-fraud features, would otherwise flow back to it.

The edge head's first layer is applied per part (``W·concat = Σ W_part·part``): each node type is
projected once and then gathered per transaction, which is the same function as the concatenated
MLP but costs O(nodes·hidden²) instead of O(transactions·4·hidden²).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from gnn.core.features import NODE_TYPES, FeatureSet
from gnn.core.known_fraud import KnownFraudFeatures, known_fraud_features
from graph.types import NodeType, Snapshot

#: (source type, relation, destination type) for every message-passing relation.
RELATIONS: tuple[tuple[str, str, str], ...] = (
    ("user", "uses_device", "device"),
    ("device", "rev_uses_device", "user"),
    ("user", "uses_ip", "ip"),
    ("ip", "rev_uses_ip", "user"),
    ("user", "pays", "merchant"),
    ("merchant", "rev_pays", "user"),
    ("device", "seen_at", "ip"),
    ("ip", "rev_seen_at", "device"),
)
#: Node types whose embedding enters the transaction head, besides the user.
TXN_CONTEXT: tuple[str, ...] = ("merchant", "device", "ip")
#: Transactions per chunk of the edge head (training: checkpointed; inference: a loop), so a
#: chunk's activations do not grow with the graph.
TXN_CHUNK = 1 << 17
#: Destination nodes per chunk of a message-passing layer in ``RingSAGE.embed_layerwise``.
NODE_CHUNK = 1 << 16
#: Graphs with more nodes than this train with checkpointed message-passing layers: each
#: layer keeps only its input for the backward pass and is recomputed there, which costs one
#: more forward pass of the layers and saves most of their activations; smaller graphs skip it.
CHECKPOINT_NODES = 500_000
#: Likewise, the edge head is checkpointed chunk by chunk when training on more transactions
#: than this; below it the recomputation is not worth its time (DESIGN §7's epoch-time target).
CHECKPOINT_TXNS = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Everything needed to rebuild the network before loading a ``state_dict``."""

    in_dims: dict[str, int]  # node type -> input feature width
    txn_dim: int
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    # Logit shifts that undo the class weighting of the loss (weighted BCE with pos_weight w
    # inflates the odds by w), so that sigmoid(logit - shift) reads as a probability.
    user_prior_shift: float = 0.0
    txn_prior_shift: float = 0.0
    # Training only: share of accounts whose own features are hidden in an epoch, so the model
    # learns to judge an account by its neighbourhood too (a quiet ring member looks ordinary).
    user_feature_drop: float = 0.0
    # Widths of the known-fraud inputs of the account and transaction heads (0: none), and the
    # label delay they were computed with (``gnn.core.known_fraud``; None: the verdicts' own times).
    user_label_dim: int = 0
    txn_label_dim: int = 0
    label_delay: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ModelConfig:
        return cls(
            in_dims={str(k): int(v) for k, v in dict(d["in_dims"]).items()},  # type: ignore[arg-type]
            txn_dim=int(d["txn_dim"]),  # type: ignore[arg-type]
            hidden=int(d["hidden"]),  # type: ignore[arg-type]
            layers=int(d["layers"]),  # type: ignore[arg-type]
            dropout=float(d["dropout"]),  # type: ignore[arg-type]
            user_prior_shift=float(d.get("user_prior_shift", 0.0)),  # type: ignore[arg-type]
            txn_prior_shift=float(d.get("txn_prior_shift", 0.0)),  # type: ignore[arg-type]
            user_feature_drop=float(d.get("user_feature_drop", 0.0)),  # type: ignore[arg-type]
            user_label_dim=int(d.get("user_label_dim", 0)),  # type: ignore[arg-type]
            txn_label_dim=int(d.get("txn_label_dim", 0)),  # type: ignore[arg-type]
            label_delay=None if d.get("label_delay") is None else float(d["label_delay"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class HopCounts:
    """Layer trimming of a sampled subgraph whose nodes and edges are stored in hop order
    (``gnn.training.minibatch``): ``nodes[t][k]`` = how many nodes of type ``t`` were reached at
    hop ``<= k``; ``edges[rel][k]`` = how many edges of ``rel`` point into those nodes (sampled
    at hop ``<= k + 1``). Layer ``l`` of ``L`` then computes only the nodes at hop ``<= L - 1 - l``
    (what PyG's ``trim_to_layer`` does), and ``RingSAGE.forward`` returns hop-0 rows only."""

    nodes: dict[str, tuple[int, ...]]
    edges: dict[tuple[str, str, str], tuple[int, ...]]


@dataclass(slots=True)
class GraphInput:
    """Tensors of one snapshot, ready for ``RingSAGE``: the ``HeteroData`` (standardised node
    features in ``data[t].x``, ``edge_index`` per relation) and the transaction table as index
    tensors (``-1`` = absent) with standardised ``txn_x`` [T, F_txn]. ``label_user``
    [N_user, L_u] and ``label_txn`` [T, L_t]: the heads' known-fraud inputs, None for a model
    without them. ``hops``: set on a sampled subgraph only (``HopCounts``)."""

    data: HeteroData
    txn_x: Tensor
    txn_user: Tensor
    txn_merchant: Tensor
    txn_device: Tensor
    txn_ip: Tensor
    label_user: Tensor | None = None
    label_txn: Tensor | None = None
    hops: HopCounts | None = None

    def to(self, device: torch.device) -> GraphInput:
        return GraphInput(
            data=self.data.to(device),
            txn_x=self.txn_x.to(device),
            txn_user=self.txn_user.to(device),
            txn_merchant=self.txn_merchant.to(device),
            txn_device=self.txn_device.to(device),
            txn_ip=self.txn_ip.to(device),
            label_user=None if self.label_user is None else self.label_user.to(device),
            label_txn=None if self.label_txn is None else self.label_txn.to(device),
            hops=self.hops,
        )

    @property
    def x_dict(self) -> dict[str, Tensor]:
        return {t: self.data[t].x for t in NODE_TYPES}

    @property
    def edge_index_dict(self) -> dict[tuple[str, str, str], Tensor]:
        return {r: self.data[r].edge_index for r in RELATIONS}


def _edges(src: np.ndarray, dst: np.ndarray) -> Tensor:
    """[2, E] int64 edge index in (destination, source) order, so that the edges into a range of
    destination nodes are one slice (``RingSAGE.embed_layerwise`` reads them in chunks)."""
    order = np.lexsort((src, dst))
    return torch.from_numpy(np.stack([src[order].astype(np.int64), dst[order].astype(np.int64)])).contiguous()


def _dst_sorted(edge_index: Tensor) -> tuple[Tensor, Tensor]:
    """(sources, destinations) of ``edge_index`` ordered by destination (stable; a no-op for
    ``build_graph_input``'s edges, which are built in that order)."""
    src, dst = edge_index[0], edge_index[1]
    if dst.numel() > 1 and bool((dst[1:] < dst[:-1]).any()):
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
    return src, dst


def build_graph_input(snapshot: Snapshot, features: FeatureSet, known: KnownFraudFeatures | None = None) -> GraphInput:
    """Assemble the ``HeteroData`` and transaction tensors from a snapshot and its (already
    standardised) features. Relations with no rows get an empty ``[2, 0]`` edge index, so every
    node type always receives messages and keeps an embedding. ``known``: the heads' known-fraud
    inputs (``gnn.core.known_fraud``), for a model that reads them."""
    data = HeteroData()
    for name in NODE_TYPES:
        data[name].x = torch.from_numpy(np.ascontiguousarray(features.block(name)))
    t = snapshot.transactions
    m = t.merchant.astype(np.int64, copy=False)  # int64 already: shared, not copied
    money = m >= 0
    n_mer = max(snapshot.num_nodes(NodeType.MERCHANT), 1)
    pairs = np.unique(t.user[money].astype(np.int64) * n_mer + m[money])
    pay_u, pay_m = pairs // n_mer, pairs % n_mer
    forward = {
        "uses_device": (snapshot.user_device.src, snapshot.user_device.dst),
        "uses_ip": (snapshot.user_ip.src, snapshot.user_ip.dst),
        "pays": (pay_u, pay_m),
        "seen_at": (snapshot.device_ip.src, snapshot.device_ip.dst),
    }
    for src_t, rel, dst_t in RELATIONS:
        if rel.startswith("rev_"):
            s, d = forward[rel[4:]]
            data[src_t, rel, dst_t].edge_index = _edges(d, s)
        else:
            s, d = forward[rel]
            data[src_t, rel, dst_t].edge_index = _edges(s, d)
    return GraphInput(
        data=data,
        txn_x=torch.from_numpy(np.ascontiguousarray(features.txn)),
        txn_user=torch.from_numpy(t.user.astype(np.int64, copy=False)),
        txn_merchant=torch.from_numpy(m),
        txn_device=torch.from_numpy(t.device.astype(np.int64, copy=False)),
        txn_ip=torch.from_numpy(t.ip.astype(np.int64, copy=False)),
        label_user=None if known is None else torch.from_numpy(known.user),
        label_txn=None if known is None else torch.from_numpy(known.txn),
    )


def known_inputs(config: ModelConfig, snapshot: Snapshot) -> KnownFraudFeatures | None:
    """The known-fraud inputs a model with ``config`` reads on ``snapshot`` (None: it reads none)."""
    if not (config.user_label_dim or config.txn_label_dim):
        return None
    return known_fraud_features(snapshot, label_delay=config.label_delay)


class RingSAGE(nn.Module):
    """Heterogeneous GraphSAGE with an account head and a transaction (edge) head.

    ``forward(g, txn_rows)`` returns ``(user_logits [N_user], txn_logits [R], user_embedding
    [N_user, hidden])`` where R = ``len(txn_rows)`` (all transactions when ``None``, none when
    ``txn_rows`` is empty).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.encode = nn.ModuleDict({t: nn.Linear(config.in_dims[t], h) for t in NODE_TYPES})
        self.convs = nn.ModuleList(
            HeteroConv({r: SAGEConv((h, h), h) for r in RELATIONS}, aggr="sum") for _ in range(config.layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.user_head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(h, 1))
        # First layer of the transaction MLP, split per input part (see module docstring).
        self.txn_user = nn.Linear(h, h)
        self.txn_ctx = nn.ModuleDict({t: nn.Linear(h, h, bias=False) for t in TXN_CONTEXT})
        self.txn_feat = nn.Linear(config.txn_dim, h, bias=False)
        # No dropout here: the embeddings feeding the head are already dropped out, and a mask
        # over every transaction's hidden vector is the most expensive op of an epoch.
        self.txn_out = nn.Sequential(nn.ReLU(), nn.Linear(h, 1))
        # Known-fraud inputs, added to each head's first layer (see the module docstring).
        self.user_label = nn.Linear(config.user_label_dim, h, bias=False) if config.user_label_dim else None
        self.txn_label = nn.Linear(config.txn_label_dim, h, bias=False) if config.txn_label_dim else None
        #: Training memory (not part of the config: it changes no result): graphs with more
        #: nodes than this checkpoint their message-passing layers (see ``CHECKPOINT_NODES``).
        self.checkpoint_nodes = CHECKPOINT_NODES
        self.checkpoint_txns = CHECKPOINT_TXNS

    def embed(
        self,
        x_dict: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        hops: HopCounts | None = None,
    ) -> dict[str, Tensor]:
        """Node embeddings [N_t, hidden] per node type after all message-passing layers (with
        ``hops``: of the hop-0 nodes only, see ``HopCounts``)."""
        if self.training and self.config.user_feature_drop > 0:
            x = x_dict["user"]
            keep = torch.rand(x.shape[0], 1, device=x.device) >= self.config.user_feature_drop
            x_dict = {**x_dict, "user": x * keep}
        h = {t: torch.relu(self.encode[t](x)) for t, x in x_dict.items()}
        big = sum(int(x.shape[0]) for x in x_dict.values()) > self.checkpoint_nodes
        for layer, conv in enumerate(self.convs):
            if hops is not None:
                h = self._trimmed_layer(conv, h, edge_index_dict, hops, len(self.convs) - 1 - layer)
            elif big and torch.is_grad_enabled():
                # Keeps the layer's input only; the backward pass reruns the layer with the same
                # dropout masks (the RNG state is restored), so gradients are unchanged.
                h = checkpoint(self._layer, conv, h, edge_index_dict, use_reentrant=False)
            else:
                h = self._layer(conv, h, edge_index_dict)
        return h

    def _layer(
        self, conv: nn.Module, h: dict[str, Tensor], edge_index_dict: dict[tuple[str, str, str], Tensor]
    ) -> dict[str, Tensor]:
        """One message-passing layer: ``HeteroConv``, ReLU, dropout."""
        return {t: self.dropout(torch.relu(v)) for t, v in conv(h, edge_index_dict).items()}

    def _trimmed_layer(
        self,
        conv: nn.Module,
        h: dict[str, Tensor],
        edge_index_dict: dict[tuple[str, str, str], Tensor],
        hops: HopCounts,
        keep: int,
    ) -> dict[str, Tensor]:
        """One layer computed for the nodes at hop ``<= keep`` only, from the edges into them:
        the same sum over relations of ``SAGEConv`` as ``HeteroConv(aggr="sum")``."""
        out: dict[str, Tensor] = {}
        for t, x_t in h.items():
            x_dst = x_t[: hops.nodes[t][keep]]
            acc: Tensor | None = None
            for rel in RELATIONS:
                if rel[2] != t:
                    continue
                ei = edge_index_dict[rel][:, : hops.edges[rel][keep]]
                part = conv.convs[rel]((h[rel[0]], x_dst), ei)  # type: ignore[index]
                acc = part if acc is None else acc + part
            assert acc is not None  # every node type receives at least one relation
            out[t] = self.dropout(torch.relu(acc))
        return out

    def embed_layerwise(self, g: GraphInput, chunk: int | None = None) -> dict[str, Tensor]:
        """``embed`` in eval mode (no dropout, no feature hiding), layer by layer and in chunks
        of ``chunk`` destination nodes (default ``NODE_CHUNK``): layer ``l`` is computed for every
        node from layer ``l - 1``'s, a chunk of destinations at a time, with only the edges into
        that chunk. Peak memory is the embeddings of two layers plus one chunk's messages,
        instead of every relation's [E, hidden] messages at once. Same function as ``embed``
        (mean-aggregating ``SAGEConv`` per relation, summed per destination type, then ReLU);
        ``tests/gnn/core/test_model.py`` checks the equality. Call it without autograd (``predict`` does).
        """
        step = max(int(chunk or NODE_CHUNK), 1)
        edges = {rel: _dst_sorted(ei) for rel, ei in g.edge_index_dict.items()}
        h = {t: torch.relu(self.encode[t](x)) for t, x in g.x_dict.items()}
        for conv in self.convs:
            nxt: dict[str, Tensor] = {}
            for t, x_t in h.items():
                n = int(x_t.shape[0])
                starts = list(range(0, n, step))
                cuts = torch.tensor(starts + [n])
                rels = [(rel, *edges[rel]) for rel in RELATIONS if rel[2] == t]
                bounds = [torch.searchsorted(dst, cuts.to(dst.device)).tolist() for _, _, dst in rels]
                out = x_t.new_empty(n, self.config.hidden)
                for k, a in enumerate(starts):
                    b = min(a + step, n)
                    acc: Tensor | None = None
                    for (rel, src, dst), bd in zip(rels, bounds, strict=True):
                        ei = torch.stack([src[bd[k] : bd[k + 1]], dst[bd[k] : bd[k + 1]] - a])
                        part = conv.convs[rel]((h[rel[0]], x_t[a:b]), ei)  # type: ignore[index]
                        acc = part if acc is None else acc + part
                    assert acc is not None  # every node type receives at least one relation
                    out[a:b] = torch.relu(acc)
                nxt[t] = out
            h = nxt
        return h

    def txn_logits(
        self, h: dict[str, Tensor], g: GraphInput, rows: Tensor | None = None, *, chunk: int | None = None
    ) -> Tensor:
        """Edge-head logits [R] for transaction ``rows`` (all when ``None``).

        The per-part projections are stacked into one table (``txn_table``) and summed per
        transaction by ``embedding_bag``, one fused gather instead of four gathers and three
        additions over [T, hidden]. Transactions pass through the head ``chunk`` rows at a time
        (default ``TXN_CHUNK``). Under autograd with more than ``checkpoint_txns`` rows each
        chunk is checkpointed, i.e. only its inputs are kept and its [chunk, hidden]
        activations are recomputed in the backward pass, so full-batch training holds
        O(chunk · hidden) head activations instead of O(T · hidden); the head has no dropout,
        so the recomputation is exact and the gradients are those of the unchunked head (with
        fewer rows, one chunk). Without autograd the chunks bound inference's transient memory.
        """
        step = max(int(chunk or TXN_CHUNK), 1)
        table, offsets = self.txn_table(h)
        n = int(g.txn_x.shape[0] if rows is None else rows.shape[0])
        grad = torch.is_grad_enabled() and table.requires_grad
        if grad and n <= self.checkpoint_txns:
            step = max(n, 1)  # small enough: one chunk, nothing recomputed
        parts: tuple[Tensor, ...] = (g.txn_user, g.txn_merchant, g.txn_device, g.txn_ip, g.txn_x)
        if self.txn_label is not None:
            if g.label_txn is None:
                raise ValueError("this model reads known-fraud transaction inputs: GraphInput.label_txn is missing")
            parts = (*parts, g.label_txn)
        out = []
        for a in range(0, n, step):
            sel = slice(a, min(a + step, n)) if rows is None else rows[a : a + step]
            if grad and step < n:  # the checkpoint keeps the arguments: views and the shared table
                out.append(checkpoint(self._txn_head, table, offsets, parts, sel, use_reentrant=False))
            else:
                out.append(self._txn_head(table, offsets, parts, sel))
        if not out:
            return table.new_zeros(0)
        return out[0] if len(out) == 1 else torch.cat(out)

    def txn_table(self, h: dict[str, Tensor]) -> tuple[Tensor, tuple[int, ...]]:
        """The edge head's first layer applied once per node: a table [N_user + N_merchant +
        N_device + N_ip + 1, hidden] (the last row zeros, for an absent part) and the row
        offsets of the user, merchant, device and IP parts in it."""
        parts = [self.txn_user(h["user"])] + [self.txn_ctx[t](h[t]) for t in TXN_CONTEXT]
        offsets = tuple(int(x) for x in np.cumsum([0] + [p.shape[0] for p in parts[:-1]]))
        return torch.cat(parts + [parts[0].new_zeros(1, parts[0].shape[1])], dim=0), offsets

    def _txn_head(self, table: Tensor, offsets: tuple[int, ...], parts: tuple[Tensor, ...], sel: slice | Tensor) -> Tensor:
        """Logits of the transactions ``sel`` (a slice or row indices) from ``txn_table``'s
        output; ``parts`` = the transaction table's (user, merchant, device, IP) index tensors
        (``-1`` = absent) and its standardised features [T, F_txn]."""
        picked = [p[sel] for p in parts]
        nodes, x = picked[:4], picked[4]
        zero_row = table.shape[0] - 1
        cols = [torch.where(i < 0, zero_row, i + o) for i, o in zip(nodes, offsets, strict=True)]
        z = nn.functional.embedding_bag(torch.stack(cols, dim=1), table, mode="sum") + self.txn_feat(x)
        if self.txn_label is not None:
            z = z + self.txn_label(picked[5])
        return self.txn_out(z).squeeze(-1)

    def user_logits(self, h_user: Tensor, label_user: Tensor | None = None) -> Tensor:
        """Account-head logits [N] of user embeddings [N, hidden] (and their known-fraud inputs
        [N, L_u] when the model reads them)."""
        if self.user_label is None:
            return self.user_head(h_user).squeeze(-1)
        if label_user is None:
            raise ValueError("this model reads known-fraud account inputs: GraphInput.label_user is missing")
        z = self.user_head[0](h_user) + self.user_label(label_user)
        return self.user_head[3](self.user_head[2](self.user_head[1](z))).squeeze(-1)

    def forward(self, g: GraphInput, txn_rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        h = self.embed(g.x_dict, g.edge_index_dict, g.hops)
        lab = g.label_user
        if lab is not None and g.hops is not None:  # trimmed: hop-0 accounts only
            lab = lab[: h["user"].shape[0]]
        return self.user_logits(h["user"], lab), self.txn_logits(h, g, txn_rows), h["user"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """Model output for one snapshot as numpy: probabilities per account [N_user] and per
    transaction [T] (after the prior shift), and the final user embeddings [N_user, hidden]."""

    account: np.ndarray
    txn: np.ndarray
    embeddings: np.ndarray


def predict(
    model: RingSAGE,
    g: GraphInput,
    txn_rows: Tensor | None = None,
    *,
    node_chunk: int | None = None,
    txn_chunk: int | None = None,
) -> Prediction:
    """Evaluate ``model`` (in eval mode, no dropout) on ``g``; float64 probabilities in [0, 1].
    ``txn_rows`` limits the edge head to those transactions (``Prediction.txn`` then has one
    score per row given); ``None`` scores them all.

    Runs under ``torch.inference_mode`` and layer-wise (``RingSAGE.embed_layerwise``, chunks of
    ``node_chunk`` destination nodes), the heads in chunks (``txn_chunk`` transactions): memory
    is a few [N, hidden] embedding tables plus one chunk, so a graph whose training fits also
    scores. Same scores as ``model(g)`` in eval mode.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            h = model.embed_layerwise(g, node_chunk)
            cfg = model.config
            step = max(int(node_chunk or NODE_CHUNK), 1)
            lab = g.label_user
            user_logits = torch.cat(
                [
                    model.user_logits(h["user"][a : a + step], None if lab is None else lab[a : a + step])
                    for a in range(0, h["user"].shape[0], step)
                ]
                or [h["user"].new_zeros(0)]
            )
            txn_logits = model.txn_logits(h, g, txn_rows, chunk=txn_chunk)
            account = torch.sigmoid(user_logits.double() - cfg.user_prior_shift)
            txn = torch.sigmoid(txn_logits.double() - cfg.txn_prior_shift)
            return Prediction(
                account=account.cpu().numpy(),
                txn=txn.cpu().numpy(),
                embeddings=h["user"].float().cpu().numpy(),
            )
    finally:
        model.train(was_training)
