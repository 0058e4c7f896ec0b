from __future__ import annotations

import logging

import numpy as np
import pytest

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.metrics import auprc, auroc
from gnn.serving.scoring import score_snapshot
from gnn.training.split import targets, txn_split, user_split
from gnn.training.train import TrainConfig, train
from graph.errors import ValidationError
from graph.types import EVENT_KINDS, NodeType
from tests.gnn.synth import T0, SynthData, generate


def test_targets_and_time_ordered_split(synth: SynthData) -> None:
    snap = synth.snapshot
    y = targets(snap)
    labelled_fraud = snap.user_labels.index[snap.user_labels.is_fraud]
    assert set(np.flatnonzero(y.user)) == set(labelled_fraud.tolist())
    # Transaction positives: the transactions with a fraud verdict, and only those (the store
    # holds transaction verdicts); logins and signups stay negative.
    t = snap.transactions
    login = EVENT_KINDS.index("login")
    assert not y.txn[(t.event == login)].any()
    tl = snap.txn_labels
    assert set(np.flatnonzero(y.txn).tolist()) == set(tl.index[tl.is_fraud].tolist())
    assert not y.txn_from_accounts

    sp = user_split(snap, 0.2, 0.2)
    n = snap.num_nodes(NodeType.USER)
    assert sorted(np.concatenate([sp.train, sp.val, sp.test]).tolist()) == list(range(n))
    first = np.full(n, np.inf)
    np.minimum.at(first, t.user, t.ts)
    assert first[sp.train].max() <= first[sp.val].min() <= first[sp.val].max() <= first[sp.test].min()
    ts = txn_split(snap, 0.2, 0.2)
    assert t.ts[ts.train].max() <= t.ts[ts.test].min()
    assert len(ts.test) == round(0.2 * len(t))


def test_ring_users_rank_high_on_held_out_accounts(trained: ModelArtefact, synth: SynthData) -> None:
    assert trained.mode == "supervised"
    result = score_snapshot(trained, synth.snapshot)
    test = user_split(synth.snapshot).test
    y = synth.user_is_fraud[test]
    assert 0 < y.sum() < y.size
    base_rate = y.mean()
    ap = auprc(result.account_scores[test], y)
    assert ap > max(0.6, 3 * base_rate), (ap, base_rate)
    assert auroc(result.account_scores[test], y) > 0.9
    m = trained.metrics
    assert m.accounts_test is not None and m.accounts_test.auprc > 3 * m.accounts_test.n_fraud / m.accounts_test.n
    assert m.epochs_run >= 1 and m.seconds > 0


def test_fraud_transactions_score_higher(trained: ModelArtefact, synth: SynthData) -> None:
    result = score_snapshot(trained, synth.snapshot)
    y = synth.txn_is_fraud
    assert result.txn_scores[y].mean() > result.txn_scores[~y].mean() + 0.2
    test = txn_split(synth.snapshot).test
    assert auroc(result.txn_scores[test], y[test]) > 0.9


def test_thresholds_and_tiers(trained: ModelArtefact, synth: SynthData) -> None:
    th = trained.account_thresholds
    assert 0.0 <= th.medium <= th.high <= 1.0
    result = score_snapshot(trained, synth.snapshot)
    high = np.array([t.value == "high" for t in result.account_tiers])
    assert high.any()
    assert synth.user_is_fraud[high].mean() >= 0.8  # HIGH is mostly true fraud


def test_same_seed_same_scores_and_different_seed_differs(synth: SynthData) -> None:
    cfg = TrainConfig(device="cpu", epochs=6, patience=100)
    a = score_snapshot(train(synth.snapshot, cfg), synth.snapshot)
    b = score_snapshot(train(synth.snapshot, cfg), synth.snapshot)
    np.testing.assert_array_equal(a.account_scores, b.account_scores)
    np.testing.assert_array_equal(a.txn_scores, b.txn_scores)
    c = score_snapshot(train(synth.snapshot, TrainConfig(device="cpu", epochs=6, patience=100, seed=8)), synth.snapshot)
    assert not np.array_equal(a.account_scores, c.account_scores)


def test_unsupervised_fallback_without_labels(caplog: pytest.LogCaptureFixture) -> None:
    data = generate(with_labels=False)
    with caplog.at_level(logging.WARNING, logger="gnn.training.train"):
        artefact = train(data.snapshot, TrainConfig(device="cpu"))
    assert artefact.mode == "unsupervised"
    assert any("unsupervised" in r.getMessage() for r in caplog.records)
    assert artefact.metrics.accounts_test is None and artefact.metrics.epochs_run == 0
    result = score_snapshot(artefact, data.snapshot)
    assert result.mode == "unsupervised"
    s, y = result.account_scores, data.user_is_fraud
    assert s[y].mean() > s.mean() + 0.2
    assert auroc(s, y) > 0.85
    assert ((0 <= s) & (s <= 1)).all()
    tiers = [t.value for t in result.account_tiers]
    assert 0 < tiers.count("high") <= 0.05 * len(tiers)  # about the top 2 %
    assert result.txn_scores[data.txn_is_fraud].mean() > result.txn_scores[~data.txn_is_fraud].mean()


def test_few_labels_fall_back_too(synth: SynthData) -> None:
    artefact = train(synth.snapshot, TrainConfig(device="cpu", min_fraud_labels=10_000))
    assert artefact.mode == "unsupervised"


def _fresh_user_rows(user: str, device: str, ip: str) -> list[tuple[object, ...]]:
    t = T0 + 20 * 86_400.0
    return [
        (f"x-{user}-0", t, user, device, ip, None, np.nan, "signup", "approved"),
        (f"x-{user}-1", t + 3600, user, device, ip, "m001", 42.0, "payment", "approved"),
        (f"x-{user}-2", t + 90_000, user, device, ip, "m003", 17.5, "payment", "approved"),
    ]


def test_fresh_user_on_ring_device_scores_higher(trained: ModelArtefact, synth: SynthData) -> None:
    """A device shared by confirmed fraudsters must raise a new account's score (inductive)."""
    from tests.gnn.synth import with_events

    ring_device = synth.ring_devices["ring-03"][0]
    snap = with_events(
        synth,
        _fresh_user_rows("zz-on-ring", ring_device, "ip-zz-1") + _fresh_user_rows("zz-alone", "d-zz-own", "ip-zz-2"),
    )
    result = score_snapshot(trained, snap)
    idx = snap.index_of(NodeType.USER)
    on_ring = result.account_scores[idx["zz-on-ring"]]
    alone = result.account_scores[idx["zz-alone"]]
    assert on_ring > alone + 0.1, (on_ring, alone)
    assert on_ring > np.median(result.account_scores)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("epochs", {"epochs": 0}), ("lr", {"lr": 0.0}), ("val_fraction", {"val_fraction": 0.5, "test_fraction": 0.45}),
     ("dropout", {"dropout": 1.0}), ("threads", {"threads": 0}), ("threads", {"threads": True})],
)  # fmt: skip
def test_config_validation(field: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=field):
        TrainConfig(**kwargs)  # type: ignore[arg-type]
