"""Train the GraphSAGE scorer on a snapshot, time-ordered, and package it as a ``ModelArtefact``.

With ``TrainConfig.known_fraud_inputs`` both heads also read what was known to be fraud before
each row (``gnn.core.known_fraud``: earlier verdicts on the same account, device, IP, prefix,
merchant), with the label delay of ``TrainConfig.label_delay``.

Targets and the time-ordered split come from ``gnn.training.split``. Training is transductive:
the whole graph (features, edges) is visible, only the labels outside the training split are
hidden. It is full-batch, or with ``TrainConfig.batch_size`` set, mini-batch over sampled
neighbourhoods (``gnn.training.minibatch``) for graphs too big for one batch.

With fewer than ``min_fraud_labels`` fraud accounts there is nothing to learn from; ``train``
then logs a warning and returns an unsupervised artefact (``gnn.core.anomaly``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gnn.artefact.model_artefact import SUPERVISED, UNSUPERVISED, ModelArtefact, make_version
from gnn.core.anomaly import anomaly_scores, fit_reference
from gnn.core.device import pick_device, pick_threads, torch_threads
from gnn.core.features import FeatureSet, Normalisation, build_features
from gnn.core.known_fraud import KnownFraudFeatures, KnownLabels, known_fraud_features, known_labels
from gnn.core.metrics import TrainMetrics, auprc, split_metrics_at
from gnn.core.model import GraphInput, ModelConfig, Prediction, RingSAGE, build_graph_input, predict
from gnn.core.thresholds import ReviewQueue, Thresholds
from gnn.core.timing import Stopwatch
from gnn.training.calibrate import REVIEW_CAPACITY, calibrate, quantile_thresholds
from gnn.training.distributed import (
    RankJob,
    Ranks,
    close_group,
    export_graph,
    free_port,
    go_on,
    join_torchrun,
    loopback,
    start_local_ranks,
    torchrun_world,
    wrap,
)
from gnn.training.minibatch import DEFAULT_FANOUT, MiniBatchEpochs, check_fanout
from gnn.training.split import Split, Targets, targets_and_splits
from graph.errors import ModelError, ValidationError
from graph.types import NodeType, Snapshot

__all__ = [
    "TrainConfig",
    "train",
    "calibrate_split",
    "UNSUPERVISED_HIGH_TOP",
    "UNSUPERVISED_MEDIUM_TOP",
]

log = logging.getLogger(__name__)

#: Without labels, the top 2 % of scores are HIGH and the top 8 % MEDIUM or above.
UNSUPERVISED_HIGH_TOP = 0.02
UNSUPERVISED_MEDIUM_TOP = 0.08


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training knobs. ``epochs`` is a maximum: training stops after ``patience`` epochs without
    a better validation score (account AUPRC + transaction AUPRC on the validation split) and
    keeps the best epoch's weights. The maximum is set so that early stopping, not the cap, ends
    training on the generator's graphs; with no fraud in validation the cap ends it. ``user_feature_drop`` hides that share of accounts' own
    features each epoch (see ``ModelConfig``): on held-out, later accounts it lifts AUPRC a lot,
    because late ring members look ordinary and only their neighbourhood gives them away.
    ``device=None`` picks CUDA when present (``RINGWATCH_DEVICE`` overrides).
    ``batch_size=None`` trains full-batch; an integer trains on mini-batches of that many seed
    accounts + transactions with ``fanout`` neighbours sampled per relation and hop (one entry
    per layer, ``-1`` = all; see ``gnn.training.minibatch``), for graphs that do not fit full-batch.
    ``min_fraud_labels``: with fewer fraud accounts (or none in the training split) ``train``
    ships the unsupervised anomaly score instead. 20 because the 60/20/20 time split then leaves
    about 12 positives to learn from and 4 to stop early and calibrate tiers on; with fewer, the
    validation AUPRC that picks the epoch and the tier thresholds rests on one or two accounts.
    ``gnn.evaluation.label_budget`` measures both modes with 0 %, 1 %, 10 % and 100 % of the labels.
    ``known_fraud_inputs``: GraphSAGE's heads also read what was known to be fraud before each
    row (``gnn.core.known_fraud``). Off by default because inductive scoring of unseen checkout events
    (``gnn.serving.inductive``) does not compute those inputs per request yet; the tree candidates and
    the hybrid always read them. ``label_delay`` (seconds): verdicts are known that long after
    their payment; None takes the verdicts' own timestamps. ``threads``: torch's CPU threads
    while training (``gnn.core.device.pick_threads``: ``RINGWATCH_THREADS``, else this process's cores).
    ``nproc``: data-parallel ranks on this machine (``gnn.training.distributed``; needs ``batch_size``,
    which stays the seeds of one optimizer step over all ranks, so each rank takes ``batch_size /
    nproc`` of them and an epoch takes as many steps as with one process; the threads are shared
    out between the ranks). ``export_dir``: under ``torchrun``, the folder,
    visible to every rank, that rank 0 exports the graph to (local ranks use a temporary one).

    Raises:
        ValidationError: a value out of range (names the field).
    """

    hidden: int = 64
    layers: int = 2
    epochs: int = 150
    patience: int = 12
    lr: float = 0.01
    weight_decay: float = 1e-4
    dropout: float = 0.2
    user_feature_drop: float = 0.5
    seed: int = 7
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    min_fraud_labels: int = 20
    device: str | None = None
    target_precision: float = 0.8
    target_recall: float = 0.8
    review_capacity: float = REVIEW_CAPACITY
    batch_size: int | None = None
    fanout: tuple[int, ...] = DEFAULT_FANOUT
    known_fraud_inputs: bool = False
    label_delay: float | None = None
    threads: int | None = None
    nproc: int = 1
    export_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "epochs", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValidationError(name, v, "must be an integer >= 1")
        if not self.lr > 0:
            raise ValidationError("lr", self.lr, "must be > 0")
        if self.weight_decay < 0:
            raise ValidationError("weight_decay", self.weight_decay, "must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValidationError("dropout", self.dropout, "must be in [0, 1)")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValidationError(name, v, "must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValidationError(
                "val_fraction", self.val_fraction, f"val + test ({self.val_fraction} + {self.test_fraction}) must be < 0.9"
            )
        if self.min_fraud_labels < 1:
            raise ValidationError("min_fraud_labels", self.min_fraud_labels, "must be >= 1")
        for name in ("target_precision", "target_recall", "review_capacity"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ValidationError(name, v, "must be in (0, 1]")
        if self.label_delay is not None and not (math.isfinite(self.label_delay) and self.label_delay >= 0):
            raise ValidationError("label_delay", self.label_delay, "must be a finite number of seconds >= 0, or None")
        if self.batch_size is not None:
            if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
                raise ValidationError("batch_size", self.batch_size, "must be None (full batch) or an integer >= 1")
            check_fanout(self.fanout, self.layers)
        if isinstance(self.nproc, bool) or not isinstance(self.nproc, int) or self.nproc < 1:
            raise ValidationError("nproc", self.nproc, "must be an integer >= 1")
        if self.nproc > 1 and self.batch_size is None:
            raise ValidationError("nproc", self.nproc, "data-parallel training is mini-batch: set batch_size too")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise ValidationError("threads", self.threads, "must be None (RINGWATCH_THREADS, else this process's cores) or an integer >= 1")


@contextlib.contextmanager
def _deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch and, on the CPU, ask for deterministic kernels; restore the global flag after."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def calibrate_split(scores: np.ndarray, y: np.ndarray, idx: np.ndarray, config: TrainConfig) -> Thresholds:
    """Tier thresholds calibrated on rows ``idx`` (the validation split; everything when empty)
    with ``config``'s targets, the review capacity counted over every row of ``scores``."""
    if idx.size == 0:  # nothing held out: calibrate on everything
        idx = np.arange(scores.shape[0])
    if idx.size == 0:
        return Thresholds(medium=0.5, high=0.9)
    return calibrate(
        scores[idx],
        y[idx],
        target_precision=config.target_precision,
        target_recall=config.target_recall,
        review_capacity=config.review_capacity,
        population=scores,
    )


def train(
    snapshot: Snapshot,
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool = False,
    features: FeatureSet | None = None,
    splits: tuple[Split, Split] | None = None,
) -> ModelArtefact:
    """Train on ``snapshot`` and return the artefact (not saved; call ``artefact.save``).

    Falls back to the unsupervised anomaly score (``mode="unsupervised"``, with a logged warning)
    when fewer than ``config.min_fraud_labels`` accounts are labelled fraud or none of them is in
    the training split. ``progress`` shows a tqdm bar over epochs with the loss and validation
    AUPRC. Same snapshot and seed give identical weights and scores on the CPU.
    ``features``: ``build_features(snapshot)`` when the caller has it already (``gnn.evaluation.evaluate``
    trains several times on one graph); labels never enter features, so a snapshot that differs
    only in its labels shares them. ``splits``: (accounts, transactions) to train and validate on
    instead of the time-ordered split (``gnn.training.cross_validation``'s folds).

    Raises:
        ModelError: the snapshot has no users.
        ConfigError: ``config.device`` names a device this machine lacks, or ``RINGWATCH_THREADS`` is
            not a positive integer.
    """
    with torch_threads(pick_threads(config.threads)):
        return _train(snapshot, config, progress, features, splits)


def _train(
    snapshot: Snapshot,
    config: TrainConfig,
    progress: bool,
    features: FeatureSet | None,
    splits: tuple[Split, Split] | None,
) -> ModelArtefact:
    started = time.perf_counter()
    watch = Stopwatch()
    if snapshot.num_nodes(NodeType.USER) == 0:
        raise ModelError("snapshot has no users: load events first (`ringwatch ingest`)")
    if features is None:
        features = build_features(snapshot)
        watch.lap("features")
    y, users, txns = targets_and_splits(snapshot, config, splits)
    # Every usable fraud label counts, of either kind: an account is fraud by its own verdict
    # or by a chargeback on one of its transactions.
    n_fraud = int(y.user.sum())
    n_fraud_train = int(y.user[users.train].sum()) + int(y.txn[txns.train].sum())
    labels = known_labels(snapshot, config.label_delay)
    log.info("labels: %s", labels.describe())
    if n_fraud < config.min_fraud_labels or n_fraud_train == 0:
        log.warning(
            "only %d accounts known fraud (by account or transaction verdicts; %d fraud labels in the training split; min_fraud_labels=%d): "
            "no GraphSAGE model trained, using the unsupervised graph anomaly score (mode='unsupervised')",
            n_fraud,
            n_fraud_train,
            config.min_fraud_labels,
        )
        return _unsupervised(snapshot, features, y, users, txns, config, started, watch)
    known = labels if config.known_fraud_inputs else None
    return _supervised(snapshot, features, y, users, txns, config, started, watch, progress, known)


def _unsupervised(
    snapshot: Snapshot,
    features: FeatureSet,
    y: Targets,
    users: Split,
    txns: Split,
    config: TrainConfig,
    started: float,
    watch: Stopwatch,
) -> ModelArtefact:
    watch.restart()
    reference = fit_reference(snapshot, features)
    scores = anomaly_scores(snapshot, features, reference)
    watch.lap("anomaly score")
    created = time.time()
    tensors = {k: torch.from_numpy(v) for k, v in reference.quantiles.items()}
    account_thresholds = quantile_thresholds(
        scores.account, medium_top=UNSUPERVISED_MEDIUM_TOP, high_top=UNSUPERVISED_HIGH_TOP
    )
    metrics = TrainMetrics(
        accounts_val=split_metrics_at(scores.account, y.user, users.val),
        accounts_test=split_metrics_at(scores.account, y.user, users.test),
        transactions_val=split_metrics_at(scores.txn, y.txn, txns.val),
        transactions_test=split_metrics_at(scores.txn, y.txn, txns.test),
        epochs_run=0,
        seconds=time.perf_counter() - started,
        seed=config.seed,
        stages=tuple(watch.stages),
        account_queue=ReviewQueue.of(scores.account, account_thresholds),
    )
    return ModelArtefact(
        version=make_version(created, UNSUPERVISED, tensors),
        created_at=created,
        mode=UNSUPERVISED,
        feature_names=dict(features.names),
        normalisation=Normalisation.fit(features),
        model_config=None,
        state_dict={},
        account_thresholds=account_thresholds,
        transaction_thresholds=quantile_thresholds(
            scores.txn, medium_top=UNSUPERVISED_MEDIUM_TOP, high_top=UNSUPERVISED_HIGH_TOP
        ),
        metrics=metrics,
        device_trained_on="cpu",
        anomaly=reference,
    )


def _pos_weight(y: np.ndarray) -> float:
    n_pos = int(y.sum())
    return float((y.size - n_pos) / n_pos) if n_pos else 1.0


def _supervised(
    snapshot: Snapshot,
    features: FeatureSet,
    y: Targets,
    users: Split,
    txns: Split,
    config: TrainConfig,
    started: float,
    watch: Stopwatch,
    progress: bool,
    labels: KnownLabels | None,
) -> ModelArtefact:
    """Train GraphSAGE: build the graph input, run the epochs (seeded), calibrate the tiers on
    the validation split, measure and package."""
    watch.restart()
    device = pick_device(config.device)
    norm = Normalisation.fit(features)
    known = known_fraud_features(snapshot, labels) if labels is not None else None
    model_config = _model_config(features, y, users, txns, config, known)
    g = build_graph_input(snapshot, norm.apply(features), known).to(device)
    watch.lap("graph input")
    with _deterministic(config.seed, device):
        model = RingSAGE(model_config).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
        world = _world(config)
        inputs = _epoch_inputs(g, y, users, txns, config, device, world)
        if world > 1:
            fit = _fit_data_parallel(model, opt, inputs, y, users, txns, config, progress, model_config, device, world)
        else:
            fit = _fit_epochs(model, model, opt, inputs, y, users, txns, config, progress)
        watch.lap(f"graphsage {fit.epochs_run} epochs")
        model.load_state_dict(fit.best_state)
        pred = predict(model, g)
    thresholds = (
        calibrate_split(pred.account, y.user, users.val, config),
        calibrate_split(pred.txn, y.txn, txns.val, config),
    )
    watch.lap("graphsage scoring")
    metrics = _held_out_metrics(pred, thresholds[0], y, users, txns, fit, config, started, watch)
    return _supervised_artefact(model, model_config, fit, metrics, thresholds, features, norm, device)


def _model_config(
    features: FeatureSet,
    y: Targets,
    users: Split,
    txns: Split,
    config: TrainConfig,
    known: KnownFraudFeatures | None,
) -> ModelConfig:
    """The network's shape from the feature blocks, and its prior shifts from the training
    split's class balance."""
    use_txn_loss = bool(y.txn[txns.train].any())
    return ModelConfig(
        in_dims={b: int(features.block(b).shape[1]) for b in ("user", "device", "ip", "merchant")},
        txn_dim=int(features.txn.shape[1]),
        hidden=config.hidden,
        layers=config.layers,
        dropout=config.dropout,
        user_feature_drop=config.user_feature_drop,
        user_prior_shift=math.log(_pos_weight(y.user[users.train])),
        txn_prior_shift=math.log(_pos_weight(y.txn[txns.train])) if use_txn_loss else 0.0,
        user_label_dim=0 if known is None else int(known.user.shape[1]),
        txn_label_dim=0 if known is None else int(known.txn.shape[1]),
        label_delay=config.label_delay,
    )


@dataclass(frozen=True, slots=True)
class _EpochInputs:
    """What every epoch reads, on the training device: the graph, targets, training rows and
    positive-class weights per head, the validation transactions (empty when they hold no
    fraud) and, with ``batch_size`` set, the mini-batch sampler."""

    g: GraphInput
    yu: torch.Tensor
    yt: torch.Tensor
    tr_u: torch.Tensor
    tr_t: torch.Tensor
    pwu: torch.Tensor
    pwt: torch.Tensor
    use_txn_loss: bool
    val_has_fraud: bool
    val_txn_has_fraud: bool
    va_t: torch.Tensor
    mini: MiniBatchEpochs | None


def _epoch_inputs(
    g: GraphInput, y: Targets, users: Split, txns: Split, config: TrainConfig, device: torch.device, world: int = 1
) -> _EpochInputs:
    use_txn_loss = bool(y.txn[txns.train].any())
    yu = torch.from_numpy(y.user.astype(np.float32)).to(device)
    yt = torch.from_numpy(y.txn.astype(np.float32)).to(device)
    tr_u = torch.from_numpy(users.train).to(device)
    tr_t = torch.from_numpy(txns.train).to(device)
    pwu = torch.tensor(_pos_weight(y.user[users.train]), device=device)
    pwt = torch.tensor(_pos_weight(y.txn[txns.train]), device=device)
    val_txn_has_fraud = bool(y.txn[txns.val].any())
    va_t = torch.from_numpy(txns.val if val_txn_has_fraud else txns.val[:0]).to(device)
    mini = None
    if config.batch_size is not None:  # mini-batch: sampled subgraphs, same loss (gnn.training.minibatch)
        mini = MiniBatchEpochs(
            g,
            user_train=users.train,
            txn_train=txns.train if use_txn_loss else txns.train[:0],
            y_user=yu,
            y_txn=yt,
            pos_weight_user=pwu,
            pos_weight_txn=pwt,
            batch_size=config.batch_size,
            fanout=config.fanout,
            seed=config.seed,
            device=device,
            world=world,
        )
    return _EpochInputs(
        g=g,
        yu=yu,
        yt=yt,
        tr_u=tr_u,
        tr_t=tr_t,
        pwu=pwu,
        pwt=pwt,
        use_txn_loss=use_txn_loss,
        val_has_fraud=bool(y.user[users.val].any()),
        val_txn_has_fraud=val_txn_has_fraud,
        va_t=va_t,
        mini=mini,
    )


def _full_batch_epoch(model: RingSAGE, opt: torch.optim.Optimizer, inputs: _EpochInputs) -> torch.Tensor:
    """One gradient step on the whole graph; returns the loss."""
    i = inputs
    model.train()
    opt.zero_grad(set_to_none=True)
    # The edge head runs on the training transactions only: the others carry no loss.
    user_logits, txn_logits, _ = model(i.g, i.tr_t if i.use_txn_loss else i.tr_t[:0])
    loss = F.binary_cross_entropy_with_logits(user_logits[i.tr_u], i.yu[i.tr_u], pos_weight=i.pwu)
    if i.use_txn_loss:
        loss = loss + F.binary_cross_entropy_with_logits(txn_logits, i.yt[i.tr_t], pos_weight=i.pwt)
    loss.backward()
    opt.step()
    return loss


@dataclass(frozen=True, slots=True)
class _Fit:
    """The outcome of the epoch loop: the best epoch's weights, its index and validation
    account AUPRC, and how many epochs ran."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_acc_ap: float
    epochs_run: int


def _world(config: TrainConfig) -> int:
    """How many data-parallel ranks train: ``config.nproc``, or torchrun's world size."""
    launched = torchrun_world()
    if launched is not None:
        if config.batch_size is None:
            raise ValidationError("batch_size", None, "data-parallel training (torchrun) is mini-batch: set batch_size")
        if config.export_dir is None:
            raise ValidationError("export_dir", None, "under torchrun rank 0 exports the graph to a folder every rank sees: set it")
        return launched[1]
    return config.nproc


def _fit_data_parallel(
    model: RingSAGE,
    opt: torch.optim.Optimizer,
    inputs: _EpochInputs,
    y: Targets,
    users: Split,
    txns: Split,
    config: TrainConfig,
    progress: bool,
    model_config: ModelConfig,
    device: torch.device,
    world: int,
) -> _Fit:
    """Rank 0 of a data-parallel run (``gnn.training.distributed``): export the graph, start or
    meet the other ranks, train with DDP, validate and stop early here alone."""
    assert inputs.mini is not None and config.batch_size is not None
    local = torchrun_world() is None
    threads = max(1, pick_threads(config.threads) // world) if local else pick_threads(config.threads)
    torch.set_num_threads(threads)  # ``train`` puts the previous count back
    job = RankJob(
        world=world,
        init_method=f"tcp://127.0.0.1:{free_port()}" if local else "env://",
        threads=threads,
        device_type=device.type,
        model_config=model_config,
        fanout=tuple(config.fanout),
        batch_size=config.batch_size,
        seed=config.seed,
        lr=config.lr,
        weight_decay=config.weight_decay,
        pos_weight_user=float(inputs.pwu),
        pos_weight_txn=float(inputs.pwt),
    )
    folder = Path(tempfile.mkdtemp(prefix="ringwatch-ranks-")) if local else Path(str(config.export_dir))
    ranks: Ranks | None = None
    try:
        export_graph(
            folder, inputs.g, y.user.astype(np.float32), y.txn.astype(np.float32),
            inputs.mini.user_train, inputs.mini.txn_train, job,
        )  # fmt: skip
        if local:
            with loopback() if device.type == "cpu" else contextlib.nullcontext():
                ranks = start_local_ranks(folder, job)
        else:
            join_torchrun(device)
        try:
            fit = _fit_epochs(model, wrap(model, device), opt, inputs, y, users, txns, config, progress,
                              sync=lambda flag: go_on(flag, device))  # fmt: skip
        except BaseException:
            if ranks is not None:
                ranks.stop()
            raise
        finally:
            close_group()
        if ranks is not None:
            ranks.join()
    finally:
        if local:
            shutil.rmtree(folder, ignore_errors=True)
    return fit


def _fit_epochs(
    model: RingSAGE,
    step_model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    inputs: _EpochInputs,
    y: Targets,
    users: Split,
    txns: Split,
    config: TrainConfig,
    progress: bool,
    sync: Callable[[bool], bool] | None = None,
) -> _Fit:
    """Train up to ``config.epochs``, stop after ``config.patience`` epochs without a better
    validation score, and keep the best epoch's weights. ``step_model``: what the mini-batch
    steps run (``model``, or its DDP wrapper); ``sync``: tells the other ranks, before each
    epoch, whether one follows (data parallel)."""
    best_metric = -math.inf
    best_acc_ap = math.nan
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_epoch = 0
    epochs_run = 0
    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        if sync is not None:
            sync(True)
        if inputs.mini is not None:
            loss = torch.tensor(inputs.mini.run_epoch(step_model, opt))
        else:
            loss = _full_batch_epoch(model, opt, inputs)
        epochs_run = epoch + 1

        pred = predict(model, inputs.g, inputs.va_t)
        acc_ap = auprc(pred.account[users.val], y.user[users.val]) if inputs.val_has_fraud else math.nan
        txn_ap = auprc(pred.txn, y.txn[txns.val]) if inputs.val_txn_has_fraud else math.nan
        if inputs.val_has_fraud:
            # Both heads count, so that an account AUPRC that saturates early cannot freeze
            # an edge head that has not learnt yet.
            metric = acc_ap + (txn_ap if inputs.val_txn_has_fraud else 0.0)
        else:  # nothing to validate on: keep the latest weights
            metric = float(epoch)
        if metric > best_metric + 1e-9:
            best_metric, best_epoch, best_acc_ap = metric, epoch, acc_ap
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{loss.item():.4f}", val_auprc=f"{acc_ap:.3f}", val_txn_auprc=f"{txn_ap:.3f}")
        if epoch - best_epoch >= config.patience:
            break
    if sync is not None:
        sync(False)
    bar.close()
    return _Fit(best_state=best_state, best_epoch=best_epoch, best_acc_ap=best_acc_ap, epochs_run=epochs_run)


def _held_out_metrics(
    pred: Prediction,
    account_thresholds: Thresholds,
    y: Targets,
    users: Split,
    txns: Split,
    fit: _Fit,
    config: TrainConfig,
    started: float,
    watch: Stopwatch,
) -> TrainMetrics:
    """Validation and test metrics of both heads at the calibrated thresholds, with the run's
    epochs, seed, timings and the account review queue."""
    held_out = {
        "accounts_val": split_metrics_at(pred.account, y.user, users.val),
        "accounts_test": split_metrics_at(pred.account, y.user, users.test),
        "transactions_val": split_metrics_at(pred.txn, y.txn, txns.val),
        "transactions_test": split_metrics_at(pred.txn, y.txn, txns.test),
    }
    watch.lap("metrics")
    return TrainMetrics(
        **held_out,
        epochs_run=fit.epochs_run,
        seconds=time.perf_counter() - started,
        seed=config.seed,
        stages=tuple(watch.stages),
        account_queue=ReviewQueue.of(pred.account, account_thresholds),
    )


def _supervised_artefact(
    model: RingSAGE,
    model_config: ModelConfig,
    fit: _Fit,
    metrics: TrainMetrics,
    thresholds: tuple[Thresholds, Thresholds],
    features: FeatureSet,
    norm: Normalisation,
    device: torch.device,
) -> ModelArtefact:
    """Package the trained weights with their (account, transaction) tier thresholds and metrics."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    created = time.time()
    log.info(
        "trained %d epochs (best %d) in %.1fs on %s; val account AUPRC %.3f",
        fit.epochs_run,
        fit.best_epoch + 1,
        metrics.seconds,
        device,
        fit.best_acc_ap,
    )
    return ModelArtefact(
        version=make_version(created, SUPERVISED, state),
        created_at=created,
        mode=SUPERVISED,
        feature_names=dict(features.names),
        normalisation=norm,
        model_config=model_config,
        state_dict=state,
        account_thresholds=thresholds[0],
        transaction_thresholds=thresholds[1],
        metrics=metrics,
        device_trained_on=str(device),
    )
