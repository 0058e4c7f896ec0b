"""Labels as payment teams have them: transaction verdicts only, verdicts that arrive late, and
known-fraud features that never read a row's own label or a label from its future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gnn.core.known_fraud import (
    KNOWN_FRAUD_TXN_FEATURES,
    KNOWN_FRAUD_USER_FEATURES,
    ip_prefixes,
    known_fraud_features,
    known_labels,
)
from gnn.serving.scoring import score_snapshot
from gnn.training.split import targets
from gnn.training.train import TrainConfig, train
from graph.types import NodeType, Snapshot
from tests.gnn.synth import DAY, SynthData, snapshot_from_events

CHARGEBACK_DELAY = 3 * DAY


def _chargebacks(synth: SynthData, share: float = 0.6, seed: int = 3) -> pd.DataFrame:
    """Transaction verdicts only: a share of the fraud payments charged back 3 days later."""
    t = synth.snapshot.transactions
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(synth.txn_is_fraud & (rng.random(len(t)) < share))
    return pd.DataFrame(
        {
            "entity": "transaction",
            "entity_id": t.txn_id[rows],
            "label": "fraud",
            "ts": t.ts[rows] + CHARGEBACK_DELAY,
        }
    )


def _snapshot(synth: SynthData, labels: pd.DataFrame) -> Snapshot:
    return snapshot_from_events(synth.events, labels)


def _col(name: str) -> int:
    return KNOWN_FRAUD_TXN_FEATURES.index(name)


def test_training_from_transaction_labels_only_gives_a_supervised_model(synth: SynthData) -> None:
    snap = _snapshot(synth, _chargebacks(synth))
    assert len(snap.user_labels) == 0 and len(snap.txn_labels) > 0
    y = targets(snap)
    # An account with a charged-back payment is a fraud account.
    assert y.user.sum() >= 20
    assert not y.txn_from_accounts
    artefact = train(snap, TrainConfig(device="cpu", epochs=5))
    assert artefact.mode == "supervised"
    # GraphSAGE with its heads reading the known-fraud inputs trains and scores too.
    with_inputs = train(snap, TrainConfig(device="cpu", epochs=5, known_fraud_inputs=True))
    assert with_inputs.mode == "supervised"
    assert with_inputs.model_config is not None
    assert with_inputs.model_config.txn_label_dim == len(KNOWN_FRAUD_TXN_FEATURES)
    scored = score_snapshot(with_inputs, snap, device="cpu")
    assert np.isfinite(scored.txn_scores).all() and scored.txn_scores.shape == (len(snap.transactions),)


def test_transaction_metrics_count_labelled_transactions_only(synth: SynthData) -> None:
    labels = _chargebacks(synth, share=0.3)
    snap = _snapshot(synth, labels)
    y = targets(snap)
    # Exactly the charged-back transactions are positive, not every payment of their accounts.
    assert y.txn.sum() == len(labels)
    assert set(snap.transactions.txn_id[y.txn].tolist()) == set(labels["entity_id"])
    # With no transaction verdict at all, the payments of fraud accounts stand in, and say so.
    accounts = synth.labels[synth.labels["entity"] == "user"]
    y2 = targets(_snapshot(synth, accounts))
    assert y2.txn_from_accounts and y2.txn.sum() > 0


def test_an_account_verdict_legit_overrides_its_transactions(synth: SynthData) -> None:
    labels = _chargebacks(synth)
    t = synth.snapshot.transactions
    cleared = str(t.user[np.flatnonzero(np.isin(t.txn_id, labels["entity_id"]))[0]])
    user_id = synth.snapshot.nodes[NodeType.USER][int(cleared)]
    extra = pd.DataFrame([{"entity": "user", "entity_id": user_id, "label": "legit", "ts": labels["ts"].max() + DAY}])
    snap = _snapshot(synth, pd.concat([labels, extra], ignore_index=True))
    u = snap.index_of(NodeType.USER)[user_id]
    assert not targets(snap).user[u]
    assert targets(_snapshot(synth, labels)).user[u]


def test_label_delay_is_measured_and_can_be_set(synth: SynthData) -> None:
    snap = _snapshot(synth, _chargebacks(synth))
    measured = known_labels(snap)
    assert np.allclose(measured.delays, CHARGEBACK_DELAY)
    assert "median 3.0 days" in measured.describe()
    set_10 = known_labels(snap, label_delay=10 * DAY)
    assert np.allclose(set_10.delays, 10 * DAY)
    with pytest.raises(Exception, match="label_delay"):
        known_labels(snap, label_delay=-1.0)


def test_no_label_from_the_future_reaches_a_feature(synth: SynthData) -> None:
    labels = _chargebacks(synth)
    snap = _snapshot(synth, labels)
    t = snap.transactions
    cut = float(np.quantile(t.ts, 0.6))
    known_before = labels[labels["ts"] < cut]
    full = known_fraud_features(snap)
    past_only = known_fraud_features(_snapshot(synth, known_before))
    before = t.ts < cut
    # Transactions before the cut: what was known after it changes nothing.
    np.testing.assert_array_equal(full.txn[before], past_only.txn[before])
    # The features are alive: later rows do see verdicts known before them.
    assert (full.txn[~before] > 0).any()
    # Accounts whose last event is before the cut: the same.
    last = np.full(snap.num_nodes(NodeType.USER), -np.inf)
    np.maximum.at(last, t.user, t.ts)
    done = last < cut
    assert done.any()
    np.testing.assert_array_equal(full.user[done], past_only.user[done])


def test_a_rows_own_verdict_never_reaches_its_features(synth: SynthData) -> None:
    """Even a verdict stamped before its own payment (bad data) or with no delay at all."""
    labels = _chargebacks(synth)
    snap = _snapshot(synth, labels)
    t = snap.transactions
    row = int(np.flatnonzero(np.isin(t.txn_id, labels["entity_id"]))[len(labels) // 2])
    own = labels["entity_id"] == t.txn_id[row]
    for stamp in (t.ts[row] - 5 * DAY, t.ts[row]):
        early = labels.copy()
        early.loc[own, "ts"] = stamp
        with_own = known_fraud_features(_snapshot(synth, early))
        without = known_fraud_features(_snapshot(synth, labels[~own]))
        np.testing.assert_array_equal(with_own.txn[row], without.txn[row])
    # An account's own verdicts (account and transaction ones) never reach its own features.
    u = int(t.user[row])
    user_id = snap.nodes[NodeType.USER][u]
    mine = labels["entity_id"].isin(t.txn_id[t.user == u])
    acct = pd.DataFrame([{"entity": "user", "entity_id": user_id, "label": "fraud", "ts": float(t.ts.min())}])
    with_own = known_fraud_features(_snapshot(synth, pd.concat([labels, acct], ignore_index=True)))
    without = known_fraud_features(_snapshot(synth, labels[~mine]))
    np.testing.assert_array_equal(with_own.user[u], without.user[u])


def test_a_device_of_known_fraudsters_marks_a_new_accounts_payment(synth: SynthData) -> None:
    labels = _chargebacks(synth)
    snap = _snapshot(synth, labels)
    ring_device = next(iter(synth.ring_devices.values()))[0]
    t_end = float(snap.transactions.ts.max())
    new = pd.DataFrame(
        [
            ("t-new-1", t_end + DAY, "u-newcomer", ring_device, "203.0.113.9", "m000", 20.0, "payment", "approved"),
            ("t-new-2", t_end + DAY, "u-stranger", "d-own-new", "198.51.100.7", "m000", 20.0, "payment", "approved"),
        ],
        columns=list(synth.events.columns),
    )
    grown = snapshot_from_events(pd.concat([synth.events, new], ignore_index=True), labels)
    kf = known_fraud_features(grown)
    t = grown.transactions
    ring_row = int(np.flatnonzero(t.txn_id == "t-new-1")[0])
    plain_row = int(np.flatnonzero(t.txn_id == "t-new-2")[0])
    for name in ("kf_device_fraud_accounts", "kf_device_fraud_txns_all"):
        assert kf.txn[ring_row, _col(name)] > 0
        assert kf.txn[plain_row, _col(name)] == 0
    u = grown.index_of(NodeType.USER)["u-newcomer"]
    assert kf.user[u, KNOWN_FRAUD_USER_FEATURES.index("kf_device_fraud_accounts_max")] > 0


def test_ip_prefixes_group_by_24_and_64_and_keep_non_addresses_apart() -> None:
    ips = np.array([
        "10.1.2.3", "10.1.2.250", "10.1.3.3", "255.255.255.0", "256.1.1.1", "010.1.2.3",
        "2001:db8::1", "2001:db8:0:0:ffff::9", "2001:db8:0:1::1", "not-an-ip", "",
    ], dtype=object)  # fmt: skip
    p = ip_prefixes(ips).tolist()
    assert p[0] == p[1] != p[2]  # same /24, then the next /24
    assert len(set(p[3:6])) == 3 and p[4] != p[0] and p[5] != p[0]  # out of range, leading zero
    assert p[6] == p[7] != p[8]  # same /64, then the next /64
    assert len(set(p[8:])) == 3
