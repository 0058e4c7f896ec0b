"""``gnn.training.distributed``: data-parallel training with 2 CPU ranks (gloo, 127.0.0.1) on the
small planted graph gives an artefact that loads and scores, agrees with the 1-process model,
keeps its held-out quality, and is the same for the same seed; the graph export round-trips."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.features import NODE_TYPES, Normalisation, build_features
from gnn.core.model import RELATIONS, ModelConfig, build_graph_input
from gnn.serving.scoring import score_snapshot
from gnn.training.distributed import TIMEOUT, RankJob, backend_for, export_graph, load_export, rank_timeout
from gnn.training.train import TrainConfig, train
from graph.errors import ValidationError
from tests.gnn.synth import SynthData


def _config(nproc: int, exact: bool = False) -> TrainConfig:
    # 800 seeds a step make 5 steps an epoch on this graph, 9 or 10 parts of 400 with 2 ranks:
    # a rank with no part in the last step must still pair the other's all-reduce. ``exact``:
    # all neighbours and no dropout, so nothing random is left but the shuffle both runs share.
    extra = {"fanout": (-1, -1), "dropout": 0.0, "user_feature_drop": 0.0} if exact else {}
    return TrainConfig(device="cpu", epochs=5, patience=100, batch_size=800, seed=4, nproc=nproc, threads=2, **extra)


@pytest.fixture(scope="module", autouse=True)
def _short_rank_timeout() -> Iterator[None]:
    # A rank that crashes makes the other fail after this, not after the default 30 minutes.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RINGWATCH_DIST_TIMEOUT", "300")
        yield


def test_rank_timeout_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rank_timeout() == datetime.timedelta(seconds=300)
    monkeypatch.delenv("RINGWATCH_DIST_TIMEOUT")
    assert rank_timeout() == TIMEOUT
    monkeypatch.setenv("RINGWATCH_DIST_TIMEOUT", "soon")
    with pytest.raises(ValidationError, match="RINGWATCH_DIST_TIMEOUT"):
        rank_timeout()


@pytest.fixture(scope="module")
def one(synth: SynthData) -> ModelArtefact:
    return train(synth.snapshot, _config(1))


@pytest.fixture(scope="module")
def two(synth: SynthData) -> ModelArtefact:
    return train(synth.snapshot, _config(2))


def test_two_ranks_artefact_loads_scores_and_agrees(synth: SynthData, one: ModelArtefact, two: ModelArtefact, tmp_path: Path) -> None:
    two.save(tmp_path)
    loaded = ModelArtefact.load(tmp_path)
    assert loaded.version == two.version and loaded.device_trained_on == "cpu"
    a = score_snapshot(loaded, synth.snapshot)
    b = score_snapshot(one, synth.snapshot)
    assert a.account_scores.shape == b.account_scores.shape
    # Same function learnt (other neighbour samples and dropout masks): the rank correlation
    # of account scores with the 1-process model's.
    ra, rb = np.argsort(np.argsort(a.account_scores)), np.argsort(np.argsort(b.account_scores))
    assert np.corrcoef(ra, rb)[0, 1] > 0.8


def test_two_ranks_take_the_one_process_steps(synth: SynthData) -> None:
    """With nothing random but the shared shuffle, 2 ranks are the same optimisation as 1
    process (same steps, the gradient of the same step loss): equal weights up to float
    summation order, and so equal held-out AUPRC. Fewer steps per epoch, or a rank's gradient
    weighted wrong, moves the weights far past this."""
    one, two = train(synth.snapshot, _config(1, exact=True)), train(synth.snapshot, _config(2, exact=True))
    assert one.metrics.epochs_run == two.metrics.epochs_run == 5
    for k, v in one.state_dict.items():
        torch.testing.assert_close(two.state_dict[k], v, atol=2e-4, rtol=1e-3, msg=k)
    for m1, m2 in ((one.metrics.accounts_test, two.metrics.accounts_test),
                   (one.metrics.transactions_test, two.metrics.transactions_test)):  # fmt: skip
        assert m1 is not None and m2 is not None
        assert abs(m1.auprc - m2.auprc) <= 0.01


def test_same_seed_and_ranks_give_the_same_weights(synth: SynthData, two: ModelArtefact) -> None:
    again = train(synth.snapshot, _config(2))
    for k, v in two.state_dict.items():
        assert torch.equal(v, again.state_dict[k]), k


def test_backend_follows_the_device_and_settings_are_checked() -> None:
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"
    with pytest.raises(ValidationError, match="nproc"):
        TrainConfig(nproc=2)  # full batch is not data parallel
    with pytest.raises(ValidationError, match="nproc"):
        TrainConfig(nproc=0, batch_size=64)


def test_export_round_trips_memory_mapped(synth: SynthData, tmp_path: Path) -> None:
    feats = build_features(synth.snapshot)
    g = build_graph_input(synth.snapshot, Normalisation.fit(feats).apply(feats))
    job = RankJob(
        world=2, init_method="tcp://127.0.0.1:1", threads=1, device_type="cpu",
        model_config=ModelConfig(in_dims={t: int(g.data[t].x.shape[1]) for t in NODE_TYPES}, txn_dim=int(g.txn_x.shape[1])),
        fanout=(3, 2), batch_size=64, seed=1, lr=0.01, weight_decay=0.0, pos_weight_user=2.0, pos_weight_txn=3.0,
    )  # fmt: skip
    n_user, n_txn = int(g.data["user"].x.shape[0]), int(g.txn_x.shape[0])
    yu, yt = np.arange(n_user, dtype=np.float32), np.arange(n_txn, dtype=np.float32)
    export_graph(tmp_path, g, yu, yt, np.array([1, 2]), np.array([3]), job)
    back = load_export(tmp_path)
    assert back.job == job
    for t in NODE_TYPES:
        assert torch.equal(back.g.data[t].x, g.data[t].x)
    for rel in RELATIONS:
        assert torch.equal(back.g.data[rel].edge_index, g.data[rel].edge_index)
    assert torch.equal(back.g.txn_user, g.txn_user) and torch.equal(back.y_txn, torch.from_numpy(yt))
    assert isinstance(np.load(tmp_path / "txn_x.npy", mmap_mode="r"), np.memmap)
    assert back.user_train.tolist() == [1, 2] and back.txn_train.tolist() == [3]
