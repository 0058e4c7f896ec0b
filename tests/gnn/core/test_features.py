from __future__ import annotations

import numpy as np
import pytest

from gnn.core.features import (
    BLOCKS,
    NODE_TYPES,
    STAT_NAMES,
    FeatureStats,
    Normalisation,
    UserHistory,
    build_features,
    event_txn_features,
)
from graph.errors import ModelError
from graph.types import EVENT_KINDS, Event, EventKind, LabelTable, NodeType
from tests.gnn.synth import SynthData, generate, snapshot_from_events


def test_shapes_names_and_finite(synth: SynthData) -> None:
    snap = synth.snapshot
    f = build_features(snap)
    expected_rows = {
        "user": snap.num_nodes(NodeType.USER),
        "device": snap.num_nodes(NodeType.DEVICE),
        "ip": snap.num_nodes(NodeType.IP),
        "merchant": snap.num_nodes(NodeType.MERCHANT),
        "txn": len(snap.transactions),
    }
    for b in BLOCKS:
        x = f.block(b)
        assert x.dtype == np.float32
        assert x.shape == (expected_rows[b], len(f.names[b]))
        assert np.isfinite(x).all(), b
        assert len(set(f.names[b])) == len(f.names[b])


def test_labels_are_not_inputs(synth: SynthData) -> None:
    """Features of a snapshot without any verdicts equal those with them (no leakage)."""
    snap = synth.snapshot
    empty = LabelTable(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), np.zeros(0, object))
    unlabeled = type(snap)(
        nodes=snap.nodes, transactions=snap.transactions, user_device=snap.user_device, user_ip=snap.user_ip,
        device_ip=snap.device_ip, user_labels=empty, txn_labels=empty,
    )  # fmt: skip
    a, b = build_features(snap), build_features(unlabeled)
    for blk in BLOCKS:
        np.testing.assert_array_equal(a.block(blk), b.block(blk))


def test_values_reflect_behaviour(synth: SynthData) -> None:
    f = build_features(synth.snapshot)
    col = {n: i for i, n in enumerate(f.names["user"])}
    noisy_ring = np.array([u.startswith("f") and int(u[-2:]) % 2 == 0 for u in synth.snapshot.nodes[NodeType.USER]])
    legit = ~synth.user_is_fraud
    assert f.user[noisy_ring, col["tiny_share"]].mean() > 0.5 > f.user[legit, col["tiny_share"]].mean()
    assert f.user[noisy_ring, col["max_payments_per_hour_log"]].mean() > f.user[legit, col["max_payments_per_hour_log"]].mean()
    # Ring members share a farm device with the rest of their ring.
    assert f.user[synth.user_is_fraud, col["max_device_users_log"]].min() > 0


def test_hand_computed_small_case() -> None:
    import pandas as pd

    rows = [
        ("t1", 0.0, "a", "d1", "1.1.1.1", "m1", 1.0, "payment", "approved"),
        ("t2", 60.0, "a", "d1", "1.1.1.1", "m2", 99.0, "payment", "declined"),
        ("t3", 120.0, "b", "d1", None, None, np.nan, "login", None),
    ]
    ev = pd.DataFrame(rows, columns=["txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount", "event", "status"])
    snap = snapshot_from_events(ev, pd.DataFrame(columns=["entity", "entity_id", "label", "ts"]))
    f = build_features(snap)
    u = {n: f.user[0, i] for i, n in enumerate(f.names["user"])}  # user "a"
    assert u["tiny_share"] == pytest.approx(0.5)
    assert u["declined_share"] == pytest.approx(0.5)
    assert u["n_merchants_log"] == pytest.approx(np.log1p(2))
    assert u["max_payments_per_hour_log"] == pytest.approx(np.log1p(2))
    assert u["max_device_users_log"] == pytest.approx(np.log1p(1))  # b also uses d1
    t = {n: f.txn[:, i] for i, n in enumerate(f.names["txn"])}
    np.testing.assert_allclose(t["gap_log"], [0.0, np.log1p(60.0), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(t["is_first"], [1, 0, 1])
    np.testing.assert_array_equal(t["has_ip"], [1, 1, 0])
    np.testing.assert_array_equal(t["event_login"], [0, 0, 1])


def test_normalisation_fits_and_checks_width(synth: SynthData) -> None:
    f = build_features(synth.snapshot)
    norm = Normalisation.fit(f)
    z = norm.apply(f)
    assert abs(float(z.user.mean())) < 0.2
    other = generate(n_legit=60, n_rings=2, seed=3)
    wrong = build_features(other.snapshot)
    bad = type(wrong)(user=wrong.user[:, :3], device=wrong.device, ip=wrong.ip, merchant=wrong.merchant, txn=wrong.txn, names=wrong.names)
    with pytest.raises(ModelError, match="'user'"):
        norm.apply(bad)


def test_normalisation_is_the_clipped_standard_score_and_leaves_the_input(synth: SynthData) -> None:
    """``apply`` works in place on its own copy: the same numbers as the textbook formula, and
    the raw features it was given are unchanged (training and scoring reuse them)."""
    from gnn.core.features import CLIP_STD

    f = build_features(synth.snapshot)
    raw = {b: f.block(b).copy() for b in BLOCKS}
    norm = Normalisation.fit(f)
    z = norm.apply(f)
    for b in BLOCKS:
        want = np.clip((raw[b] - norm.means[b]) / norm.stds[b], -CLIP_STD, CLIP_STD).astype(np.float32)
        assert z.block(b).dtype == np.float32
        np.testing.assert_array_equal(z.block(b), want)
        np.testing.assert_array_equal(f.block(b), raw[b])


def test_transaction_block_is_built_in_float32_with_the_float64_values(synth: SynthData) -> None:
    """The transaction block is filled in float32 column by column (memory at millions of rows);
    its values are the float64 ones rounded once (checked on columns computed independently)."""
    t = synth.snapshot.transactions
    f = build_features(synth.snapshot)
    col = {n: i for i, n in enumerate(f.names["txn"])}
    assert f.txn.dtype == np.float32 and f.txn.flags.c_contiguous
    amount = t.amount.astype(np.float64)
    log_amount = np.log1p(np.maximum(np.where(np.isfinite(amount), amount, 0.0), 0.0))
    np.testing.assert_array_equal(f.txn[:, col["amount_log"]], log_amount.astype(np.float32))
    hour = (t.ts.astype(np.float64) % 86400.0) / 3600.0
    np.testing.assert_array_equal(f.txn[:, col["hour_sin"]], np.sin(2.0 * np.pi * hour / 24.0).astype(np.float32))
    np.testing.assert_array_equal(f.txn[:, col["has_device"]], (t.device >= 0).astype(np.float32))


def test_statistics_of_new_nodes_are_kept_beside_the_arrays(synth: SynthData) -> None:
    """A node past the snapshot's is stored without copying the arrays (millions of rows at
    scale) and read back as stored; an unknown one has blank statistics."""
    from gnn.core.features import FeatureStats

    stats = FeatureStats.from_snapshot(synth.snapshot)
    users = stats.user
    n = users.shape[0]
    row = stats.row("user", 0) + 1.0
    stats.put("user", n + 3, row)
    assert stats.user is users and stats.user.shape[0] == n
    assert np.array_equal(stats.row("user", n + 3), row)
    blank = stats.row("user", n + 4)
    assert blank[0] == 0.0 and not np.array_equal(blank, row)
    device = stats.row("device", 0)
    device[0] = 7.0
    stats.put("device", stats.device.shape[0], device)
    ctx_users = np.array([stats.device.shape[0]])
    assert stats._most_other_users(ctx_users, "device", None, None) == 6.0  # seven accounts: six others


def _random_statistics(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of statistics of node type ``name`` as online updates produce them: whole
    counts (zeros often), log-amount sums and maxima, and for users a first/last time or none."""
    width = len(STAT_NAMES[name])
    rows = rng.integers(0, 40, size=(n, width)).astype(np.float64) * (rng.random((n, width)) < 0.7)
    if name == "user":
        s = {k: i for i, k in enumerate(STAT_NAMES["user"])}
        rows[:, s["amount_log_sum"]] = rows[:, s["n_amounts"]] * rng.uniform(0.0, 9.0, n)
        rows[:, s["amount_log_sq_sum"]] = rows[:, s["amount_log_sum"]] ** 2 / np.maximum(rows[:, s["n_amounts"]], 1.0) * rng.uniform(1.0, 1.5, n)
        rows[:, s["amount_log_max"]] = rng.uniform(0.0, 12.0, n)
        first = rng.uniform(1.7e9, 1.8e9, n)
        rows[:, s["first_ts"]] = first
        rows[:, s["last_ts"]] = first + rng.exponential(86400.0 * 30, n)
        none = rng.random(n) < 0.1  # an account without events yet
        rows[none, s["first_ts"]], rows[none, s["last_ts"]] = np.inf, -np.inf
    elif name == "merchant":
        s = {k: i for i, k in enumerate(STAT_NAMES["merchant"])}
        rows[:, s["amount_log_sum"]] = rows[:, s["n_amounts"]] * rng.uniform(0.0, 9.0, n)
    return rows


@pytest.mark.parametrize("name", ["user", "device", "ip", "merchant"])
def test_one_rows_features_equal_the_batch_definition(name: str) -> None:
    """A serving call computes one node's features on Python floats (``row_features``); they must
    be the batch features of the same statistics, so that the two paths cannot drift apart."""
    rows = _random_statistics(name, 2_000, np.random.default_rng(5))
    stats = FeatureStats(**{t: rows if t == name else np.zeros((0, len(STAT_NAMES[t]))) for t in STAT_NAMES})
    batch = stats.features(name)
    one = np.stack([FeatureStats.row_features(name, row.tolist()) for row in rows])
    assert one.dtype == batch.dtype == np.float32
    np.testing.assert_allclose(one, batch, rtol=1e-6, atol=1e-7)
    assert np.mean(one == batch) > 0.999  # identical but for a last-bit rounding, rarely


def test_one_events_transaction_features_equal_the_batch_table(synth: SynthData) -> None:
    """``event_txn_features`` (one event on Python floats, its account's history as context)
    gives every transaction's row of the batch table, ties in time included."""
    snap = synth.snapshot
    t = snap.transactions
    table = build_features(snap).txn
    keys = {name: snap.nodes[node_type] for name, node_type in NODE_TYPES.items()}
    rng = np.random.default_rng(3)
    for row in rng.choice(len(t), size=min(600, len(t)), replace=False).tolist():
        mine = np.flatnonzero(t.user == t.user[row])
        history = UserHistory(ts=t.ts[mine], kind=t.event[mine].astype(np.int64), merchant=t.merchant[mine].astype(np.int64),
                              txn_id=t.txn_id[mine])  # fmt: skip
        event = Event(
            txn_id=str(t.txn_id[row]), ts=float(t.ts[row]), user_id=str(keys["user"][t.user[row]]),
            device_id=str(keys["device"][t.device[row]]) if t.device[row] >= 0 else None,
            ip=str(keys["ip"][t.ip[row]]) if t.ip[row] >= 0 else None,
            merchant_id=str(keys["merchant"][t.merchant[row]]) if t.merchant[row] >= 0 else None,
            amount=None if np.isnan(t.amount[row]) else float(t.amount[row]),
            event=EventKind(EVENT_KINDS[int(t.event[row])]), status=t.status[row],
        )  # fmt: skip
        # The account's own row is in its history: the ordering by (ts, txn_id) leaves it out.
        np.testing.assert_allclose(event_txn_features(event, history), table[row], rtol=1e-6, atol=1e-7, err_msg=str(row))
