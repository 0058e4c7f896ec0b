"""Loading: quarantine with line numbers and reasons, formats agree, re-loads are no-ops, counts
add up, labels from a mapping and from a verdicts file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph.errors import ValidationError
from graph.sqlite_store import SQLiteGraphStore
from graph.types import Event, EventKind, LabelEntity, Verdict
from ingestion.loader import LoadSummary, load_events, load_labels
from ingestion.mapping import ColumnMapping
from ingestion.quarantine import read_quarantine
from ingestion.validate import NOT_SCALAR
from tests.ingestion.fakes import FakeGraphStore

HEADER = "txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status"
T = "2024-01-01T10:00:00Z"
LONG = "u" * 129

# (line, reason) of every planted bad row; None marks good rows and identical repeats.
PLANTED: list[tuple[str, str | None]] = [
    (f"t1,{T},u1,d1,10.0.0.1,m1,12.50,USD,payment,approved", None),  # 2
    ("t2,2024-01-01T10:05:00,u2,d1,2001:DB8::1,m1,5,eur,,", None),  # 3
    (f"t3,{T},,d2,10.0.0.2,m2,1.00,USD,payment,approved", "missing_user_id"),  # 4
    ("t4,not-a-date,u4,d2,10.0.0.2,m2,1.00,USD,payment,approved", "bad_timestamp"),  # 5
    ("t5,1999-12-31T23:00:00Z,u5,d2,10.0.0.2,m2,1.00,USD,payment,approved", "bad_timestamp"),  # 6
    (f"t6,{T},u6,d3,999.1.1.1,m1,1.00,USD,payment,", "bad_ip"),  # 7
    (f"t7,{T},u7,,,m1,-3,USD,payment,", "negative_amount"),  # 8
    (f"t8,{T},u8,,,m1,abc,USD,payment,", "bad_amount"),  # 9
    (f"t9,{T},u9,,,,10,USD,payment,", "missing_merchant"),  # 10
    (f"t10,{T},u10,,,m1,10,USD,transfer,", "unknown_event"),  # 11
    (f"t11,{T},u11,,,m1,10,US,payment,", "bad_currency"),  # 12
    (f"t12,{T},{LONG},,,m1,10,USD,payment,", "id_too_long"),  # 13
    (f"t1,{T},u1,d1,10.0.0.1,m1,12.50,USD,payment,approved", None),  # 14 identical repeat
    ("t2,2024-01-01T10:05:00Z,u2,d1,2001:db8::1,m1,5.00,EUR,payment,", None),  # 15 same after cleaning
    (f"t1,{T},u1,d1,10.0.0.1,m1,99.00,USD,payment,approved", "duplicate_txn_id_conflict"),  # 16
    (f",{T},u13,d4,10.0.0.3,m3,7,USD,payment,", "missing_txn_id"),  # 17
    ("", "empty_row"),  # 18
    ("t13,2024-01-02T00:00:00+02:00,u13,d4,10.0.0.3,,,,signup,", None),  # 19
    (f"t14,{T},u14,d4,10.0.0.3,m3,7,USD,payment,approved,extra", "bad_row_shape"),  # 20
    (f"t15,{T},u15,d5,10.0.0.5,m5,3,USD,refund,", None),  # 21
    (f't16,{T},u16,d5,10.0.0.5,m5,3,USD,payment,"multi\nline"', None),  # 22-23
    ("t17,2024-02-30T00:00:00Z,u17,d5,10.0.0.5,m5,3,USD,payment,", "bad_timestamp"),  # 24
    (f"t18,{T},u18,d5", "bad_row_shape"),  # 25
]


def _planted_csv(path: Path) -> dict[int, str]:
    """Write the planted file; return {line: reason} of the bad rows."""
    path.write_text(HEADER + "\n" + "\n".join(row for row, _ in PLANTED) + "\n", encoding="utf-8")
    expected: dict[int, str] = {}
    line = 2
    for row, reason in PLANTED:
        if reason:
            expected[line] = reason
        line += 1 + row.count("\n")
    return expected


def _events_frame(n: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-05-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400 * 7, n), unit="s")
    kinds = np.array(["payment", "refund", "signup", "login"])[rng.integers(0, 4, n)]
    pays = np.isin(kinds, ["payment", "refund"])
    return pd.DataFrame(
        {
            "txn_id": [f"t{i:04d}" for i in range(n)],
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": [f"u{i}" for i in rng.integers(0, 10, n)],
            "device_id": [f"d{i}" if i < 6 else None for i in rng.integers(0, 8, n)],
            "ip": [f"192.168.0.{i}" for i in rng.integers(1, 20, n)],
            "merchant_id": np.where(pays, [f"m{i}" for i in rng.integers(0, 5, n)], None),
            "amount": np.where(pays, np.round(rng.gamma(2.0, 20.0, n), 2), np.nan),
            "currency": np.where(pays, "EUR", None),
            "event": kinds,
            "status": "approved",
        }
    )


def _load(path: Path | list[Path], store: FakeGraphStore, tmp_path: Path, **kw: object) -> LoadSummary:
    summary = load_events(path, store, quarantine_dir=tmp_path / "quarantine", **kw)  # type: ignore[arg-type]
    assert summary.read == summary.loaded + summary.duplicates + summary.quarantined
    assert sum(summary.quarantined_by_reason.values()) == summary.quarantined
    return summary


@pytest.mark.parametrize("batch_size", [50_000, 4, 1])
def test_planted_bad_rows_are_quarantined_with_line_and_reason(tmp_path: Path, batch_size: int) -> None:
    path = tmp_path / "events.csv"
    expected = _planted_csv(path)
    store = FakeGraphStore()
    summary = _load(path, store, tmp_path, batch_size=batch_size)

    assert summary.read == len(PLANTED)
    assert summary.loaded == 5 and summary.duplicates == 2
    assert summary.quarantined == len(expected) == 16
    assert set(store.events) == {"t1", "t2", "t13", "t15", "t16"}
    assert max(store.batches) <= batch_size

    assert summary.quarantine_file == tmp_path / "quarantine" / "events.csv.quarantine.csv"
    rows = read_quarantine(summary.quarantine_file)
    assert list(rows.columns[:3]) == ["line", "reason", "detail"]
    assert list(rows.columns[3:]) == HEADER.split(",")
    assert dict(zip(rows["line"].astype(int), rows["reason"])) == expected
    assert rows["line"].astype(int).is_monotonic_increasing
    by_line = rows.set_index(rows["line"].astype(int))
    assert by_line.loc[7, "ip"] == "999.1.1.1"  # the original row is kept as written
    assert "999.1.1.1" in by_line.loc[7, "detail"]
    assert "raw: t14," in by_line.loc[20, "detail"]
    assert summary.quarantined_by_reason["bad_timestamp"] == 3


def test_good_rows_become_clean_events(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    _planted_csv(path)
    store = FakeGraphStore()
    _load(path, store, tmp_path)
    t2 = store.events["t2"]
    assert t2 == Event("t2", pd.Timestamp("2024-01-01T10:05:00Z").timestamp(), "u2", "d1", "2001:db8::1", "m1",
                       5.0, "EUR", EventKind.PAYMENT, None)
    assert store.events["t1"].amount == 12.5  # the first row of t1 won over the conflicting one
    signup = store.events["t13"]
    assert signup.event is EventKind.SIGNUP and signup.merchant_id is None and signup.amount is None
    assert signup.ts == pd.Timestamp("2024-01-01T22:00:00Z").timestamp()
    assert store.events["t16"].status == "multi\nline"


def test_reload_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    _planted_csv(path)
    store = FakeGraphStore()
    first = _load(path, store, tmp_path)
    before = dict(store.events)
    second = _load(path, store, tmp_path)
    assert second.loaded == 0
    assert second.duplicates == first.loaded + first.duplicates
    assert second.quarantined == first.quarantined
    assert store.events == before
    assert second.quarantine_file == first.quarantine_file  # overwritten, not a second file
    assert len(list((tmp_path / "quarantine").iterdir())) == 1


def test_clean_reload_removes_stale_quarantine_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    _planted_csv(path)
    store = FakeGraphStore()
    stale = _load(path, store, tmp_path).quarantine_file
    assert stale is not None and stale.exists()
    _events_frame(5).to_csv(path, index=False)
    summary = _load(path, store, tmp_path)
    assert summary.quarantined == 0 and summary.quarantine_file is None
    assert not stale.exists()


def test_jsonl_and_parquet_give_the_same_events_as_csv(tmp_path: Path) -> None:
    frame = _events_frame()
    csv_path, jsonl_path = tmp_path / "e.csv", tmp_path / "e.jsonl"
    frame.to_csv(csv_path, index=False)
    frame.to_json(jsonl_path, orient="records", lines=True)
    parquet_text = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet_text)
    typed = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))  # a real timestamp column
    parquet_typed = tmp_path / "typed.parquet"
    pq.write_table(pa.Table.from_pandas(typed, preserve_index=False), parquet_typed)

    stores = {}
    for path in (csv_path, jsonl_path, parquet_text, parquet_typed):
        stores[path.name] = FakeGraphStore()
        summary = _load(path, stores[path.name], tmp_path)
        assert (summary.read, summary.loaded, summary.quarantined) == (len(frame), len(frame), 0), path.name
    reference = stores["e.csv"].events
    assert len(reference) == len(frame)
    for name, store in stores.items():
        assert store.events == reference, name


def test_several_files_are_one_load(tmp_path: Path) -> None:
    frame = _events_frame(20)
    a, b = tmp_path / "a.csv", tmp_path / "b.jsonl"
    frame.iloc[:12].to_csv(a, index=False)
    changed = frame.iloc[8:].copy()
    changed.loc[changed.index[0], "user_id"] = "someone-else"  # t0008 conflicts with a.csv
    changed.to_json(b, orient="records", lines=True)
    store = FakeGraphStore()
    summary = _load([a, b], store, tmp_path)
    assert summary.source == "a.csv, b.jsonl"
    assert (summary.read, summary.loaded, summary.duplicates, summary.quarantined) == (24, 20, 3, 1)
    assert summary.quarantined_by_reason == {"duplicate_txn_id_conflict": 1}
    assert summary.quarantine_files == (tmp_path / "quarantine" / "b.jsonl.quarantine.csv",)
    assert store.events["t0008"].user_id == frame.loc[8, "user_id"]


def test_missing_required_column_fails_before_loading(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    _events_frame(5).to_csv(good, index=False)
    _events_frame(5).drop(columns=["user_id"]).to_csv(bad, index=False)
    store = FakeGraphStore()
    with pytest.raises(ValidationError, match="user_id"):
        load_events([good, bad], store, quarantine_dir=tmp_path / "q")
    assert store.events == {}  # nothing half-loaded
    with pytest.raises(ValidationError, match="batch_size"):
        load_events(good, store, quarantine_dir=tmp_path / "q", batch_size=0)


def test_mapping_with_join_compose_and_labels(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "order,secs,card,zip,shop,total,fraud\n"
        "1,0,4111,10115,s1,10,0\n"
        "2,60,4111,10115,s2,20,1\n"
        "3,120,4222,,s1,30,\n"
        "4,180,4333,20095,s1,40,maybe\n",
        encoding="utf-8",
    )
    (tmp_path / "devices.csv").write_text("order,fingerprint,other\n2,fp-a,x\n3,fp-a,y\n9,fp-z,z\n", encoding="utf-8")
    mapping = ColumnMapping.from_dict(
        {
            "fields": {
                "txn_id": {"column": "order", "prefix": "o:"},
                "ts": {"column": "secs", "unit": "s", "origin": "2024-01-01T00:00:00Z"},
                "user_id": {"columns": ["card", "zip"], "prefix": "card:", "allow_missing_parts": True},
                "device_id": "fingerprint",
                "merchant_id": "shop",
                "amount": "total",
            },
            "joins": [{"file": "devices.csv", "key": "order", "columns": ["fingerprint"]}],
            "labels": {"column": "fraud", "fraud_values": ["1"], "legit_values": ["0"],
                       "entities": ["transaction", "user"], "source": "chargeback"},
        }
    )
    store = FakeGraphStore()
    summary = _load(tmp_path / "orders.csv", store, tmp_path, mapping=mapping)
    assert (summary.loaded, summary.quarantined) == (3, 1)
    assert summary.quarantined_by_reason == {"bad_label": 1}
    o1, o2, o3 = store.events["o:1"], store.events["o:2"], store.events["o:3"]
    assert (o1.device_id, o2.device_id, o3.device_id) == (None, "fp-a", "fp-a")
    assert (o1.user_id, o3.user_id) == ("card:4111|10115", "card:4222|")
    assert o2.ts - o1.ts == 60 and o1.ts == pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    labels = {(lab.entity, lab.entity_id): lab for lab in store.labels.values()}
    assert {k: v.label for k, v in labels.items()} == {
        (LabelEntity.TRANSACTION, "o:1"): Verdict.LEGIT,
        (LabelEntity.TRANSACTION, "o:2"): Verdict.FRAUD,
        (LabelEntity.USER, "card:4111|10115"): Verdict.FRAUD,  # one fraud transaction is enough
    }
    assert labels[(LabelEntity.USER, "card:4111|10115")].ts == o2.ts
    assert summary.labels_loaded == 3
    assert "labels loaded" in summary.render()
    again = _load(tmp_path / "orders.csv", store, tmp_path, mapping=mapping)
    assert again.loaded == 0 and again.labels_loaded == 0


def test_join_file_with_repeated_keys_is_refused(tmp_path: Path) -> None:
    _events_frame(3).to_csv(tmp_path / "e.csv", index=False)
    (tmp_path / "side.csv").write_text("txn_id,extra\nt0000,a\nt0000,b\n", encoding="utf-8")
    mapping = ColumnMapping.from_dict({"joins": [{"file": "side.csv", "key": "txn_id"}]})
    with pytest.raises(ValidationError, match="t0000"):
        load_events(tmp_path / "e.csv", FakeGraphStore(), mapping=mapping, quarantine_dir=tmp_path / "q")


def test_summary_renders_counts_reasons_and_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    _planted_csv(path)
    summary = _load(path, FakeGraphStore(), tmp_path)
    text = summary.render()
    for needle in ("read 23", "loaded", "duplicates", "quarantined", "bad_timestamp", "events.csv.quarantine.csv"):
        assert needle in text
    assert summary.events_per_second > 0


def test_load_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "entity,entity_id,label,ts,source\n"
        "user,u1,fraud,2024-01-03T00:00:00Z,chargeback\n"   # 2
        "transaction,t1,legit,2024-01-03T00:00:00Z,\n"     # 3
        "account,u2,fraud,2024-01-03T00:00:00Z,x\n"        # 4
        "user,,fraud,2024-01-03T00:00:00Z,x\n"             # 5
        "user,u3,maybe,2024-01-03T00:00:00Z,x\n"           # 6
        "user,u4,fraud,,x\n"                               # 7
        "user,u5,FRAUD,2024-01-03,investigator\n",         # 8
        encoding="utf-8",
    )
    store = FakeGraphStore()
    summary = load_labels(path, store, quarantine_dir=tmp_path / "q")
    assert (summary.read, summary.loaded, summary.quarantined, summary.duplicates) == (7, 3, 4, 0)
    rows = read_quarantine(summary.quarantine_file)  # type: ignore[arg-type]
    assert dict(zip(rows["line"].astype(int), rows["reason"])) == {
        4: "bad_entity", 5: "missing_entity_id", 6: "bad_label", 7: "missing_ts"}
    assert {lab.source for lab in store.labels.values()} == {"chargeback", "unknown", "investigator"}
    again = load_labels(path, store, quarantine_dir=tmp_path / "q")
    assert (again.loaded, again.duplicates, again.quarantined) == (0, 3, 4)
    assert "quarantine file" in again.render()
    (tmp_path / "nolabel.csv").write_text("entity,entity_id,ts\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="label"):
        load_labels(tmp_path / "nolabel.csv", store, quarantine_dir=tmp_path / "q")


def test_throughput_print(tmp_path: Path) -> None:
    """Not a timed assertion: prints rows/s for a 20,000-row CSV into the in-memory fake."""
    n = 20_000
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "txn_id": [f"t{i:07d}" for i in range(n)],
            "ts": (pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"))
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": [f"u{i}" for i in rng.integers(0, 2000, n)],
            "device_id": [f"d{i}" for i in rng.integers(0, 1500, n)],
            "ip": [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 256, (n, 3))],
            "merchant_id": [f"m{i}" for i in rng.integers(0, 50, n)],
            "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
            "currency": "USD",
            "event": "payment",
            "status": "approved",
        }
    )
    path = tmp_path / "bulk.csv"
    frame.to_csv(path, index=False)
    store = FakeGraphStore()
    started = time.perf_counter()
    summary = _load(path, store, tmp_path, batch_size=5_000)
    elapsed = time.perf_counter() - started
    assert summary.loaded == n
    print(f"\ningestion into the in-memory fake: {n:,} rows in {elapsed:.3f} s = {n / elapsed:,.0f} rows/s")


def test_source_columns_named_like_quarantine_columns(tmp_path: Path) -> None:
    frame = _events_frame(4).assign(reason="r", line="l")
    frame.loc[1, "ip"] = "bad-ip"
    path = tmp_path / "e.csv"
    frame.to_csv(path, index=False)
    summary = _load(path, FakeGraphStore(), tmp_path)
    assert summary.quarantined == 1
    assert summary.quarantine_file is not None
    header, row = summary.quarantine_file.read_text(encoding="utf-8").splitlines()
    assert header.split(",")[:3] == ["line", "reason", "detail"]
    assert header.split(",")[3:] == list(frame.columns)
    assert row.startswith("3,bad_ip,") and row.endswith(",r,l")


@pytest.mark.parametrize("backend", ["fake", "sqlite"])
def test_a_json_object_or_array_as_an_id_quarantines_the_row(tmp_path: Path, backend: str) -> None:
    """A nested value is never stored as its Python text ("{'nested': 1}"): the row is quarantined
    naming the field and the value as JSON."""
    good = {"ts": T, "user_id": "u1", "device_id": "d1", "ip": "10.0.0.1", "merchant_id": "m1", "amount": 5}
    rows = [
        {**good, "txn_id": {"nested": 1}},  # 1
        {**good, "txn_id": "n2"},  # 2
        {**good, "txn_id": "n3", "user_id": ["a", "b"]},  # 3
        {**good, "txn_id": "n4", "device_id": {"x": [1, 2]}},  # 4
        {**good, "txn_id": "n5", "ip": []},  # 5
        {**good, "txn_id": "n6", "merchant_id": {"k": "v" * 200}},  # 6
        {**good, "txn_id": "n7", "meta": {"kept": True}},  # 7 a nested column no field reads
    ]
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    store = FakeGraphStore() if backend == "fake" else SQLiteGraphStore(tmp_path / "store.sqlite")
    try:
        summary = _load(src, store, tmp_path)
        assert (summary.read, summary.loaded, summary.quarantined) == (7, 2, 5)
        assert summary.quarantined_by_reason == {NOT_SCALAR: 5}
        assert sorted(store.stored_events([f"n{i}" for i in range(1, 8)])) == ["n2", "n7"]
        if isinstance(store, SQLiteGraphStore):
            assert len(store.snapshot().transactions) == 2
        else:
            assert sorted(store.events) == ["n2", "n7"]
    finally:
        store.close()
    q = read_quarantine(summary.quarantine_files[0])
    assert q["line"].tolist() == ["1", "3", "4", "5", "6"]
    assert q["detail"].tolist()[:4] == [
        'txn_id={"nested": 1}: a JSON object, not one value',
        'user_id=["a", "b"]: a JSON array, not one value',
        'device_id={"x": [1, 2]}: a JSON object, not one value',
        "ip=[]: a JSON array, not one value",
    ]
    assert q["detail"][4].startswith('merchant_id={"k": "vvv') and len(q["detail"][4]) < 140


def test_a_nested_value_in_every_row_and_in_a_label_file(tmp_path: Path) -> None:
    """pyarrow reads a key that is an object on every line as a struct column; label ids too."""
    src = tmp_path / "events.jsonl"
    src.write_text(
        "".join(json.dumps({"txn_id": {"n": i}, "ts": T, "user_id": "u", "event": "login"}) + "\n" for i in range(3)),
        encoding="utf-8",
    )
    summary = _load(src, FakeGraphStore(), tmp_path)
    assert (summary.loaded, summary.quarantined_by_reason) == (0, {NOT_SCALAR: 3})
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        json.dumps({"entity": "user", "entity_id": {"a": 1}, "label": "fraud", "ts": T}) + "\n"
        + json.dumps({"entity": "user", "entity_id": "u1", "label": "fraud", "ts": T}) + "\n",
        encoding="utf-8",
    )
    result = load_labels(labels, FakeGraphStore(), quarantine_dir=tmp_path / "q")
    assert (result.loaded, result.quarantined_by_reason) == (1, {NOT_SCALAR: 1})
    assert 'entity_id={"a": 1}: a JSON object' in read_quarantine(result.quarantine_file)["detail"][0]
