"""Streaming readers for event and label files: CSV (also ``.csv.gz``), Parquet and JSON lines.

Every reader yields ``RawChunk`` objects of at most ``chunk_rows`` rows, so memory stays bounded
however big the file is, and keeps the source line number of every row so a quarantined row can
be found in the original file:

- CSV: the header is line 1, the first data row line 2. Numbers are physical lines, also when a
  quoted value spans several lines or when malformed rows are skipped by the parser.
- JSON lines: the 1-based line of the file.
- Parquet: the 1-based row number.

CSV cells are read as text, exactly as written (an empty cell is ``""``), so the quarantine file
shows the row the way the user wrote it. JSON and Parquet values keep their own types; the
column mapping turns them into text where it needs text.

Rows the parser cannot split into the file's columns (a CSV row with too few or too many fields,
a JSON line that is not an object) are returned as ``RejectedRow`` with their raw text: they are
counted and quarantined, never dropped. So are rows whose bytes are not valid text in the file's
encoding (UTF-8 unless the caller declares another, e.g. ``latin-1``): the rest of the file loads.
A file that cannot be read at all (broken gzip, a header that is not text) raises one
``ValidationError`` naming the file.
"""

from __future__ import annotations

import codecs
import csv
import enum
import gzip
import io
import zlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from graph.errors import ValidationError

#: Reason codes of rows rejected by a reader (see ``validate.py`` for the others).
BAD_ROW_SHAPE = "bad_row_shape"
BAD_JSON = "bad_json"
BAD_ENCODING = "bad_encoding"
EMPTY_ROW = "empty_row"
#: The encoding files are read in unless the caller declares another.
DEFAULT_ENCODING = "utf-8"
# What a broken or truncated gzip stream raises, from Python's gzip or from pyarrow.
_UNREADABLE = (OSError, EOFError, zlib.error, UnicodeDecodeError, pa.ArrowInvalid)

# Bytes per CSV block handed to pyarrow; chunks are re-assembled to ``chunk_rows`` rows.
_CSV_BLOCK_BYTES = 4 << 20


class SourceFormat(str, enum.Enum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


_SUFFIXES: dict[str, SourceFormat] = {
    ".csv": SourceFormat.CSV,
    ".parquet": SourceFormat.PARQUET,
    ".pq": SourceFormat.PARQUET,
    ".jsonl": SourceFormat.JSONL,
    ".ndjson": SourceFormat.JSONL,
}


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row the parser could not turn into columns; ``text`` is the raw line."""

    line: int
    reason: str
    detail: str
    text: str


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Up to ``chunk_rows`` source rows. ``frame`` has a 0..n-1 RangeIndex; ``lines[i]`` is the
    source line of ``frame.iloc[i]``. ``rejects`` are unparseable rows met in the same stretch."""

    frame: pd.DataFrame
    lines: np.ndarray  # int64 [n]
    rejects: tuple[RejectedRow, ...] = field(default=())

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.rejects)


def detect_format(path: Path) -> SourceFormat:
    """The format from the file name (``.csv``, ``.csv.gz``, ``.parquet``, ``.jsonl``, ``.ndjson``,
    optionally ``.gz`` for the text formats).

    Raises:
        ValidationError: the extension is not one of those.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        if suffixes and _SUFFIXES.get(suffixes[-1]) is SourceFormat.PARQUET:
            raise ValidationError("source", str(path), "Parquet files are compressed inside; do not gzip them")
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise ValidationError(
            "source", str(path), f"unknown file type; expected one of {known} (text ones may end .gz)"
        )
    return fmt


def source_columns(path: Path, encoding: str = DEFAULT_ENCODING) -> tuple[str, ...] | None:
    """The file's column names, or None for JSON lines (every line may have its own keys).

    Raises:
        ValidationError: missing or unreadable file, an unknown ``encoding``, or a CSV header
            that is not text in that encoding or names a column twice.
    """
    path = _existing(path)
    fmt = detect_format(path)
    check_encoding(encoding)
    if fmt is SourceFormat.PARQUET:
        try:
            return tuple(pq.ParquetFile(path).schema_arrow.names)
        except _UNREADABLE as e:
            raise ValidationError("source", str(path), f"not a readable Parquet file: {e}") from e
    if fmt is SourceFormat.JSONL:
        return None
    return _csv_header(path, encoding)


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it (``utf-8``, ``latin-1``, ``cp1252`` ...).

    Raises:
        ValidationError: an unknown encoding.
    """
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError) as e:
        raise ValidationError("encoding", encoding, "unknown text encoding (e.g. utf-8, latin-1, cp1252)") from e
    return encoding


def source_rows(path: Path) -> int | None:
    """Rows in the file when known without reading it (Parquet metadata), else None."""
    path = _existing(path)
    if detect_format(path) is SourceFormat.PARQUET:
        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def read_chunks(path: Path, chunk_rows: int = 50_000, encoding: str = DEFAULT_ENCODING) -> Iterator[RawChunk]:
    """Stream ``path`` as chunks of at most ``chunk_rows`` parsed rows (plus any rejects).
    ``encoding``: the text formats' encoding (Parquet text is UTF-8 by definition).

    Raises:
        ValidationError: missing file, unknown extension or encoding, ``chunk_rows`` < 1, a CSV
            header that names a column twice, or a file that cannot be read (raised when the
            iterator reaches the broken part).
    """
    if chunk_rows < 1:
        raise ValidationError("chunk_rows", chunk_rows, "must be at least 1")
    path = _existing(path)
    fmt = detect_format(path)
    check_encoding(encoding)
    if fmt is SourceFormat.CSV:
        return _read_csv(path, chunk_rows, encoding)
    if fmt is SourceFormat.PARQUET:
        return _read_parquet(path, chunk_rows)
    return _read_jsonl(path, chunk_rows, encoding)


def read_table(path: Path) -> RawChunk:
    """The whole file as one chunk (for small side tables such as a join file)."""
    chunks = list(read_chunks(path, chunk_rows=1_000_000))
    if not chunks:
        return RawChunk(pd.DataFrame(), np.zeros(0, dtype=np.int64))
    frame = pd.concat([c.frame for c in chunks], ignore_index=True)
    lines = np.concatenate([c.lines for c in chunks])
    rejects = tuple(itertools.chain.from_iterable(c.rejects for c in chunks))
    return RawChunk(frame, lines, rejects)


# -- CSV ----------------------------------------------------------------------------------------


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _csv_header(path: Path, encoding: str = DEFAULT_ENCODING) -> tuple[str, ...]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            first = f.readline(1 << 20)
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"cannot be read: {e}") from e
    try:
        text = first.decode("utf-8-sig" if _is_utf8(encoding) else encoding)
    except UnicodeDecodeError as e:
        raise ValidationError(
            "source",
            str(path),
            f"its header is not {encoding} text (byte {e.start} is 0x{first[e.start]:02x}); if the file is "
            "text in another encoding, declare it (--encoding latin-1, cp1252 ...)",
        ) from e
    if "\x00" in text:
        raise ValidationError("source", str(path), "its header holds NUL bytes: not a text file")
    header = next(csv.reader([text]), None)
    if not header:
        return ()
    names = tuple(h.strip() for h in header)
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ValidationError("header", ",".join(header), "a column has no name")
        if name in seen:
            raise ValidationError("header", name, "column named twice")
        seen.add(name)
    return names


class _InvalidRows:
    """Collects rows pyarrow's CSV parser could not split, keyed by record number.

    pyarrow numbers records like lines but does not count newlines inside quoted values; the
    reader adds those back to give physical line numbers."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.pending: dict[int, str] = {}

    def __call__(self, row: pa_csv.InvalidRow) -> str:
        # Called by the parser for each bad row, before the batch holding its neighbours.
        number = row.number if row.number is not None else -1
        self.pending[number] = row.text
        return "skip"

    def pop(self, record: int, line: int) -> RejectedRow:
        text = self.pending.pop(record)
        n = len(_split_csv_line(text))
        detail = f"expected {self.expected} fields, saw {n}"
        return RejectedRow(line=line, reason=BAD_ROW_SHAPE, detail=detail, text=text)


@dataclass(slots=True)
class _CsvPosition:
    record: int = 2  # pyarrow's number of the next record (the header is 1)
    extra: int = 0  # newlines inside quoted values so far: physical line = record + extra


def _split_csv_line(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def _read_csv(path: Path, chunk_rows: int, encoding: str = DEFAULT_ENCODING) -> Iterator[RawChunk]:
    names = _csv_header(path, encoding)
    if not names:
        return
    invalid = _InvalidRows(len(names))
    utf8 = _is_utf8(encoding)
    try:
        reader = pa_csv.open_csv(
            path,
            # Single-threaded so the parser reports the numbers of bad rows. Another encoding is
            # transcoded to UTF-8 by pyarrow.
            read_options=pa_csv.ReadOptions(
                use_threads=False,
                block_size=_CSV_BLOCK_BYTES,
                skip_rows=1,
                column_names=list(names),
                encoding="utf8" if utf8 else encoding,
            ),
            parse_options=pa_csv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=invalid),
            # Bytes, not text: a row with invalid UTF-8 is quarantined by ``_csv_chunk`` instead
            # of failing the whole file.
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.binary() for n in names}, strings_can_be_null=False
            ),
        )
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"cannot be read as CSV: {e}") from e
    pos = _CsvPosition()
    buffered: list[pa.RecordBatch] = []
    buffered_rows = 0
    for batch in _iter_batches(reader, path):
        buffered.append(batch)
        buffered_rows += batch.num_rows
        if buffered_rows >= chunk_rows:
            table = pa.Table.from_batches(buffered)
            buffered, buffered_rows = [], 0
            for start in range(0, table.num_rows, chunk_rows):
                yield _csv_chunk(table.slice(start, chunk_rows), pos, invalid)
    if buffered_rows:
        yield _csv_chunk(pa.Table.from_batches(buffered), pos, invalid)
    if invalid.pending:  # bad rows after the last good one
        rejects = []
        for record in sorted(invalid.pending):
            rejects.append(invalid.pop(record, record + pos.extra))
            pos.extra += rejects[-1].text.count("\n")
        yield RawChunk(pd.DataFrame(columns=list(names), dtype="str"), np.zeros(0, np.int64), tuple(rejects))


def _iter_batches(reader: pa_csv.CSVStreamingReader, path: Path) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except _UNREADABLE as e:
            raise ValidationError("source", str(path), f"CSV cannot be read past this point: {e}") from e


def _csv_chunk(table: pa.Table, pos: _CsvPosition, invalid: _InvalidRows) -> RawChunk:
    """Turn ``table`` into a chunk, giving each row its physical line. Bad rows reported by the
    parser sit between good ones; quoted values holding newlines push later lines down."""
    n = table.num_rows
    newlines = np.zeros(n, dtype=np.int64)
    for column in table.columns:
        newlines += pa_compute.count_substring(column, "\n").to_numpy(zero_copy_only=False).astype(np.int64)
    rejects: list[RejectedRow] = []
    if not any(pos.record <= k < pos.record + n for k in invalid.pending):
        # Fast path, the usual case: no bad row between these rows.
        before = np.concatenate(([0], np.cumsum(newlines)[:-1])).astype(np.int64)
        lines = pos.record + np.arange(n, dtype=np.int64) + pos.extra + before
        pos.record += n
        pos.extra += int(newlines.sum())
    else:
        lines = np.empty(n, dtype=np.int64)
        for i in range(n):
            while pos.record in invalid.pending:
                rejects.append(invalid.pop(pos.record, pos.record + pos.extra))
                pos.extra += rejects[-1].text.count("\n")
                pos.record += 1
            lines[i] = pos.record + pos.extra
            pos.extra += int(newlines[i])
            pos.record += 1
    while pos.record in invalid.pending:  # bad rows right after these
        rejects.append(invalid.pop(pos.record, pos.record + pos.extra))
        pos.extra += rejects[-1].text.count("\n")
        pos.record += 1
    table, lines, bad_text = _decoded(table, lines)
    rejects.extend(bad_text)
    rejects.sort(key=lambda r: r.line)
    return RawChunk(table.to_pandas(), lines, tuple(rejects))


def _decoded(table: pa.Table, lines: np.ndarray) -> tuple[pa.Table, np.ndarray, list[RejectedRow]]:
    """The byte columns as text; rows holding invalid UTF-8 become ``RejectedRow``s (the usual
    case, valid text everywhere, costs one validating cast per column)."""
    columns: list[pa.Array] = []
    bad = np.zeros(table.num_rows, dtype=bool)
    first_error: dict[int, str] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            columns.append(column.cast(pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        for i, value in enumerate(column.to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as e:
                bad[i] = True
                first_error.setdefault(i, f"invalid UTF-8 in column {name} at byte {e.start} of the value (0x{value[e.start]:02x})")
        columns.append(column)
    if not bad.any():
        return pa.Table.from_arrays(columns, names=table.column_names), lines, []
    rejects = []
    for i in np.flatnonzero(bad).tolist():
        raw = b",".join(table.column(j)[i].as_py() for j in range(table.num_columns))
        rejects.append(RejectedRow(int(lines[i]), BAD_ENCODING, first_error[i] + "; declare the file's encoding with --encoding if it is not UTF-8", raw.decode("utf-8", errors="backslashreplace")))
    keep = np.flatnonzero(~bad)
    kept = table.take(pa.array(keep))
    text = [c.cast(pa.string()) for c in kept.columns]
    return pa.Table.from_arrays(text, names=table.column_names), lines[keep], rejects


# -- Parquet ------------------------------------------------------------------------------------


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[RawChunk]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValidationError("source", str(path), f"not a readable Parquet file: {e}") from e
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            lines = np.arange(row, row + len(frame), dtype=np.int64)
            row += len(frame)
            yield RawChunk(frame, lines)
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"Parquet cannot be read past row {row}: {e}") from e


# -- JSON lines ---------------------------------------------------------------------------------


def _read_jsonl(path: Path, chunk_rows: int, encoding: str = DEFAULT_ENCODING) -> Iterator[RawChunk]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            line_no = 1
            while True:
                raw = list(itertools.islice(f, chunk_rows))
                if not raw:
                    return
                yield _jsonl_chunk(raw, line_no, encoding)
                line_no += len(raw)
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"cannot be read past this point: {e}") from e


def _jsonl_chunk(raw: list[bytes], first_line: int, encoding: str = DEFAULT_ENCODING) -> RawChunk:
    """Parse lines with pyarrow in one go; if any line is broken, parse line by line so only the
    broken ones are rejected. Lines that are not text in ``encoding`` are rejected first."""
    lines = np.arange(first_line, first_line + len(raw), dtype=np.int64)
    rejects: list[RejectedRow] = []
    raw = list(raw)
    undecodable = np.zeros(len(raw), dtype=bool)
    utf8 = _is_utf8(encoding)
    for i, line in enumerate(raw):
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as e:
            undecodable[i] = True
            rejects.append(RejectedRow(
                int(lines[i]), BAD_ENCODING,
                f"invalid {encoding} at byte {e.start} of the line (0x{line[e.start]:02x}); declare the file's "
                "encoding with --encoding if it is not UTF-8",
                line.decode("utf-8", errors="backslashreplace").rstrip("\r\n"),
            ))  # fmt: skip
            continue
        if not utf8:
            raw[i] = text.encode("utf-8")
    blank = np.fromiter((not r.strip() for r in raw), dtype=bool, count=len(raw)) & ~undecodable
    rejects += [RejectedRow(int(lines[i]), EMPTY_ROW, "blank line", "") for i in np.flatnonzero(blank)]
    keep = np.flatnonzero(~blank & ~undecodable)
    body = b"".join(raw[i] if raw[i].endswith(b"\n") else raw[i] + b"\n" for i in keep)
    frame: pd.DataFrame | None = None
    if body:
        try:
            table = pa_json.read_json(io.BytesIO(body))
            if table.num_rows == len(keep):
                frame = table.to_pandas()
        except pa.ArrowInvalid:
            frame = None
    else:
        frame = pd.DataFrame()
    if frame is None:
        records: list[dict[str, object]] = []
        good: list[int] = []
        for i in keep:
            text = raw[i].decode("utf-8").rstrip("\r\n")
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                rejects.append(RejectedRow(int(lines[i]), BAD_JSON, f"not JSON: {e.msg} at column {e.colno}", text))
                continue
            if not isinstance(value, dict):
                rejects.append(RejectedRow(int(lines[i]), BAD_JSON, f"not a JSON object: {type(value).__name__}", text))
                continue
            records.append(value)
            good.append(int(i))
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        keep = np.asarray(good, dtype=np.int64)
    rejects.sort(key=lambda r: r.line)
    return RawChunk(frame.reset_index(drop=True), lines[keep], tuple(rejects))


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValidationError("source", str(path), "file not found")
    return path
