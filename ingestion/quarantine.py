"""Quarantine files: every row a load rejects, with its line number and the reason.

One CSV per source file per load, ``<quarantine_dir>/<source file name>.quarantine.csv`` (for
example ``events.csv.quarantine.csv``). The name has no timestamp, so re-loading a file replaces
its quarantine file instead of piling up new ones; a load with no bad rows removes a stale one.
Columns: ``line``, ``reason``, ``detail``, then the source row's own columns as read. Rows the
parser could not split into columns have their raw text in ``detail`` after ``raw:``. Lines end
in CRLF (RFC 4180), so a value holding a bare carriage return is quoted and every quarantined
row reads back as one row.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ingestion.readers import RejectedRow

QUARANTINE_SUFFIX = ".quarantine.csv"
META_COLUMNS: tuple[str, ...] = ("line", "reason", "detail")
# Python's csv quotes a value holding any character of the line ending, so "\r" must be in it.
_LINE_END = "\r\n"


def quarantine_path(quarantine_dir: Path, source: Path) -> Path:
    """Where the bad rows of ``source`` go: deterministic, so a re-load overwrites it."""
    return Path(quarantine_dir) / f"{Path(source).name}{QUARANTINE_SUFFIX}"


class QuarantineWriter:
    """Appends bad rows of one source to its quarantine file, opening it on the first bad row.

    Args:
        path: the file (see ``quarantine_path``). An existing file is removed at once: it
            described an earlier load of the same source.
        columns: the source's columns, or None when unknown up front (JSON lines); then the
            columns of the first bad rows are used and later extra keys go into ``detail``.
    """

    def __init__(self, path: Path, columns: Sequence[str] | None) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.counts: Counter[str] = Counter()
        self._opened = False
        self.path.unlink(missing_ok=True)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def write(
        self,
        lines: np.ndarray,
        reasons: np.ndarray,
        details: np.ndarray,
        rows: pd.DataFrame,
        rejects: Sequence[RejectedRow] = (),
    ) -> None:
        """Write bad source ``rows`` (positionally aligned with ``lines``, ``reasons`` and
        ``details``) and rows the parser could not split (raw text into ``detail``), in line
        order."""
        if len(rows) == 0 and not rejects:
            return
        if self.columns is None:
            self.columns = [str(c) for c in rows.columns]
        details = np.asarray(details, dtype=object).copy()
        extra = [c for c in rows.columns if c not in self.columns]
        if extra and len(rows):
            # Keys this file's header has no column for (JSON lines): keep them, in ``detail``.
            kept = rows[extra].astype(object).where(rows[extra].notna(), None)
            for i, record in enumerate(kept.to_dict("records")):
                present = {k: _plain(v) for k, v in record.items() if v is not None}
                if present:
                    details[i] = f"{details[i]}; extra: {json.dumps(present, default=str)}"
        # Positional column labels: a source column may itself be called "line" or "reason".
        width = len(META_COLUMNS) + len(self.columns)
        meta = pd.DataFrame({0: np.asarray(lines, dtype=np.int64), 1: np.asarray(reasons, dtype=object), 2: details})
        body = rows.reindex(columns=self.columns).reset_index(drop=True)
        body.columns = pd.RangeIndex(len(META_COLUMNS), width)
        out = pd.concat([meta, body], axis=1)
        if rejects:
            unsplit = pd.DataFrame(
                {
                    0: np.array([r.line for r in rejects], dtype=np.int64),
                    1: [r.reason for r in rejects],
                    2: [f"{r.detail}; raw: {r.text}" if r.text else r.detail for r in rejects],
                }
            ).reindex(columns=pd.RangeIndex(width))
            out = pd.concat([out, unsplit], ignore_index=True) if len(out) else unsplit
            out = out.iloc[np.argsort(out[0].to_numpy(dtype=np.int64), kind="stable")]
        self._append(out)
        self.counts.update(out[1].tolist())

    def close(self) -> Path | None:
        """The file written, or None when this load had no bad rows."""
        return self.path if self._opened else None

    def _append(self, out: pd.DataFrame) -> None:
        if not self._opened:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8", newline="") as f:
                csv.writer(f, lineterminator=_LINE_END).writerow([*META_COLUMNS, *(self.columns or [])])
            self._opened = True
        out.to_csv(self.path, mode="a", header=False, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator=_LINE_END)


def read_quarantine(path: Path) -> pd.DataFrame:
    """A quarantine file as text columns (for tests and reports)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value
