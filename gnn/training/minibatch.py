"""Mini-batch training of ``RingSAGE`` with uniform neighbour sampling on the heterogeneous graph.

Why a sampler of our own: PyG's ``NeighborLoader`` samples heterogeneous graphs only through
``pyg-lib`` or ``torch-sparse`` (``ImportError: 'NeighborSampler' requires either 'pyg-lib' or
'torch-sparse'``); PyPI has no ``pyg-lib`` at all and only a source archive of ``torch-sparse``,
whose build needs torch installed in the build environment and a C++ toolchain. ``NeighbourSampler`` does
the same job in numpy, with the semantics of ``NeighborLoader(num_neighbors=fanout,
replace=False, disjoint=False)``; ``MiniBatchEpochs`` runs the epochs over its batches with the
full-batch loss. Early stopping stays in ``gnn.training.train``. The same seed gives the same
weights on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from gnn.core.features import NODE_TYPES
from gnn.core.model import RELATIONS, GraphInput, HopCounts, RingSAGE
from graph.errors import ValidationError

__all__ = ["DEFAULT_FANOUT", "SampledBatch", "NeighbourSampler", "MiniBatchEpochs", "check_fanout"]

#: Neighbours sampled per relation at hop 1 and hop 2 (GraphSAGE paper's 25/10, a little
#: smaller: our node types have 2–3 incoming relations each, so a hop reaches up to 45 nodes).
DEFAULT_FANOUT: tuple[int, ...] = (15, 10)

#: Transaction columns that point at a node, with the node type they point at.
_TXN_PARTS: tuple[tuple[str, str], ...] = (
    ("txn_user", "user"),
    ("txn_merchant", "merchant"),
    ("txn_device", "device"),
    ("txn_ip", "ip"),
)


def check_fanout(fanout: Sequence[int], layers: int) -> tuple[int, ...]:
    """``fanout`` as a tuple, checked: one entry per message-passing layer, each ``>= 1`` or
    ``-1`` (all neighbours).

    Raises:
        ValidationError: wrong length or a value out of range (field ``fanout``).
    """
    out = tuple(fanout)
    if len(out) != layers:
        raise ValidationError("fanout", out, f"needs one entry per layer ({layers})")
    for k in out:
        if isinstance(k, bool) or not isinstance(k, int) or (k < 1 and k != -1):
            raise ValidationError("fanout", out, "entries must be integers >= 1, or -1 for all neighbours")
    return out


@dataclass(frozen=True, slots=True)
class SampledBatch:
    """One sampled subgraph.

    ``graph``: the relabelled ``GraphInput`` (CPU); ``node_ids[t]``: int64 [n_t] global id of each
    local node of type ``t`` (the seed accounts are ``node_ids["user"][:n_user_seeds]``, in the
    order given); ``hop[t]``: int64 [n_t] the hop at which each local node was reached (0 for
    the seeds and the seed transactions' endpoints); ``txn_rows``: int64 [R] global rows of the
    seed transactions, aligned with the subgraph's transaction table."""

    graph: GraphInput
    node_ids: dict[str, np.ndarray]
    hop: dict[str, np.ndarray]
    n_user_seeds: int
    txn_rows: np.ndarray

    @property
    def num_edges(self) -> int:
        return sum(int(self.graph.data[r].edge_index.shape[1]) for r in RELATIONS)


class NeighbourSampler:
    """Uniform heterogeneous neighbour sampler over a full ``GraphInput``.

    * The seeds are the batch's accounts and, for the transaction head, each seed transaction's
      user, merchant, device and IP.
    * Hop ``k`` samples, for every node first reached at hop ``k - 1`` (the seeds at hop 0) and
      every relation that points *into* its type, at most ``fanout[k]`` distinct incoming
      neighbours, uniformly without replacement (all of them when it has that many or fewer;
      ``-1`` = all).
    * The sampled edges and nodes form a relabelled ``GraphInput``: node ``i`` of type ``t`` is
      global node ``node_ids[t][i]``, the seed accounts come first in the user block, and the
      transaction table holds the seed transactions only (local indices, ``-1`` kept for absent
      parts).

    With ``fanout`` all ``-1`` and as many hops as layers, the seeds' outputs equal full-batch ones.

    Builds one CSR per relation, keyed by destination node, once (O(E log E)). ``sample`` is
    not re-entrant: it reuses one global-to-local map per node type between calls.

    Args:
        g: the whole graph; its tensors are read on the CPU (copied there if they live on a GPU).
        fanout: neighbours per relation per hop, one entry per hop; ``-1`` = all.
    Raises:
        ValidationError: a fan-out entry out of range.
    """

    def __init__(self, g: GraphInput, fanout: Sequence[int]) -> None:
        self.fanout = check_fanout(fanout, len(tuple(fanout)))
        self._x = {t: g.data[t].x.cpu() for t in NODE_TYPES}
        self._num = {t: int(x.shape[0]) for t, x in self._x.items()}
        self._txn_x = g.txn_x.cpu()
        self._label_user = None if g.label_user is None else g.label_user.cpu()
        self._label_txn = None if g.label_txn is None else g.label_txn.cpu()
        self._txn = {col: getattr(g, col).cpu().numpy() for col, _ in _TXN_PARTS}
        self._csr: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
        for rel in RELATIONS:
            src, dst = g.data[rel].edge_index.cpu().numpy()
            order = np.lexsort((src, dst))
            counts = np.bincount(dst, minlength=self._num[rel[2]])
            indptr = np.zeros(self._num[rel[2]] + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            self._csr[rel] = (indptr, src[order].astype(np.int64))
        self._local = {t: np.full(n, -1, dtype=np.int64) for t, n in self._num.items()}

    def neighbours(self, rel: tuple[str, str, str], node: int) -> np.ndarray:
        """All incoming neighbours (global ids, sorted) of global node ``node`` over ``rel``."""
        indptr, src = self._csr[rel]
        return src[indptr[node] : indptr[node + 1]]

    def sample(
        self, user_seeds: np.ndarray, txn_seeds: np.ndarray, rng: np.random.Generator
    ) -> SampledBatch:
        """Sample the computation graph of ``user_seeds`` (unique global account ids) and of the
        transactions at rows ``txn_seeds``.

        Raises:
            ValidationError: repeated or out-of-range seed accounts, or seed rows out of range.
        """
        users = np.asarray(user_seeds, dtype=np.int64)
        rows = np.asarray(txn_seeds, dtype=np.int64)
        n_user = self._num["user"]
        if users.size and (users.min() < 0 or users.max() >= n_user or np.unique(users).size != users.size):
            raise ValidationError("user_seeds", f"{users.size} ids", f"must be distinct account ids in [0, {n_user})")
        n_txn = int(self._txn_x.shape[0])
        if rows.size and (rows.min() < 0 or rows.max() >= n_txn):
            raise ValidationError("txn_seeds", f"{rows.size} rows", f"must be transaction rows in [0, {n_txn})")

        nodes: dict[str, list[np.ndarray]] = {t: [] for t in NODE_TYPES}
        hops: dict[str, list[np.ndarray]] = {t: [] for t in NODE_TYPES}
        count = dict.fromkeys(NODE_TYPES, 0)
        local = self._local
        try:

            def add(t: str, ids: np.ndarray, hop: int) -> np.ndarray:
                """Give the not-yet-seen ids of ``ids`` (deduplicated) the next local ids."""
                new = np.unique(ids[local[t][ids] < 0]) if ids.size else ids
                local[t][new] = np.arange(count[t], count[t] + new.size)
                count[t] += new.size
                nodes[t].append(new)
                hops[t].append(np.full(new.size, hop, dtype=np.int64))
                return new

            # Seeds: the accounts in the order given, then the transactions' endpoints.
            local["user"][users] = np.arange(users.size)
            count["user"] = users.size
            nodes["user"].append(users)
            hops["user"].append(np.zeros(users.size, dtype=np.int64))
            frontier = {t: [] for t in NODE_TYPES}
            frontier["user"].append(users)
            for col, t in _TXN_PARTS:
                ids = self._txn[col][rows]
                frontier[t].append(add(t, ids[ids >= 0], 0))
            front = {t: np.concatenate(v) if v else np.zeros(0, np.int64) for t, v in frontier.items()}

            # Running totals per hop, for layer trimming (``HopCounts``).
            node_totals = {t: [count[t]] for t in NODE_TYPES}
            edge_totals: dict[tuple[str, str, str], list[int]] = {r: [] for r in RELATIONS}
            edges: dict[tuple[str, str, str], list[tuple[np.ndarray, np.ndarray]]] = {r: [] for r in RELATIONS}
            for hop, k in enumerate(self.fanout, start=1):
                reached: dict[str, list[np.ndarray]] = {t: [] for t in NODE_TYPES}
                for rel in RELATIONS:
                    dst = front[rel[2]]
                    if dst.size == 0:
                        continue
                    s, d = self._sample_rel(rel, dst, k, rng)
                    edges[rel].append((s, d))
                    reached[rel[0]].append(s)
                front = {
                    t: add(t, np.concatenate(v), hop) if v else np.zeros(0, np.int64) for t, v in reached.items()
                }
                for t in NODE_TYPES:
                    node_totals[t].append(count[t])
                for rel in RELATIONS:
                    edge_totals[rel].append(sum(int(e[0].size) for e in edges[rel]))

            node_ids = {t: np.concatenate(v) if v else np.zeros(0, np.int64) for t, v in nodes.items()}
            hop_of = {t: np.concatenate(v) if v else np.zeros(0, np.int64) for t, v in hops.items()}
            data = HeteroData()
            for t in NODE_TYPES:
                data[t].x = self._x[t][torch.from_numpy(node_ids[t])]
            for rel in RELATIONS:
                if edges[rel]:
                    s = np.concatenate([e[0] for e in edges[rel]])
                    d = np.concatenate([e[1] for e in edges[rel]])
                    ei = np.stack([local[rel[0]][s], local[rel[2]][d]])
                else:
                    ei = np.zeros((2, 0), dtype=np.int64)
                data[rel].edge_index = torch.from_numpy(np.ascontiguousarray(ei))
            parts = {}
            for col, t in _TXN_PARTS:
                ids = self._txn[col][rows]
                parts[col] = torch.from_numpy(np.where(ids >= 0, local[t][np.maximum(ids, 0)], -1))
            picked = torch.from_numpy(rows)
            graph = GraphInput(
                data=data,
                txn_x=self._txn_x[picked],
                **parts,
                label_user=None if self._label_user is None else self._label_user[torch.from_numpy(node_ids["user"])],
                label_txn=None if self._label_txn is None else self._label_txn[picked],
                hops=HopCounts(
                    nodes={t: tuple(v) for t, v in node_totals.items()},
                    edges={r: tuple(v) for r, v in edge_totals.items()},
                ),
            )
        finally:
            for t in NODE_TYPES:  # leave the maps clean for the next call, even after an error
                for ids in nodes[t]:
                    local[t][ids] = -1
        return SampledBatch(graph=graph, node_ids=node_ids, hop=hop_of, n_user_seeds=int(users.size), txn_rows=rows)

    def _sample_rel(
        self, rel: tuple[str, str, str], dst: np.ndarray, k: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` distinct incoming neighbours of each node in ``dst`` over ``rel``, as edge
        arrays (global source ids, global destination ids)."""
        indptr, src = self._csr[rel]
        start = indptr[dst]
        deg = indptr[dst + 1] - start
        whole = deg <= k if k >= 0 else np.ones(dst.size, dtype=bool)
        # Nodes with at most k neighbours keep them all.
        w_deg = deg[whole]
        total = int(w_deg.sum())
        first = np.repeat(start[whole] - np.cumsum(w_deg) + w_deg, w_deg)
        s_all = src[first + np.arange(total)]
        d_all = np.repeat(dst[whole], w_deg)
        if whole.all():
            return s_all, d_all
        # The others: k of deg offsets without replacement by Floyd's algorithm, vectorised over
        # nodes (k rounds; round i draws t in [0, deg - k + i] and takes deg - k + i if t is taken).
        big = ~whole
        b_deg = deg[big]
        chosen = np.empty((b_deg.size, k), dtype=np.int64)
        for i in range(k):
            j = b_deg - k + i
            t = np.minimum((rng.random(b_deg.size) * (j + 1)).astype(np.int64), j)
            taken = (chosen[:, :i] == t[:, None]).any(axis=1)
            chosen[:, i] = np.where(taken, j, t)
        s_big = src[(start[big][:, None] + chosen).ravel()]
        d_big = np.repeat(dst[big], k)
        return np.concatenate([s_all, s_big]), np.concatenate([d_all, d_big])


class MiniBatchEpochs:
    """Runs training epochs of ``RingSAGE`` over sampled mini-batches, on one rank of ``world``.

    Each epoch shuffles the accounts that carry a training seed (a training account, or the
    payer of a training transaction) with the run's seed and deals them, in that order, into
    batches of about ``batch_size`` seeds: an account's training transactions go into the same
    batch as the account. Grouping by account keeps a batch's distinct endpoints, and so its
    sampled neighbourhood, small (a batch of transactions shuffled one by one reaches about as
    many accounts as it holds transactions). Both heads learn in every step. The loss per batch
    is the full-batch loss (weighted BCE with the same ``pos_weight`` per head, mean over the
    batch's seeds). Forward passes are trimmed per layer to the nodes that the next layer reads
    (``gnn.core.model.HopCounts``), which changes no output of the seeds.

    Data parallel (``gnn.training.distributed``): ``batch_size`` is the step's batch over all
    ranks, so ``world`` ranks take the same optimizer steps as one process. Every rank deals
    the same shuffle (seeded by ``seed`` alone) into parts of ``batch_size / world`` seeds;
    parts ``world * s + r`` (``r = 0 .. world - 1``) make step ``s``, rank ``r`` runs its part.
    A rank's loss is its seeds' summed BCE over the whole step's seed counts, times ``world``,
    so DDP's mean of the gradients over ranks is the gradient of the step's full-batch loss
    however the seeds fall; a rank with no part in the last step steps on a part weighted 0
    (DDP's all-reduce stays paired and the others' gradient is not diluted). The sampler draws
    from a generator seeded with ``(seed, rank)``, the dropout masks from torch's seeded
    generator. Validation (in ``gnn.training.train``) is scored by ``gnn.core.model.predict``,
    layer-wise and in chunks.

    Args:
        g: the whole graph (features standardised); sampled on the CPU, batches moved to
            ``device``.
        user_train: int64 global ids of the training accounts (distinct).
        txn_train: int64 rows of the training transactions (empty: no transaction loss).
        y_user, y_txn: float32 targets [N_user], [T] on ``device``.
        pos_weight_user, pos_weight_txn: the heads' BCE ``pos_weight`` (0-d tensors on ``device``).
        batch_size: seeds per optimizer step, accounts and transactions together, all ranks
            together (>= 1; an account with more training transactions than a rank's part makes
            a bigger part of its own).
        fanout: neighbours per relation per hop, one entry per layer.
        seed: seeds the sampler and the shuffling.
        rank, world: this rank and the number of ranks (1 process: 0 and 1).
    Raises:
        ValidationError: ``batch_size`` < 1, a bad ``fanout``, or ``rank`` not in ``[0, world)``.
    """

    def __init__(
        self,
        g: GraphInput,
        *,
        user_train: np.ndarray,
        txn_train: np.ndarray,
        y_user: Tensor,
        y_txn: Tensor,
        pos_weight_user: Tensor,
        pos_weight_txn: Tensor,
        batch_size: int,
        fanout: Sequence[int],
        seed: int,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be an integer >= 1")
        if not 0 <= rank < world:
            raise ValidationError("rank", rank, f"must be in [0, {world})")
        self.sampler = NeighbourSampler(g, fanout)
        self.user_train = np.asarray(user_train, dtype=np.int64)
        self.txn_train = np.asarray(txn_train, dtype=np.int64)
        self._owner = self.sampler._txn["txn_user"][self.txn_train].astype(np.int64)
        self._accounts = np.union1d(self.user_train, self._owner)
        self.y_user, self.y_txn = y_user, y_txn
        self.pw_user, self.pw_txn = pos_weight_user, pos_weight_txn
        self.batch_size = batch_size
        self.part_size = max(1, math.ceil(batch_size / world))  # seeds of one rank's part of a step
        self.device = device
        self.rank, self.world = rank, world
        self.shuffle_rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng([seed, rank])
        self.last_batches = 0

    @property
    def batches_per_epoch(self) -> int:
        """About how many optimizer steps an epoch takes (the same on every rank; the count
        varies a little with the shuffle, because an account is never split)."""
        return max(1, math.ceil((self.user_train.size + self.txn_train.size) / self.batch_size))

    def deal(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """One epoch's parts, all ranks' (account seeds, transaction rows), from the next shuffle:
        parts ``world * s .. world * s + world - 1`` make step ``s``, part ``world * s + r`` is rank
        ``r``'s."""
        order = self.shuffle_rng.permutation(self._accounts)
        pos = np.full(self.sampler._num["user"], -1, dtype=np.int64)
        pos[order] = np.arange(order.size)
        u_pos, t_pos = pos[self.user_train], pos[self._owner]
        per = np.bincount(u_pos, minlength=order.size) + np.bincount(t_pos, minlength=order.size)
        batch_of = (np.cumsum(per) - per) // self.part_size  # an account's part: where its seeds start
        n = int(batch_of[-1]) + 1 if order.size else 0
        u_b, t_b = batch_of[u_pos], batch_of[t_pos]
        u_sorted = self.user_train[np.lexsort((u_pos, u_b))]
        t_order = np.lexsort((self.txn_train, t_pos, t_b))
        t_sorted = self.txn_train[t_order]
        u_cut = np.searchsorted(np.sort(u_b), np.arange(1, n))
        t_cut = np.searchsorted(t_b[t_order], np.arange(1, n))
        parts = zip(np.split(u_sorted, u_cut), np.split(t_sorted, t_cut), strict=True)
        return [(u, t) for u, t in parts if u.size or t.size]  # an account bigger than a part leaves gaps

    def run_epoch(self, model: torch.nn.Module, opt: torch.optim.Optimizer, max_batches: int | None = None) -> float:
        """One pass over every training account and transaction (this rank's share); returns the
        mean loss of its steps. ``model`` is a ``RingSAGE`` or a DDP wrapper of one.
        ``max_batches`` stops the pass early (benchmarks time a few steps of a big epoch)."""
        model.train()
        parts = self.deal()
        steps_each = math.ceil(len(parts) / self.world)
        if max_batches is not None:
            steps_each = min(steps_each, max_batches)
        total, steps = 0.0, 0
        for step in range(steps_each):
            group = parts[step * self.world : (step + 1) * self.world]  # every rank's part of this step
            n_user = sum(int(u.size) for u, _ in group)
            n_txn = sum(int(t.size) for _, t in group)
            opt.zero_grad(set_to_none=True)
            if self.rank < len(group):
                loss = self._batch_loss(model, *group[self.rank], n_user, n_txn)
                total += float(loss.detach())  # this rank's estimate of the step's loss
                steps += 1
            else:  # no part for this rank in the last step: weight 0 keeps DDP's all-reduce paired
                loss = self._batch_loss(model, *group[0], n_user, n_txn) * 0.0
            loss.backward()
            opt.step()
        self.last_batches = steps
        return total / max(steps, 1)

    def _batch_loss(self, model: torch.nn.Module, u: np.ndarray, t: np.ndarray, n_user: int, n_txn: int) -> Tensor:
        """This rank's share of the step's loss: its seeds' summed BCE over the step's seed counts
        (all ranks), times ``world``, so that DDP's mean over ranks is the full-batch loss of the
        step's seeds whatever each rank holds."""
        batch = self.sampler.sample(u, t, self.rng)
        g = batch.graph.to(self.device)
        user_logits, txn_logits, _ = model(g)
        loss = user_logits.new_zeros(())
        if u.size:
            uu = torch.from_numpy(u).to(self.device)
            bce = F.binary_cross_entropy_with_logits(
                user_logits[: u.size], self.y_user[uu], pos_weight=self.pw_user, reduction="sum"
            )
            loss = loss + bce * (self.world / n_user)
        if t.size:
            tt = torch.from_numpy(t).to(self.device)
            bce = F.binary_cross_entropy_with_logits(txn_logits, self.y_txn[tt], pos_weight=self.pw_txn, reduction="sum")
            loss = loss + bce * (self.world / n_txn)
        return loss
