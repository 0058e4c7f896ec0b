"""Size bombs: one row, one JSON line and one mapping file take bounded memory. A row over the
limit is quarantined with its line, or, for a CSV row too long for the parser to split, the file
stops with one error naming the line; a mapping file too big or full of nested YAML aliases is
one error naming it (exit 2). Limits are lowered through parameters so the inputs stay small."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.errors import ValidationError
from ingestion import readers
from ingestion.loader import load_events
from ingestion.mapping import ColumnMapping
from ingestion.quarantine import read_quarantine
from ingestion.readers import BAD_ROW_SHAPE, ROW_TOO_LONG, read_chunks, source_columns
from ringwatch.cli import main as cli_main
from tests.ingestion.fakes import FakeGraphStore

HEADER = "txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status\n"
LIMIT = 200  # bytes per row in these tests


def _row(i: int, user: str = "") -> str:
    return f"t{i},2026-01-02T00:00:00Z,{user or f'u{i}'},d1,10.0.0.1,m1,5,USD,payment,approved\n"


def _read(path: Path, chunk_rows: int = 50_000) -> tuple[list[str], list[int], list[tuple[int, str]]]:
    ids: list[str] = []
    lines: list[int] = []
    rejects: list[tuple[int, str]] = []
    for chunk in read_chunks(path, chunk_rows=chunk_rows, max_row_bytes=LIMIT):
        ids += chunk.frame["txn_id"].tolist() if len(chunk.frame) else []
        lines += chunk.lines.tolist()
        rejects += [(r.line, r.reason) for r in chunk.rejects]
    return ids, lines, rejects


@pytest.mark.parametrize("chunk_rows", [50_000, 2])
def test_a_csv_row_over_the_limit_is_quarantined_with_its_line(tmp_path: Path, chunk_rows: int) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER
        + _row(1)                       # 2
        + _row(2, "u" * (LIMIT + 50))   # 3 over the limit, still one parser block
        + '3,"a\nb",x\n'                # 4-5 wrong shape over two lines
        + _row(4)                       # 6
        + _row(5, "v" * (3 * LIMIT)),   # 7
        encoding="utf-8",
    )
    ids, lines, rejects = _read(path, chunk_rows)
    assert ids == ["t1", "t4"] and lines == [2, 6]
    assert rejects == [(3, ROW_TOO_LONG), (4, BAD_ROW_SHAPE), (7, ROW_TOO_LONG)]
    (long,) = [r for c in read_chunks(path, max_row_bytes=LIMIT) for r in c.rejects if r.line == 3]
    assert f"more than the limit of {LIMIT}" in long.detail and long.text.startswith("t2,2026")
    assert len(long.text) < 1000  # the start of the row, not all of it


def test_a_parquet_row_over_the_limit_is_quarantined_with_its_row_number(tmp_path: Path) -> None:
    """The same limit as a CSV row's, over the row's text: the rest of the file loads."""
    rows = [_row(i, "w" * (LIMIT + 1) if i == 3 else "").rstrip("\n").split(",") for i in range(1, 6)]
    frame = pd.DataFrame(rows, columns=HEADER.strip().split(","))
    frame["amount"] = frame["amount"].astype(float)  # a number column is not counted
    path = tmp_path / "events.parquet"
    frame.to_parquet(path, index=False)
    ids, lines, rejects = _read(path, chunk_rows=2)
    assert ids == ["t1", "t2", "t4", "t5"] and lines == [1, 2, 4, 5] and rejects == [(3, ROW_TOO_LONG)]
    summary = load_events(path, FakeGraphStore(), quarantine_dir=tmp_path / "q", max_row_bytes=LIMIT)
    assert (summary.loaded, summary.quarantined) == (4, 1)
    q = read_quarantine(summary.quarantine_files[0])
    assert q["line"].tolist() == ["3"] and q["reason"].tolist() == [ROW_TOO_LONG]


def test_a_csv_row_too_long_to_split_stops_the_file_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + _row(1) + "2,x\n" + _row(3, "w" * (20 * LIMIT)) + _row(4), encoding="utf-8")
    seen: list[int] = []
    with pytest.raises(ValidationError, match=r"events\.csv.*line 4: a row longer than the limit of 200 bytes"):
        for chunk in read_chunks(path, max_row_bytes=LIMIT):
            seen += chunk.lines.tolist() + [r.line for r in chunk.rejects]
    assert seen == [2, 3]  # the rows before it were given


def test_a_gzip_of_nuls_without_a_newline_is_one_error_naming_the_file(tmp_path: Path) -> None:
    """The reproduction, scaled down: a header line, then NUL bytes and no newline."""
    path = tmp_path / "nul.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode() + bytes(100 * LIMIT)))
    with pytest.raises(ValidationError, match=r"nul\.csv\.gz.*line 2: a row longer"):
        list(read_chunks(path, max_row_bytes=LIMIT))
    store = FakeGraphStore()
    with pytest.raises(ValidationError, match=r"nul\.csv\.gz"):
        load_events(path, store, quarantine_dir=tmp_path / "q", max_row_bytes=LIMIT)
    assert store.events == {}


def test_a_csv_header_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv.gz"
    path.write_bytes(gzip.compress(",".join(f"column{i}" for i in range(100)).encode() + b"\n1\n"))
    with pytest.raises(ValidationError, match=r"wide\.csv\.gz.*header line is longer than the limit of 200"):
        source_columns(path, max_row_bytes=LIMIT)
    assert len(source_columns(path) or ()) == 100


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_a_json_line_over_the_limit_is_quarantined_and_the_rest_loads(tmp_path: Path, name: str) -> None:
    def line(i: int, user: str = "") -> bytes:
        return (f'{{"txn_id":"j{i}","ts":"2026-01-02T00:00:00Z","user_id":"{user or f"u{i}"}",'
                f'"merchant_id":"m1","amount":5}}\n').encode()

    data = line(1) + line(2, "u" * 10 * LIMIT) + b"\r\n" + line(4) + b"\x00" * (50 * LIMIT)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    ids, lines, rejects = _read(path, chunk_rows=2)
    assert ids == ["j1", "j4"] and lines == [1, 4]
    assert rejects == [(2, ROW_TOO_LONG), (3, "empty_row"), (5, ROW_TOO_LONG)]

    store = FakeGraphStore()
    summary = load_events(path, store, quarantine_dir=tmp_path / "q", max_row_bytes=LIMIT)
    assert (summary.read, summary.loaded, summary.quarantined) == (5, 2, 3)
    assert sorted(store.events) == ["j1", "j4"]
    q = read_quarantine(summary.quarantine_files[0])
    assert q["line"].tolist() == ["2", "3", "5"] and q["reason"].tolist() == [ROW_TOO_LONG, "empty_row", ROW_TOO_LONG]
    assert f"a line of {50 * LIMIT:,} bytes" in q["detail"][2]
    assert all(len(d) < 1000 for d in q["detail"])


def test_long_rows_do_not_add_up_in_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks are cut by bytes as well as rows, so many rows near the limit stay bounded."""
    monkeypatch.setattr(readers, "_CHUNK_BYTES", 4 * LIMIT)
    for name, text in (
        ("e.csv", HEADER + "".join(_row(i, "u" * 100) for i in range(40))),
        ("e.jsonl", "".join(f'{{"txn_id":"t{i}","pad":"{"p" * 150}"}}\n' for i in range(40))),
    ):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        chunks = list(read_chunks(path, chunk_rows=1000, max_row_bytes=LIMIT))
        assert not any(c.rejects for c in chunks)
        assert len(chunks) > 1 and all(len(c.frame) < 40 for c in chunks)
        lines = np.concatenate([c.lines for c in chunks]).tolist()
        first = 2 if name.endswith(".csv") else 1
        assert lines == list(range(first, first + 40))


def test_the_row_limit_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(HEADER, encoding="utf-8")
    with pytest.raises(ValidationError, match="max_row_bytes"):
        list(read_chunks(path, max_row_bytes=0))


# -- mapping files ---------------------------------------------------------------------------------


def _alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level lists the one before nine times (9**9 strings)."""
    anchors = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    anchors += [f"&a{k} [" + ",".join([f"*a{k - 1}"] * 9) + "]" for k in range(1, levels)]
    return "name: [" + ", ".join(anchors) + "]\n"


def test_a_yaml_alias_bomb_is_one_error_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(), encoding="utf-8")
    with pytest.raises(ValidationError, match=r"bomb\.yaml.*more than 10,000 values.*YAML alias"):
        ColumnMapping.from_file(bomb)
    events = tmp_path / "events.csv"
    events.write_text(HEADER + _row(1), encoding="utf-8")
    home = tmp_path / "home"
    assert cli_main(["--home", str(home), "--no-progress", "ingest", str(events), "--mapping", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bomb.yaml" in err and "Traceback" not in err, err


def test_a_few_yaml_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "fields:\n  user_id: &card {columns: [card, zip], separator: '-'}\n  device_id: *card\n"
        "labels: {column: fraud, fraud_values: &yes ['1', 'y'], legit_values: ['0']}\n",
        encoding="utf-8",
    )
    mapping = ColumnMapping.from_file(path)
    assert mapping.spec("device_id") == mapping.spec("user_id")
    with pytest.raises(ValidationError, match="more than 5 values"):
        ColumnMapping.from_file(path, max_values=5)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("fields: &a {txn_id: order, user_id: *a}\n", "refers to a value holding it"),
        ("name: " + "[" * 40 + "]" * 40 + "\n", "nested"),
        ("name = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
    ids=["alias-holding-itself", "deep-yaml", "deep-toml"],
)
def test_endless_or_deep_mappings_are_refused(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / ("m.toml" if text.startswith("name =") else "m.yaml")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError, match=why):
        ColumnMapping.from_file(path)


def test_a_mapping_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n" + "# padding\n" * 100 + "fields: [unclosed\n", encoding="utf-8")
    size = path.stat().st_size
    with pytest.raises(ValidationError, match=rf"big\.yaml.*{size:,} bytes, more than the limit of 500"):
        ColumnMapping.from_file(path, max_bytes=500)
    with pytest.raises(ValidationError, match="cannot be parsed"):
        ColumnMapping.from_file(path)


def test_a_mapping_file_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ValidationError, match=r"latin\.yaml.*not UTF-8 text \(byte 9 is 0xe9\)"):
        ColumnMapping.from_file(path)
