"""``Neo4jImportWriter`` without a server: the importer's files hold exactly the graph of the
events the loader accepted (nodes, one row per event, links aggregated over the whole load), text
survives CSV quoting, and the command line is one ``neo4j-admin`` accepts. The import itself runs
on the real server in ``tests/ringwatch/test_neo4j_import.py``."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from graph import neo4j_cypher as cy
from graph import neo4j_import
from graph.neo4j_import import NODE_FILES, REL_FILES, VERDICTS_FILE, Neo4jImportWriter, admin_arguments, file_names
from graph.types import Event, EventKind, Label, LabelEntity, NodeType, Verdict
from ingestion.loader import load_events
from tests.graph.test_neo4j_store import HOSTILE, random_events
from tests.ingestion.fakes import FakeGraphStore


def events_csv(path: Path, events: list[Event]) -> Path:
    """Events as a canonical CSV (ISO timestamps, each distinct ``ip`` made a valid IPv4 address),
    with a few bad rows for the quarantine."""
    ips: dict[str, str] = {}
    frame = pd.DataFrame(
        {
            "txn_id": [e.txn_id for e in events],
            "ts": [pd.Timestamp(e.ts, unit="s", tz="UTC").isoformat() for e in events],
            "user_id": [e.user_id for e in events],
            "device_id": [e.device_id for e in events],
            "ip": [None if e.ip is None else ips.setdefault(e.ip, f"10.{len(ips) >> 8 & 255}.{len(ips) & 255}.7")
                   for e in events],
            "merchant_id": [e.merchant_id for e in events],
            "amount": [e.amount for e in events],
            "currency": [e.currency for e in events],
            "event": [e.event.value for e in events],
            "status": [e.status for e in events],
        }
    )
    bad = pd.DataFrame(
        {"txn_id": ["bad-1", "bad-2", ""], "ts": ["yesterday", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"],
         "user_id": ["u1", "", "u2"], "event": ["payment", "login", "login"]}  # fmt: skip
    )
    pd.concat([frame, bad], ignore_index=True).to_csv(path, index=False)
    return path


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_the_files_hold_the_graph_of_the_events_the_loader_accepted(tmp_path: Path) -> None:
    source = events_csv(tmp_path / "events.csv", random_events(1500, seed=4, ids=HOSTILE))
    fake = FakeGraphStore()
    reference = load_events(source, fake, quarantine_dir=tmp_path / "q1", batch_size=200)
    writer = Neo4jImportWriter(tmp_path / "files")
    summary = load_events(source, writer, quarantine_dir=tmp_path / "q2", batch_size=200)
    files = writer.close()
    assert writer.close() is files  # once
    assert (summary.loaded, summary.duplicates, summary.quarantined) == (
        reference.loaded, reference.duplicates, reference.quarantined,
    )  # fmt: skip
    events = list(fake.events.values())
    assert files.events == len(events) == summary.loaded

    keys = {
        NodeType.USER: {e.user_id for e in events},
        NodeType.DEVICE: {e.device_id for e in events if e.device_id},
        NodeType.IP: {e.ip for e in events if e.ip},
        NodeType.MERCHANT: {e.merchant_id for e in events if e.merchant_id},
    }
    for t, (name, label) in NODE_FILES.items():
        header, rows = read(tmp_path / "files" / name)
        assert header == [f"{cy.NODE_LABELS[t][1]}:ID({label})"]
        assert [r[0] for r in rows] == sorted(keys[t])  # hostile text survives the quoting
        assert files.nodes[label] == len(rows)

    _, transacted = read(tmp_path / "files" / REL_FILES["TRANSACTED"][0])
    _, acted = read(tmp_path / "files" / REL_FILES["ACTED"][0])
    by_id = {r[2]: r for r in transacted + acted}
    assert len(by_id) == len(events) and len(acted) == sum(e.merchant_id is None for e in events)
    for e in events:
        row = by_id[e.txn_id]
        assert row[:2] == [e.user_id, e.merchant_id or e.user_id]
        assert float(row[3]) == e.ts
        assert row[4:6] == [e.device_id or "", e.ip or ""]  # absent: "", dropped by --ignore-empty-strings
        assert (float(row[6]) if row[6] else None) == e.amount
        assert row[7:] == [e.currency or "", e.event.value, e.status or ""]

    expected: dict[str, dict[tuple[str, str], list[float]]] = {"USED_DEVICE": {}, "USED_IP": {}, "SEEN_AT": {}}
    for e in events:
        for rel, pair in (("USED_DEVICE", (e.user_id, e.device_id)), ("USED_IP", (e.user_id, e.ip)),
                          ("SEEN_AT", (e.device_id, e.ip))):  # fmt: skip
            if None in pair:
                continue
            agg = expected[rel].setdefault(pair, [e.ts, e.ts, 0])  # type: ignore[arg-type]
            agg[0], agg[1], agg[2] = min(agg[0], e.ts), max(agg[1], e.ts), agg[2] + 1
    for rel, links in expected.items():
        header, rows = read(tmp_path / "files" / REL_FILES[rel][0])
        assert header[2:] == ["first_seen:double", "last_seen:double", "count:long"]
        got = {(r[0], r[1]): [float(r[2]), float(r[3]), int(r[4])] for r in rows}
        assert got == links and len(rows) == len(got) == files.relationships[rel]


def test_merging_partial_keys_and_links_on_the_way_changes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer folds its partial keys and link aggregates together whenever enough rows came in;
    # folding after every batch must give the same rows as folding once at the end.
    source = events_csv(tmp_path / "events.csv", random_events(1500, seed=5, ids=HOSTILE))
    written = {}
    for every in (1, 10**9):
        monkeypatch.setattr(neo4j_import, "_MERGE_EVERY", every)
        writer = Neo4jImportWriter(tmp_path / f"files-{every}")
        load_events(source, writer, quarantine_dir=tmp_path / f"q-{every}", batch_size=100)
        files = writer.close()
        written[every] = {name: sorted(read(files.directory / name)[1]) for name in file_names()}
    assert written[1] == written[10**9]
    assert len(written[1]["used_ip.csv"]) > 0 and any(int(r[4]) > 1 for r in written[1]["used_device.csv"])


def test_verdicts_are_kept_once_each_with_the_stores_identity(tmp_path: Path) -> None:
    writer = Neo4jImportWriter(tmp_path)
    labels = [Label(LabelEntity.USER, "u1", Verdict.FRAUD, 5.0, "chargeback"),
              Label(LabelEntity.TRANSACTION, "t'1", Verdict.LEGIT, 6.0, "investigator")]  # fmt: skip
    assert writer.upsert_labels(labels) == 2
    assert writer.upsert_labels(labels[:1]) == 0
    files = writer.close()
    header, rows = read(tmp_path / VERDICTS_FILE)
    assert header == ["vid:ID(Verdict)", "entity", "entity_id", "label", "ts:double", "source"]
    assert sorted(r[2] for r in rows) == ["t'1", "u1"] and files.verdicts == 2


def test_admin_arguments_name_the_database_first_and_every_file(tmp_path: Path) -> None:
    writer = Neo4jImportWriter(tmp_path)
    writer.upsert_events([Event("t1", 1.0, "u1", event=EventKind.LOGIN, status="line\nbreak")])
    files = writer.close()
    args = admin_arguments(files, "graph", max_off_heap="1g")
    # --nodes / --relationships take any number of values: a database name after them is a file.
    assert args[:4] == ["database", "import", "full", "graph"]
    assert "--multiline-fields=true" in args and "--ignore-empty-strings=true" in args
    assert "--max-off-heap-memory=1g" in args
    named = {a.split("=", 2)[2] for a in args if a.startswith(("--nodes=", "--relationships="))}
    assert named == {str((tmp_path / n).resolve()) for n in file_names()}
    assert all((tmp_path / n).is_file() for n in file_names())
