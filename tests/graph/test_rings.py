"""Behaviour of deterministic ring detection (graph/rings.py, DESIGN §6)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from graph.errors import ValidationError
from graph.rings import RingConfig, _assign_ring_ids, detect_rings
from graph.types import NodeType, Ring, Tier
from tests.graph.snapshots import Txn, make_snapshot, scores_for

MEDIUM = 0.5
HIGH = 0.8


def _background(n: int = 30, prefix: str = "legit") -> list[Txn]:
    """Low-risk users, each with its own device and IP, all paying one popular shop."""
    return [
        Txn(f"{prefix}-{i:03d}", merchant="m-shop", device=f"d-{prefix}-{i}", ip=f"ip-{prefix}-{i}")
        for i in range(n)
    ]


def _farm(prefix: str = "farm", devices: tuple[str, str] = ("d-farm-1", "d-farm-2")) -> list[Txn]:
    """Six accounts on two devices: the first four on one, the last four on the other."""
    txns = []
    for i in range(6):
        user = f"{prefix}-{i}"
        if i < 4:
            txns.append(Txn(user, merchant="m-shop", device=devices[0], ip=f"ip-{user}"))
        if i >= 2:
            txns.append(Txn(user, merchant="m-shop", device=devices[1], ip=f"ip-{user}"))
    return txns


def _farm_scores(prefix: str = "farm", base: float = 0.85) -> dict[str, float]:
    return {f"{prefix}-{i}": base + 0.02 * i for i in range(6)}


def _detect(snapshot, scores: dict[str, float], config: RingConfig = RingConfig()) -> list[Ring]:
    return detect_rings(snapshot, scores_for(snapshot, scores), medium=MEDIUM, high=HIGH, config=config)


# -------------------------------------------------------------------------------------------
# Planted structures
# -------------------------------------------------------------------------------------------


def test_planted_device_farm_is_one_ring_with_its_devices() -> None:
    snap = make_snapshot(transactions=_background() + _farm())
    rings = _detect(snap, _farm_scores())

    assert len(rings) == 1
    ring = rings[0]
    assert ring.members == tuple(f"farm-{i}" for i in range(6))
    assert ring.shared_devices == ("d-farm-1", "d-farm-2")
    assert ring.shared_ips == ()
    assert ring.shared_merchants == ()  # the popular shop ties nobody together
    assert ring.tier is Tier.HIGH
    assert ring.ring_id == "ring-" + hashlib.sha1(b"farm-0").hexdigest()[:10]


def test_low_scoring_users_on_a_farm_device_are_not_members() -> None:
    txns = _background() + _farm() + [Txn("victim", merchant="m-shop", device="d-farm-1")]
    snap = make_snapshot(transactions=txns)
    (ring,) = _detect(snap, _farm_scores() | {"victim": 0.1})
    assert "victim" not in ring.members


@pytest.mark.parametrize("kind", ["ip", "device"])
def test_giant_shared_identifier_never_links_accounts(kind: str) -> None:
    # 200 office workers behind one NAT IP (or one kiosk device); 12 of them score above the
    # member threshold but share nothing else.
    txns = []
    for i in range(200):
        user = f"office-{i:03d}"
        if kind == "ip":
            txns.append(Txn(user, merchant="m-shop", device=f"d-{user}", ip="10.0.0.1"))
        else:
            txns.append(Txn(user, merchant="m-shop", device="d-kiosk", ip=f"ip-{user}"))
    snap = make_snapshot(transactions=txns)
    risky = {f"office-{i:03d}": 0.6 + 0.002 * i for i in range(0, 200, 17)}
    assert len(risky) >= 10

    assert _detect(snap, risky) == []
    # The cap keeps them apart even where they would be the identifier's majority: lift it and
    # the candidate-share bar (12 of 200) and the same accounts do form a ring.
    assert _detect(snap, risky, RingConfig(min_candidate_share=0.05)) == []
    (ring,) = _detect(snap, risky, RingConfig(max_identifier_users=500, min_candidate_share=0.05))
    assert set(ring.members) == set(risky)


def test_identifier_at_the_user_cap_still_links() -> None:
    # 40 users on one IP (exactly max_identifier_users), half of them candidates: it links.
    txns = [Txn(f"u-{i:02d}", ip="ip-shared", device=f"d-{i}") for i in range(40)]
    snap = make_snapshot(transactions=txns)
    risky = {f"u-{i:02d}": 0.9 for i in range(20)}
    (ring,) = _detect(snap, risky)
    assert ring.shared_ips == ("ip-shared",)
    assert _detect(snap, risky, RingConfig(max_identifier_users=39)) == []


def test_colluding_small_merchant_links_accounts_that_share_nothing_else() -> None:
    crew = [f"crew-{i}" for i in range(5)]
    txns = _background()
    for user in crew:
        txns.append(Txn(user, merchant="m-collude", device=f"d-{user}", ip=f"ip-{user}"))
        txns.append(Txn(user, merchant="m-shop", device=f"d-{user}", ip=f"ip-{user}"))
    # Two ordinary customers of the small merchant keep its mean score above medium.
    txns += [Txn("legit-000", merchant="m-collude"), Txn("legit-001", merchant="m-collude")]
    snap = make_snapshot(transactions=txns)
    rings = _detect(snap, {u: 0.9 for u in crew})

    assert len(rings) == 1
    assert rings[0].members == tuple(crew)
    assert rings[0].shared_merchants == ("m-collude",)
    assert rings[0].shared_devices == () and rings[0].shared_ips == ()


def test_popular_merchant_never_links_even_when_its_users_are_risky() -> None:
    txns = [Txn(f"buyer-{i:02d}", merchant="m-big", device=f"d-{i}", ip=f"ip-{i}") for i in range(35)]
    snap = make_snapshot(transactions=txns)
    scores = {f"buyer-{i:02d}": 0.9 for i in range(35)}
    assert _detect(snap, scores) == []
    # Only the merchant cap keeps them apart.
    assert len(_detect(snap, scores, RingConfig(max_merchant_users=100))) == 1


def test_small_merchant_with_mostly_legit_customers_does_not_link() -> None:
    txns = [Txn(f"cust-{i:02d}", merchant="m-corner", device=f"d-{i}") for i in range(20)]
    snap = make_snapshot(transactions=txns)
    # 3 risky customers among 20: mean score well below medium, so the shop is not risky.
    assert _detect(snap, {"cust-00": 0.95, "cust-01": 0.95, "cust-02": 0.95}) == []


def _crews_and_hangout(crew_uses: int, ordinary: int) -> tuple[list[Txn], dict[str, float]]:
    """Two crews of 4 on their own device each; every member also passes once through one
    public Wi-Fi IP (``ip-cafe``), used by ``ordinary`` low-risk users too. ``crew_uses``
    events per member on the crew's device."""
    txns: list[Txn] = []
    scores: dict[str, float] = {}
    for crew in ("red", "blue"):
        for i in range(4):
            user = f"{crew}-{i}"
            txns += [Txn(user, device=f"d-{crew}", ip=f"ip-{user}") for _ in range(crew_uses)]
            txns.append(Txn(user, device=f"d-{crew}", ip="ip-cafe"))
            scores[user] = 0.9
    txns += [Txn(f"cafe-{i:02d}", device=f"d-cafe-{i}", ip="ip-cafe") for i in range(ordinary)]
    return txns, scores


def test_public_hangout_mostly_used_by_ordinary_accounts_does_not_merge_rings() -> None:
    # 8 crew members among 20 users of the cafe IP: not mostly candidates.
    txns, scores = _crews_and_hangout(crew_uses=1, ordinary=12)
    snap = make_snapshot(transactions=txns)
    keep_busy = RingConfig(busy_identifier_users=1000)  # only the candidate share at work
    rings = _detect(snap, scores, keep_busy)
    assert sorted(r.members for r in rings) == [tuple(f"blue-{i}" for i in range(4)), tuple(f"red-{i}" for i in range(4))]
    assert all(r.shared_ips == () for r in rings)
    (merged,) = _detect(snap, scores, RingConfig(busy_identifier_users=1000, min_candidate_share=0.05))
    assert merged.size == 8 and merged.shared_ips == ("ip-cafe",)


def test_busy_identifier_ties_only_accounts_that_really_use_it() -> None:
    # 8 crew members among 12 users of the cafe IP (mostly candidates), but each passed through
    # it once in 6 events: a busy IP that carries 1/6 < 0.2 of their events ties nobody.
    txns, scores = _crews_and_hangout(crew_uses=5, ordinary=4)
    snap = make_snapshot(transactions=txns)
    rings = _detect(snap, scores)
    assert sorted(r.size for r in rings) == [4, 4]
    (merged,) = _detect(snap, scores, RingConfig(min_use_share=0.1))
    assert merged.size == 8
    # A small identifier (at most busy_identifier_users users) ties every user, however rarely used.
    (merged,) = _detect(snap, scores, RingConfig(busy_identifier_users=12))
    assert merged.size == 8


def _card_testing(burst: int) -> list[Txn]:
    """40 ordinary customers of m-mid, one payment each on their own day; 5 testers on their own
    devices and IPs, each making ``burst`` payments there within minutes on day 50."""
    day = 86400.0
    txns = [
        Txn(f"cust-{i:02d}", merchant="m-mid", device=f"d-cust-{i}", ip=f"ip-cust-{i}", ts=(i + 1) * day)
        for i in range(40)
    ]
    for t in range(5):
        user = f"tester-{t}"
        txns += [
            Txn(user, merchant="m-mid", device=f"d-{user}", ip=f"ip-{user}", amount=1.0, ts=50 * day + 60 * (5 * t + j))
            for j in range(burst)
        ]
    return txns


def test_card_testing_burst_at_a_merchant_with_ordinary_customers_is_one_ring() -> None:
    testers = {f"tester-{t}": 0.9 for t in range(5)}
    # m-mid has 45 users, too many for the whole-merchant link; the burst window ties them.
    (ring,) = _detect(make_snapshot(transactions=_card_testing(burst=4)), testers)
    assert ring.members == tuple(sorted(testers))
    assert ring.shared_merchants == ("m-mid",)
    # One payment each in the window is no burst, and a window of ordinary customers ties nobody.
    assert _detect(make_snapshot(transactions=_card_testing(burst=1)), testers) == []
    assert _detect(make_snapshot(transactions=_card_testing(burst=4)), testers, RingConfig(burst_payments=5)) == []


# -------------------------------------------------------------------------------------------
# Bridges (mule chains)
# -------------------------------------------------------------------------------------------


def _chain() -> list[Txn]:
    """Two groups of 3 candidates on two devices, and one mule using both devices."""
    txns = [Txn(f"a-{i}", device="d-a", ip=f"ip-a-{i}") for i in range(3)]
    txns += [Txn(f"b-{i}", device="d-b", ip=f"ip-b-{i}") for i in range(3)]
    txns += [Txn("mule", device="d-a"), Txn("mule", device="d-b")]
    return txns + _background(10)


def _chain_scores(mule: float) -> dict[str, float]:
    return {f"{g}-{i}": 0.9 for g in "ab" for i in range(3)} | {"mule": mule}


def test_mid_risk_bridge_holds_a_mule_chain_together() -> None:
    snap = make_snapshot(transactions=_chain())
    # Member threshold 0.6 * medium = 0.3; the mule is below it but above half of it.
    (ring,) = _detect(snap, _chain_scores(mule=0.2))
    assert ring.members == ("a-0", "a-1", "a-2", "b-0", "b-1", "b-2", "mule")
    assert ring.shared_devices == ("d-a", "d-b")


@pytest.mark.parametrize(
    ("mule", "config"), [(0.1, RingConfig()), (0.2, RingConfig(bridge_ratio=None))]
)
def test_no_bridge_leaves_two_rings(mule: float, config: RingConfig) -> None:
    snap = make_snapshot(transactions=_chain())
    rings = _detect(snap, _chain_scores(mule), config)
    assert sorted(r.members for r in rings) == [("a-0", "a-1", "a-2"), ("b-0", "b-1", "b-2")]


def test_bridge_needs_two_candidate_groups() -> None:
    txns = [Txn(f"a-{i}", device="d-a") for i in range(3)] + [Txn("hanger-on", device="d-a")]
    snap = make_snapshot(transactions=txns)
    (ring,) = _detect(snap, {"a-0": 0.9, "a-1": 0.9, "a-2": 0.9, "hanger-on": 0.2})
    assert "hanger-on" not in ring.members


def test_bridges_do_not_chain_through_each_other() -> None:
    # Two bridged pairs whose mules share a device no candidate uses stay two rings.
    txns = [Txn("p-0", device="d-p0"), Txn("p-1", device="d-p1")]
    txns += [Txn("q-0", device="d-q0"), Txn("q-1", device="d-q1")]
    txns += [Txn("mule-p", device=d) for d in ("d-p0", "d-p1", "d-mules")]
    txns += [Txn("mule-q", device=d) for d in ("d-q0", "d-q1", "d-mules")]
    snap = make_snapshot(transactions=txns)
    scores = {"p-0": 0.9, "p-1": 0.9, "q-0": 0.9, "q-1": 0.9, "mule-p": 0.2, "mule-q": 0.2}
    rings = _detect(snap, scores)
    assert sorted(r.members for r in rings) == [("mule-p", "p-0", "p-1"), ("mule-q", "q-0", "q-1")]
    # The mules' own device ties them to no candidate group, so it is no shared identifier.
    assert sorted(r.shared_devices for r in rings) == [("d-p0", "d-p1"), ("d-q0", "d-q1")]


# -------------------------------------------------------------------------------------------
# Size, score, tier
# -------------------------------------------------------------------------------------------


def test_ring_below_min_size_is_dropped() -> None:
    txns = [Txn("pair-0", device="d-pair"), Txn("pair-1", device="d-pair")] + _background(5)
    snap = make_snapshot(transactions=txns)
    scores = {"pair-0": 0.95, "pair-1": 0.95}
    assert _detect(snap, scores) == []
    (ring,) = _detect(snap, scores, RingConfig(min_size=2))
    assert ring.members == ("pair-0", "pair-1")


def test_higher_member_scores_never_lower_the_ring_tier() -> None:
    snap = make_snapshot(transactions=_background() + _farm())
    results = []
    for base in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        (ring,) = _detect(snap, _farm_scores(base=base))
        results.append((ring.score, ring.tier.rank))
    assert results == sorted(results)
    assert {rank for _, rank in results} == {Tier.MEDIUM.rank, Tier.HIGH.rank}


def test_raising_one_member_score_never_lowers_the_ring() -> None:
    snap = make_snapshot(transactions=_background() + _farm())
    scores = _farm_scores(base=0.55)
    (before,) = _detect(snap, scores)
    (after,) = _detect(snap, scores | {"farm-0": 0.99})
    assert after.score >= before.score and after.tier.rank >= before.tier.rank


def test_ring_score_formula() -> None:
    # Members 0.9, 0.9, 0.6, 0.6, 0.6, 0.6 (size 6): top-5 mean m = 0.72, share >= high h = 2/6.
    snap = make_snapshot(transactions=_farm())
    scores = {"farm-0": 0.9, "farm-1": 0.9} | {f"farm-{i}": 0.6 for i in range(2, 6)}
    (ring,) = _detect(snap, scores)
    m, h = 0.72, 2 / 6
    assert ring.score == pytest.approx(m + 0.5 * h * (1 - m))
    assert ring.tier is Tier.MEDIUM


def test_low_tier_ring_with_custom_member_threshold() -> None:
    snap = make_snapshot(transactions=_farm())
    config = RingConfig(member_threshold=0.2)
    (ring,) = _detect(snap, {f"farm-{i}": 0.25 for i in range(6)}, config)
    assert ring.tier is Tier.LOW
    assert _detect(snap, {f"farm-{i}": 0.25 for i in range(6)}) == []  # default: 0.6 * medium = 0.3


# -------------------------------------------------------------------------------------------
# Determinism and stability of ring ids
# -------------------------------------------------------------------------------------------


def _two_ring_graph() -> tuple[list[Txn], dict[str, float]]:
    txns = _background() + _farm("farm") + _farm("zeta", devices=("d-zeta-1", "d-zeta-2"))
    return txns, _farm_scores("farm") | _farm_scores("zeta", base=0.55)


def test_same_graph_gives_identical_rings() -> None:
    txns, scores = _two_ring_graph()
    first = _detect(make_snapshot(transactions=txns), scores)
    second = _detect(make_snapshot(transactions=txns), scores)
    assert len(first) == 2
    assert first == second
    assert [r.ring_id for r in first] == [
        "ring-" + hashlib.sha1(b"farm-0").hexdigest()[:10],
        "ring-" + hashlib.sha1(b"zeta-0").hexdigest()[:10],
    ]  # highest score first


def test_unrelated_change_keeps_ring_ids_members_and_tiers() -> None:
    txns, scores = _two_ring_graph()
    before = _detect(make_snapshot(transactions=txns), scores)
    # Two new low-score users who sort before everyone (shifting every user index) start sharing
    # a device, and two existing legit users start sharing an IP.
    extra = [
        Txn("aaa-new-1", merchant="m-shop", device="d-new"),
        Txn("aaa-new-2", merchant="m-shop", device="d-new"),
        Txn("legit-003", ip="ip-legit-004"),
    ]
    after = _detect(make_snapshot(transactions=extra + txns[::-1]), scores)
    assert [(r.ring_id, r.members, r.tier) for r in after] == [
        (r.ring_id, r.members, r.tier) for r in before
    ]


def test_ring_id_survives_a_new_member_that_sorts_later() -> None:
    txns, scores = _two_ring_graph()
    before = {r.members[0]: r.ring_id for r in _detect(make_snapshot(transactions=txns), scores)}
    grown = txns + [Txn("farm-9", device="d-farm-1")]
    after = _detect(make_snapshot(transactions=grown), scores | {"farm-9": 0.9})
    farm = next(r for r in after if "farm-9" in r.members)
    assert farm.ring_id == before["farm-0"]


def test_ring_id_collisions_are_resolved_deterministically() -> None:
    anchors = [f"user-{i:03d}" for i in range(60)]  # 60 anchors over 16 one-hex-digit ids
    ids = _assign_ring_ids(anchors, hex_digits=1)
    assert len(set(ids)) == len(ids)
    shuffled = list(reversed(anchors))
    assert dict(zip(shuffled, _assign_ring_ids(shuffled, hex_digits=1))) == dict(zip(anchors, ids))
    # The smallest anchor of a colliding group keeps the plain id.
    assert ids[0] == "ring-" + hashlib.sha1(b"user-000").hexdigest()[:1]


def test_seeded_random_background_finds_exactly_the_planted_rings() -> None:
    rng = np.random.default_rng(7)
    n_users = 600
    txns = [
        Txn(
            f"u-{u:04d}",
            merchant=f"m-{rng.integers(0, 20)}",
            device=f"d-{rng.integers(0, 900)}",  # random devices: some shared by 2-3 users
            ip=f"ip-{rng.integers(0, 4)}",  # 4 giant carrier IPs
        )
        for u in rng.integers(0, n_users, size=3000)
    ]
    # Background below the member threshold (0.6 * medium); some of it may bridge.
    scores = {f"u-{u:04d}": float(s) for u, s in enumerate(rng.uniform(0.0, 0.28, n_users))}
    planted = [[f"ring{r}-{i}" for i in range(4)] for r in range(3)]
    for r, crew in enumerate(planted):
        for user in crew:
            txns.append(Txn(user, merchant="m-0", device=f"d-crew-{r}", ip=f"ip-{r}"))
            scores[user] = 0.9
    snap = make_snapshot(transactions=txns)
    rings = _detect(snap, scores)
    assert sorted(r.members for r in rings) == sorted(tuple(c) for c in planted)
    assert all(r.shared_ips == () and r.shared_merchants == () for r in rings)


# -------------------------------------------------------------------------------------------
# Arguments
# -------------------------------------------------------------------------------------------


def test_empty_graph_has_no_rings() -> None:
    snap = make_snapshot()
    assert detect_rings(snap, np.zeros(0), medium=MEDIUM, high=HIGH) == []


@pytest.mark.parametrize(
    ("scores", "medium", "high", "field"),
    [
        (np.full(3, 0.5), MEDIUM, HIGH, "account_scores"),  # wrong length
        (np.array([0.1, np.nan]), MEDIUM, HIGH, "account_scores"),
        (np.array([0.1, 1.5]), MEDIUM, HIGH, "account_scores"),
        (np.array([0.1, 0.2]), 0.9, 0.8, "medium"),
        (np.array([0.1, 0.2]), MEDIUM, 1.2, "high"),
    ],
)
def test_bad_arguments_raise_validation_error(scores, medium: float, high: float, field: str) -> None:
    snap = make_snapshot(users=["u-1", "u-2"])
    assert snap.num_nodes(NodeType.USER) == 2
    with pytest.raises(ValidationError) as info:
        detect_rings(snap, scores, medium=medium, high=high)
    assert info.value.field == field


@pytest.mark.parametrize(
    "kwargs",
    [{"min_size": 1}, {"max_identifier_users": 1}, {"max_merchant_users": 0},
     {"member_threshold": 0.0}, {"member_threshold": 1.1}, {"bridge_ratio": 1.0},
     {"member_ratio": 0.0}, {"min_candidate_share": 1.5}, {"min_use_share": -0.1},
     {"busy_identifier_users": 1}, {"merchant_window_s": 0.0}, {"burst_payments": 0}],
)
def test_bad_config_raises_validation_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError) as info:
        RingConfig(**kwargs)
    assert info.value.field == f"RingConfig.{next(iter(kwargs))}"
