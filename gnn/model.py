"""The heterogeneous GraphSAGE model and the graph tensors it reads.

Node types ``user``, ``device``, ``ip``, ``merchant``; relations user–device (USED_DEVICE),
user–ip (USED_IP), user–merchant (distinct pairs from payments/refunds, TRANSACTED) and
device–ip (SEEN_AT), each with an explicit ``rev_`` relation so information flows both ways.
Per relation a ``SAGEConv`` (mean aggregation), combined per destination type by
``HeteroConv(aggr="sum")``. Two heads:

* user head: MLP on the final user embedding -> one logit per account;
* transaction (edge) head: MLP on ``[h_user[u], h_merchant[m], h_device[d], h_ip[i], x_txn]``
  -> one logit per transaction; an absent merchant/device/IP contributes zeros.

The edge head's first layer is applied per part (``W·concat = Σ W_part·part``): each node type is
projected once and then gathered per transaction, which is the same function as the concatenated
MLP but costs O(nodes·hidden²) instead of O(transactions·4·hidden²).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from gnn.features import NODE_TYPES, FeatureSet
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
        )


@dataclass(slots=True)
class GraphInput:
    """Tensors of one snapshot, ready for ``RingSAGE``: the ``HeteroData`` (standardised node
    features in ``data[t].x``, ``edge_index`` per relation) and the transaction table as index
    tensors (``-1`` = absent) with standardised ``txn_x`` [T, F_txn]."""

    data: HeteroData
    txn_x: Tensor
    txn_user: Tensor
    txn_merchant: Tensor
    txn_device: Tensor
    txn_ip: Tensor

    def to(self, device: torch.device) -> GraphInput:
        return GraphInput(
            data=self.data.to(device),
            txn_x=self.txn_x.to(device),
            txn_user=self.txn_user.to(device),
            txn_merchant=self.txn_merchant.to(device),
            txn_device=self.txn_device.to(device),
            txn_ip=self.txn_ip.to(device),
        )

    @property
    def x_dict(self) -> dict[str, Tensor]:
        return {t: self.data[t].x for t in NODE_TYPES}

    @property
    def edge_index_dict(self) -> dict[tuple[str, str, str], Tensor]:
        return {r: self.data[r].edge_index for r in RELATIONS}


def _edges(src: np.ndarray, dst: np.ndarray) -> Tensor:
    return torch.from_numpy(np.stack([src.astype(np.int64), dst.astype(np.int64)])).contiguous()


def build_graph_input(snapshot: Snapshot, features: FeatureSet) -> GraphInput:
    """Assemble the ``HeteroData`` and transaction tensors from a snapshot and its (already
    standardised) features. Relations with no rows get an empty ``[2, 0]`` edge index, so every
    node type always receives messages and keeps an embedding."""
    data = HeteroData()
    for name in NODE_TYPES:
        data[name].x = torch.from_numpy(np.ascontiguousarray(features.block(name)))
    t = snapshot.transactions
    m = t.merchant.astype(np.int64)
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
        txn_user=torch.from_numpy(t.user.astype(np.int64)),
        txn_merchant=torch.from_numpy(m),
        txn_device=torch.from_numpy(t.device.astype(np.int64)),
        txn_ip=torch.from_numpy(t.ip.astype(np.int64)),
    )


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

    def embed(self, x_dict: dict[str, Tensor], edge_index_dict: dict[tuple[str, str, str], Tensor]) -> dict[str, Tensor]:
        """Node embeddings [N_t, hidden] per node type after all message-passing layers."""
        if self.training and self.config.user_feature_drop > 0:
            x = x_dict["user"]
            keep = torch.rand(x.shape[0], 1, device=x.device) >= self.config.user_feature_drop
            x_dict = {**x_dict, "user": x * keep}
        h = {t: torch.relu(self.encode[t](x)) for t, x in x_dict.items()}
        for conv in self.convs:
            h = conv(h, edge_index_dict)
            h = {t: self.dropout(torch.relu(v)) for t, v in h.items()}
        return h

    def txn_logits(self, h: dict[str, Tensor], g: GraphInput, rows: Tensor | None = None) -> Tensor:
        """Edge-head logits for transaction ``rows`` (all when ``None``).

        The per-part projections are stacked into one table (user rows, then merchant, device,
        IP, then one zero row for "absent") and summed per transaction by ``embedding_bag``,
        one fused gather instead of four gathers and three additions over [T, hidden].
        """
        parts = [self.txn_user(h["user"])] + [self.txn_ctx[t](h[t]) for t in TXN_CONTEXT]
        table = torch.cat(parts + [parts[0].new_zeros(1, parts[0].shape[1])], dim=0)
        zero_row = table.shape[0] - 1
        idx = [g.txn_user, g.txn_merchant, g.txn_device, g.txn_ip]
        x = g.txn_x
        if rows is not None:
            idx = [i[rows] for i in idx]
            x = x[rows]
        offset = 0
        cols = []
        for part, i in zip(parts, idx, strict=True):
            cols.append(torch.where(i < 0, zero_row, i + offset))
            offset += part.shape[0]
        bags = torch.stack(cols, dim=1)
        z = nn.functional.embedding_bag(bags, table, mode="sum") + self.txn_feat(x)
        return self.txn_out(z).squeeze(-1)

    def forward(self, g: GraphInput, txn_rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        h = self.embed(g.x_dict, g.edge_index_dict)
        user_logits = self.user_head(h["user"]).squeeze(-1)
        return user_logits, self.txn_logits(h, g, txn_rows), h["user"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """Model output for one snapshot as numpy: probabilities per account [N_user] and per
    transaction [T] (after the prior shift), and the final user embeddings [N_user, hidden]."""

    account: np.ndarray
    txn: np.ndarray
    embeddings: np.ndarray


@torch.no_grad()
def predict(model: RingSAGE, g: GraphInput, txn_rows: Tensor | None = None) -> Prediction:
    """Evaluate ``model`` (in eval mode, no dropout) on ``g``; float64 probabilities in [0, 1].
    ``txn_rows`` limits the edge head to those transactions (``Prediction.txn`` then has one
    score per row given); ``None`` scores them all."""
    was_training = model.training
    model.eval()
    try:
        user_logits, txn_logits, emb = model(g, txn_rows)
    finally:
        model.train(was_training)
    cfg = model.config
    account = torch.sigmoid(user_logits.double() - cfg.user_prior_shift)
    txn = torch.sigmoid(txn_logits.double() - cfg.txn_prior_shift)
    return Prediction(
        account=account.cpu().numpy(),
        txn=txn.cpu().numpy(),
        embeddings=emb.float().cpu().numpy(),
    )
