"""Readers: formats by extension, chunking, and the source line number of every row."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph.errors import ValidationError
from ingestion.readers import (
    BAD_JSON,
    BAD_ROW_SHAPE,
    EMPTY_ROW,
    SourceFormat,
    detect_format,
    read_chunks,
    read_table,
    source_columns,
    source_rows,
)


def _rows_and_lines(path: Path, chunk_rows: int = 50_000) -> tuple[list[list[str]], list[int], list[tuple[int, str]]]:
    rows: list[list[str]] = []
    lines: list[int] = []
    rejects: list[tuple[int, str]] = []
    for chunk in read_chunks(path, chunk_rows=chunk_rows):
        assert len(chunk.frame) == len(chunk.lines)
        assert len(chunk.frame) <= chunk_rows
        rows.extend(chunk.frame.astype(str).values.tolist())
        lines.extend(chunk.lines.tolist())
        rejects.extend((r.line, r.reason) for r in chunk.rejects)
    return rows, lines, rejects


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", SourceFormat.CSV), ("a.CSV.gz", SourceFormat.CSV), ("a.parquet", SourceFormat.PARQUET),
     ("a.jsonl", SourceFormat.JSONL), ("a.ndjson.gz", SourceFormat.JSONL)],
)
def test_detect_format_by_extension(name: str, fmt: SourceFormat) -> None:
    assert detect_format(Path(name)) is fmt


@pytest.mark.parametrize("name", ["a.txt", "a", "a.parquet.gz", "a.json"])
def test_unknown_extension_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="source"):
        detect_format(Path(name))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="nope.csv"):
        list(read_chunks(tmp_path / "nope.csv"))


@pytest.mark.parametrize("chunk_rows", [50_000, 2, 1])
def test_csv_keeps_physical_line_numbers(tmp_path: Path, chunk_rows: int) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "a,b,c\n"          # 1 header
        "1,x,2\n"          # 2
        "\n"               # 3 blank line: a row of empty cells
        "2,y\n"            # 4 too few fields
        "3,z,4,5\n"        # 5 too many fields
        '4,"q\nr",6\n'     # 6-7 quoted value over two lines
        "5,w,7\n"          # 8
        "6,v,8\n"          # 9
        "7,u\n",           # 10 too few fields, last line
        encoding="utf-8",
    )
    rows, lines, rejects = _rows_and_lines(path, chunk_rows)
    assert lines == [2, 3, 6, 8, 9]
    assert rows[0] == ["1", "x", "2"]
    assert rows[1] == ["", "", ""]
    assert rows[2] == ["4", "q\nr", "6"]
    assert rejects == [(4, BAD_ROW_SHAPE), (5, BAD_ROW_SHAPE), (10, BAD_ROW_SHAPE)]


def test_csv_cells_are_text_exactly_as_written(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("id,amount,addr\n007,1.50,\n", encoding="utf-8")
    (chunk,) = read_chunks(path)
    assert chunk.frame.iloc[0].tolist() == ["007", "1.50", ""]


def test_csv_gz_and_header_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "e.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\ufeffa,b\n1,2\n3,4\n")
    assert source_columns(path) == ("a", "b")
    rows, lines, _ = _rows_and_lines(path)
    assert rows == [["1", "2"], ["3", "4"]] and lines == [2, 3]


def test_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("a,b,a\n1,2,3\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"'a'.*named twice in .*e\.csv"):
        list(read_chunks(path))
    path.write_text("a,\t\n1,2\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"a column of .*e\.csv has no name"):
        list(read_chunks(path))


def test_empty_csv_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("", encoding="utf-8")
    assert list(read_chunks(path)) == []
    assert source_columns(path) == ()


def test_jsonl_lines_and_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"a": "1", "b": 2}\n'    # 1
        "\n"                      # 2 blank
        '{"a": "2", "b": \n'      # 3 broken
        "[1, 2]\n"                # 4 not an object
        '{"a": "3"}\n',           # 5 key b missing
        encoding="utf-8",
    )
    rows, lines, rejects = _rows_and_lines(path)
    assert lines == [1, 5]
    assert rejects == [(2, EMPTY_ROW), (3, BAD_JSON), (4, BAD_JSON)]
    assert source_columns(path) is None


@pytest.mark.parametrize("chunk_rows", [50_000, 2])
def test_jsonl_fast_path_line_numbers(tmp_path: Path, chunk_rows: int) -> None:
    path = tmp_path / "e.ndjson"
    path.write_text("".join(f'{{"i": {i}, "s": "v{i}"}}\n' for i in range(5)), encoding="utf-8")
    chunks = list(read_chunks(path, chunk_rows=chunk_rows))
    frame = pd.concat([c.frame for c in chunks], ignore_index=True)
    assert np.concatenate([c.lines for c in chunks]).tolist() == [1, 2, 3, 4, 5]
    assert frame["s"].tolist() == [f"v{i}" for i in range(5)]


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"a": list(range(7)), "b": [f"x{i}" for i in range(7)]}), path)
    assert source_rows(path) == 7
    assert source_columns(path) == ("a", "b")
    rows, lines, _ = _rows_and_lines(path, chunk_rows=3)
    assert lines == [1, 2, 3, 4, 5, 6, 7]
    assert rows[6] == ["6", "x6"]


def test_read_table_concatenates_chunks(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("k,v\n" + "".join(f"{i},{i * 2}\n" for i in range(10)), encoding="utf-8")
    table = read_table(path)
    assert len(table.frame) == 10 and table.lines.tolist() == list(range(2, 12))


def test_chunk_rows_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="chunk_rows"):
        list(read_chunks(path, chunk_rows=0))


def test_csv_with_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n3\r\n4,5\r\n")
    rows, lines, rejects = _rows_and_lines(path)
    assert rows == [["1", "2"], ["4", "5"]]
    assert lines == [2, 4] and rejects == [(3, BAD_ROW_SHAPE)]


def test_quoted_newlines_across_the_parser_s_blocks(tmp_path: Path) -> None:
    """A quoted value holding a newline may fall on a block boundary of pyarrow's parser (blocks
    are four row limits long: 64 bytes here)."""
    path = tmp_path / "e.csv"
    path.write_text("a,b\n" + "".join(f'{i},"x\ny{i}"\n' if i % 3 == 0 else f"{i},p{i}\n" for i in range(60)))
    chunks = list(read_chunks(path, chunk_rows=7, max_row_bytes=16))
    values = [v for c in chunks for v in c.frame["b"].tolist()]
    assert values == [f"x\ny{i}" if i % 3 == 0 else f"p{i}" for i in range(60)]
    lines = np.concatenate([c.lines for c in chunks]).tolist()
    expected, line = [], 2
    for i in range(60):
        expected.append(line)
        line += 2 if i % 3 == 0 else 1
    assert lines == expected and not any(c.rejects for c in chunks)


@pytest.mark.parametrize("name", ["e.jsonl", "e.jsonl.gz"])
def test_jsonl_starting_with_a_byte_order_mark(tmp_path: Path, name: str) -> None:
    data = b'\xef\xbb\xbf{"a": "1"}\n{"a": "2"}\n\xef\xbb\xbf{"a": "3"}\n'
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    rows, lines, rejects = _rows_and_lines(path)
    assert rows == [["1"], ["2"]] and lines == [1, 2]
    assert rejects == [(3, BAD_JSON)]  # only the file's first bytes may be a byte-order mark


@pytest.mark.parametrize("first", [b"null", b" null\r", b"5", b'"text"', b"[{}]", b"nul"])
def test_json_lines_that_are_not_objects_are_bad_rows_also_first_in_a_chunk(tmp_path: Path, first: bytes) -> None:
    """pyarrow's JSON reader crashes the process on a block starting with a ``null`` line; such
    lines never reach it."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(first + b'\n{"a": "1"}\nnull\n{"a": "2"}\n')
    for chunk_rows in (50_000, 1):
        rows, lines, rejects = _rows_and_lines(path, chunk_rows)
        assert rows == [["1"], ["2"]] and lines == [2, 4]
        assert rejects == [(1, BAD_JSON), (3, BAD_JSON)]


def test_a_bare_carriage_return_ends_the_header_as_it_ends_a_row(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(b"a\rb\n1\n")
    assert source_columns(path) == ("a",)
    rows, lines, rejects = _rows_and_lines(path)
    assert rows == [["b"], ["1"]] and rejects == []
