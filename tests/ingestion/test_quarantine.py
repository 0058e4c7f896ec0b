"""Quarantine files read back row for row, whatever the quarantined values hold."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.quarantine import QuarantineWriter, read_quarantine
from ingestion.readers import RejectedRow


def test_values_with_carriage_returns_newlines_quotes_and_nuls_read_back_as_written(tmp_path: Path) -> None:
    values = ["a\rb", "c\nd", "e\r\nf", 'g"h,i', "j\x00k", "\u2028"]
    writer = QuarantineWriter(tmp_path / "e.csv.quarantine.csv", ["txn_id"])
    writer.write(
        np.arange(2, 2 + len(values)),
        np.array(["bad_id"] * len(values), dtype=object),
        np.array([f"detail {i}" for i in range(len(values))], dtype=object),
        pd.DataFrame({"txn_id": pd.Series(values, dtype="str")}),
        [RejectedRow(20, "bad_row_shape", "expected 1 fields, saw 2", "x\ry,z")],
    )
    path = writer.close()
    assert path is not None and writer.total == len(values) + 1
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["line", "reason", "detail", "txn_id"]
    assert [r[3] for r in rows[1:-1]] == values
    assert rows[-1][:3] == ["20", "bad_row_shape", "expected 1 fields, saw 2; raw: x\ry,z"]
    assert len(read_quarantine(path)) == len(values) + 1
