"""``gnn.serving.inductive``: a k-hop neighbourhood alone gives the batch score; an unseen account on a
ring's device scores high, on a clean device low."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.features import build_features
from gnn.serving.inductive import _EVENT_KEY, InductiveScorer
from gnn.serving.scoring import ScoreResult, score_snapshot
from gnn.training.train import TrainConfig, train
from graph.errors import ModelError, NotFoundError, ValidationError
from graph.types import EVENT_KINDS, Event, EventKind, NodeType
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


def test_touched_nodes_features_follow_the_batch_definitions(trained: ModelArtefact, synth: SynthData) -> None:
    """After ``add_events``, every node an event touched has the features ``build_features``
    gives on the snapshot with the events, and each event's transaction features equal the
    batch ones: new and known users, devices, IPs and merchants, repeat payments in one hour,
    a refund, a login without identifiers, a declined payment and equal timestamps."""
    scorer = InductiveScorer.build(trained, synth.snapshot)
    kinds = {"payment": EventKind.PAYMENT, "refund": EventKind.REFUND, "login": EventKind.LOGIN}
    rows = [
        ("e1", WHEN, "newbie", "fresh-device-3", "203.0.113.7", "m003", 1.5, "payment", "approved"),
        ("e2", WHEN + 60.0, "newbie", "fresh-device-3", "203.0.113.7", "m003", 80.0, "payment", "declined"),
        ("e3", WHEN + 60.0, "newbie", synth.ring_devices["ring-00"][0], OFFICE_IP, "m001", 12.0, "payment", "approved"),
        ("e0", WHEN + 60.0, "u0007", "fresh-device-3", None, "m002", 30.0, "refund", "approved"),
        ("e4", WHEN + 7200.0, "u0007", None, None, None, np.nan, "login", None),
        ("e5", WHEN + 7300.0, "f0001", "fresh-device-3", "203.0.113.7", "m-new", 0.5, "payment", "approved"),
    ]
    events = [Event(txn_id=r[0], ts=r[1], user_id=r[2], device_id=r[3], ip=r[4], merchant_id=r[5],
                    amount=None if np.isnan(r[6]) else r[6], event=kinds[r[7]], status=r[8]) for r in rows]  # fmt: skip
    types = {"user": NodeType.USER, "device": NodeType.DEVICE, "ip": NodeType.IP, "merchant": NodeType.MERCHANT}
    for i, e in enumerate(events):
        snap = with_events(synth, rows[: i + 1])
        want = build_features(snap)
        got_txn = scorer.transaction_features(e)  # before it is added: as score_event sees it
        np.testing.assert_allclose(got_txn, want.txn[snap.transactions.txn_id.tolist().index(e.txn_id)], rtol=1e-6, atol=1e-6,
                                   err_msg=e.txn_id)  # fmt: skip
        scorer.score_event(e)
        assert scorer.add_events([e]) == 1
        for name, attr in _EVENT_KEY.items():
            if (key := getattr(e, attr)) is not None:
                row = want.block(name)[snap.index_of(types[name])[key]]
                np.testing.assert_allclose(scorer.node_features(name, key), row, rtol=1e-6, atol=1e-6, err_msg=f"{e.txn_id} {name} {key}")


def test_added_events_are_seen_by_later_calls_and_match_batch_scoring(trained: ModelArtefact, synth: SynthData) -> None:
    """Incremental updates: three planted fraudsters move to a fresh device; a newcomer on that
    device then scores clearly higher than before they came, and the accounts' scores match batch
    scoring of the snapshot with the same events added."""
    scorer = InductiveScorer.build(trained, synth.snapshot)  # its own: add_events changes it
    medium = trained.account_thresholds.medium
    newcomer = _event("late-comer", "fresh-device-7")
    before = scorer.score_event(newcomer)
    assert before.account_score < medium

    movers = [f"f00{m:02d}" for m in range(3)]
    moved = [Event(txn_id=f"move-{u}", ts=WHEN - 3600.0 + i, user_id=u, device_id="fresh-device-7", ip="203.0.113.9",
                   merchant_id="m003", amount=9.0) for i, u in enumerate(movers)]  # fmt: skip
    assert scorer.add_events(moved) == 3
    assert scorer.add_events(moved) == 0  # same txn ids: nothing added twice
    assert scorer.added_events == 3 and scorer.touched_since_snapshot("f0000")
    after = scorer.score_event(newcomer)
    assert after.new == ("user",)  # the device and IP are known now
    assert after.account_score > before.account_score + 0.25 * medium, (before, after)

    assert scorer.add_events([newcomer]) == 1 and scorer.knows_account("late-comer")
    rows = [(e.txn_id, e.ts, e.user_id, e.device_id, e.ip, e.merchant_id, e.amount, "payment", None) for e in [*moved, newcomer]]
    full = score_snapshot(trained, with_events(synth, rows), device="cpu")
    snap = with_events(synth, rows)
    for user in [*movers, "late-comer"]:
        got = scorer.score_account(user).score
        assert abs(got - full.account_scores[snap.index_of(NodeType.USER)[user]]) < 0.02, user
    # Scoring the already-added event again counts it once, not twice.
    again = scorer.score_event(newcomer)
    assert abs(again.account_score - scorer.score_account("late-comer").score) < 1e-6


def test_stored_events_score_exactly_as_batch(scorer: InductiveScorer, batch: ScoreResult, synth: SynthData) -> None:
    """An event the scorer holds already is scored as the graph stands: its account and its
    transaction score equal batch scoring (the numpy layers and heads are the model's)."""
    snap = synth.snapshot
    t = snap.transactions
    names = {name: snap.nodes[nt] for name, nt in (("user", NodeType.USER), ("device", NodeType.DEVICE),
                                                 ("ip", NodeType.IP), ("merchant", NodeType.MERCHANT))}  # fmt: skip

    def key(name: str, i: int) -> str | None:
        return str(names[name][i]) if i >= 0 else None

    for row in range(0, len(t), 97):
        amount = float(t.amount[row])
        ev = Event(txn_id=str(t.txn_id[row]), ts=float(t.ts[row]), user_id=key("user", int(t.user[row])),
                   device_id=key("device", int(t.device[row])), ip=key("ip", int(t.ip[row])),
                   merchant_id=key("merchant", int(t.merchant[row])), amount=None if np.isnan(amount) else amount,
                   currency=t.currency[row], event=EventKind(EVENT_KINDS[int(t.event[row])]), status=t.status[row])  # fmt: skip
        got = scorer.score_event(ev)
        assert got.new == ()
        assert abs(got.account_score - batch.account_scores[int(t.user[row])]) < 1e-6, row
        assert abs(got.txn_score - batch.txn_scores[row]) < 1e-6, row
    assert scorer.added_events == 0  # scoring adds nothing


def test_hub_running_sums_stay_the_sums_of_the_cached_layers(trained: ModelArtefact, synth: SynthData) -> None:
    """Relations into a hub keep running sums instead of summing thousands of sources per call:
    after a new merchant crosses ``HUB_EDGES`` accounts and the busiest ones get more, every
    running sum still equals the sum of its sources' cached layers."""
    from gnn.serving.inductive import HUB_EDGES, INTO

    scorer = InductiveScorer.build(trained, synth.snapshot)
    t = synth.snapshot.transactions
    busiest = str(synth.snapshot.nodes[NodeType.MERCHANT][int(np.bincount(t.merchant[t.merchant >= 0]).argmax())])
    events = [Event(txn_id=f"hub-{i}", ts=WHEN + i, user_id=f"buyer-{i}", device_id=f"buyer-dev-{i % 7}",
                    ip=OFFICE_IP if i % 2 else f"198.51.100.{i % 50}", merchant_id="m-hub" if i < HUB_EDGES + 6 else busiest,
                    amount=20.0 + i) for i in range(HUB_EDGES + 40)]  # fmt: skip
    for e in events:
        scorer.score_event(e)
        scorer.add_events([e])
    hub = scorer._gid("merchant", "m-hub")
    assert hub is not None and scorer._deg["merchant"][hub].max() == HUB_EDGES + 6
    checked = 0
    for dst_type, rels in INTO.items():
        for j, rel in enumerate(rels):
            for g in np.flatnonzero(scorer._deg[dst_type][: scorer._count[dst_type], j] > HUB_EDGES):
                src = scorer._neighbours(rel, int(g))
                for layer in range(scorer.layers):
                    want = scorer._h[layer][rel[0]][src].sum(axis=0)
                    got = scorer._sum[layer][dst_type][scorer._hub_row[dst_type][g], j * scorer._hidden : (j + 1) * scorer._hidden]
                    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3, err_msg=f"{rel} {g} layer {layer}")
                checked += 1
    assert checked >= 3  # the new hub, the busiest merchant, the office IP


def test_deferred_events_are_folded_in_before_a_call_reads_their_identifiers(
    trained: ModelArtefact, synth: SynthData
) -> None:
    """Another worker's events, deferred: a later event on their device scores exactly as if they
    had been folded in at once, an account's score and features see them; only what no call
    touched waits (a merchant's statistics), until the next snapshot."""
    eager = InductiveScorer.build(trained, synth.snapshot)
    lazy = InductiveScorer.build(trained, synth.snapshot)
    ring_device = synth.ring_devices["ring-00"][0]
    theirs = [Event(txn_id=f"other-{i}", ts=WHEN + i, user_id=f"other-user-{i}", device_id="shared-new-device",
                    ip=f"198.51.100.{i}", merchant_id="m-quiet", amount=10.0) for i in range(3)]  # fmt: skip
    theirs.append(Event(txn_id="other-ring", ts=WHEN + 5, user_id="other-user-0", device_id=ring_device, ip="198.51.100.0",
                        merchant_id="m003", amount=15.0))  # fmt: skip
    untouched = Event(txn_id="other-alone", ts=WHEN + 6, user_id="alone-user", device_id="alone-device", ip="198.51.100.77",
                      merchant_id="m-quiet", amount=5.0)  # fmt: skip
    assert eager.add_events([*theirs, untouched]) == 5
    assert lazy.defer_events([*theirs, untouched]) == 5 and lazy.defer_events(theirs) == 0
    assert lazy.added_events == 0 and lazy.deferred_events == 5
    before = lazy.node_features("merchant", "m003").copy()  # m003 is not a deferred identifier

    # A new account on the shared device: the three accounts there, and (through other-user-0)
    # its payment from a ring device, are folded in first.
    mine = _event("my-user", "shared-new-device", ip="203.0.113.50", merchant="m003")
    got, want = lazy.score_event(mine), eager.score_event(mine)
    assert got.new == want.new == ("user", "ip")
    assert got.account_score == pytest.approx(want.account_score, abs=1e-9)
    assert got.txn_score == pytest.approx(want.txn_score, abs=1e-9)
    assert lazy.added_events == 4 and lazy.deferred_events == 1
    assert not np.allclose(lazy.node_features("merchant", "m003"), before)  # folded with other-ring
    np.testing.assert_allclose(lazy.node_features("device", "shared-new-device"),
                               eager.node_features("device", "shared-new-device"))  # fmt: skip

    # The untouched event is not in the quiet merchant's statistics yet; reading its account folds it.
    assert not np.allclose(lazy.node_features("merchant", "m-quiet"), eager.node_features("merchant", "m-quiet"))
    assert lazy.touched_since_snapshot("alone-user") and lazy.deferred_events == 0
    np.testing.assert_allclose(lazy.node_features("merchant", "m-quiet"), eager.node_features("merchant", "m-quiet"))
    assert lazy.score_account("alone-user").score == pytest.approx(eager.score_account("alone-user").score, abs=1e-9)
