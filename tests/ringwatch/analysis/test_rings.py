"""``ringwatch.analysis.rings`` on the planted rings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from graph.types import NodeType, Tier
from ringwatch.analysis.rings import export_ring, ring_member_risk, ring_subgraph, rings_frame
from tests.ringwatch.analysis.world import World, planted_ring


def test_rings_frame_names_theplanted_ring(world: World) -> None:
    ring, members = planted_ring(world)
    frame = rings_frame(world.rings, world.truth_users).set_index("ring_id")
    planted_id = world.truth_users.set_index("user_id").loc[sorted(members)[0], "ring_id"]
    assert frame.loc[ring.ring_id, "planted ring"] == planted_id
    assert frame.loc[ring.ring_id, "truly fraud"] == 1.0
    assert list(rings_frame(world.rings).columns)[:4] == ["ring_id", "tier", "score", "size"]


def test_ring_subgraph_holds_members_shared_identifiers_and_outsiders(world: World) -> None:
    ring, _ = planted_ring(world)
    g = ring_subgraph(world.snapshot, ring, world.scores, outsiders=5)
    members = {d["key"] for _, d in g.nodes(data=True) if d["node_type"] is NodeType.USER and d["member"]}
    assert members == set(ring.members)
    for key in ring.shared_devices:
        assert g.nodes[(NodeType.DEVICE, key)]["shared"]
    for key in ring.shared_ips:
        assert g.nodes[(NodeType.IP, key)]["shared"]
    outsiders = [n for n, d in g.nodes(data=True) if d["node_type"] is NodeType.USER and not d["member"]]
    assert len(outsiders) <= 5
    for n in outsiders:  # each hangs on a shared, non-giant identifier of the ring
        for nb in g.neighbors(n):
            assert g.nodes[nb]["shared"] and nb[0] in (NodeType.DEVICE, NodeType.IP)
    assert all(g.nodes[(NodeType.USER, m)]["tier"] is Tier.HIGH for m in ring.members if m in set(world.truth_users.loc[world.truth_users["is_fraud"] == "1", "user_id"]))


def test_export_ring_writes_a_case_file_with_the_planted_members(world: World, tmp_path: Path) -> None:
    ring, planted = planted_ring(world)
    reasons = {m: (f"reason for {m}", "second reason") for m in ring.members}
    export = export_ring(world.snapshot, ring, tmp_path, world.scores, reasons)
    members = pd.read_csv(export.members_csv, dtype=str, keep_default_na=False)
    assert set(members["user_id"]) == set(ring.members) and planted <= set(members["user_id"])
    assert (members["ring_id"] == ring.ring_id).all() and (members["risk_tier"] == "high").all()
    first = members.iloc[0]
    assert first["reasons"] == f"reason for {first['user_id']} | second reason"
    txns = pd.read_csv(export.transactions_csv, dtype=str, keep_default_na=False)
    expected = world.events[world.events["user_id"].isin(ring.members)]
    assert set(txns["txn_id"]) == set(expected["txn_id"]) and export.transactions == len(expected)
    assert pd.to_datetime(txns["time"]).is_monotonic_increasing
    pays = expected[expected["event"] == "payment"]
    assert members.set_index("user_id")["payments"].astype(int).sum() == len(pays)


def test_ring_member_risk_reports_each_member_as_the_api_index_does(world: World) -> None:
    ring, _ = planted_ring(world)
    views = ring_member_risk(world.snapshot, ring, world.scores)
    assert [v.user_id for v in views] == list(ring.members)
    assert all(v.ring_id is not None and any(r.startswith("member of ring ") for r in v.reasons) for v in views)
