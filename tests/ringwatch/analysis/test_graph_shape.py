"""``ringwatch.analysis.graph_shape`` against the raw events and the planted identifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph.errors import ValidationError
from graph.types import NodeType
from ringwatch.analysis.graph_shape import (
    GIANT_ACCOUNTS,
    activity_by_day,
    degree_summary,
    identifiers_frame,
    node_degrees,
    shared_identifiers,
)
from tests.ringwatch.analysis.world import World


def test_node_degrees_count_distinct_neighbours_like_the_raw_events(world: World) -> None:
    ev = world.events
    degrees = node_degrees(world.snapshot)
    per_device = ev[ev["device_id"] != ""].groupby("device_id")["user_id"].nunique()
    got = dict(zip(world.snapshot.nodes[NodeType.DEVICE].tolist(), degrees[NodeType.DEVICE].tolist(), strict=True))
    assert got == per_device.to_dict()
    per_ip = ev[ev["ip"] != ""].groupby("ip")["user_id"].nunique()
    assert sorted(degrees[NodeType.IP].tolist()) == sorted(per_ip.tolist())
    per_merchant = ev[ev["merchant_id"] != ""].groupby("merchant_id")["user_id"].nunique()
    got_m = dict(zip(world.snapshot.nodes[NodeType.MERCHANT].tolist(), degrees[NodeType.MERCHANT].tolist(), strict=True))
    assert got_m == per_merchant.to_dict()
    user_deg = dict(zip(world.snapshot.nodes[NodeType.USER].tolist(), degrees[NodeType.USER].tolist(), strict=True))
    one = ev[ev["user_id"] == "u000001"]
    expected = sum(one[c].replace("", np.nan).dropna().nunique() for c in ("device_id", "ip", "merchant_id"))
    assert user_deg["u000001"] == expected
    summary = degree_summary(degrees)
    assert summary.loc["Device", "max"] == per_device.max()


def test_shared_identifiers_read_giants_as_legitimate_and_farms_as_suspicious(world: World) -> None:
    role = dict(zip(world.truth_identifiers["identifier"], world.truth_identifiers["role"], strict=True))
    ips = shared_identifiers(world.snapshot, NodeType.IP, top=15)
    assert [s.accounts for s in ips] == sorted((s.accounts for s in ips), reverse=True)
    giants = [s for s in ips if s.accounts > GIANT_ACCOUNTS]
    assert giants, "a 600-user graph has an office / campus / carrier IP"
    for s in giants:
        assert role.get(s.key) in ("office_ip", "campus_ip", "carrier_nat_ip")
        assert s.reading == "legitimate giant" and "never links" in s.explanation
    devices = shared_identifiers(world.snapshot, NodeType.DEVICE, top=15)
    farm = [s for s in devices if role.get(s.key) in ("farm_device", "emulator_device", "tester_device")]
    assert farm and all(s.reading == "suspicious" for s in farm)
    assert all("because" in s.explanation for s in farm)
    legit = [s for s in devices if role.get(s.key) in ("family_device", "kiosk_device") and s.fraud_labelled == 0]
    assert legit and all(s.reading != "suspicious" for s in legit)
    frame = identifiers_frame(devices)
    assert list(frame["key"]) == [s.key for s in devices]
    with pytest.raises(ValidationError):
        shared_identifiers(world.snapshot, NodeType.MERCHANT)


def test_activity_by_day_adds_up_to_the_events(world: World) -> None:
    frame = activity_by_day(world.snapshot)
    counts = world.events["event"].value_counts()
    for kind in ("payment", "signup", "login"):
        assert frame[kind].sum() == counts[kind]
    assert frame["new accounts"].sum() == world.snapshot.num_nodes(NodeType.USER)
    declined = ((world.events["event"] == "payment") & (world.events["status"] == "declined")).sum()
    assert frame["declined"].sum() == declined
    assert frame.index.is_monotonic_increasing and (frame.index.to_series().diff().dropna() == pd.Timedelta(days=1)).all()
