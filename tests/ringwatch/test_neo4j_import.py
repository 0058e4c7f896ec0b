"""``ringwatch neo4j import`` on the session's real Neo4j: the offline importer and ``ingest`` over
Bolt give the same graph from the same files, streaming ingest continues on top of an import with
no duplicates, and a database that holds data is refused.

The import stops and restarts the session's server (``scripts/neo4j.sh``, as the command does for
the project's own server), so these tests need a managed one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from graph import neo4j_cypher as cy
from graph.errors import ConfigError, StoreError
from graph.neo4j_store import Neo4jGraphStore
from graph.types import EdgeType, Event, EventKind
from ingestion.loader import LoadSummary, load_events
from ingestion.mapping import ColumnMapping
from ringwatch import neo4j_import
from ringwatch.cli import main as cli_main
from ringwatch.settings import Settings
from tests.conftest import Neo4jServer, skip_outside_ci
from tests.graph.test_neo4j_import import events_csv
from tests.graph.test_neo4j_store import HOSTILE, random_events

pytestmark = pytest.mark.neo4j

REPO = Path(__file__).resolve().parents[2]
IEEE = REPO.parent / "shared" / "datasets" / "ieee_cis_sample" / "train_transaction_5000.csv"
IEEE_MAPPING = REPO / "mappings" / "ieee_cis.yaml"
SCHEMA_NAMES = {stmt.split()[2] for stmt in cy.SCHEMA}  # "CREATE CONSTRAINT|INDEX <name> ..."


@pytest.fixture
def local(neo4j_server: Neo4jServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Neo4jServer]:
    """The session's server as "the project's local server" of ``ringwatch neo4j`` (its instance,
    ports and password), emptied."""
    if not neo4j_server.managed:
        skip_outside_ci("external server (RINGWATCH_TEST_NEO4J_URI): the import must stop and start it")
    for key, value in neo4j_server.env.items():
        monkeypatch.setenv(key, value)
    with _store(neo4j_server) as store:
        store.delete_all()
    yield neo4j_server
    assert neo4j_server.is_running(), "the import left the server stopped"


def _store(server: Neo4jServer) -> Neo4jGraphStore:
    return Neo4jGraphStore(server.uri, server.user, server.password, batch_size=500)


def _settings(server: Neo4jServer, home: Path) -> Settings:
    return Settings(home=home, neo4j_uri=server.uri, neo4j_user=server.user, neo4j_password=server.password)


def _same_load(a: LoadSummary, b: LoadSummary) -> None:
    assert (a.read, a.loaded, a.duplicates, a.quarantined, a.labels_loaded) == (
        b.read, b.loaded, b.duplicates, b.quarantined, b.labels_loaded,
    )  # fmt: skip
    assert a.quarantined_by_reason == b.quarantined_by_reason
    assert [p.read_text() for p in a.quarantine_files] == [p.read_text() for p in b.quarantine_files]


def test_import_and_ingest_give_the_same_graph_and_ingest_continues_on_top(local: Neo4jServer, tmp_path: Path) -> None:
    events = random_events(3000, seed=11, ids=HOSTILE)
    first, later = events[:2400], events[2400:]
    history = events_csv(tmp_path / "history.csv", first)
    stream = events_csv(tmp_path / "stream.csv", later)
    replay = pd.read_csv(history, dtype=str, keep_default_na=False).head(100)  # a replayed overlap
    pd.concat([pd.read_csv(stream, dtype=str, keep_default_na=False), replay]).to_csv(stream, index=False)

    outcome = neo4j_import.import_local(_settings(local, tmp_path / "imp"), [history], tmp_path / "files")
    assert outcome.admin is not None and outcome.admin.peak_rss_bytes > 0 and outcome.admin.cpu_seconds > 0
    assert not (tmp_path / "files").exists()  # removed after a good import unless --keep-files
    with _store(local) as store:
        imported = store.snapshot()
        names = {name for name, _labels, _props in store.constraints()}
        indexes = {r[0] for r in store._driver.execute_query("SHOW INDEXES YIELD name").records}  # type: ignore[union-attr]
        assert SCHEMA_NAMES <= names | indexes  # constraints and indexes exist after the import
        assert store.schema_version() is not None
        # Streaming ingest over Bolt on top of the import.
        streamed = load_events(stream, store, quarantine_dir=tmp_path / "q-stream-imp")
        after_import = store.snapshot()
        store.delete_all()
        by_bolt = load_events(history, store, quarantine_dir=tmp_path / "q-bolt")
        bolt = store.snapshot()
        streamed_bolt = load_events(stream, store, quarantine_dir=tmp_path / "q-stream-bolt")
        after_bolt = store.snapshot()
        stats = store.stats()

    _same_load(outcome.load, by_bolt)
    assert outcome.load.loaded > 2000 and outcome.load.quarantined >= 3
    assert imported.equals(bolt)  # nodes, events, USED_DEVICE / USED_IP / SEEN_AT counts and first/last seen
    assert imported.user_device.count.sum() == bolt.user_device.count.sum() > 0
    _same_load(streamed, streamed_bolt)
    assert streamed.duplicates >= 95 and streamed.loaded > 500  # the replayed rows: stored already
    assert after_import.equals(after_bolt)  # no duplicates, links merged into the imported ones
    assert len(after_bolt.transactions.txn_id) == stats.edges[EdgeType.TRANSACTED.value] + int(
        (after_bolt.transactions.merchant < 0).sum()
    )


def test_import_with_a_mapping_and_labels_matches_ingest(local: Neo4jServer, tmp_path: Path) -> None:
    if not IEEE.is_file():
        skip_outside_ci(f"IEEE-CIS sample not found at {IEEE}")
    mapping = ColumnMapping.from_file(IEEE_MAPPING)
    outcome = neo4j_import.import_local(_settings(local, tmp_path / "imp"), [IEEE], tmp_path / "files", mapping=mapping)
    with _store(local) as store:
        imported = store.snapshot()
        imported_stats = store.stats()
        store.delete_all()
        by_bolt = load_events(IEEE, store, mapping=mapping, quarantine_dir=tmp_path / "q")
        bolt = store.snapshot()
        assert store.stats() == imported_stats
    _same_load(outcome.load, by_bolt)
    assert outcome.load.labels_loaded > 4000
    assert imported.equals(bolt)  # verdicts included (user and transaction labels)


def test_a_database_with_data_is_refused_and_left_alone(local: Neo4jServer, tmp_path: Path) -> None:
    with _store(local) as store:
        store.upsert_events([Event("t-kept", 1.0e9, "u-kept", event=EventKind.SIGNUP)])
    history = events_csv(tmp_path / "h.csv", random_events(50, seed=3))
    with pytest.raises(StoreError, match="not empty.*:User"):
        neo4j_import.import_local(_settings(local, tmp_path / "imp"), [history], tmp_path / "files")
    with _store(local) as store:
        assert store.stored_events(["t-kept"])  # untouched
    assert not (tmp_path / "files").exists()  # refused before any file was written


def test_another_servers_uri_is_refused_and_print_only_prints_the_command(
    local: Neo4jServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    history = events_csv(tmp_path / "h.csv", random_events(200, seed=5))
    remote = Settings(home=tmp_path / "r", neo4j_uri="neo4j+s://example.databases.neo4j.io")
    with pytest.raises(ConfigError, match="--print-only"):
        neo4j_import.import_local(remote, [history], tmp_path / "files")
    monkeypatch.setenv("NEO4J_URI", "neo4j+s://example.databases.neo4j.io")
    out_dir = tmp_path / "files"
    assert cli_main(["--home", str(tmp_path / "home"), "--no-progress", "neo4j", "import", str(history),
                     "--print-only", "--out", str(out_dir)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    line = next(x.strip() for x in out.splitlines() if x.strip().startswith("neo4j-admin "))
    assert line.startswith("neo4j-admin database import full neo4j --overwrite-destination=true")
    for name in ("users.csv", "transacted.csv", "used_device.csv", "verdicts.csv"):
        assert f"{out_dir.resolve() / name}" in line and (out_dir / name).is_file()
    with _store(local) as store:
        assert not store.has_events()  # nothing was imported anywhere
