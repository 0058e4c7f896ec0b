"""ScoringIndex: lookups, reasons, neighbourhoods and ring filters, without HTTP."""

from __future__ import annotations

import pytest

from api.index import ScoringIndex
from gnn.serving.reasons import NOT_SCORED
from graph.errors import NotFoundError, ValidationError
from graph.types import EdgeType, NodeType, Snapshot, Tier
from tests.api.fixtures import MODEL_VERSION, RING_USERS, events, make_snapshot


def test_ring_member_is_high_with_ring_and_identifiers(index: ScoringIndex) -> None:
    view = index.account("u02")
    assert view.tier is Tier.HIGH
    assert view.ring_id == "ring-0001"
    assert view.model_version == MODEL_VERSION
    assert view.devices == ("d01",)
    assert view.ips == ("10.0.0.1",)


def test_reasons_are_counted_from_the_graph_and_capped(index: ScoringIndex) -> None:
    reasons = index.account("u01").reasons
    assert len(reasons) == 4
    # Own verdict first, then the ring, then the shared device (4 others, all high tier).
    assert reasons[0] == "confirmed fraud (chargeback)"
    assert reasons[1] == "member of ring ring-0001 (5 accounts, high tier)"
    assert reasons[2] == "shares device d01 with 4 other accounts, 4 of them high risk"
    assert reasons[3].startswith("shares IP 10.0.0.1 with 4 other accounts")
    # u02's device neighbours include the confirmed fraudster u01.
    assert "shares device d01 with 4 other accounts, 4 of them high risk, 1 confirmed fraud" in index.account(
        "u02"
    ).reasons


def test_velocity_and_age_reasons_for_an_account_outside_rings(index: ScoringIndex) -> None:
    reasons = index.account("u09").reasons
    assert reasons[0] == "shares IP 10.0.0.9 with 1 other account"
    assert "account active for 36 days" in reasons
    assert not any("ring" in r for r in reasons)
    assert "account active for less than a day" in index.account("u08").reasons


def test_busiest_hour_counts_payments_in_one_hour() -> None:
    # Without the label and the ring the velocity fact makes the top four for u01.
    idx = ScoringIndex.build(make_snapshot(events()), None)
    assert "6 payments in the busiest hour" in idx.account("u01").reasons


def test_unknown_account_raises_not_found(index: ScoringIndex) -> None:
    with pytest.raises(NotFoundError) as err:
        index.account("nobody")
    assert err.value.key == "nobody"


def test_unscored_index_answers_with_nulls_and_says_so(snapshot: Snapshot) -> None:
    idx = ScoringIndex.build(snapshot, None)
    view = idx.account("u02")
    assert (view.score, view.tier, view.ring_id, view.model_version) == (None, None, None, None)
    assert view.reasons[0] == NOT_SCORED
    assert not idx.scored and idx.rings() == []
    # Without tiers, sharing is still reported, but nobody is called high risk.
    assert any(r.startswith("shares device d01 with 4 other accounts") for r in view.reasons)
    assert not any("high risk" in r for r in view.reasons)


@pytest.mark.parametrize("hops", [0, 4])
def test_subgraph_rejects_hops_outside_1_to_3(index: ScoringIndex, hops: int) -> None:
    with pytest.raises(ValidationError) as err:
        index.subgraph("u01", hops)
    assert err.value.field == "hops"


def test_subgraph_one_hop_holds_direct_neighbours_and_their_edges(index: ScoringIndex) -> None:
    sub = index.subgraph("u01", 1)
    keys = {(n.node_type, n.key) for n in sub.nodes}
    assert keys == {
        (NodeType.USER, "u01"),
        (NodeType.DEVICE, "d01"),
        (NodeType.IP, "10.0.0.1"),
        (NodeType.MERCHANT, "m01"),
        (NodeType.RING, "ring-0001"),
    }
    assert sub.nodes[0].key == "u01" and sub.nodes[0].risk_tier is Tier.HIGH
    types = [e.edge_type for e in sub.edges]
    assert types.count(EdgeType.TRANSACTED) == 7  # every u01 payment, each its own edge
    assert EdgeType.SEEN_AT in types and EdgeType.MEMBER_OF in types
    scored = [e for e in sub.edges if e.txn_id == "t000"]
    assert len(scored) == 1 and scored[0].risk_score == pytest.approx(0.9)
    assert not sub.truncated


def test_subgraph_two_hops_reaches_accounts_through_shared_identifiers(index: ScoringIndex) -> None:
    one, two = index.subgraph("u01", 1), index.subgraph("u01", 2)
    users = {n.key for n in two.nodes if n.node_type is NodeType.USER}
    assert len(two.nodes) > len(one.nodes)
    assert users == set(RING_USERS) | {"u08"}  # u08 only through merchant m01
    assert {e.source for e in two.edges} >= {(NodeType.USER, u) for u in RING_USERS}


def test_subgraph_limit_truncates(index: ScoringIndex) -> None:
    sub = index.subgraph("u01", 2, limit=3)
    assert len(sub.nodes) == 3 and sub.truncated
    selected = {(n.node_type, n.key) for n in sub.nodes}
    assert all(e.source in selected and e.target in selected for e in sub.edges)
    exact = index.subgraph("u01", 1, limit=5)  # exactly the one-hop neighbourhood fits
    assert len(exact.nodes) == 5 and not exact.truncated


def test_rings_filter_and_order(index: ScoringIndex) -> None:
    assert [r.ring_id for r in index.rings()] == ["ring-0001", "ring-0002"]
    assert [r.ring_id for r in index.rings(min_tier=Tier.HIGH)] == ["ring-0001"]
    assert [r.ring_id for r in index.rings(min_tier=Tier.MEDIUM)] == ["ring-0001", "ring-0002"]
    assert [r.ring_id for r in index.rings(min_size=3)] == ["ring-0001"]
    assert index.ring("ring-0002").members == ("u06", "u07")
    with pytest.raises(NotFoundError):
        index.ring("ring-9999")
    with pytest.raises(ValidationError) as err:
        index.rings(min_size=-1)
    assert err.value.field == "min_size"


def test_identifier_facts_leave_out_the_asking_account_only_where_it_is(index: ScoringIndex) -> None:
    # d01 carries the five ring accounts, u01 among them and confirmed fraud.
    everyone = index.identifier(NodeType.DEVICE, "d01")
    assert everyone is not None and (everyone.accounts, everyone.fraud) == (5, 1)
    member = index.identifier(NodeType.DEVICE, "d01", excluding="u01")
    assert member is not None and (member.accounts, member.fraud, member.high) == (4, 0, 4)
    # u09 never used d01 or d03: every account there is another account.
    outsider = index.identifier(NodeType.DEVICE, "d01", excluding="u09")
    assert outsider is not None and (outsider.accounts, outsider.fraud) == (5, 1)
    lone = index.identifier(NodeType.DEVICE, "d03", excluding="u09")
    assert lone is not None and lone.accounts == 1
    assert index.identifier(NodeType.DEVICE, "d03", excluding="nobody") == index.identifier(NodeType.DEVICE, "d03")
