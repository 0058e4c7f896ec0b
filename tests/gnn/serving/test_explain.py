"""``gnn.serving.explain``: exact path attributions, reasons that name the planted shared device, no false
"confirmed fraud" claims for ordinary accounts, determinism, transaction reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from gnn.artefact.model_artefact import ModelArtefact
from gnn.serving.explain import (
    TEMPLATES,
    Explainer,
    ReasonKind,
    SurrogateConfig,
    TreePaths,
    _account_columns,
    _text,
    _txn_columns,
)
from gnn.serving.scoring import score_snapshot
from gnn.training.train import TrainConfig, train
from graph.errors import NotFoundError
from graph.types import NodeType, Snapshot, Tier
from synthetic.generator import SyntheticConfig, generate as generate_events
from tests.gnn.synth import SynthData, snapshot_from_events


@pytest.fixture(scope="module")
def explainer(trained: ModelArtefact, synth: SynthData) -> Explainer:
    return Explainer.build(trained, synth.snapshot)


# -- path attributions --------------------------------------------------------------------------


def test_path_contributions_sum_to_the_tree_prediction() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take the learned side
    y = np.nan_to_num(x[:, 0]) * 2.0 + np.nan_to_num(x[:, 1]) ** 2 + 0.1 * rng.normal(size=600)
    model = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=7, early_stopping=False, random_state=0).fit(x, y)
    paths = TreePaths.from_model(model)
    contrib = paths.contributions(x)
    assert np.allclose(paths.base + contrib.sum(axis=1), model.predict(x), atol=1e-9)
    # The informative columns carry the attribution; the noise columns almost none.
    share = np.abs(contrib).mean(axis=0) / np.abs(contrib).mean(axis=0).sum()
    assert share[:2].sum() > 0.9


# -- reasons on the planted world of tests.gnn.synth --------------------------------------------


def test_ring_members_are_told_their_shared_device(explainer: Explainer, synth: SynthData) -> None:
    users = synth.snapshot.nodes[NodeType.USER].tolist()
    members = [i for i, r in enumerate(synth.user_ring) if r]
    for i in members:
        e = explainer.account(users[i])
        devices = set(synth.ring_devices[synth.user_ring[i]])
        named = [
            r
            for r in e.reasons
            if r.kind is ReasonKind.RISKY_NEIGHBOURS and r.node is not None and r.node[0] is NodeType.DEVICE
        ]
        facts = [r for r in named if r.node is not None and r.node[1] in devices]
        assert facts, (users[i], e.texts)
        assert facts[0].text.startswith(f"device {facts[0].node[1]} is shared with")  # type: ignore[index]
        assert facts[0].contribution > 0


def test_ordinary_accounts_are_not_told_of_fraud_neighbours(explainer: Explainer, synth: SynthData) -> None:
    users = synth.snapshot.nodes[NodeType.USER].tolist()
    for i in np.flatnonzero(~synth.user_is_fraud).tolist():
        e = explainer.account(users[i])
        if e.tier is Tier.LOW:
            assert not any("confirmed fraud" in t for t in e.texts), (users[i], e.texts)
            assert all(r.kind is not ReasonKind.RISKY_NEIGHBOURS for r in e.reasons)


def test_every_score_has_reasons_and_they_are_consistent(explainer: Explainer, synth: SynthData) -> None:
    snap = synth.snapshot
    for u in snap.nodes[NodeType.USER].tolist()[::17]:
        e = explainer.account(u)
        assert 1 <= len(e.reasons) <= 4 and all(r.text for r in e.reasons)
        assert e.entity == "account" and e.key == u
    rows = np.arange(0, len(snap.transactions), 97)
    for tid in snap.transactions.txn_id[rows].tolist():
        e = explainer.transaction(tid)
        assert e.entity == "transaction" and 1 <= len(e.reasons) <= 4
        assert all(r.text and "nan" not in r.text for r in e.reasons)
    with pytest.raises(NotFoundError):
        explainer.account("nobody")
    with pytest.raises(NotFoundError):
        explainer.transaction("no-such-txn")


def test_ring_payments_name_the_ring_device_or_the_account(explainer: Explainer, synth: SynthData) -> None:
    snap = synth.snapshot
    t = snap.transactions
    farm = {i for i, k in enumerate(snap.nodes[NodeType.DEVICE].tolist()) if k.startswith("farm-")}
    rows = [r for r in range(len(t)) if synth.txn_is_fraud[r] and int(t.device[r]) in farm]
    assert rows
    high = [r for r in rows if explainer.transaction(str(t.txn_id[r])).tier is not Tier.LOW]
    assert len(high) > len(rows) // 2
    for r in high:
        e = explainer.transaction(str(t.txn_id[r]))
        nodes = {r_.node for r_ in e.reasons if r_.node is not None}
        device = (NodeType.DEVICE, str(snap.nodes[NodeType.DEVICE][t.device[r]]))
        account = (NodeType.USER, str(snap.nodes[NodeType.USER][t.user[r]]))
        assert device in nodes or account in nodes, e.texts


def test_surrogate_is_faithful_and_reasons_deterministic(
    explainer: Explainer, trained: ModelArtefact, synth: SynthData
) -> None:
    assert explainer.fidelity_accounts > 0.8 and explainer.fidelity_transactions > 0.8
    again = Explainer.build(trained, synth.snapshot, scores=score_snapshot(trained, synth.snapshot))
    for u in synth.snapshot.nodes[NodeType.USER].tolist()[::9]:
        assert again.account(u) == explainer.account(u)
    for tid in synth.snapshot.transactions.txn_id.tolist()[::211]:
        assert again.transaction(tid) == explainer.transaction(tid)


def test_every_column_has_a_sentence(explainer: Explainer, synth: SynthData) -> None:
    """Each surrogate column renders through its template, for real rows and for absent
    (NaN) neighbours, without a leftover placeholder."""
    x_acc = explainer._acc.x
    x_txn = explainer._txn.x
    for cols, rows in ((explainer._acc.cols, x_acc[:3]), (_txn_columns(), x_txn[:3])):
        for row in list(rows) + [np.full(rows.shape[1], np.nan, dtype=np.float32)]:
            for ci in range(len(cols)):
                text = _text(ci, cols, row, "u0001", "low")
                assert text and "{" not in text
    assert all(c.template is None or c.template in TEMPLATES for c in _account_columns(()) + _txn_columns())


# -- the planted rings of synthetic.generator ---------------------------------------------------

SHARED_ROLES = ("farm_device", "emulator_device", "mule_device")


def _epoch(iso: pd.Series) -> pd.Series:
    """ISO-8601 text -> UTC epoch seconds, whatever resolution pandas picks for the parse."""
    return (pd.to_datetime(iso, utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


def _synthetic(tmp: Path, users: int, seed: int) -> tuple[Snapshot, pd.DataFrame, pd.DataFrame]:
    """A dataset of ``synthetic.generator`` as a snapshot, with its user and identifier truth."""
    ds = generate_events(SyntheticConfig(users=users, seed=seed), tmp)
    ev = pd.read_csv(ds.events, dtype={c: str for c in ("txn_id", "user_id", "device_id", "ip", "merchant_id")})
    ev["ts"] = _epoch(ev["ts"])
    labels = pd.read_csv(ds.labels, dtype=str)
    labels["ts"] = _epoch(labels["ts"])
    snap = snapshot_from_events(ev.drop(columns=["currency"]), labels)
    truth = pd.read_csv(ds.truth_users, dtype={"user_id": str, "ring_id": str, "ring_kind": str})
    idents = pd.read_csv(ds.truth_identifiers, dtype=str)
    return snap, truth, idents


@pytest.mark.slow
def test_planted_farm_and_mule_members_are_told_their_shared_device(tmp_path: Path) -> None:
    snap, truth, idents = _synthetic(tmp_path, users=1500, seed=3)
    artefact = train(snap, TrainConfig(device="cpu", epochs=25, seed=7))
    explainer = Explainer.build(artefact, snap, config=SurrogateConfig(seed=7))
    users = snap.nodes[NodeType.USER]
    devices = snap.nodes[NodeType.DEVICE]
    role_of = dict(zip(idents.iloc[:, 1], idents.iloc[:, 2], strict=True))
    ring_of = dict(zip(truth["user_id"], truth["ring_id"].fillna(""), strict=True))
    kind_of = dict(zip(truth["user_id"], truth["ring_kind"].fillna(""), strict=True))
    # Planted shared devices: a fraud-role device used by two or more members of one ring.
    ud = pd.DataFrame({"user": users[snap.user_device.src], "device": devices[snap.user_device.dst]})
    ud["ring"] = ud["user"].map(ring_of)
    ud = ud[(ud["ring"] != "") & ud["device"].map(role_of).isin(SHARED_ROLES)]
    shared = ud.groupby(["ring", "device"])["user"].nunique().reset_index()
    shared = shared[shared["user"] >= 2]
    planted = {(r, d) for r, d in zip(shared["ring"], shared["device"], strict=True)}
    members = sorted({u for u, r, d in zip(ud["user"], ud["ring"], ud["device"], strict=True) if (r, d) in planted})
    members = [u for u in members if kind_of[u] in ("account_farm", "mule_chain")]
    assert len(members) >= 10
    named = 0
    for u in members:
        e = explainer.account(u)
        ring_devices = {d for r, d in planted if r == ring_of[u]}
        hit = any(r.node is not None and r.node[0] is NodeType.DEVICE and r.node[1] in ring_devices for r in e.reasons)
        named += hit
        if e.tier is not Tier.LOW:
            # A flagged member is always told which identifier ties it to fraud: its ring's
            # device, or an identifier it shares with accounts already confirmed as fraud.
            told = hit or any(r.kind is ReasonKind.RISKY_NEIGHBOURS and r.node is not None for r in e.reasons)
            assert told, (u, e.tier, e.texts)
    assert named >= 0.8 * len(members), f"{named} of {len(members)} members told their shared device"
