"""The notebook helpers (``ringwatch.analysis``) on a small synthetic graph with planted rings.

Scores here are the planted truth (fraud 0.95, else 0.05) rather than a trained model, so the
rings are known and the tests need no training run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnn.core.thresholds import Thresholds
from graph.errors import ValidationError
from graph.investigation import load_queries
from graph.rings import detect_rings
from graph.types import EntityScore, NodeType, Ring, ScoreWriteback, Snapshot, Tier
from ringwatch import analysis, pipeline
from ringwatch.settings import Settings

USERS = 600
SEED = 11


@dataclass(frozen=True)
class World:
    settings: Settings
    snapshot: Snapshot
    events: pd.DataFrame
    truth_users: pd.DataFrame
    truth_identifiers: pd.DataFrame
    scores: ScoreWriteback
    rings: tuple[Ring, ...]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    settings = Settings(home=tmp_path_factory.mktemp("analysis-home"))
    source = analysis.load_or_generate(settings, USERS, SEED)
    assert source.generated
    with pipeline.store_for(settings) as store:
        snapshot = store.snapshot()
    data = settings.data_dir
    truth_users = pd.read_csv(data / "truth_users.csv", dtype=str, keep_default_na=False)
    fraud = set(truth_users.loc[truth_users["is_fraud"] == "1", "user_id"])
    users = snapshot.nodes[NodeType.USER].tolist()
    account = np.array([0.95 if u in fraud else 0.05 for u in users])
    rings = detect_rings(snapshot, account, medium=0.5, high=0.9)
    scores = ScoreWriteback(
        model_version="truth",
        scored_at=0.0,
        accounts=tuple(EntityScore(u, float(s), Tier.HIGH if s > 0.5 else Tier.LOW) for u, s in zip(users, account, strict=True)),
        transactions=tuple(EntityScore(str(t), 0.5, Tier.MEDIUM) for t in snapshot.transactions.txn_id.tolist()),
        rings=tuple(rings),
    )
    return World(
        settings=settings,
        snapshot=snapshot,
        events=pd.read_csv(data / "events.csv", dtype=str, keep_default_na=False),
        truth_users=truth_users,
        truth_identifiers=pd.read_csv(data / "truth_identifiers.csv", dtype=str, keep_default_na=False),
        scores=scores,
        rings=tuple(rings),
    )


# -- data -----------------------------------------------------------------------------------------


def test_load_or_generate_reuses_a_store_that_holds_accounts(world: World) -> None:
    again = analysis.load_or_generate(world.settings, users=50, seed=1)
    assert not again.generated and again.dataset is None
    assert again.stats.nodes["User"] == world.snapshot.num_nodes(NodeType.USER)
    assert again.truth_dir == world.settings.data_dir


# -- exploring ------------------------------------------------------------------------------------


def test_node_degrees_count_distinct_neighbours_like_the_raw_events(world: World) -> None:
    ev = world.events
    degrees = analysis.node_degrees(world.snapshot)
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
    summary = analysis.degree_summary(degrees)
    assert summary.loc["Device", "max"] == per_device.max()


def test_shared_identifiers_read_giants_as_legitimate_and_farms_as_suspicious(world: World) -> None:
    role = dict(zip(world.truth_identifiers["identifier"], world.truth_identifiers["role"], strict=True))
    ips = analysis.shared_identifiers(world.snapshot, NodeType.IP, top=15)
    assert [s.accounts for s in ips] == sorted((s.accounts for s in ips), reverse=True)
    giants = [s for s in ips if s.accounts > analysis.GIANT_ACCOUNTS]
    assert giants, "a 600-user graph has an office / campus / carrier IP"
    for s in giants:
        assert role.get(s.key) in ("office_ip", "campus_ip", "carrier_nat_ip")
        assert s.reading == "legitimate giant" and "never links" in s.explanation
    devices = analysis.shared_identifiers(world.snapshot, NodeType.DEVICE, top=15)
    farm = [s for s in devices if role.get(s.key) in ("farm_device", "emulator_device", "tester_device")]
    assert farm and all(s.reading == "suspicious" for s in farm)
    assert all("because" in s.explanation for s in farm)
    legit = [s for s in devices if role.get(s.key) in ("family_device", "kiosk_device") and s.fraud_labelled == 0]
    assert legit and all(s.reading != "suspicious" for s in legit)
    frame = analysis.identifiers_frame(devices)
    assert list(frame["key"]) == [s.key for s in devices]
    with pytest.raises(ValidationError):
        analysis.shared_identifiers(world.snapshot, NodeType.MERCHANT)


def test_activity_by_day_adds_up_to_the_events(world: World) -> None:
    frame = analysis.activity_by_day(world.snapshot)
    counts = world.events["event"].value_counts()
    for kind in ("payment", "signup", "login"):
        assert frame[kind].sum() == counts[kind]
    assert frame["new accounts"].sum() == world.snapshot.num_nodes(NodeType.USER)
    declined = ((world.events["event"] == "payment") & (world.events["status"] == "declined")).sum()
    assert frame["declined"].sum() == declined
    assert frame.index.is_monotonic_increasing and (frame.index.to_series().diff().dropna() == pd.Timedelta(days=1)).all()


# -- thresholds -----------------------------------------------------------------------------------


def _scores(n: int = 2000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.05
    s = np.clip(rng.normal(0.25, 0.12, n) + y * rng.normal(0.45, 0.2, n), 0, 1).round(3)
    return s, y


def test_operating_points_count_what_each_threshold_flags() -> None:
    s, y = _scores()
    points = analysis.operating_points(s, y)
    assert [p.threshold for p in points] == sorted(set(s.tolist()), reverse=True)
    for p in points[::50]:
        flag = s >= p.threshold
        assert p.flagged == flag.sum() and p.true_positives == (flag & y).sum()
        assert p.precision == pytest.approx((flag & y).sum() / flag.sum())
        assert p.recall == pytest.approx((flag & y).sum() / y.sum())
        assert p.missed == (~flag & y).sum()


@pytest.mark.parametrize(("target", "rate"), [(0.8, 0.05), (0.6, 0.02), (0.9, 0.1)])
def test_choose_thresholds_meets_the_target_precision_and_review_capacity(target: float, rate: float) -> None:
    s, y = _scores()
    choice = analysis.choose_thresholds(s, y, target_precision=target, review_rate=rate)
    th = choice.thresholds
    blocked = s >= th.high
    precision = (blocked & y).sum() / blocked.sum()
    assert choice.precision_met
    assert choice.high_point.precision == pytest.approx(precision) and precision >= target
    # HIGH is the lowest threshold that meets the target: every lower score misses it.
    for lower in np.unique(s[s < th.high])[-20:]:
        flag = s >= lower
        assert (flag & y).sum() / flag.sum() < target
    review = ((s >= th.medium) & ~blocked).sum()
    assert review / s.size == pytest.approx(choice.review_share) and choice.review_share <= rate
    below = np.unique(s[s < th.medium])
    if below.size:  # one step lower would overflow the review queue
        assert ((s >= below[-1]) & ~blocked).sum() > int(rate * s.size)
    costs = analysis.tier_costs(s, y, th)
    assert costs.blocked + costs.reviewed + (s < th.medium).sum() == s.size
    assert costs.block_precision == pytest.approx(precision)
    assert costs.missed_fraud == (y & (s < th.medium)).sum()


def test_choose_thresholds_says_when_the_precision_target_cannot_be_met() -> None:
    rng = np.random.default_rng(0)
    s, y = rng.random(500), rng.random(500) < 0.05  # scores that know nothing
    choice = analysis.choose_thresholds(s, y, target_precision=0.99, review_rate=0.05)
    assert not choice.precision_met
    with pytest.raises(ValidationError):
        analysis.choose_thresholds(s, y, target_precision=0.8, review_rate=1.5)


def test_metric_interval_brackets_the_point_and_is_reproducible() -> None:
    s, y = _scores(400)
    a = analysis.metric_interval(s, y, resamples=200, seed=5)
    assert a.low <= a.point <= a.high and a.n == 400 and a.n_fraud == y.sum()
    assert a == analysis.metric_interval(s, y, resamples=200, seed=5)
    perfect = analysis.metric_interval(y.astype(float), y, resamples=50)
    assert perfect.point == perfect.low == perfect.high == 1.0
    big_s, big_y = _scores(4000, seed=9)
    small = analysis.metric_interval(big_s[:300], big_y[:300], resamples=200, seed=5)
    big = analysis.metric_interval(big_s, big_y, resamples=200, seed=5)
    assert small.high - small.low > big.high - big.low  # fewer items, wider interval


# -- rings ----------------------------------------------------------------------------------------


def _planted_ring(world: World) -> tuple[Ring, set[str]]:
    """A detected ring that holds every member of one planted ring, and those members."""
    planted = world.truth_users[world.truth_users["ring_id"] != ""].groupby("ring_id")["user_id"].apply(set)
    for ring in world.rings:
        for members in planted:
            if members <= set(ring.members):
                return ring, members
    pytest.fail("no detected ring holds a whole planted ring")


def test_rings_frame_names_the_planted_ring(world: World) -> None:
    ring, members = _planted_ring(world)
    frame = analysis.rings_frame(world.rings, world.truth_users).set_index("ring_id")
    planted_id = world.truth_users.set_index("user_id").loc[sorted(members)[0], "ring_id"]
    assert frame.loc[ring.ring_id, "planted ring"] == planted_id
    assert frame.loc[ring.ring_id, "truly fraud"] == 1.0
    assert list(analysis.rings_frame(world.rings).columns)[:4] == ["ring_id", "tier", "score", "size"]


def test_ring_subgraph_holds_members_shared_identifiers_and_outsiders(world: World) -> None:
    ring, _ = _planted_ring(world)
    g = analysis.ring_subgraph(world.snapshot, ring, world.scores, outsiders=5)
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
    ring, planted = _planted_ring(world)
    reasons = {m: (f"reason for {m}", "second reason") for m in ring.members}
    export = analysis.export_ring(world.snapshot, ring, tmp_path, world.scores, reasons)
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


def test_browser_snippet_passes_values_as_parameters() -> None:
    q = load_queries()["expand_ring"]
    text = analysis.browser_snippet(q, {"ring_id": "ring-o'brien"})
    assert ":param ring_id => 'ring-o\\'brien'" in text
    assert text.endswith(q.cypher + ";") and "o'brien" not in q.cypher
    with pytest.raises(ValidationError):
        analysis.browser_snippet(q, {})
    # Line separators and control characters would split the :param line: escaped as \uXXXX.
    tricky = "a\u2028b\u2029c\x85d\ne\rf\tg\\h"
    lines = analysis.browser_snippet(q, {"ring_id": tricky}).splitlines()
    param = next(line for line in lines if line.startswith(":param"))
    assert param == ":param ring_id => 'a\\u2028b\\u2029c\\u0085d\\u000ae\\u000df\\u0009g\\\\h'"
    assert len(lines) == len(analysis.browser_snippet(q, {"ring_id": "x"}).splitlines())


def test_figures_have_titles_and_labelled_axes(world: World, tmp_path: Path) -> None:
    ring, _ = _planted_ring(world)
    s, y = _scores()
    choice = analysis.choose_thresholds(s, y, target_precision=0.8, review_rate=0.05)
    figures = {
        "degrees": analysis.plot_degree_distributions(analysis.node_degrees(world.snapshot)),
        "activity": analysis.plot_activity(analysis.activity_by_day(world.snapshot)),
        "tradeoff": analysis.plot_tradeoff(analysis.operating_points(s, y), choice),
        "timeline": analysis.plot_ring_timeline(analysis.ring_timeline(world.snapshot, ring), ring),
    }
    for name, fig in figures.items():
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), name
        path = analysis.save_figure(fig, tmp_path, f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ring_fig = analysis.draw_ring(analysis.ring_subgraph(world.snapshot, ring, world.scores), ring)
    assert ring.ring_id in ring_fig.axes[0].get_title()
    assert analysis.save_figure(ring_fig, tmp_path, "ring.png").stat().st_size > 10_000


def test_thresholds_chosen_are_thresholds_the_artefact_accepts() -> None:
    s, y = _scores()
    th = analysis.choose_thresholds(s, y, target_precision=0.8, review_rate=0.05).thresholds
    assert isinstance(th, Thresholds) and 0.0 <= th.medium <= th.high <= 1.0


def test_ring_member_risk_reports_each_member_as_the_api_index_does(world: World) -> None:
    ring, _ = _planted_ring(world)
    views = analysis.ring_member_risk(world.snapshot, ring, world.scores)
    assert [v.user_id for v in views] == list(ring.members)
    assert all(v.ring_id is not None and any(r.startswith("member of ring ") for r in v.reasons) for v in views)
