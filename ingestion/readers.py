"""Streaming readers for event and label files: CSV (also ``.csv.gz``), Parquet and JSON lines.

``read_chunks`` yields ``RawChunk`` objects of at most ``chunk_rows`` rows, each row with its
source line number, so memory stays bounded however big the file is and a quarantined row can
be found in the original file. CSV cells are read as text, exactly as written, so the quarantine
file shows the row the way the user wrote it; JSON and Parquet values keep their own types. Rows
the parser cannot split into the file's columns, rows that are not valid text in the file's
encoding and rows over ``max_row_bytes`` come back as ``RejectedRow`` with their raw text, to be
counted and quarantined, never dropped; a file that cannot be read at all raises one
``ValidationError`` naming it.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import enum
import gzip
import io
import zlib
import itertools
import json
from collections.abc import Iterator
from typing import BinaryIO
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
ROW_TOO_LONG = "row_too_long"
#: The most bytes one row (a CSV record's fields, a JSON line) may take unless the caller says.
MAX_ROW_BYTES = 1 << 20
#: The encoding files are read in unless the caller declares another.
DEFAULT_ENCODING = "utf-8"
# What a broken or truncated gzip stream raises, from Python's gzip or from pyarrow.
_UNREADABLE = (OSError, EOFError, zlib.error, UnicodeError, pa.ArrowInvalid)

# pyarrow's CSV block is this many times the row limit (4 MiB by default): a row up to one block
# always parses, and blocks stay big enough to read fast. Chunks are re-assembled to
# ``chunk_rows`` rows.
_ROWS_PER_BLOCK = 4
# A chunk is cut short once its rows hold this many bytes, so long rows cannot add up unbounded.
_CHUNK_BYTES = 64 << 20
# Whitespace JSON allows around a value.
_JSON_SPACE = b" \t\r\n"
# Characters of an over-long row kept in its quarantine entry.
_PREVIEW_CHARS = 200
# A CSV byte that is not text in the file's encoding reaches pyarrow as the character
# U+10FF00 + byte, from the last private-use block, and its row is quarantined as bad_encoding
# (in a file with such bytes, so is a row that really holds one of those characters). Decoding
# gives it first as the lone surrogate U+DC00 + byte, which no decoder gives for real text.
_MARK_BASE = 0x10FF00
_ESCAPE_BASE = 0xDC00
_MARK_ERRORS = "ringwatch-escape-bytes"
_ESCAPES_TO_MARKS = {_ESCAPE_BASE + b: _MARK_BASE + b for b in range(256)}
_MARKS = f"[{chr(_MARK_BASE)}-{chr(_MARK_BASE + 0xFF)}]"
_MARK_PREFIX = chr(_MARK_BASE).encode("utf-8")[:2]  # every mark's UTF-8 starts with these bytes
_SHOW_MARKS = {_MARK_BASE + b: f"\\x{b:02x}" for b in range(256)}
# Encodings (``codecs`` names) in which ASCII bytes mean the ASCII characters in any context.
_ASCII_SUPERSETS = frozenset({"utf-8", "iso8859-1", "cp1252", "iso8859-15", "cp1250", "cp1251", "ascii"})


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
    """A row the parser could not turn into columns (a CSV row with too few or too many fields,
    a JSON line that is not an object, bytes not valid in the file's encoding, a row over the
    size limit); ``text`` is the raw line."""

    line: int
    reason: str
    detail: str
    text: str


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Up to ``chunk_rows`` source rows. ``frame`` has a 0..n-1 RangeIndex; ``lines[i]`` is the
    source line of ``frame.iloc[i]``. ``rejects`` are unparseable rows met in the same stretch.

    Lines: in a CSV the header is line 1 and the first data row line 2, counted in physical
    lines, also when a quoted value spans several lines or the parser skipped malformed rows; in
    JSON lines the 1-based line of the file; in Parquet the 1-based row number. An empty CSV cell
    is ``""``; the column mapping turns JSON and Parquet values into text where it needs text."""

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


def source_columns(
    path: Path, encoding: str = DEFAULT_ENCODING, max_row_bytes: int = MAX_ROW_BYTES
) -> tuple[str, ...] | None:
    """The file's column names, or None for JSON lines (every line may have its own keys).

    Raises:
        ValidationError: missing or unreadable file, an unknown ``encoding``, or a CSV header
            that is not text in that encoding, names a column twice or is longer than
            ``max_row_bytes``.
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
    return _csv_header(path, encoding, _check_row_limit(max_row_bytes))


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


def read_chunks(
    path: Path, chunk_rows: int = 50_000, encoding: str = DEFAULT_ENCODING, max_row_bytes: int = MAX_ROW_BYTES
) -> Iterator[RawChunk]:
    """Stream ``path`` as chunks of at most ``chunk_rows`` parsed rows (plus any rejects).
    ``encoding``: the text formats' encoding (Parquet text is UTF-8 by definition).
    ``max_row_bytes``: the most bytes one CSV row, JSON line or Parquet row's text and binary
    values may take (a chunk takes at most
    about ``_CHUNK_BYTES`` besides); longer ones are quarantined as ``row_too_long``, a JSON
    line skipped in bounded pieces. A CSV row is quarantined only while the parser can still
    split it (up to ``_ROWS_PER_BLOCK`` times the limit); a longer one stops the file with one
    error naming its line, because pyarrow's streaming parser cannot resume past a row that
    does not fit its block, and finding where the row ends without it would mean parsing CSV
    quoting again in Python.

    Raises:
        ValidationError: missing file, unknown extension or encoding, ``chunk_rows`` or
            ``max_row_bytes`` < 1, a CSV header that names a column twice or is longer than
            ``max_row_bytes``, or a file that cannot be read (raised when the iterator reaches
            the broken part, also a CSV row too long for the parser to split).
    """
    if chunk_rows < 1:
        raise ValidationError("chunk_rows", chunk_rows, "must be at least 1")
    _check_row_limit(max_row_bytes)
    path = _existing(path)
    fmt = detect_format(path)
    check_encoding(encoding)
    if fmt is SourceFormat.CSV:
        return _read_csv(path, chunk_rows, encoding, max_row_bytes)
    if fmt is SourceFormat.PARQUET:
        return _read_parquet(path, chunk_rows, max_row_bytes)
    return _read_jsonl(path, chunk_rows, encoding, max_row_bytes)


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


def _check_row_limit(max_row_bytes: int) -> int:
    if max_row_bytes < 1:
        raise ValidationError("max_row_bytes", max_row_bytes, "must be at least 1")
    return max_row_bytes


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _content_bytes(line: bytes) -> int:
    """Bytes of ``line`` without its line ending (LF or CRLF)."""
    if line.endswith(b"\r\n"):
        return len(line) - 2
    return len(line) - 1 if line.endswith(b"\n") else len(line)


def _preview(raw: bytes) -> str:
    text = _unmarked(raw[: _PREVIEW_CHARS * 4].decode("utf-8", errors="backslashreplace"))
    return text[:_PREVIEW_CHARS] + "..."


def _csv_header(path: Path, encoding: str = DEFAULT_ENCODING, max_row_bytes: int = MAX_ROW_BYTES) -> tuple[str, ...]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            first = f.readline(max_row_bytes + 2)
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"cannot be read: {e}") from e
    if _content_bytes(first) > max_row_bytes:
        raise ValidationError(
            "source", str(path), f"its header line is longer than the limit of {max_row_bytes:,} bytes per row"
        )
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
    try:  # a bare carriage return ends the header, as it ends a row for pyarrow
        header = next(csv.reader(io.StringIO(text, newline="")), None)
    except csv.Error as e:
        raise ValidationError("source", str(path), f"its header cannot be read as CSV: {e}") from e
    if not header:
        return ()
    names = tuple(h.strip() for h in header)
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ValidationError("header", ",".join(header), f"a column of {path} has no name")
        if name in seen:
            raise ValidationError("header", name, f"column named twice in {path}")
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
        text = _unmarked(self.pending.pop(record))
        n = len(_split_csv_line(text))
        detail = f"expected {self.expected} fields, saw {n}"
        return RejectedRow(line=line, reason=BAD_ROW_SHAPE, detail=detail, text=text)


@dataclass(slots=True)
class _CsvPosition:
    record: int = 2  # pyarrow's number of the next record (the header is 1)
    extra: int = 0  # newlines inside quoted values so far: physical line = record + extra


def _split_csv_line(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def _read_csv(
    path: Path, chunk_rows: int, encoding: str = DEFAULT_ENCODING, max_row_bytes: int = MAX_ROW_BYTES
) -> Iterator[RawChunk]:
    names = _csv_header(path, encoding, max_row_bytes)
    if not names:
        return
    invalid = _InvalidRows(len(names))
    pos = _CsvPosition()
    buffered: list[pa.RecordBatch] = []
    buffered_rows = buffered_bytes = 0
    opened = contextlib.ExitStack()  # the file and the text stream over it
    try:
        reader, text = _open_csv(path, names, encoding, max_row_bytes, invalid, opened)
        for batch in _iter_batches(reader, path):
            buffered.append(batch)
            buffered_rows += batch.num_rows
            buffered_bytes += batch.nbytes
            if buffered_rows >= chunk_rows or buffered_bytes >= _CHUNK_BYTES:
                table = pa.Table.from_batches(buffered)
                buffered, buffered_rows, buffered_bytes = [], 0, 0
                for start in range(0, table.num_rows, chunk_rows):
                    yield _csv_chunk(table.slice(start, chunk_rows), pos, invalid, max_row_bytes, encoding, text.marked)
    except _RowTooLong as e:
        # Give the rows before it, then name the line where the parser gave up.
        if buffered_rows:
            yield _csv_chunk(pa.Table.from_batches(buffered), pos, invalid, max_row_bytes, encoding, True)
        rejects = _pending_rejects(invalid, pos)
        if rejects:
            yield RawChunk(pd.DataFrame(columns=list(names), dtype="str"), np.zeros(0, np.int64), rejects)
        raise ValidationError(
            "source",
            str(path),
            f"line {pos.record + pos.extra}: a row longer than the limit of {max_row_bytes:,} bytes (or a quote "
            "that is never closed); the file cannot be read past it",
        ) from e.__cause__
    finally:
        opened.close()
    if buffered_rows:
        yield _csv_chunk(pa.Table.from_batches(buffered), pos, invalid, max_row_bytes, encoding, text.marked)
    rejects = _pending_rejects(invalid, pos)
    if rejects:  # bad rows after the last good one
        yield RawChunk(pd.DataFrame(columns=list(names), dtype="str"), np.zeros(0, np.int64), rejects)


def _open_csv(
    path: Path,
    names: tuple[str, ...],
    encoding: str,
    max_row_bytes: int,
    invalid: _InvalidRows,
    opened: contextlib.ExitStack,
) -> tuple[pa_csv.CSVStreamingReader, _Utf8Reader]:
    """pyarrow's streaming reader over the rows after the header (it parses the first block), and
    the ``_Utf8Reader`` it reads the file through; both are closed with ``opened``.

    Raises:
        _RowTooLong: a row in the first block does not fit it.
        ValidationError: the file cannot be read as CSV.
    """
    try:
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        text = _Utf8Reader(opened.enter_context(opener(path, "rb")), encoding)  # type: ignore[operator]
        reader = pa_csv.open_csv(
            opened.enter_context(io.BufferedReader(text, 1 << 20)),
            # Single-threaded so the parser reports the numbers of bad rows.
            read_options=pa_csv.ReadOptions(
                use_threads=False,
                block_size=_ROWS_PER_BLOCK * max_row_bytes,
                skip_rows=1,
                column_names=list(names),
                encoding="utf8",
            ),
            # Quoted values may hold newlines anywhere, also across a block boundary.
            parse_options=pa_csv.ParseOptions(
                ignore_empty_lines=False, newlines_in_values=True, invalid_row_handler=invalid
            ),
            # Bytes: ``_csv_chunk`` measures rows, then ``_decoded`` makes them text.
            convert_options=pa_csv.ConvertOptions(
                column_types={n: pa.binary() for n in names}, strings_can_be_null=False
            ),
        )
        return reader, text
    except _UNREADABLE as e:
        if _STRADDLING in str(e):
            raise _RowTooLong() from e
        raise ValidationError("source", str(path), f"cannot be read as CSV: {e}") from e


class _Utf8Reader(io.RawIOBase):
    """The bytes of ``raw``, text in ``encoding``, as valid UTF-8, with each byte that is not text
    in ``encoding`` as a mark (see ``_MARK_BASE``). pyarrow gets no invalid UTF-8, which would
    fail the whole file: its own transcoding stops at the first bad byte, and its handler of
    malformed rows cannot take one holding invalid UTF-8. ``marked``: a mark was written, so
    rows must be checked for marks."""

    def __init__(self, raw: BinaryIO, encoding: str) -> None:
        codecs.register_error(_MARK_ERRORS, _escape_bytes)
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors=_MARK_ERRORS)
        self._out = b""
        self._at = 0
        self._done = False
        self.marked = False
        # Encodings where ASCII bytes are those characters and nothing else (not UTF-16, ...).
        self._ascii_safe = codecs.lookup(encoding).name in _ASCII_SUPERSETS

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._at == len(self._out) and not self._done:
            data = self._raw.read(1 << 20)
            self._done = not data
            if self._ascii_safe and data.isascii() and not self._decoder.getstate()[0]:
                self._out = data  # the usual case: plain ASCII needs no decoding
            else:
                text = self._decoder.decode(data, final=self._done)
                try:
                    self._out = text.encode("utf-8")
                except UnicodeEncodeError:  # lone surrogates: bytes that were not text
                    self._out = text.translate(_ESCAPES_TO_MARKS).encode("utf-8")
                    self.marked = True
            self._at = 0
        n = min(len(buffer), len(self._out) - self._at)
        buffer[:n] = memoryview(self._out)[self._at : self._at + n]
        self._at += n
        return n


def _pending_rejects(invalid: _InvalidRows, pos: _CsvPosition) -> tuple[RejectedRow, ...]:
    """The bad rows the parser reported after the last good row read so far."""
    rejects = []
    for record in sorted(invalid.pending):
        rejects.append(invalid.pop(record, record + pos.extra))
        pos.extra += rejects[-1].text.count("\n")
        pos.record = record + 1
    return tuple(rejects)


def _escape_bytes(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each byte that is not text as the lone surrogate U+DC00 + byte."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(chr(_ESCAPE_BASE + b) for b in error.object[error.start : error.end]), error.end


def _unmarked(text: str) -> str:
    """``text`` with marks shown as the bytes they stand for (``\\xe9``)."""
    return text.translate(_SHOW_MARKS)


class _RowTooLong(Exception):
    """pyarrow met a row that does not fit its block; ``__cause__`` is its error."""


# What pyarrow's error says when a row does not fit its block ("straddling object straddles two
# block boundaries"); it has no error type of its own.
_STRADDLING = "straddl"


def _iter_batches(reader: pa_csv.CSVStreamingReader, path: Path) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except _UNREADABLE as e:
            if _STRADDLING in str(e):
                raise _RowTooLong() from e
            raise ValidationError("source", str(path), f"CSV cannot be read past this point: {e}") from e


def _csv_chunk(
    table: pa.Table,
    pos: _CsvPosition,
    invalid: _InvalidRows,
    max_row_bytes: int = MAX_ROW_BYTES,
    encoding: str = DEFAULT_ENCODING,
    marked: bool = True,
) -> RawChunk:
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
    table, lines, too_long = _without_long_rows(table, lines, max_row_bytes)
    rejects.extend(too_long)
    table, lines, bad_text = _decoded(table, lines, encoding, marked)
    rejects.extend(bad_text)
    rejects.sort(key=lambda r: r.line)
    return RawChunk(table.to_pandas(), lines, tuple(rejects))


def _without_long_rows(
    table: pa.Table, lines: np.ndarray, max_row_bytes: int
) -> tuple[pa.Table, np.ndarray, list[RejectedRow]]:
    """Rows whose fields and separators take more than ``max_row_bytes`` bytes become
    ``RejectedRow``s holding the start of the row (quotes around values are not counted)."""
    if table.num_rows == 0 or table.num_columns == 0:
        return table, lines, []
    size = np.full(table.num_rows, table.num_columns - 1, dtype=np.int64)
    for column in table.columns:
        size += pa_compute.binary_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
    long = size > max_row_bytes
    if not long.any():
        return table, lines, []
    rejects = []
    for i in np.flatnonzero(long).tolist():
        start = bytearray()
        for column in table.columns:  # only the first bytes are kept, so stop once there are enough
            start += column[i].as_py() + b","
            if len(start) > _PREVIEW_CHARS * 4:
                break
        detail = f"{int(size[i]):,} bytes, more than the limit of {max_row_bytes:,} per row"
        rejects.append(RejectedRow(int(lines[i]), ROW_TOO_LONG, detail, _preview(bytes(start))))
    keep = np.flatnonzero(~long)
    return table.take(pa.array(keep)), lines[keep], rejects


def _decoded(
    table: pa.Table, lines: np.ndarray, encoding: str = DEFAULT_ENCODING, marked: bool = True
) -> tuple[pa.Table, np.ndarray, list[RejectedRow]]:
    """The byte columns (valid UTF-8, see ``_Utf8Reader``) as text; rows holding a mark, a byte
    that was not text in ``encoding``, become ``RejectedRow``s. Unless ``marked``, no row can
    hold one and the check is skipped."""
    columns = [c.cast(pa.string()) for c in table.columns]
    bad = np.zeros(table.num_rows, dtype=bool)
    if marked and table.num_rows:
        first_error: dict[int, str] = {}
        for name, column in zip(table.column_names, columns, strict=True):
            if not any(_MARK_PREFIX in part.buffers()[2].to_pybytes() for part in column.chunks if part.buffers()[2]):
                continue  # a byte search over the column's data rules out most columns cheaply
            hit = pa_compute.match_substring_regex(column, _MARKS).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(hit & ~bad).tolist():
                value = column[i].as_py()
                at = next(k for k, ch in enumerate(value) if ord(ch) >= _MARK_BASE)
                first_error[i] = _bad_text(encoding, name, len(value[:at].encode()), ord(value[at]) - _MARK_BASE)
            bad |= hit
    text = pa.Table.from_arrays(columns, names=table.column_names)
    if not bad.any():
        return text, lines, []
    rejects = []
    for i in np.flatnonzero(bad).tolist():
        raw = ",".join(text.column(j)[i].as_py() for j in range(text.num_columns))
        rejects.append(RejectedRow(int(lines[i]), BAD_ENCODING, first_error[i], _unmarked(raw)))
    keep = np.flatnonzero(~bad)
    return text.take(pa.array(keep)), lines[keep], rejects


def _bad_text(encoding: str, column: str, at: int, byte: int) -> str:
    """Why a value is not text: its first bad ``byte``, ``at`` bytes into the value."""
    if _is_utf8(encoding):
        return (f"invalid UTF-8 in column {column} at byte {at} of the value (0x{byte:02x}); declare the "
                "file's encoding with --encoding if it is not UTF-8")
    return f"byte 0x{byte:02x} in column {column} is not {encoding} text"


# -- Parquet ------------------------------------------------------------------------------------


def _read_parquet(path: Path, chunk_rows: int, max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[RawChunk]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ValidationError("source", str(path), f"not a readable Parquet file: {e}") from e
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows):
            lines = np.arange(row, row + batch.num_rows, dtype=np.int64)
            row += batch.num_rows
            batch, lines, too_long = _parquet_without_long_rows(batch, lines, max_row_bytes)
            yield RawChunk(batch.to_pandas(), lines, tuple(too_long))
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"Parquet cannot be read past row {row}: {e}") from e


def _parquet_without_long_rows(
    batch: pa.RecordBatch, lines: np.ndarray, max_row_bytes: int
) -> tuple[pa.RecordBatch, np.ndarray, list[RejectedRow]]:
    """The same row limit as a CSV row's, over a Parquet row's text and binary values (numbers
    and timestamps are a few bytes each and not counted): longer rows become ``RejectedRow``s."""
    text = [i for i, f in enumerate(batch.schema) if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]  # fmt: skip
    if not text or batch.num_rows == 0:
        return batch, lines, []
    as_bytes = pa.Table.from_arrays(
        [batch.column(i).cast(pa.large_binary()).fill_null(b"") for i in text], names=[batch.schema.names[i] for i in text]
    )
    _, kept, rejects = _without_long_rows(as_bytes, lines, max_row_bytes)
    if not rejects:
        return batch, lines, []
    keep = np.isin(lines, kept)
    return batch.filter(pa.array(keep)), lines[keep], rejects


# -- JSON lines ---------------------------------------------------------------------------------


def _read_jsonl(
    path: Path, chunk_rows: int, encoding: str = DEFAULT_ENCODING, max_row_bytes: int = MAX_ROW_BYTES
) -> Iterator[RawChunk]:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as f:  # type: ignore[operator]
            line_no = 1
            at_end = False
            utf8 = _is_utf8(encoding)
            while not at_end:
                raw: list[bytes] = []
                numbers: list[int] = []
                too_long: list[RejectedRow] = []
                size = 0
                while len(raw) + len(too_long) < chunk_rows and size < _CHUNK_BYTES:
                    line = f.readline(max_row_bytes + 2)
                    if not line:
                        at_end = True
                        break
                    if line_no == 1 and utf8 and line.startswith(codecs.BOM_UTF8):
                        line = line[len(codecs.BOM_UTF8) :]  # a byte-order mark some editors write first
                    if _content_bytes(line) > max_row_bytes:
                        too_long.append(_skip_long_line(f, line, line_no, max_row_bytes))
                    else:
                        raw.append(line)
                        numbers.append(line_no)
                        size += len(line)
                    line_no += 1
                if raw or too_long:
                    chunk = _jsonl_chunk(raw, np.asarray(numbers, dtype=np.int64), encoding)
                    if too_long:
                        rejects = sorted(chunk.rejects + tuple(too_long), key=lambda r: r.line)
                        chunk = RawChunk(chunk.frame, chunk.lines, tuple(rejects))
                    yield chunk
    except _UNREADABLE as e:
        raise ValidationError("source", str(path), f"cannot be read past this point: {e}") from e


def _skip_long_line(f: io.BufferedIOBase, start: bytes, line_no: int, max_row_bytes: int) -> RejectedRow:
    """Read the rest of an over-long line in bounded pieces, keeping only its start."""
    total = len(start)
    piece = start
    while not piece.endswith(b"\n"):
        piece = f.readline(max(max_row_bytes, 1 << 16))
        if not piece:
            break
        total += len(piece)
    detail = f"a line of {total:,} bytes, more than the limit of {max_row_bytes:,} per row"
    return RejectedRow(line_no, ROW_TOO_LONG, detail, _preview(start))


def _jsonl_chunk(raw: list[bytes], lines: np.ndarray, encoding: str = DEFAULT_ENCODING) -> RawChunk:
    """Parse lines with pyarrow in one go; if any line is broken, parse line by line so only the
    broken ones are rejected. Lines that are not text in ``encoding`` are rejected first.
    ``lines[i]`` is the file's line number of ``raw[i]``."""
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
    # Only lines that open an object go to pyarrow: it crashes the process on a block that starts
    # with a bare ``null`` line, and a line that is not an object is a bad row anyway.
    opens_object = np.fromiter((r.lstrip(_JSON_SPACE).startswith(b"{") for r in raw), dtype=bool, count=len(raw))
    for i in np.flatnonzero(~blank & ~undecodable & ~opens_object).tolist():
        text = raw[i].decode("utf-8").rstrip("\r\n")
        rejects.append(RejectedRow(int(lines[i]), BAD_JSON, _not_an_object(text), text))
    keep = np.flatnonzero(~blank & ~undecodable & opens_object)
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


def _not_an_object(text: str) -> str:
    """Why a JSON line that does not open an object is not a row."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        return f"not JSON: {e.msg} at column {e.colno}"
    return f"not a JSON object: {type(value).__name__}"


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValidationError("source", str(path), "file not found")
    return path
