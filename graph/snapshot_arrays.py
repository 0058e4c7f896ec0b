"""Array builders shared by the SQLite and Neo4j stores' ``snapshot()``: keys to positions, rows to tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from graph.types import EVENT_KINDS, LabelTable, NodeType, TransactionTable, Verdict


def object_array(values: Sequence[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def key_index(keys: Sequence[str]) -> pd.Index:
    return pd.Index(keys, dtype=object)  # object, not pandas' inferred string dtype: exact str keys


def codes(index: pd.Index, values: Sequence[str | None]) -> np.ndarray:
    """Positions of ``values`` in ``index`` (int64); ``None`` or unknown -> -1.

    Factorizes first, so only the distinct values are looked up, not every row."""
    values = object_array(values)
    value_codes, uniques = pd.factorize(values)
    if len(uniques) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    out = index.get_indexer(key_index(uniques)).astype(np.int64)[value_codes]
    out[value_codes < 0] = -1
    return out


_EVENT_INDEX = key_index(list(EVENT_KINDS))


_TXN_COLUMNS = 10


def transaction_table(
    rows: list[tuple], positions: dict[NodeType, pd.Index]
) -> tuple[TransactionTable, Callable[[Sequence[str]], np.ndarray]]:
    """Rows in txn_id order -> (TransactionTable in (ts, txn_id) order, a function mapping
    txn ids to table rows, -1 when unknown)."""
    n = len(rows)
    cols = np.empty((n, _TXN_COLUMNS), dtype=object)  # one C pass, not zip(*rows) in Python
    if n:
        cols[:] = rows
    by_id = cols[:, 0].copy()  # sorted by txn_id (binary order == Python str order)
    ts = cols[:, 1].astype(np.float64)
    order = np.argsort(ts, kind="stable")  # ties keep txn_id order
    row_of_sorted = np.empty(n, dtype=np.int64)
    row_of_sorted[order] = np.arange(n, dtype=np.int64)

    def rows_of(txn_ids: Sequence[str]) -> np.ndarray:
        ids = object_array(txn_ids)
        out = np.full(len(ids), -1, dtype=np.int64)
        if n == 0 or len(ids) == 0:
            return out
        pos = np.minimum(np.searchsorted(by_id, ids), n - 1)
        hit = (by_id[pos] == ids).astype(bool)
        out[hit] = row_of_sorted[pos[hit]]
        return out

    table = TransactionTable(
        txn_id=by_id[order],
        ts=ts[order],
        user=codes(positions[NodeType.USER], cols[order, 2]),
        merchant=codes(positions[NodeType.MERCHANT], cols[order, 3]),
        device=codes(positions[NodeType.DEVICE], cols[order, 4]),
        ip=codes(positions[NodeType.IP], cols[order, 5]),
        amount=cols[order, 6].astype(np.float64),  # None -> NaN
        currency=cols[order, 7],
        event=codes(_EVENT_INDEX, cols[order, 8]).astype(np.int8),
        status=cols[order, 9],
    )
    return table, rows_of


def label_table(rows: list[tuple], locate: Callable[[Sequence[str]], np.ndarray]) -> LabelTable:
    """Winning verdicts (entity_id, label, ts, source) -> LabelTable sorted by position;
    ``locate`` maps entity ids to positions (-1: not in the graph, left out)."""
    n = len(rows)
    cols = np.empty((n, 4), dtype=object)
    if n:
        cols[:] = rows
    pos = locate(cols[:, 0])
    keep = np.flatnonzero(pos >= 0)
    keep = keep[np.argsort(pos[keep], kind="stable")]
    return LabelTable(
        index=pos[keep],
        is_fraud=(cols[keep, 1] == Verdict.FRAUD.value).astype(bool),
        ts=cols[keep, 2].astype(np.float64),
        source=cols[keep, 3],
    )
