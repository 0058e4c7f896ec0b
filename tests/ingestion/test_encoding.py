"""Bytes that are not text: a bad row is quarantined with its line and the reason, the rest of
the file loads; a file that cannot be read at all is one clear error naming it (exit 2); a
declared encoding reads Latin-1 and the like."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from graph.errors import ValidationError
from graph.sqlite_store import SQLiteGraphStore
from ingestion.loader import load_events, load_labels
from ingestion.quarantine import read_quarantine
from ingestion.readers import BAD_ENCODING, read_chunks, source_columns
from ringwatch.cli import main as cli_main

HEADER = b"txn_id,ts,user_id,device_id,ip,merchant_id,amount,currency,event,status\n"


def _row(i: int, user: bytes) -> bytes:
    return b"t%d,2026-01-02T00:00:00Z,%s,d1,10.0.0.1,m1,5,USD,payment,approved\n" % (i, user)


def _events(path: Path, n: int, bad: dict[int, bytes]) -> Path:
    path.write_bytes(HEADER + b"".join(_row(i, bad.get(i, b"u%d" % (i % 50))) for i in range(n)))
    return path


def test_one_bad_byte_deep_in_a_csv_quarantines_that_row_only(tmp_path: Path) -> None:
    src = _events(tmp_path / "events.csv", 120_000, {60_000: b"us\xe9r"})
    with SQLiteGraphStore(tmp_path / "store.sqlite") as store:
        summary = load_events(src, store, quarantine_dir=tmp_path / "q")
    assert (summary.read, summary.loaded, summary.quarantined) == (120_000, 119_999, 1)
    q = read_quarantine(summary.quarantine_files[0])
    assert q["line"].tolist() == ["60002"] and q["reason"].tolist() == [BAD_ENCODING]
    assert "column user_id at byte 2" in q["detail"][0] and "us\\xe9r" in q["detail"][0]


def test_rows_keep_their_lines_around_bad_bytes_in_small_chunks(tmp_path: Path) -> None:
    src = _events(tmp_path / "events.csv", 30, {0: b"\xff", 11: b"a\xc3", 29: b"\xe9"})
    good, lines, bad = [], [], []
    for chunk in read_chunks(src, chunk_rows=7):
        good += chunk.frame["txn_id"].tolist()
        lines += chunk.lines.tolist()
        bad += [(r.line, r.reason) for r in chunk.rejects]
    assert bad == [(2, BAD_ENCODING), (13, BAD_ENCODING), (31, BAD_ENCODING)]
    assert len(good) == 27 and lines == [int(t[1:]) + 2 for t in good]


def test_a_declared_encoding_reads_latin_1(tmp_path: Path) -> None:
    src = _events(tmp_path / "events.csv", 3, {1: b"us\xe9r"})
    rows = [c.frame for c in read_chunks(src, encoding="latin-1")]
    assert rows[0]["user_id"].tolist() == ["u0", "usér", "u2"]
    labels = tmp_path / "labels.csv"
    labels.write_bytes(b"entity,entity_id,label,ts,source\nuser,us\xe9r,fraud,2026-01-05T00:00:00Z,chargeback\n")
    with SQLiteGraphStore(tmp_path / "store.sqlite") as store:
        assert load_labels(labels, store, quarantine_dir=tmp_path / "q").quarantined == 1
        assert load_labels(labels, store, quarantine_dir=tmp_path / "q", encoding="latin-1").loaded == 1
    with pytest.raises(ValidationError, match="encoding"):
        source_columns(src, "no-such-encoding")


def test_json_lines_with_bad_bytes_quarantine_the_line(tmp_path: Path) -> None:
    src = tmp_path / "events.jsonl"
    src.write_bytes(
        b'{"txn_id":"j1","ts":"2026-01-02T00:00:00Z","user_id":"us\xe9r","event":"signup"}\n'
        b'{"txn_id":"j2","ts":"2026-01-02T00:00:00Z","user_id":"u2","event":"signup"}\n'
    )
    chunks = list(read_chunks(src))
    assert chunks[0].frame["txn_id"].tolist() == ["j2"] and chunks[0].lines.tolist() == [2]
    assert [(r.line, r.reason) for r in chunks[0].rejects] == [(1, BAD_ENCODING)]
    latin = list(read_chunks(src, encoding="latin-1"))[0]
    assert latin.frame["user_id"].tolist() == ["usér", "u2"]


def _unreadable(tmp_path: Path) -> dict[str, Path]:
    text = HEADER + _row(1, b"u1")
    files = {
        "truncated.csv.gz": gzip.compress(text * 2000)[:200],
        "plain-text.csv.gz": text,
        "picture.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "random.csv": b"\xd6\x9b" + os.urandom(4094),
        "binary.jsonl.gz": b"\x1f\x8b\x08\x00garbage",
    }
    out = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


def test_a_file_that_cannot_be_read_is_one_clear_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, path in _unreadable(tmp_path).items():
        with SQLiteGraphStore(tmp_path / "store.sqlite") as store, pytest.raises(ValidationError, match=name):
            load_events(path, store, quarantine_dir=tmp_path / "q")
        assert cli_main(["--home", str(tmp_path / "home"), "--no-progress", "ingest", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and name in err and "Traceback" not in err, err


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz"])
def test_a_byte_that_is_not_text_in_the_declared_encoding_quarantines_its_row(tmp_path: Path, name: str) -> None:
    """0x81 has no character in cp1252: that row is quarantined, the rest of the file loads."""
    data = HEADER + _row(0, b"caf\xe9") + _row(1, b"x\x81y") + _row(2, b"\x80uro")
    src = tmp_path / name
    src.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with SQLiteGraphStore(tmp_path / "store.sqlite") as store:
        summary = load_events(src, store, quarantine_dir=tmp_path / "q", encoding="cp1252")
        assert sorted(e.user_id for e in store.stored_events(["t0", "t1", "t2"]).values()) == ["café", "€uro"]
    assert (summary.read, summary.loaded, summary.quarantined) == (3, 2, 1)
    q = read_quarantine(summary.quarantine_files[0])
    assert q["line"].tolist() == ["3"] and q["detail"][0].startswith("byte 0x81 in column user_id is not cp1252 text")


def test_a_declared_encoding_the_file_is_not_in_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _events(tmp_path / "events.csv", 2, {})
    with pytest.raises(ValidationError, match="events.csv"):
        list(read_chunks(src, encoding="utf-16"))
    args = ["--home", str(tmp_path / "home"), "--no-progress", "ingest", str(src), "--encoding", "utf-16"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "events.csv" in err and "Traceback" not in err, err


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_a_malformed_row_holding_bytes_that_are_not_text_is_quarantined(
    tmp_path: Path, encoding: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyarrow cannot hand such a row to the reader's handler of malformed rows as it is (0x81
    and 0x8d are neither UTF-8 nor cp1252)."""
    src = tmp_path / "events.csv"
    src.write_bytes(HEADER + _row(0, b"u0") + b"\x8d\x81,x\n" + b't2,"\x81\n\x8d"\n' + _row(3, b"u3"))
    chunks = list(read_chunks(src, encoding=encoding))
    assert [t for c in chunks for t in c.frame["txn_id"].tolist()] == ["t0", "t3"]
    assert [c.lines.tolist() for c in chunks] == [[2, 6]]
    rejects = [(r.line, r.reason, r.text) for c in chunks for r in c.rejects]
    assert rejects == [(3, "bad_row_shape", "\\x8d\\x81,x"), (4, "bad_row_shape", "t2,\"\\x81\n\\x8d\"")]
    assert capsys.readouterr().err == ""


def test_characters_of_the_last_private_use_block_load_in_a_file_without_bad_bytes(tmp_path: Path) -> None:
    """Bytes that are not text reach pyarrow as U+10FF00 + byte; the real character is text."""
    src = _events(tmp_path / "events.csv", 2, {1: "u\U0010ff00\U0010ffe9".encode()})
    users = [u for c in read_chunks(src) for u in c.frame["user_id"].tolist()]
    assert users == ["u0", "u\U0010ff00\U0010ffe9"]
    src = _events(tmp_path / "events.csv", 2, {0: b"u\xe9", 1: "u\U0010ff00".encode()})
    rejects = [(r.line, r.text.split(",")[2]) for c in read_chunks(src) for r in c.rejects]
    # In a file that has bytes that are not text, the real character is taken for one (0x00).
    assert rejects == [(2, "u\\xe9"), (3, "u\\x00")]


def test_a_gzip_that_breaks_off_keeps_every_row_before_the_break_and_says_so(tmp_path: Path) -> None:
    """Rows read before a truncated stream's end are stored (not only the full batches before
    it), the error says how many, and loading the mended file again stores only the rest."""
    body = HEADER + b"".join(_row(i, b"u%d" % (i % 50)) for i in range(300_000))
    whole = gzip.compress(body)
    src = tmp_path / "events.csv.gz"
    src.write_bytes(whole[: len(whole) * 6 // 10])
    readable: list[str] = []
    with pytest.raises(ValidationError):
        for chunk in read_chunks(src, chunk_rows=7_000):
            readable += chunk.frame["txn_id"].tolist()
    assert 7_000 < len(readable) < 300_000 and len(readable) % 7_000 != 0  # a part batch is pending
    with SQLiteGraphStore(tmp_path / "store.sqlite") as store:
        with pytest.raises(ValidationError, match=f"after {len(readable):,} rows: {len(readable):,} events stored") as err:
            load_events(src, store, quarantine_dir=tmp_path / "q", batch_size=7_000)
        assert "events.csv.gz" in str(err.value) and "end-of-stream" in str(err.value)
        stored = store.stored_events([readable[-1], f"t{len(readable)}"])
        assert list(stored) == [readable[-1]]  # the last row before the break, and none after it
        src.write_bytes(whole)
        again = load_events(src, store, quarantine_dir=tmp_path / "q", batch_size=7_000)
    assert (again.loaded, again.duplicates) == (300_000 - len(readable), len(readable))
