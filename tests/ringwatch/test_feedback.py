"""Investigator feedback through ``ringwatch label``: verdicts are stored in either store, the
latest verdict wins by timestamp whatever the load order, and the next training run sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gnn.training.split import targets
from graph.types import NodeType
from ringwatch import pipeline
from ringwatch.cli import main as cli_main
from ringwatch.settings import Settings
from tests.conftest import Neo4jServer

EVENTS = """txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status
t1,2026-01-01T10:00:00Z,alice,d1,10.0.0.1,m1,20.00,EUR,payment,approved
t2,2026-01-01T11:00:00Z,bob,d1,10.0.0.1,m1,35.50,EUR,payment,approved
t3,2026-01-02T09:00:00Z,carol,d2,10.0.0.2,m2,99.99,EUR,payment,approved
"""
CHARGEBACK = """entity,entity_id,label,ts,source
user,alice,fraud,2026-01-10T00:00:00Z,chargeback
user,bob,fraud,2026-01-10T00:00:00Z,chargeback
transaction,t2,fraud,2026-01-10T00:00:00Z,chargeback
"""
# The investigator clears alice and transaction t2 later; bob's old chargeback stands.
CLEARED = """entity,entity_id,label,ts,source
user,alice,legit,2026-01-20T00:00:00Z,investigator
transaction,t2,legit,2026-01-20T00:00:00Z,investigator
"""


@pytest.fixture(params=["sqlite", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def settings(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    home = Settings.load(tmp_path / "home")
    if request.param == "sqlite":
        yield home
        return
    server: Neo4jServer = request.getfixturevalue("neo4j_server")
    # The CLI reads the store from the environment, as a user's shell would set it.
    monkeypatch.setenv("NEO4J_URI", server.uri)
    monkeypatch.setenv("NEO4J_USER", server.user)
    monkeypatch.setenv("NEO4J_PASSWORD", server.password)
    settings = Settings(home=home.home, neo4j_uri=server.uri, neo4j_user=server.user, neo4j_password=server.password)
    with pipeline.store_for(settings) as store:
        store.delete_all()  # type: ignore[attr-defined]
    yield settings


def settings_backend(settings: Settings) -> str:
    return "neo4j" if settings.neo4j_uri else "sqlite"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("order", ["chargeback first", "investigator first"])
def test_an_investigators_legit_overrides_an_older_chargeback(settings: Settings, tmp_path: Path, order: str) -> None:
    events = _write(tmp_path, "events.csv", EVENTS)
    files = [_write(tmp_path, "chargeback.csv", CHARGEBACK), _write(tmp_path, "cleared.csv", CLEARED)]
    if order == "investigator first":
        files.reverse()
    argv = ["--home", str(settings.home), "--no-progress"]
    assert cli_main([*argv, "ingest", str(events)]) == 0
    for f in files:
        assert cli_main([*argv, "label", str(f)]) == 0

    with pipeline.store_for(settings) as store:
        assert store.backend == settings_backend(settings)
        snap = store.snapshot()
    assert not (settings.home / "store.sqlite").exists() or settings.neo4j_uri is None
    y = targets(snap)
    users = list(snap.nodes[NodeType.USER])
    assert not y.user[users.index("alice")], "the investigator's later 'legit' must clear alice"
    assert y.user[users.index("bob")], "bob's chargeback was never cleared"
    assert not y.user[users.index("carol")]
    txn = list(snap.transactions.txn_id)
    assert y.txn[txn.index("t2")] == False  # noqa: E712 - cleared transaction verdict
    assert y.txn[txn.index("t1")] == False  # noqa: E712 - alice is no longer a fraudster

    # Loading the same verdicts again changes nothing.
    for f in files:
        assert cli_main([*argv, "label", str(f)]) == 0
    with pipeline.store_for(settings) as store:
        assert store.snapshot().equals(snap)
