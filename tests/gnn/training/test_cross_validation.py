"""Selection's fallback when the validation split is noise: cross-validation over accounts
grouped by connected component (gnn/training/cross_validation.py, gnn/training/selection.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gnn.evaluation.evaluate import evaluate
from gnn.training.cross_validation import grouped_folds
from gnn.training.selection import CANDIDATES, train_and_select
from gnn.training.split import targets, txn_split, user_split
from graph.rings import account_components
from graph.types import LabelTable, NodeType, Snapshot
from tests.gnn.conftest import CONFIG
from tests.gnn.synth import SynthData
from tests.graph.snapshots import Txn, make_snapshot


def test_components_join_accounts_through_small_devices_and_ips_only() -> None:
    txns = [Txn("a", device="d-1"), Txn("b", device="d-1", ip="ip-1"), Txn("c", ip="ip-1"), Txn("d", device="d-2")]
    # 50 accounts behind one carrier IP: a giant identifier joins nobody.
    txns += [Txn(f"n-{i:02d}", ip="ip-carrier", device=f"d-n-{i}") for i in range(50)]
    snap = make_snapshot(transactions=txns)
    label = dict(zip(snap.nodes[NodeType.USER].tolist(), account_components(snap).tolist(), strict=True))
    assert label["a"] == label["b"] == label["c"]
    assert label["d"] != label["a"]
    assert len({label[f"n-{i:02d}"] for i in range(50)}) == 50


def test_folds_never_split_a_component_and_keep_the_test_part_out(synth: SynthData) -> None:
    snap = synth.snapshot
    folds, n_groups = grouped_folds(snap, CONFIG)
    users = user_split(snap, CONFIG.val_fraction, CONFIG.test_fraction)
    txns = txn_split(snap, CONFIG.val_fraction, CONFIG.test_fraction)
    comp = account_components(snap)
    # The planted rings share devices: the components are fewer than the accounts.
    assert n_groups < users.train.shape[0] + users.val.shape[0]
    held = np.concatenate([u.val for u, _ in folds])
    assert np.array_equal(np.sort(held), np.sort(np.concatenate([users.train, users.val])))
    for u, t in folds:
        assert not set(comp[u.train].tolist()) & set(comp[u.val].tolist())
        assert np.array_equal(u.test, users.test) and np.array_equal(t.test, txns.test)
        # A transaction is held out with its account.
        assert np.isin(snap.transactions.user[t.val], u.val).all()
        assert not np.isin(snap.transactions.user[t.train], u.val).any()
    # Every planted ring falls in one fold.
    fold_of = np.full(snap.num_nodes(NodeType.USER), -1)
    for f, (u, _) in enumerate(folds):
        fold_of[u.val] = f
    rings = sorted(set(synth.user_ring.tolist()) - {""})
    assert rings
    for ring in rings:
        members = fold_of[(synth.user_ring == ring) & (fold_of >= 0)]
        assert len(set(members.tolist())) <= 1, ring


def _without_validation_fraud(snap: Snapshot) -> Snapshot:
    """The snapshot with every fraud verdict in the validation split removed (accounts and
    transactions): validation then holds no fraud at all."""
    users = user_split(snap, CONFIG.val_fraction, CONFIG.test_fraction)
    txns = txn_split(snap, CONFIG.val_fraction, CONFIG.test_fraction)

    def keep(table: LabelTable, val: np.ndarray) -> LabelTable:
        ok = ~(np.isin(table.index, val) & table.is_fraud)
        return LabelTable(table.index[ok], table.is_fraud[ok], table.ts[ok], table.source[ok])

    val_txn = np.concatenate([txns.val, np.flatnonzero(np.isin(snap.transactions.user, users.val))])
    return dataclasses.replace(
        snap, user_labels=keep(snap.user_labels, users.val), txn_labels=keep(snap.txn_labels, val_txn)
    )


def test_noisy_validation_selects_on_cross_validation_and_says_so(synth: SynthData, tmp_path: Path) -> None:
    snap = _without_validation_fraud(synth.snapshot)
    y = targets(snap)
    users = user_split(snap, CONFIG.val_fraction, CONFIG.test_fraction)
    assert not y.user[users.val].any() and y.user[users.train].sum() >= 10

    art = train_and_select(snap, CONFIG)
    # evaluate names the model training would ship: the same fallback, the same winner.
    report = evaluate(snap, CONFIG, tmp_path, baselines=CANDIDATES, label_fractions=())
    assert report.selection == art.selection
    assert "Pooled out-of-fold AUPRC" in report.report_path.read_text()
    sel = art.selection
    assert sel is not None
    assert "accounts: 0 frauds (fewer than 10)" in sel.warning
    assert "cross-validation over accounts grouped into" in sel.warning and "connected components" in sel.rule
    assert [c.name for c in sel.candidates] == list(CANDIDATES)
    # Out of fold, every candidate was measured on the frauds the validation split lacked.
    assert all(np.isfinite(c.accounts_val_auprc) and c.accounts_val_auprc > 0 for c in sel.candidates)
    best = max(c.total for c in sel.candidates)
    assert sel.get(sel.winner).total == best
    assert art.scorer == sel.winner
