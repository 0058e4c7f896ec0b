"""Data-parallel mini-batch training of ``RingSAGE`` on ``torch.distributed`` (DDP).

Rank 0 is the process that runs ``gnn.training.train.train``: it builds the graph once, exports
it with the training targets to a folder of ``.npy`` files (``export_graph``), starts the other
ranks, and alone validates, selects the best epoch and returns the weights. The other ranks
(``run_worker``) memory-map that export read-only (``load_export``), so the store is read and the
graph built once, and every rank's page cache mapping is the same file. Every rank trains on its
share of each epoch's mini-batches (``MiniBatchEpochs`` with ``rank``/``world``); DDP all-reduces
the gradients; after each epoch rank 0 broadcasts whether to go on. The backend follows the
device: gloo on the CPU, NCCL on CUDA (``backend_for``).

Two launchers: ``TrainConfig.nproc = N`` starts ``N - 1`` local ranks with
``torch.multiprocessing`` (127.0.0.1, a free port); ``torchrun`` starts every rank itself
(``ringwatch train --export-dir`` on a folder all machines see; see the README).
"""

from __future__ import annotations

import contextlib
import gc
import datetime
import os
import pickle
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gnn.core.device import pick_device
from gnn.core.features import NODE_TYPES
from gnn.core.model import RELATIONS, GraphInput, ModelConfig, RingSAGE
from gnn.training.minibatch import MiniBatchEpochs
from graph.errors import ModelError, ValidationError

__all__ = [
    "RankJob",
    "backend_for",
    "export_graph",
    "load_export",
    "free_port",
    "Ranks",
    "start_local_ranks",
    "run_worker",
    "torchrun_world",
    "loopback",
    "wrap",
    "go_on",
    "join_torchrun",
    "close_group",
]

#: How long a rank waits for the others (a crashed rank makes the rest fail after this), unless
#: ``RINGWATCH_DIST_TIMEOUT`` (seconds) says otherwise: the tests set it short, so a broken
#: rank fails them instead of hanging the run.
TIMEOUT = datetime.timedelta(minutes=30)


def rank_timeout() -> datetime.timedelta:
    """``RINGWATCH_DIST_TIMEOUT`` seconds when set (a positive number), else ``TIMEOUT``.

    Raises:
        ValidationError: the variable is set but not a positive number.
    """
    raw = os.environ.get("RINGWATCH_DIST_TIMEOUT")
    if raw is None or raw == "":
        return TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ValidationError("RINGWATCH_DIST_TIMEOUT", raw, "must be a positive number of seconds")
    return datetime.timedelta(seconds=seconds)
_JOB = "job.pkl"


@dataclass(frozen=True, slots=True)
class RankJob:
    """What every rank needs besides the exported arrays: the run's settings and how to meet.

    ``init_method``: ``tcp://127.0.0.1:PORT`` for local ranks, ``env://`` under torchrun.
    ``threads``: torch CPU threads per rank. ``device_type``: ``cpu`` or ``cuda`` (rank ``r``
    then uses ``cuda:r % device_count``). ``fanout``, ``batch_size``, ``seed``, ``lr``,
    ``weight_decay``: as in ``TrainConfig``. ``pos_weight_user``/``pos_weight_txn``: the heads'
    BCE weights."""

    world: int
    init_method: str
    threads: int
    device_type: str
    model_config: ModelConfig
    fanout: tuple[int, ...]
    batch_size: int
    seed: int
    lr: float
    weight_decay: float
    pos_weight_user: float
    pos_weight_txn: float


def backend_for(device: torch.device) -> str:
    """gloo for the CPU, NCCL for CUDA."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device_type: str, rank: int) -> torch.device:
    """The device rank ``rank`` computes on: the CPU, or one GPU per rank round-robin."""
    if device_type == "cuda":
        return torch.device("cuda", rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def export_graph(
    folder: Path, g: GraphInput, y_user: np.ndarray, y_txn: np.ndarray, user_train: np.ndarray, txn_train: np.ndarray, job: RankJob
) -> None:
    """Write the graph (CPU copies), the targets, the training seeds and ``job`` into ``folder``
    (created; one ``.npy`` file per array)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {f"x_{t}": g.data[t].x for t in NODE_TYPES} | {
        "edges_" + "__".join(rel): g.data[rel].edge_index for rel in RELATIONS
    } | {
        "txn_x": g.txn_x, "txn_user": g.txn_user, "txn_merchant": g.txn_merchant, "txn_device": g.txn_device,
        "txn_ip": g.txn_ip, "y_user": y_user, "y_txn": y_txn, "user_train": user_train, "txn_train": txn_train,
    }  # fmt: skip
    if g.label_user is not None and g.label_txn is not None:
        arrays |= {"label_user": g.label_user, "label_txn": g.label_txn}
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
    # The folder is this run's own (private temp folder, or the operator's --export-dir).
    (folder / _JOB).write_bytes(pickle.dumps(job))


@dataclass(frozen=True, slots=True)
class Export:
    """An export read back: the graph and training arrays as tensors over read-only memory maps."""

    g: GraphInput
    y_user: torch.Tensor
    y_txn: torch.Tensor
    user_train: np.ndarray
    txn_train: np.ndarray
    job: RankJob


def load_export(folder: Path) -> Export:
    """Memory-map ``export_graph``'s files (nothing is copied; pages are shared between ranks).

    Raises:
        ModelError: the folder holds no export.
    """
    if not (folder / _JOB).is_file():
        raise ModelError(f"export_dir={str(folder)!r}: no graph export there ({_JOB} missing)")

    def t(name: str) -> torch.Tensor:
        with warnings.catch_warnings():  # the maps are read-only and nothing writes to them
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(np.load(folder / f"{name}.npy", mmap_mode="r"))

    from torch_geometric.data import HeteroData

    data = HeteroData()
    for nt in NODE_TYPES:
        data[nt].x = t(f"x_{nt}")
    for rel in RELATIONS:
        data[rel].edge_index = t("edges_" + "__".join(rel))
    has_labels = (folder / "label_user.npy").is_file()
    g = GraphInput(
        data=data,
        txn_x=t("txn_x"),
        txn_user=t("txn_user"),
        txn_merchant=t("txn_merchant"),
        txn_device=t("txn_device"),
        txn_ip=t("txn_ip"),
        label_user=t("label_user") if has_labels else None,
        label_txn=t("label_txn") if has_labels else None,
    )
    job = pickle.loads((folder / _JOB).read_bytes())  # noqa: S301 - written by rank 0 of this run
    return Export(
        g=g,
        y_user=t("y_user"),
        y_txn=t("y_txn"),
        user_train=np.load(folder / "user_train.npy"),
        txn_train=np.load(folder / "txn_train.npy"),
        job=job,
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_world() -> tuple[int, int] | None:
    """(rank, world size) when torchrun started this process with more than one rank, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def minibatches(export: Export, job: RankJob, rank: int, device: torch.device) -> MiniBatchEpochs:
    """This rank's share of the epochs' mini-batches."""
    return MiniBatchEpochs(
        export.g,
        user_train=export.user_train,
        txn_train=export.txn_train,
        y_user=export.y_user.to(device),
        y_txn=export.y_txn.to(device),
        pos_weight_user=torch.tensor(job.pos_weight_user, device=device),
        pos_weight_txn=torch.tensor(job.pos_weight_txn, device=device),
        batch_size=job.batch_size,
        fanout=job.fanout,
        seed=job.seed,
        device=device,
        rank=rank,
        world=job.world,
    )


def wrap(model: RingSAGE, device: torch.device) -> DistributedDataParallel:
    """DDP around ``model`` (rank 0's initial weights are broadcast to every rank). A batch can
    leave a relation without edges, so some parameters may get no gradient in a step."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def go_on(flag: bool, device: torch.device) -> bool:
    """Rank 0's decision to run another epoch, broadcast to every rank."""
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def run_worker(folder: Path, rank: int, init_method: str | None = None) -> None:
    """Rank ``rank`` (> 0): join the group, train on its share of every epoch until rank 0 says
    stop. ``init_method``: None reads it from the export (local ranks); ``env://`` under torchrun,
    where the group is joined before the export is read (rank 0 joins after writing it)."""
    if init_method == "env://":
        _join(rank, None, "env://")
        export = load_export(folder)
        job = export.job
    else:
        export = load_export(folder)
        job = export.job
        _join(rank, job, job.init_method)
    try:
        _train_rank(export, job, rank)
    finally:
        close_group()


def _train_rank(export: Export, job: RankJob, rank: int) -> None:
    """A worker rank's epochs (its DDP objects are freed on return, before the group closes)."""
    torch.set_num_threads(job.threads)
    device = rank_device(job.device_type, rank)
    torch.manual_seed(job.seed + rank)  # dropout masks differ per rank; weights come from rank 0
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    model = wrap(RingSAGE(job.model_config).to(device), device)
    opt = torch.optim.Adam(model.parameters(), lr=job.lr, weight_decay=job.weight_decay, foreach=True)
    mini = minibatches(export, job, rank, device)
    while go_on(False, device):
        mini.run_epoch(model, opt)


def close_group() -> None:
    """Leave the process group. Unreachable DDP objects are collected first: a DDP reducer freed
    after the group is gone destroys the gloo group while holding the GIL, which one of gloo's
    threads needs to finish (a deadlock at exit)."""
    gc.collect()
    dist.destroy_process_group()


def _join(rank: int, job: RankJob | None, init_method: str) -> None:
    if init_method == "env://":  # torchrun: every rank picks the device as rank 0 does (RINGWATCH_DEVICE)
        dist.init_process_group(backend_for(pick_device(None)), init_method="env://", timeout=rank_timeout())
        return
    assert job is not None
    backend = backend_for(torch.device(job.device_type))
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=job.world, timeout=rank_timeout())


def _local_rank_main(index: int, folder: str) -> None:
    """Entry of a local rank started by ``start_local_ranks`` (ranks 1 .. N-1)."""
    run_worker(Path(folder), index + 1)


@dataclass(slots=True)
class Ranks:
    """The local ranks 1 .. N-1 while they run (``torch.multiprocessing``'s process context)."""

    context: torch.multiprocessing.ProcessContext | None

    def join(self) -> None:
        """Wait for every rank to finish; raises if one failed."""
        if self.context is not None:
            while not self.context.join():
                pass

    def stop(self) -> None:
        """End the ranks now (rank 0 failed: nothing will pair their all-reduce)."""
        if self.context is not None:
            for p in self.context.processes:
                if p.is_alive():
                    p.terminate()
            for p in self.context.processes:
                p.join(timeout=10)


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """gloo binds to the interface of the host name unless told otherwise: keep local ranks on
    the loopback interface (the spawned ranks inherit the setting)."""
    previous = os.environ.get("GLOO_SOCKET_IFNAME")
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("GLOO_SOCKET_IFNAME", None)
        else:
            os.environ["GLOO_SOCKET_IFNAME"] = previous


def start_local_ranks(folder: Path, job: RankJob) -> Ranks:
    """Start ranks 1 .. ``job.world - 1`` on this machine (spawned, so they share no torch
    state with rank 0) and join rank 0 to their group. Call under ``loopback`` on the CPU."""
    context = torch.multiprocessing.start_processes(
        _local_rank_main, args=(str(folder),), nprocs=job.world - 1, join=False, start_method="spawn"
    )
    ranks = Ranks(context)
    try:
        _join(0, job, job.init_method)
    except BaseException:
        ranks.stop()
        raise
    return ranks


loopback = _loopback_only


def join_torchrun(device: torch.device) -> None:
    """Rank 0 under torchrun joins the group (after writing the export the others wait for)."""
    dist.init_process_group(backend_for(device), init_method="env://", timeout=rank_timeout())
