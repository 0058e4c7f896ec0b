"""Baselines: feature bookkeeping, rule arithmetic, aggregates, and scores on the shared split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gnn.core.features import USER_FEATURES, build_features
from gnn.core.tree_features import GRAPH_USER_FEATURES, OWN_USER_FEATURES, neighbour_aggregates, txn_velocity
from gnn.core.trees import TreeConfig
from gnn.evaluation.baselines import BASELINES, run_baselines
from gnn.training.split import user_split
from gnn.training.train import TrainConfig
from graph.errors import ValidationError
from graph.types import NodeType
from tests.gnn.synth import T0, SynthData, snapshot_from_events

FAST = ("rule_shared_device", "rule_shared_ip", "rule_velocity", "trees_own", "trees_aggregated")


def test_graph_columns_are_exactly_the_sharing_columns() -> None:
    assert set(OWN_USER_FEATURES) | set(GRAPH_USER_FEATURES) == set(USER_FEATURES)
    assert not set(OWN_USER_FEATURES) & set(GRAPH_USER_FEATURES)
    assert set(GRAPH_USER_FEATURES) == {"max_device_users_log", "max_ip_users_log"}


def _tiny() -> pd.DataFrame:
    rows = [
        ("t1", T0 + 0, "a", "d1", "1.1.1.1", "m1", 5.0, "payment", "approved"),
        ("t2", T0 + 600, "a", "d1", "1.1.1.1", "m1", 5.0, "payment", "approved"),
        ("t3", T0 + 3000, "a", "d1", "1.1.1.1", None, np.nan, "login", "approved"),
        ("t4", T0 + 4000, "a", "d1", "1.1.1.1", "m2", 5.0, "payment", "approved"),
        ("t5", T0 + 100, "b", "d1", "2.2.2.2", "m1", 7.0, "payment", "approved"),
        ("t6", T0 + 200, "c", "d2", "2.2.2.2", "m2", 9.0, "payment", "approved"),
    ]
    return pd.DataFrame(rows, columns=["txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount", "event", "status"])


def test_velocity_counts_the_users_payments_in_the_last_hour_only() -> None:
    snap = snapshot_from_events(_tiny(), pd.DataFrame(columns=["entity", "entity_id", "label", "ts"]))
    v = dict(zip(snap.transactions.txn_id.tolist(), txn_velocity(snap).tolist(), strict=True))
    # a: t1 (1), t2 (2), login t3 at +3000 sees t1, t2 (2), t4 at +4000 sees t2 (+600) and itself.
    assert v == {"t1": 1.0, "t2": 2.0, "t3": 2.0, "t4": 2.0, "t5": 1.0, "t6": 1.0}


def test_neighbour_aggregates_count_and_average_the_other_accounts() -> None:
    snap = snapshot_from_events(_tiny(), pd.DataFrame(columns=["entity", "entity_id", "label", "ts"]))
    f = build_features(snap)
    agg, names = neighbour_aggregates(snap, f)
    assert agg.shape == (3, len(names)) and len(set(names)) == len(names)
    users = snap.nodes[NodeType.USER].tolist()
    a, b, c = (users.index(k) for k in "abc")
    col = {n: i for i, n in enumerate(names)}
    # d1 is shared by a and b; 2.2.2.2 by b and c; c's device d2 is its own.
    assert agg[a, col["device2_n"]] == 1 and agg[b, col["device2_n"]] == 1 and agg[c, col["device2_n"]] == 0
    assert agg[b, col["ip2_n"]] == 1 and agg[a, col["ip2_n"]] == 0
    pay = OWN_USER_FEATURES.index("n_payments_log")
    own = f.user[:, USER_FEATURES.index("n_payments_log")]
    assert agg[b, col[f"device2_mean_{OWN_USER_FEATURES[pay]}"]] == pytest.approx(own[a])
    assert np.isnan(agg[c, col[f"device2_mean_{OWN_USER_FEATURES[pay]}"]])  # nobody else on d2
    assert agg[a, col["merchant_n"]] == 2


def test_unknown_baseline_is_rejected(synth: SynthData) -> None:
    with pytest.raises(ValidationError):
        run_baselines(synth.snapshot, TrainConfig(device="cpu"), names=["nope"])


@pytest.fixture(scope="module")
def fast_run(synth: SynthData):  # type: ignore[no-untyped-def]
    return run_baselines(synth.snapshot, TrainConfig(device="cpu"), trees=TreeConfig(max_iter=50), names=FAST)


def test_scores_are_probabilities_aligned_with_the_snapshot(fast_run, synth: SynthData) -> None:  # type: ignore[no-untyped-def]
    assert [s.name for s in fast_run.scores] == [n for n in BASELINES if n in FAST]
    for s in fast_run.scores:
        assert s.account.shape == (synth.snapshot.num_nodes(NodeType.USER),)
        assert s.txn.shape == (len(synth.snapshot.transactions),)
        for x in (s.account, s.txn):
            assert np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0


def test_baselines_use_the_training_split_of_gnn_train(fast_run, synth: SynthData) -> None:  # type: ignore[no-untyped-def]
    expected = user_split(synth.snapshot)
    assert np.array_equal(fast_run.users.test, expected.test)
    assert np.array_equal(fast_run.users.train, expected.train)


def test_trees_with_aggregates_find_quiet_ring_members(fast_run, synth: SynthData) -> None:  # type: ignore[no-untyped-def]
    """Quiet ring members look ordinary; only neighbour aggregates can rank them above legit."""
    from gnn.core.metrics import auprc

    test = fast_run.users.test
    y = synth.user_is_fraud[test]
    agg = auprc(fast_run.get("trees_aggregated").account[test], y)
    own = auprc(fast_run.get("trees_own").account[test], y)
    assert agg > own
