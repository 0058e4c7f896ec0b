"""``gnn.inductive``: a k-hop neighbourhood alone gives the batch score; an unseen account on a
ring's device scores high, on a clean device low."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnn.artefact import ModelArtefact
from gnn.inductive import InductiveScorer
from gnn.scoring import ScoreResult, score_snapshot
from gnn.train import TrainConfig, train
from graph.errors import ModelError, NotFoundError, ValidationError
from graph.types import Event, EventKind, NodeType
from tests.gnn.synth import DAY, T0, SynthData, with_events

OFFICE_IP = "10.0.0.1"  # shared by ~20 % of the legitimate users in tests.gnn.synth
WHEN = T0 + 29 * DAY


@pytest.fixture(scope="module")
def scorer(trained: ModelArtefact, synth: SynthData) -> InductiveScorer:
    return InductiveScorer.build(trained, synth.snapshot)


@pytest.fixture(scope="module")
def batch(trained: ModelArtefact, synth: SynthData) -> ScoreResult:
    return score_snapshot(trained, synth.snapshot, device="cpu")


def _users_of(snapshot_links_src: np.ndarray, links_dst: np.ndarray, target: int) -> set[int]:
    return set(snapshot_links_src[links_dst == target].tolist())


def test_account_from_its_neighbourhood_equals_batch(scorer: InductiveScorer, batch: ScoreResult, synth: SynthData) -> None:
    snap = synth.snapshot
    users = snap.nodes[NodeType.USER].tolist()
    office = snap.index_of(NodeType.IP)[OFFICE_IP]
    t = snap.transactions
    top_merchant = int(np.bincount(t.merchant[t.merchant >= 0]).argmax())
    sample = set(np.flatnonzero(synth.user_is_fraud).tolist())  # every ring member
    sample |= set(sorted(_users_of(snap.user_ip.src, snap.user_ip.dst, office))[:15])  # a hub IP
    sample |= set(sorted(set(t.user[t.merchant == top_merchant].tolist()))[:15])  # the busiest merchant
    sample |= set(range(0, len(users), 23))
    got = np.array([scorer.score_account(users[i]).score for i in sorted(sample)])
    want = batch.account_scores[sorted(sample)]
    assert np.allclose(got, want, rtol=0.0, atol=1e-6), float(np.abs(got - want).max())
    one = scorer.score_account(users[0])
    assert one.tier is batch.account_tiers[0] and one.model_version == batch.model_version
    assert one.nodes > 1 and one.edges > 0


def _event(user: str, device: str | None, ip: str | None = "203.0.113.9", merchant: str | None = "m003", **kw: object) -> Event:
    return Event(txn_id=f"new-{user}-{device}", ts=WHEN, user_id=user, device_id=device, ip=ip, merchant_id=merchant,
                 amount=42.0, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_unseen_account_on_a_ring_device_scores_high(scorer: InductiveScorer, trained: ModelArtefact, synth: SynthData) -> None:
    medium = trained.account_thresholds.medium
    for ring, devices in sorted(synth.ring_devices.items()):
        on_ring = scorer.score_event(_event("newcomer", devices[0]))
        clean = scorer.score_event(_event("newcomer", "fresh-device-1"))
        assert on_ring.new == ("user", "ip") and clean.new == ("user", "device", "ip")
        assert on_ring.account_score >= medium, (ring, on_ring.account_score, medium)
        assert on_ring.account_score > clean.account_score + 0.5 * medium, (ring, on_ring, clean)
        assert on_ring.txn_score > clean.txn_score
        assert clean.account_score < medium


def test_event_scores_are_close_to_batch_scoring_with_the_event(
    scorer: InductiveScorer, trained: ModelArtefact, synth: SynthData
) -> None:
    """The only approximation: features of nodes the event does not touch are not recomputed."""
    device = synth.ring_devices["ring-00"][0]
    for ev in (_event("newcomer", device), _event("newcomer", "fresh-device-1"), _event("u0007", device)):
        got = scorer.score_event(ev)
        snap = with_events(synth, [(ev.txn_id, ev.ts, ev.user_id, ev.device_id, ev.ip, ev.merchant_id, ev.amount,
                                    "payment", None)])  # fmt: skip
        full = score_snapshot(trained, snap, device="cpu")
        u = snap.index_of(NodeType.USER)[ev.user_id]
        row = snap.transactions.txn_id.tolist().index(ev.txn_id)
        assert abs(got.account_score - full.account_scores[u]) < 0.02
        assert abs(got.txn_score - full.txn_scores[row]) < 0.02


def test_events_without_identifiers_and_of_known_accounts(scorer: InductiveScorer, batch: ScoreResult, synth: SynthData) -> None:
    login = scorer.score_event(Event(txn_id="x1", ts=WHEN, user_id="brand-new", event=EventKind.LOGIN))
    assert login.new == ("user",) and 0.0 <= login.account_score <= 1.0 and 0.0 <= login.txn_score <= 1.0
    known = scorer.score_event(_event("u0100", "d-u0100", ip="ip-u0100", merchant="m000"))
    assert known.new == ()
    assert abs(known.account_score - batch.account_scores[synth.snapshot.index_of(NodeType.USER)["u0100"]]) < 0.05
    with pytest.raises(ValidationError):
        scorer.score_event(dataclasses.replace(login, user_id=""))
    with pytest.raises(NotFoundError):
        scorer.score_account("nobody")


def test_unsupervised_artefacts_are_refused(synth: SynthData) -> None:
    art = train(synth.snapshot, TrainConfig(device="cpu", min_fraud_labels=10_000))
    with pytest.raises(ModelError, match="unsupervised"):
        InductiveScorer.build(art, synth.snapshot)


def test_links_match_the_stores_definition() -> None:
    from gnn.inductive import _links
    from gnn.leakage import link_table

    rng = np.random.default_rng(1)
    src, dst = rng.integers(-1, 6, 200), rng.integers(-1, 4, 200)
    ts = rng.uniform(0.0, 100.0, 200)
    a, b = _links(src, dst, ts), link_table(src, dst, ts)
    for name in ("src", "dst", "first_seen", "last_seen", "count"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
