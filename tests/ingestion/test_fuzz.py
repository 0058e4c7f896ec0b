"""Fuzzing ingestion with hostile files: known-good rows planted among junk (random bytes, text in
other encodings, hostile quoting, control characters, NULs, BOMs, CRLF, fields past the row
limit, near-valid events), as CSV or JSON lines, plain or gzipped.

Every load must add up (``read == loaded + duplicates + quarantined``, and the quarantine file
lists every quarantined row), every planted row must be stored exactly as planted, and nothing
may escape but the documented one-line error for a file that cannot be read. Hypothesis runs a
fixed number of examples from a fixed seed (``derandomize``) with no deadline, so a run depends
neither on luck nor on the machine's speed.
"""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.errors import RingwatchError
from graph.sqlite_store import SQLiteGraphStore
from graph.store import GraphStore
from graph.types import Event, EventKind
from ingestion.loader import LoadSummary, load_events
from ingestion.mapping import CANONICAL_FIELDS
from tests.ingestion.fakes import FakeGraphStore

#: A low row limit, so rows past it and parser block boundaries (4 limits) come up in small files.
ROW_LIMIT = 2_000
#: Only planted rows carry this; it is taken out of junk.
MARK = "planted"
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- planted rows ------------------------------------------------------------------------------------

# Characters for ids: anything but control characters, surrogates and whitespace (which stripping
# would change), including quotes, commas, semicolons, non-ASCII letters and emoji.
_ID_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))
_LATIN1_ID_CHARS = st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), max_codepoint=0xFF)


@dataclass(frozen=True)
class Planted:
    """A good row as written (``cells`` by canonical field) and the event it must become."""

    cells: dict[str, str]
    event: Event


@st.composite
def planted_rows(draw: st.DrawFn, latin1: bool) -> list[Planted]:
    chars = _LATIN1_ID_CHARS if latin1 else _ID_CHARS
    rows = []
    for k in range(draw(st.integers(1, 12))):

        def ident(kind: str, k: int = k) -> str:
            return f"{MARK}-{kind}{k}:" + draw(st.text(chars, min_size=1, max_size=12))

        ts = draw(st.integers(978_307_200, 4_070_908_799))  # 2001-01-01 .. 2098-12-31
        cents = draw(st.integers(0, 100_000_000_000))
        ip = draw(st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                            st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)))
        kind = draw(st.sampled_from([EventKind.PAYMENT, EventKind.REFUND]))
        currency = draw(st.sampled_from(["USD", "eur", "Gbp"]))
        status = draw(st.sampled_from(["approved", "declined", ""]))
        device = ident("d") if draw(st.booleans()) else ""
        event = Event(
            txn_id=ident("t"), ts=float(ts), user_id=ident("u"), device_id=device or None,
            ip=str(ip), merchant_id=ident("m"), amount=cents / 100, currency=currency.upper(),
            event=kind, status=status or None,
        )  # fmt: skip
        stamp = f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%dT%H:%M:%SZ}"
        cells = {
            "txn_id": event.txn_id, "ts": stamp, "user_id": event.user_id, "device_id": device,
            "ip": draw(st.sampled_from([str(ip), str(ip).upper(), ip.exploded])),
            "merchant_id": event.merchant_id or "", "amount": f"{cents / 100:.2f}", "currency": currency,
            "event": kind.value, "status": status,
        }  # fmt: skip
        rows.append(Planted(cells, event))
    return rows


# -- junk --------------------------------------------------------------------------------------------

_HOSTILE_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(['"', ",", "\n", "\r", "\x00", "\ufeff", "\x1b", "\t", "\u2028", "\x85", "'", ";"]),
    ),
    max_size=40,
)


def _csv_line(cells: list[str], quoting: int, newline: str) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=quoting, lineterminator=newline).writerow(cells)
    return out.getvalue()


@st.composite
def near_events(draw: st.DrawFn) -> list[str]:
    """Canonical cells with some of them made hostile: these rows may load, repeat or be bad."""
    cells = [
        draw(st.sampled_from(["x1", "x2", "x3", ""])),
        draw(st.sampled_from(["2026-01-02T00:00:00Z", "1999-01-01T00:00:00Z", "yesterday", "", "1e300"])),
        draw(st.sampled_from(["u1", "u\x00", "u\n2", "NA", "", "u" * 200])),
        draw(st.sampled_from(["d1", "", "d\t"])),
        draw(st.sampled_from(["10.0.0.1", "999.1.1.1", "::1", ""])),
        draw(st.sampled_from(["m1", ""])),
        draw(st.sampled_from(["5", "-1", "1e300", "1000000001", "nan", "inf", "abc", ""])),
        draw(st.sampled_from(["USD", "US", "€€€", ""])),
        draw(st.sampled_from(["payment", "refund", "login", "transfer", ""])),
        draw(st.sampled_from(["approved", ""])),
    ]
    for i in draw(st.lists(st.integers(0, 9), max_size=3)):
        cells[i] = draw(_HOSTILE_TEXT)
    return cells


@st.composite
def csv_junk(draw: st.DrawFn, newline: str) -> bytes:
    """A junk line for a CSV file. Raw bytes never hold a quote: an unmatched one would swallow
    the planted rows after it into one value, which is what CSV means, not a reader bug. Quoted
    hostile values are written by ``csv`` with their quotes matched."""
    raw = draw(
        st.one_of(
            st.binary(max_size=300),
            st.tuples(_HOSTILE_TEXT, st.sampled_from(["utf-16", "utf-32", "cp1252", "shift_jis", "koi8-r"]))
            .map(lambda tc: tc[0].encode(tc[1], errors="replace")),
            st.sampled_from([b"", b" ", b",,,,,,,,,", b"\r", b"\xef\xbb\xbf", b"\x00" * 50, b"\xff\xfe"]),
            st.integers(ROW_LIMIT // 2, 3 * ROW_LIMIT).map(lambda n: b"x," + b"A" * n),
        )
    ).replace(b'"', b"'")
    quoted = st.lists(_HOSTILE_TEXT, max_size=14).map(
        lambda cells: _csv_line(cells, csv.QUOTE_MINIMAL, newline).encode("utf-8", errors="surrogatepass")
    )
    near = near_events().map(lambda cells: _csv_line(cells, csv.QUOTE_MINIMAL, newline).encode())
    choice = draw(st.sampled_from(["raw", "quoted", "near"]))
    if choice == "raw":
        return raw + newline.encode()
    return draw(quoted if choice == "quoted" else near)


@st.composite
def jsonl_junk(draw: st.DrawFn) -> bytes:
    """A junk JSON line (its own line, so it cannot touch the planted ones)."""
    value = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _HOSTILE_TEXT),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_HOSTILE_TEXT, inner, max_size=3),
        max_leaves=6,
    )
    line = draw(
        st.one_of(
            st.binary(max_size=300),
            st.dictionaries(st.sampled_from(CANONICAL_FIELDS), value, max_size=10).map(json.dumps),
            near_events().map(lambda cells: json.dumps(dict(zip(CANONICAL_FIELDS, cells)))),
            st.builds(lambda v: json.dumps({"txn_id": v, "ts": "2026-01-02T00:00:00Z", "user_id": "u"}), value),
            st.sampled_from(["", "   ", "[1, 2]", "null", '{"txn_id": "x9"', "\ufeff{}", '{"a": "\\u0000"}']),
            st.integers(ROW_LIMIT // 2, 3 * ROW_LIMIT).map(lambda n: json.dumps({"txn_id": "x8", "pad": "A" * n})),
        )
    )
    raw = line if isinstance(line, bytes) else line.encode("utf-8", errors="surrogatepass")
    return raw.replace(b"\n", b" ")


# -- files -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileFile:
    name: str
    data: bytes
    encoding: str
    planted: list[Planted]
    repeats: int  # planted rows written twice, identically


@st.composite
def hostile_files(draw: st.DrawFn, fmt: str) -> HostileFile:
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    planted = draw(planted_rows(latin1=encoding == "latin-1"))
    repeated = draw(st.lists(st.sampled_from(planted), max_size=3, unique_by=lambda p: p.event.txn_id))
    rows = [p.cells for p in planted] + [p.cells for p in repeated]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    order = draw(st.permutations(CANONICAL_FIELDS))
    if fmt == "csv":
        quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
        good = [_csv_line([r[f] for f in order], quoting, newline) for r in rows]
        junk = draw(st.lists(csv_junk(newline), max_size=25))
        head = _csv_line(list(order), csv.QUOTE_MINIMAL, newline)
    else:
        ascii_only = draw(st.booleans())
        good = [json.dumps({f: r[f] for f in order}, ensure_ascii=ascii_only) + newline for r in rows]
        junk = [j + newline.encode() for j in draw(st.lists(jsonl_junk(), max_size=25))]
        head = ""
    text_encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    lines = [g.encode(text_encoding) for g in good]
    for line in junk:  # junk goes anywhere among the planted rows
        lines.insert(draw(st.integers(0, len(lines))), line.replace(MARK.encode(), b"junk"))
    data = (b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b"") + head.encode(text_encoding) + b"".join(lines)
    if draw(st.booleans()):  # the last line may lack its newline
        data = data.rstrip(b"\r\n")
    gz = draw(st.booleans())
    name = f"events.{'csv' if fmt == 'csv' else 'jsonl'}" + (".gz" if gz else "")
    return HostileFile(
        name, gzip.compress(data, mtime=0) if gz else data, "utf-8" if text_encoding == "utf-8" else encoding,
        planted, len(repeated),
    )  # fmt: skip


# -- checks ------------------------------------------------------------------------------------------


def _load_and_check(hostile: HostileFile, store: GraphStore, folder: Path) -> LoadSummary:
    src = folder / hostile.name
    src.write_bytes(hostile.data)
    summary = load_events(src, store, quarantine_dir=folder / "q", encoding=hostile.encoding, max_row_bytes=ROW_LIMIT)
    assert summary.read == summary.loaded + summary.duplicates + summary.quarantined
    assert sum(summary.quarantined_by_reason.values()) == summary.quarantined
    assert summary.duplicates >= hostile.repeats
    if summary.quarantined:
        with summary.quarantine_files[0].open(encoding="utf-8", newline="") as f:
            listed = list(csv.reader(f))[1:]
        assert len(listed) == summary.quarantined
        assert all(int(row[0]) >= 1 and row[1] for row in listed)
    else:
        assert summary.quarantine_files == ()
    wanted = [p.event for p in hostile.planted]
    stored = store.stored_events([e.txn_id for e in wanted])
    assert [stored.get(e.txn_id) for e in wanted] == wanted
    return summary


@FUZZ
@given(hostile=hostile_files("csv"))
def test_hostile_csv_files_keep_every_planted_row_and_add_up(hostile: HostileFile) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _load_and_check(hostile, FakeGraphStore(), Path(folder))


@FUZZ
@given(hostile=hostile_files("jsonl"))
def test_hostile_json_lines_keep_every_planted_row_and_add_up(hostile: HostileFile) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _load_and_check(hostile, FakeGraphStore(), Path(folder))


@settings(FUZZ, max_examples=10)
@given(hostile=st.one_of(hostile_files("csv"), hostile_files("jsonl")))
def test_hostile_files_load_the_same_into_sqlite_and_twice_is_a_no_op(hostile: HostileFile) -> None:
    with tempfile.TemporaryDirectory() as folder, SQLiteGraphStore(Path(folder) / "store.sqlite") as store:
        first = _load_and_check(hostile, store, Path(folder))
        again = _load_and_check(hostile, store, Path(folder))
        assert again.loaded == 0 and again.quarantined == first.quarantined
        assert again.duplicates == first.loaded + first.duplicates


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=3000).map(lambda b: gzip.compress(b, mtime=0)),
        st.tuples(st.binary(min_size=1, max_size=3000), st.integers(1, 100)).map(
            lambda bc: gzip.compress(bc[0], mtime=0)[: -bc[1]]
        ),
        st.binary(max_size=3000).map(lambda b: b"txn_id,ts,user_id\n" + b),
        st.binary(max_size=3000).map(lambda b: b"txn_id,ts,user_id\n" + b'"' + b),
    ),
    name=st.sampled_from(["f.csv", "f.csv.gz", "f.jsonl", "f.ndjson.gz"]),
    encoding=st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16", "shift_jis"]),
)
def test_random_bytes_add_up_or_are_one_error_naming_the_file(data: bytes, name: str, encoding: str) -> None:
    """Any bytes at all, even with an unmatched quote or a declared encoding they are not in:
    a load that adds up, or one ``RingwatchError`` on one line naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / name
        src.write_bytes(data)
        try:
            summary = load_events(
                src, FakeGraphStore(), quarantine_dir=Path(folder) / "q", encoding=encoding, max_row_bytes=ROW_LIMIT
            )
        except RingwatchError as e:
            assert name in str(e) and "\n" not in str(e), str(e)
            return
        assert summary.read == summary.loaded + summary.duplicates + summary.quarantined
