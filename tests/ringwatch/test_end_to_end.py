"""The main job end to end at small size, on the embedded store, asserting real outcomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gnn.training.calibrate import REVIEW_CAPACITY
from graph.types import NodeType, Tier
from ringwatch import pipeline
from ringwatch.cli import main as cli_main
from ringwatch.settings import Settings

pytestmark = pytest.mark.slow

USERS = 5000  # the demo default: ~20 held-out fraud accounts, enough for stable metrics
SEED = 7


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> pipeline.DemoOutcome:
    settings = Settings.load(tmp_path_factory.mktemp("home"))
    outcome = pipeline.run_demo(settings, users=USERS, seed=SEED, log=print)
    return outcome


@pytest.fixture(scope="module")
def settings(demo: pipeline.DemoOutcome) -> Settings:
    return Settings.load(demo.report_path.parents[1])


def test_planted_account_farms_are_recovered_with_high_precision(demo: pipeline.DemoOutcome) -> None:
    truth = demo.truth
    farms = next(k for k in truth.by_kind if k.kind == "account_farm")
    assert farms.planted >= 2
    assert farms.recovered / farms.planted >= 0.6, truth.render()
    assert truth.ring_member_precision >= 0.8, truth.render()


def test_fraud_accounts_score_above_legit_ones(demo: pipeline.DemoOutcome) -> None:
    m = demo.train.artefact.metrics
    assert m.accounts_test is not None
    print(f"held-out accounts AUPRC {m.accounts_test.auprc:.3f} AUROC {m.accounts_test.auroc:.3f}")
    base_rate = m.accounts_test.n_fraud / m.accounts_test.n
    assert m.accounts_test.auprc >= max(0.3, 5 * base_rate)
    assert m.accounts_test.auroc >= 0.8
    # Against the full planted truth too (most fraud was never labelled).
    assert demo.truth.accounts_auprc >= 0.4, demo.truth.render()
    assert demo.truth.transactions_auroc >= 0.75, demo.truth.render()


def test_account_tiers_respect_the_review_capacity(demo: pipeline.DemoOutcome) -> None:
    """The review queue training prints is the one scoring gives, and within the capacity."""
    tiers = demo.score.result.account_tiers
    queue = demo.train.artefact.metrics.account_queue
    assert queue is not None
    assert queue.high == tiers.count(Tier.HIGH) and queue.medium == tiers.count(Tier.MEDIUM)
    assert 0 < queue.high + queue.medium <= REVIEW_CAPACITY * len(tiers)


def test_legitimate_shared_ips_are_not_put_in_rings_wholesale(demo: pipeline.DemoOutcome) -> None:
    ids = pd.read_csv(demo.dataset.truth_identifiers, dtype=str)
    giants = set(ids.loc[ids["role"].isin(["office_ip", "campus_ip", "carrier_nat_ip"]), "identifier"])
    assert giants, "generator must plant legitimate shared IPs"
    snap = demo.score.snapshot
    ips = snap.nodes[NodeType.IP]
    in_ring = {m for r in demo.score.rings for m in r.members}
    users = snap.nodes[NodeType.USER]
    for ring in demo.score.rings:
        assert not giants & set(ring.shared_ips), f"{ring.ring_id} is tied by a legitimate shared IP"
    truth_users = pd.read_csv(demo.dataset.truth_users, dtype={"user_id": str})
    legit = set(truth_users.loc[truth_users["is_fraud"] == 0, "user_id"])
    link = snap.user_ip
    on_giants: set[str] = set()
    for ip in giants:
        pos = int(np.searchsorted(ips, ip))
        if pos < len(ips) and ips[pos] == ip:
            on_giants |= {str(users[u]) for u in link.src[link.dst == pos]}
    legit_on_giants = on_giants & legit
    assert len(legit_on_giants) > 500, "the legitimate giant IPs must carry hundreds of users"
    wrongly = legit_on_giants & in_ring
    share = len(wrongly) / len(legit_on_giants)
    assert share < 0.02, f"{share:.1%} of the legitimate users on office/campus/carrier IPs were put in rings"


def test_reingesting_the_same_file_changes_nothing(demo: pipeline.DemoOutcome, settings: Settings) -> None:
    before = pipeline.store_for(settings)
    with before as store:
        snap_before = store.snapshot()
    again = pipeline.step_ingest(settings, [demo.dataset.events])
    assert again.loaded == 0
    assert again.duplicates == demo.ingest.loaded
    with pipeline.store_for(settings) as store:
        assert store.snapshot().equals(snap_before)


def test_bad_rows_are_quarantined_and_counted(demo: pipeline.DemoOutcome, tmp_path: Path) -> None:
    fresh = Settings.load(tmp_path / "home")
    bad = tmp_path / "mixed.csv"
    head = demo.dataset.events.read_text().splitlines()[:201]  # header + 200 good rows
    bad.write_text("\n".join(head) + "\n"
        "x-neg,2026-01-05T10:00:00Z,u-new,d-new,10.0.0.1,m0001,-5.00,USD,payment,approved\n"
        "x-ip,2026-01-05T10:00:00Z,u-new,d-new,999.1.1.1,m0001,5.00,USD,payment,approved\n"
        "x-ts,not-a-time,u-new,d-new,10.0.0.1,m0001,5.00,USD,payment,approved\n"
        "x-ok,2026-01-05T10:00:00Z,u-new,d-new,10.0.0.1,m0001,5.00,USD,payment,approved\n")
    summary = pipeline.step_ingest(fresh, [bad])
    assert summary.read == 204
    assert summary.quarantined == 3
    assert summary.loaded == 201
    assert summary.read == summary.loaded + summary.duplicates + summary.quarantined
    assert summary.quarantine_file is not None and summary.quarantine_file.exists()
    quarantined = pd.read_csv(summary.quarantine_file, dtype=str)
    assert sorted(quarantined["line"].astype(int)) == [202, 203, 204]


def test_cli_score_exports_csv_and_lists_rings(
    demo: pipeline.DemoOutcome, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.csv"
    assert cli_main(["--home", str(settings.home), "--no-progress", "score", "--out", str(out)]) == 0
    accounts = pd.read_csv(out, dtype={"user_id": str})
    assert set(accounts.columns) >= {"user_id", "risk_score", "risk_tier"}
    assert len(accounts) == len(demo.score.snapshot.nodes[NodeType.USER])
    assert accounts["risk_score"].between(0, 1).all()
    txns = pd.read_csv(out.with_name("scores.transactions.csv"))
    assert len(txns) == len(demo.score.snapshot.transactions)
    top = demo.score.rings[0]
    assert cli_main(["--home", str(settings.home), "rings", "--min-tier", top.tier.value]) == 0
    printed = capsys.readouterr().out
    assert top.ring_id in printed
    # Rings below the asked tier are not hidden behind "run score first".
    above = [t for t in ("medium", "high") if Tier(t).rank > top.tier.rank]
    if above:
        assert cli_main(["--home", str(settings.home), "rings", "--min-tier", above[-1]]) == 0
        assert f"({len(demo.score.rings)} rings below it" in capsys.readouterr().out


def test_same_seed_gives_the_same_rings_and_tiers(demo: pipeline.DemoOutcome, settings: Settings) -> None:
    again = pipeline.step_score(settings)
    assert [r.ring_id for r in again.rings] == [r.ring_id for r in demo.score.rings]
    assert [t.value for t in again.result.account_tiers] == [t.value for t in demo.score.result.account_tiers]
