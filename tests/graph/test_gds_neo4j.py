"""The Graph Data Science queries of ``neo4j/investigation.cypher`` (``gds_rings``,
``gds_communities``, ``similar_accounts``, ``gds_drop``) on the real server's GDS plugin, over the
scored demo graph with planted rings.

Each is checked against an independent computation over the stored graph (``account_components``
for WCC, Jaccard over the projected identifiers for node similarity) and against the planted
truth: the GDS components that hold high-tier accounts hold the planted rings' members.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from neo4j import Driver, GraphDatabase

from graph.investigation import InvestigationQuery, load_queries
from graph.rings import RingConfig, account_components
from graph.types import NodeType
from tests.graph.neo4j_demo import Neo4jDemo, neo4j_demo
from tests.graph.test_investigation_neo4j import links_of, run, users_of

pytestmark = pytest.mark.neo4j

GRAPH = "ringwatch-test-accounts"
CAP = RingConfig().max_identifier_users


@pytest.fixture(scope="module")
def demo(neo4j_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Neo4jDemo:
    return neo4j_demo(neo4j_server, tmp_path_factory)


@pytest.fixture(scope="module")
def queries() -> dict[str, InvestigationQuery]:
    return load_queries()


@pytest.fixture(scope="module")
def driver(neo4j_server: Any, demo: Neo4jDemo, queries: dict[str, InvestigationQuery]) -> Iterator[Driver]:
    """A driver with the demo graph projected and ``community`` written (``gds_rings``, once);
    the projection is dropped at the end even when a test failed."""
    with GraphDatabase.driver(neo4j_server.uri, auth=(neo4j_server.user, neo4j_server.password)) as d:
        run(d, queries["gds_drop"], graph_name=GRAPH)  # a projection left by an interrupted run
        try:
            yield d
        finally:
            run(d, queries["gds_drop"], graph_name=GRAPH)


@pytest.fixture(scope="module")
def gds_rings(driver: Driver, queries: dict[str, InvestigationQuery]) -> dict[str, Any]:
    (row,) = run(driver, queries["gds_rings"], graph_name=GRAPH, max_identifier_users=CAP)
    return row


def communities(driver: Driver) -> dict[str, int]:
    """user_id -> the ``community`` gds_rings wrote."""
    return dict(driver.execute_query("MATCH (u:User) RETURN u.user_id, u.community").records)  # type: ignore[arg-type]


def small_identifiers(demo: Neo4jDemo) -> dict[str, set[tuple[str, str]]]:
    """user_id -> its devices and IPs used by at most CAP accounts (what gds_rings projects)."""
    links = links_of(demo.snapshot)
    by_ident = users_of(links)
    return {u: {x for x in ids if len(by_ident[x]) <= CAP} for u, ids in links.items()}


def test_gds_rings_writes_the_components_ring_detection_computes(
    demo: Neo4jDemo, driver: Driver, gds_rings: dict[str, Any]
) -> None:
    snap = demo.snapshot
    users = snap.nodes[NodeType.USER].tolist()
    expected = account_components(snap, CAP)
    # The session's server also holds other tests' accounts (their own components): compare the demo's.
    written = communities(driver)
    got = {u: written.get(u) for u in users}
    assert all(c is not None for c in got.values())
    # Same partition of the accounts (component ids differ between the two).
    pairs = {(int(e), got[u]) for u, e in zip(users, expected.tolist(), strict=True)}
    assert len({e for e, _ in pairs}) == len(pairs) == len({g for _, g in pairs})
    assert gds_rings["graph_name"] == GRAPH
    assert gds_rings["written"] == gds_rings["nodes"] >= len(users)
    # GDS components also count the devices and IPs in them.
    assert gds_rings["largest_component"] >= max(np.bincount(np.unique(expected, return_inverse=True)[1]))


def test_gds_communities_with_high_tier_accounts_hold_the_planted_rings(
    demo: Neo4jDemo, driver: Driver, queries: dict[str, InvestigationQuery], gds_rings: dict[str, Any]
) -> None:
    rows = run(driver, queries["gds_communities"], min_high=1, limit=100_000)
    tiers = dict(driver.execute_query("MATCH (u:User) RETURN u.user_id, u.risk_tier").records)
    by_community: dict[int, set[str]] = {}
    for user, c in communities(driver).items():
        by_community.setdefault(c, set()).add(user)
    expected = {c for c, members in by_community.items() if any(tiers[m] == "high" for m in members)}
    assert {r["community"] for r in rows} == expected and rows
    for r in rows:
        assert set(r["accounts"]) == by_community[r["community"]]
        assert r["high_members"] == sum(tiers[m] == "high" for m in r["accounts"]) >= 1
    assert [r["high_members"] for r in rows] == sorted((r["high_members"] for r in rows), reverse=True)

    truth = demo.truth_users.set_index("user_id")
    planted = truth[truth["ring_id"] != ""]
    in_risky = {u for r in rows for u in r["accounts"]}
    # Every planted ring member the model put in the high tier is in one of these communities
    # (by construction), and so are most of the planted rings linked by devices and IPs: their
    # members share identifiers with the high-tier ones.
    linked = planted[planted["ring_kind"].isin(["account_farm", "mule_chain"])]
    assert len(linked) and np.mean([u in in_risky for u in linked.index]) >= 0.8
    # ringwatch's own rings of those kinds sit inside these communities too.
    rings = {g for r in rows for g in r["ring_ids"]}
    assert rings and rings <= {r.ring_id for r in demo.rings}


def test_similar_accounts_ranks_by_jaccard_over_the_projected_identifiers(
    demo: Neo4jDemo, driver: Driver, queries: dict[str, InvestigationQuery], gds_rings: dict[str, Any]
) -> None:
    truth = demo.truth_users
    farm = sorted(truth.loc[truth["ring_kind"] == "account_farm", "user_id"])
    member = farm[0]
    ids = small_identifiers(demo)
    mine = ids[member]

    def jaccard(other: str) -> float:
        union = mine | ids[other]
        return len(mine & ids[other]) / len(union) if union else 0.0

    expected = sorted(((jaccard(u), u) for u in ids if u != member and mine & ids[u]), key=lambda t: (-t[0], t[1]))
    rows = run(driver, queries["similar_accounts"], graph_name=GRAPH, user_id=member, limit=10)
    assert rows and len(rows) == min(10, len(expected))
    for r in rows:
        assert r["similarity"] == pytest.approx(jaccard(r["user_id"]))
        assert set(r["shared"]) == {x for _, x in mine & ids[r["user_id"]]}
        assert all(p.start_node["user_id"] == member and p.end_node["user_id"] == r["user_id"] for p in r["paths"])
    assert [r["similarity"] for r in rows] == pytest.approx([s for s, _ in expected[: len(rows)]])
    # The planted farm's other accounts look most like this one.
    assert {r["user_id"] for r in rows[:3]} <= set(farm)
    assert run(driver, queries["similar_accounts"], graph_name=GRAPH, user_id="no-such-user", limit=5) == []


def test_gds_drop_drops_the_projection_and_keeps_the_communities(
    driver: Driver, queries: dict[str, InvestigationQuery], gds_rings: dict[str, Any]
) -> None:
    exists = "CALL gds.graph.exists($g) YIELD exists RETURN exists"
    assert driver.execute_query(exists, g=GRAPH).records[0]["exists"]
    assert run(driver, queries["gds_drop"], graph_name=GRAPH) == [{"graph_name": GRAPH}]
    assert not driver.execute_query(exists, g=GRAPH).records[0]["exists"]
    assert run(driver, queries["gds_drop"], graph_name=GRAPH) == []  # dropping twice is harmless
    assert all(c is not None for c in communities(driver).values())
    # Projecting again under the same name works once it is dropped.
    (again,) = run(driver, queries["gds_rings"], graph_name=GRAPH, max_identifier_users=CAP)
    assert again["components"] == gds_rings["components"]
