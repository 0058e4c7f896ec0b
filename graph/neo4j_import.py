"""Files for Neo4j's offline importer (``neo4j-admin database import full``), in the graph model of
``Neo4jGraphStore`` (DESIGN §4; see ``graph/neo4j_cypher.py``).

``Neo4jImportWriter`` is an ``EventSink``: ``ingestion.loader.load_events`` writes into it exactly as
it writes into a store (same reading, mapping, validation, dedupe and quarantine), and it turns the
validated events into the importer's CSV files instead of transactions:

- nodes: ``users.csv``, ``devices.csv``, ``ips.csv``, ``merchants.csv`` (the key is the ``:ID`` of an
  id space per label, stored as the key property), ``verdicts.csv``;
- relationships: ``transacted.csv`` and ``acted.csv`` (one row per event, written as batches
  arrive), and ``used_device.csv``, ``used_ip.csv``, ``seen_at.csv`` with ``{first_seen, last_seen,
  count}`` aggregated over the whole load, as the Bolt path's MERGE leaves them.

Files are written by pyarrow's CSV writer: text always quoted (quotes doubled), numbers bare,
absent values as an empty unquoted field, which the importer leaves unset, as on the Bolt path
(``--ignore-empty-strings`` too: validation never keeps an empty string).
Constraints, indexes and the schema record are not in the files: opening a ``Neo4jGraphStore`` on
the imported database creates them, as it does on an empty one.

``admin_arguments`` gives the importer's command line for the files. The writer holds the distinct
keys and link pairs in memory (not the events), so memory grows with the graph's nodes and links.
Each batch is converted to Arrow once; keys are deduplicated and links aggregated with Arrow's
own kernels (``pc.unique``, ``Table.group_by``) rather than pandas' groupby on Python strings, which
took most of the writer's time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from graph import neo4j_cypher as cy
from graph.errors import StoreError, ValidationError
from graph.types import EVENT_KINDS, Event, EventBatch, Label, LabelEntity, NodeType, UpsertResult, Verdict

#: Node files: file name, label, header (the key column is the label's ``:ID`` space).
NODE_FILES: dict[NodeType, tuple[str, str]] = {
    t: (f"{name}.csv", label)
    for t, name, label in (
        (NodeType.USER, "users", "User"),
        (NodeType.DEVICE, "devices", "Device"),
        (NodeType.IP, "ips", "IP"),
        (NodeType.MERCHANT, "merchants", "Merchant"),
    )
}
VERDICTS_FILE = "verdicts.csv"
_TEXT, _DOUBLE, _LONG = pa.string(), pa.float64(), pa.int64()
#: Event properties after the start and end ids (header, column type).
_EVENT_HEADER = (("txn_id", _TEXT), ("ts:double", _DOUBLE), ("device_id", _TEXT), ("ip", _TEXT),
                 ("amount:double", _DOUBLE), ("currency", _TEXT), ("event", _TEXT), ("status", _TEXT))  # fmt: skip
_LINK_HEADER = (("first_seen:double", _DOUBLE), ("last_seen:double", _DOUBLE), ("count:long", _LONG))
_VERDICT_HEADER = (("vid:ID(Verdict)", _TEXT), ("entity", _TEXT), ("entity_id", _TEXT), ("label", _TEXT),
                   ("ts:double", _DOUBLE), ("source", _TEXT))  # fmt: skip
_CSV = pa_csv.WriteOptions(include_header=True, quoting_style="needed")  # "needed" still quotes all text
#: Relationship files: type -> (file name, start id space, end id space, property header).
REL_FILES: dict[str, tuple[str, str, str, tuple[tuple[str, pa.DataType], ...]]] = {
    "TRANSACTED": ("transacted.csv", "User", "Merchant", _EVENT_HEADER),
    "ACTED": ("acted.csv", "User", "User", _EVENT_HEADER),
    "USED_DEVICE": ("used_device.csv", "User", "Device", _LINK_HEADER),
    "USED_IP": ("used_ip.csv", "User", "IP", _LINK_HEADER),
    "SEEN_AT": ("seen_at.csv", "Device", "IP", _LINK_HEADER),
}
_LINK_COLUMNS = ("src", "dst", "first", "last", "count")
_LINK_SCHEMA = pa.schema([("src", _TEXT), ("dst", _TEXT), ("first", _DOUBLE), ("last", _DOUBLE), ("count", _LONG)])
_KINDS = pa.array(EVENT_KINDS, type=_TEXT)
#: Partial keys and link aggregates are merged once this many rows came in since the last merge
#: (memory stays within the merged graph plus this many rows).
_MERGE_EVERY = 2_000_000


@dataclass(frozen=True, slots=True)
class ImportFiles:
    """The files one load wrote, with what they hold."""

    directory: Path
    nodes: dict[str, int]  # label -> rows
    relationships: dict[str, int]  # type -> rows
    verdicts: int
    multiline: bool  # some value holds a line break (the importer must parse multi-line fields)

    @property
    def events(self) -> int:
        return self.relationships["TRANSACTED"] + self.relationships["ACTED"]


def file_names() -> list[str]:
    """Every file name a writer creates."""
    return [name for name, _label in NODE_FILES.values()] + [VERDICTS_FILE] + [f[0] for f in REL_FILES.values()]


def admin_arguments(files: ImportFiles, database: str = "neo4j", *, max_off_heap: str | None = None) -> list[str]:
    """The arguments of ``neo4j-admin`` that import ``files`` into ``database``, replacing it
    (``--overwrite-destination``: the caller checks first that it holds no data)."""
    d = files.directory.resolve()
    # The database comes first: --nodes and --relationships take any number of values, so a
    # name after them would be read as one more file.
    args = [
        "database", "import", "full", database,
        "--overwrite-destination=true",
        "--id-type=string",
        "--ignore-empty-strings=true",
        f"--multiline-fields={'true' if files.multiline else 'false'}",
        f"--report-file={d / 'import.report'}",
    ]  # fmt: skip
    if max_off_heap:
        args.append(f"--max-off-heap-memory={max_off_heap}")
    for name, label in NODE_FILES.values():
        args.append(f"--nodes={label}={d / name}")
    args.append(f"--nodes=Verdict={d / VERDICTS_FILE}")
    for rel, (name, *_rest) in REL_FILES.items():
        args.append(f"--relationships={rel}={d / name}")
    return args


class Neo4jImportWriter:
    """An ``EventSink`` that writes the importer's files under ``directory`` (created; files of
    an earlier run there are replaced). Call ``close()`` once the load is over: it writes the
    node, verdict and link files and returns what was written.

    It stands for an empty database: ``has_events()`` is False and nothing is stored before, so
    the loader's own dedupe (first row of a ``txn_id`` wins, repeats are counted or quarantined)
    is all there is. Keeping every ``txn_id`` here too would cost memory per event; a repeat that
    got through anyway would make the ``txn_id`` uniqueness constraint fail after the import.
    """

    backend = "neo4j-import"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._keys: dict[NodeType, list[pa.Array]] = {t: [] for t in NODE_FILES}  # distinct per part
        self._verdicts: dict[str, list[Any]] = {}
        self._links: dict[str, list[pa.Table]] = {rel: [] for rel in ("USED_DEVICE", "USED_IP", "SEEN_AT")}
        self._pending = 0  # key and link rows added since the last merge
        self._counts = {"TRANSACTED": 0, "ACTED": 0}
        self._multiline = False
        self._writers = {rel: self._open(rel) for rel in ("TRANSACTED", "ACTED")}
        self._closed: ImportFiles | None = None

    def _open(self, rel: str) -> pa_csv.CSVWriter:
        name, _start, _end, _header = REL_FILES[rel]
        return pa_csv.CSVWriter(str(self.directory / name), _rel_schema(rel), write_options=_CSV)

    # -- EventSink ------------------------------------------------------------------------

    def has_events(self) -> bool:
        return False

    def stored_events(self, txn_ids: Sequence[str]) -> dict[str, Event]:
        return {}

    def upsert_events(self, events: Sequence[Event]) -> UpsertResult:
        if not events:
            return UpsertResult(inserted=0, duplicates=0)
        return self.upsert_batch(_as_batch(events))

    def upsert_batch(self, batch: EventBatch) -> UpsertResult:
        """Write one batch of validated events with distinct ``txn_id``s.

        Raises:
            StoreError: the writer is closed.
        """
        if self._closed is not None:
            raise StoreError(f"import files in {self.directory}: the writer is closed")
        n = len(batch)
        if not n:
            return UpsertResult(inserted=0, duplicates=0)
        columns = _arrow_columns(batch)  # converted once, shared by events, keys and links
        self._add_keys(columns)
        self._write_events(columns)
        self._add_links(columns)
        if self._pending >= _MERGE_EVERY:
            self._merge()
        return UpsertResult(inserted=n, duplicates=0)

    def upsert_labels(self, labels: Sequence[Label]) -> int:
        """Keep verdicts (identity as in ``Neo4jGraphStore``); returns how many were new."""
        new = 0
        for lb in labels:
            try:
                entity, verdict, ts = LabelEntity(lb.entity).value, Verdict(lb.label).value, float(lb.ts)
            except (ValueError, TypeError) as e:
                raise ValidationError("label", lb, str(e)) from e
            vid = json.dumps([entity, lb.entity_id, ts, verdict, lb.source])
            if vid not in self._verdicts:
                self._verdicts[vid] = [vid, entity, lb.entity_id, verdict, ts, lb.source]
                new += 1
        return new

    # -- writing --------------------------------------------------------------------------

    def _add_keys(self, c: dict[str, pa.Array]) -> None:
        for t, name in ((NodeType.USER, "user_id"), (NodeType.DEVICE, "device_id"), (NodeType.IP, "ip"),
                        (NodeType.MERCHANT, "merchant_id")):  # fmt: skip
            keys = pc.unique(c[name].drop_null())
            self._keys[t].append(keys)
            self._pending += len(keys)

    def _write_events(self, c: dict[str, pa.Array]) -> None:
        for name in ("currency", "status"):
            self._multiline = self._multiline or bool(pc.any(pc.match_substring_regex(c[name], "[\r\n]")).as_py())
        paid = pc.is_valid(c["merchant_id"])
        props = [c[name] for name in ("txn_id", "ts", "device_id", "ip", "amount", "currency", "event", "status")]
        for rel, rows, end in (("TRANSACTED", paid, "merchant_id"), ("ACTED", pc.invert(paid), "user_id")):
            table = pa.Table.from_arrays([c["user_id"], c[end], *props], schema=_rel_schema(rel)).filter(rows)
            if table.num_rows:
                self._writers[rel].write_table(table)
                self._counts[rel] += table.num_rows

    def _add_links(self, c: dict[str, pa.Array]) -> None:
        has_device, has_ip = pc.is_valid(c["device_id"]), pc.is_valid(c["ip"])
        ones = pa.array(np.ones(len(c["ts"]), dtype=np.int64))
        pairs = (
            ("USED_DEVICE", has_device, "user_id", "device_id"),
            ("USED_IP", has_ip, "user_id", "ip"),
            ("SEEN_AT", pc.and_(has_device, has_ip), "device_id", "ip"),
        )
        for rel, rows, src, dst in pairs:
            part = pa.Table.from_arrays([c[src], c[dst], c["ts"], c["ts"], ones], names=list(_LINK_COLUMNS)).filter(rows)
            if part.num_rows:
                self._links[rel].append(_aggregate([part]))
                self._pending += self._links[rel][-1].num_rows

    def _merge(self) -> None:
        """Fold the partial keys and link aggregates into one each (bounds memory between merges)."""
        for t, parts in self._keys.items():
            self._keys[t] = [_unique(parts)]
        for rel, links in self._links.items():
            self._links[rel] = [_aggregate(links)] if links else []
        self._pending = 0

    def close(self) -> ImportFiles:
        """Finish the event files and write the node, verdict and link files (once)."""
        if self._closed is not None:
            return self._closed
        for writer in self._writers.values():
            writer.close()
        nodes: dict[str, int] = {}
        for t, (name, label) in NODE_FILES.items():
            keys = _unique(self._keys[t])
            keys = keys.take(pc.array_sort_indices(keys))  # code-point order, as Python sorts str
            schema = pa.schema([(f"{cy.NODE_LABELS[t][1]}:ID({label})", _TEXT)])
            _write(self.directory / name, pa.Table.from_arrays([keys], schema=schema))
            nodes[label] = len(keys)
        rows = [self._verdicts[v] for v in sorted(self._verdicts)]
        verdicts = [np.array([r[i] for r in rows], dtype=object if i != 4 else np.float64) for i in range(6)]
        _write(self.directory / VERDICTS_FILE, _table(pa.schema(list(_VERDICT_HEADER)), verdicts))
        rels = dict(self._counts)
        for rel, links in self._links.items():
            merged = _aggregate(links) if links else _LINK_SCHEMA.empty_table()
            _write(self.directory / REL_FILES[rel][0], pa.Table.from_arrays(merged.columns, schema=_rel_schema(rel)))
            rels[rel] = merged.num_rows
        self._closed = ImportFiles(
            directory=self.directory,
            nodes={**nodes, "Verdict": len(self._verdicts)},
            relationships=rels,
            verdicts=len(self._verdicts),
            multiline=self._multiline,
        )
        return self._closed


def _rel_schema(rel: str) -> pa.Schema:
    _name, start, end, header = REL_FILES[rel]
    return pa.schema([(f":START_ID({start})", _TEXT), (f":END_ID({end})", _TEXT), *header])


def _table(schema: pa.Schema, columns: Sequence[np.ndarray]) -> pa.Table:
    """Columns as an Arrow table of ``schema``: None (text) and NaN (numbers) become nulls."""
    return pa.table([pa.array(c, type=f.type, from_pandas=True) for c, f in zip(columns, schema, strict=True)],
                    schema=schema)  # fmt: skip


def _write(path: Path, table: pa.Table) -> None:
    pa_csv.write_csv(table, str(path), write_options=_CSV)


def _arrow_columns(batch: EventBatch) -> dict[str, pa.Array]:
    """The batch's columns as Arrow arrays (None and NaN become nulls), ``event`` as its kind."""
    text = ("txn_id", "user_id", "device_id", "ip", "merchant_id", "currency", "status")
    columns = {name: pa.array(getattr(batch, name), type=_TEXT, from_pandas=True) for name in text}
    columns["ts"] = pa.array(batch.ts, type=_DOUBLE)
    columns["amount"] = pa.array(batch.amount, type=_DOUBLE, from_pandas=True)
    columns["event"] = _KINDS.take(pa.array(batch.event.astype(np.int32)))
    return columns


def _unique(parts: list[pa.Array]) -> pa.Array:
    return pc.unique(pa.concat_arrays(parts)) if parts else pa.array([], type=_TEXT)


def _aggregate(parts: list[pa.Table]) -> pa.Table:
    """One row per (src, dst) over ``parts``: earliest first, latest last, summed count (groups in
    order of first appearance: ``use_threads=False``)."""
    links = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    out = links.group_by(["src", "dst"], use_threads=False).aggregate([("first", "min"), ("last", "max"), ("count", "sum")])
    return pa.Table.from_arrays([out[name] for name in ("src", "dst", "first_min", "last_max", "count_sum")], schema=_LINK_SCHEMA)


def _as_batch(events: Sequence[Event]) -> EventBatch:
    def text(name: str) -> np.ndarray:
        return np.array([getattr(e, name) for e in events], dtype=object)

    return EventBatch(
        txn_id=text("txn_id"),
        ts=np.array([e.ts for e in events], dtype=np.float64),
        user_id=text("user_id"),
        device_id=text("device_id"),
        ip=text("ip"),
        merchant_id=text("merchant_id"),
        amount=np.array([np.nan if e.amount is None else e.amount for e in events], dtype=np.float64),
        currency=text("currency"),
        event=np.array([EVENT_KINDS.index(e.event.value) for e in events], dtype=np.int8),
        status=text("status"),
    )
