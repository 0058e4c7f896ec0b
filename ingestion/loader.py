"""Load event and label files into a ``GraphStore``: read -> map -> validate -> dedupe -> batch.

``load_events`` puts every row read in exactly one of three counts, checked at the end of each
load (``LoadSummary``): loaded, duplicates, quarantined. Every step works on whole columns, and
good rows reach the target as an ``EventBatch``, so no ``Event`` object is built on the way. The
target is any ``EventSink`` (``graph.store``): a store, or the files of Neo4j's offline importer
(``graph.neo4j_import``, for ``ringwatch neo4j import``), so both go through this one path.
``store_events`` is the one write of validated events into a store, with its counts checked:
file loads call it per batch, and so does the API's journal loader (``api.journal``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from graph.errors import RingwatchError, StoreError, ValidationError
from graph.store import EventSink
from graph.types import EVENT_KINDS, Event, EventBatch, Label, LabelEntity, UpsertResult, Verdict
from ingestion.mapping import ColumnMapping, JoinSpec, LabelSpec, as_text, label_values
from ingestion.quarantine import QuarantineWriter, quarantine_path
from ingestion.readers import (
    DEFAULT_ENCODING,
    MAX_ROW_BYTES,
    RawChunk,
    read_chunks,
    read_table,
    source_columns,
    source_rows,
)
from ingestion.validate import (
    BAD_LABEL,
    DUPLICATE_TXN_ID_CONFLICT,
    IpCache,
    ValidatedEvents,
    batch_digests,
    validate_events,
    validate_labels,
)

LABEL_COLUMNS: tuple[str, ...] = ("entity", "entity_id", "label", "ts", "source")
_LABEL_BATCH = 50_000
_VERDICT_OF = np.array([Verdict.LEGIT, Verdict.FRAUD], dtype=object)  # indexed by is_fraud


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What one ``load_events`` call did. ``read == loaded + duplicates + quarantined``:
    ``loaded`` the new events the store inserted; ``duplicates`` repeats of a transaction
    already seen, earlier in this load with the very same content or already in the store (so
    a re-load of the same file loads 0); ``quarantined`` bad rows, written to the quarantine
    file with line, reason and detail.

    ``quarantine_file`` is the first quarantine file written (one per source file with bad rows;
    all of them in ``quarantine_files``). ``labels_loaded`` counts new verdicts derived through
    ``ColumnMapping.labels``."""

    source: str
    read: int
    loaded: int
    duplicates: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    quarantine_file: Path | None
    seconds: float
    quarantine_files: tuple[Path, ...] = ()
    labels_loaded: int = 0

    @property
    def events_per_second(self) -> float:
        """Rows handled per second, end to end (read, validate, write to the store)."""
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def render(self) -> str:
        """A few lines for people: counts, reasons, where the bad rows went."""
        out = [
            f"ingested {self.source}: read {self.read:,} rows in {self.seconds:.2f} s "
            f"({self.events_per_second:,.0f} rows/s)",
            f"  loaded      {self.loaded:>12,}",
            f"  duplicates  {self.duplicates:>12,}",
            f"  quarantined {self.quarantined:>12,}",
        ]
        for reason, n in sorted(self.quarantined_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"    {reason:<27} {n:>8,}")
        if self.labels_loaded:
            out.append(f"  labels loaded {self.labels_loaded:>10,}")
        for path in self.quarantine_files:
            out.append(f"  quarantine file: {path}")
        return "\n".join(out)


@dataclass(frozen=True, slots=True)
class LabelLoadSummary:
    """What one ``load_labels`` call did. ``read == loaded + duplicates + quarantined``, where
    ``loaded`` counts verdicts new to the store and ``duplicates`` ones it already held."""

    source: str
    read: int
    loaded: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    quarantine_file: Path | None
    duplicates: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        out = [
            f"labels {self.source}: read {self.read:,}, loaded {self.loaded:,}, "
            f"duplicates {self.duplicates:,}, quarantined {self.quarantined:,}"
        ]
        for reason, n in sorted(self.quarantined_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"    {reason:<27} {n:>8,}")
        if self.quarantine_file:
            out.append(f"  quarantine file: {self.quarantine_file}")
        return "\n".join(out)


# -- events ---------------------------------------------------------------------------------------


def store_events(store: EventSink, events: EventBatch | Sequence[Event]) -> UpsertResult:
    """Write validated events into ``store`` in one upsert and check what it answered: every
    event is either inserted or a duplicate of a stored ``txn_id`` (idempotent, so a replay
    changes nothing). An ``EventBatch`` goes through ``GraphStore.upsert_batch``, ``Event``
    objects through ``GraphStore.upsert_events``.

    Raises:
        StoreError: the store failed, or its counts do not add up to the events given.
    """
    result = store.upsert_batch(events) if isinstance(events, EventBatch) else store.upsert_events(events)
    if result.inserted + result.duplicates != len(events):
        raise StoreError(
            f"store {store.backend!r} answered inserted={result.inserted} + "
            f"duplicates={result.duplicates} for a batch of {len(events)} events"
        )
    return result


def load_events(
    source: Path | Sequence[Path],
    store: EventSink,
    *,
    mapping: ColumnMapping | None = None,
    quarantine_dir: Path,
    batch_size: int = 50_000,
    progress: bool = False,
    encoding: str = DEFAULT_ENCODING,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> LoadSummary:
    """Validate event files and upsert their good rows into ``store`` in batches.

    Args:
        source: one file or several (CSV, ``.csv.gz``, Parquet, JSON lines), loaded in order as
            one load (a ``txn_id`` repeated across them is a duplicate or a conflict).
        store: where events go; its upsert is idempotent, so re-loading changes nothing.
            Within one load the first good row of a ``txn_id`` wins; a later row with the same
            ``txn_id`` but other content is quarantined as ``duplicate_txn_id_conflict``, and so
            is a row whose ``txn_id`` the store held before the load with other content (an
            identical one is a duplicate).
        mapping: how the files' columns become canonical ones (default: they already are).
        quarantine_dir: where ``<file name>.quarantine.csv`` files go (created when needed).
        batch_size: rows per read chunk and events per ``store.upsert_events`` call.
        progress: show a tqdm progress bar.
        encoding: the text files' encoding (rows that are not valid text in it are quarantined).
        max_row_bytes: the most bytes one row may take (longer ones are quarantined as
            ``row_too_long``; see ``ingestion.readers`` for a CSV row far over it).

    Raises:
        ValidationError: a missing, unknown or unreadable file, an unknown ``encoding``,
            ``batch_size`` < 1, or a source whose
            columns cannot feed the mapping (checked for every file before anything is loaded).
            A file that breaks off part-way raises once every row read before the break is
            stored or quarantined; the error says how many.
        StoreError: the store failed, or reported counts that do not add up.
    """
    sources = _as_paths(source)
    if batch_size < 1:
        raise ValidationError("batch_size", batch_size, "must be at least 1")
    names = [s.name for s in sources]
    for name in names:
        if names.count(name) > 1:
            raise ValidationError("source", name, "two files of one load share this name, and so a quarantine file")
    mapping = mapping or ColumnMapping()
    started = time.perf_counter()
    schemas: list[tuple[str, ...] | None] = []
    for src in sources:
        columns = source_columns(src, encoding, max_row_bytes)
        schemas.append(columns)
        if columns is not None:
            joined = tuple(columns) + tuple(c for j in mapping.joins for c in _join_columns(j, src))
            mapping.check_columns(joined, src.name)

    run = _EventLoad(store, mapping, batch_size)
    writers: list[QuarantineWriter] = []
    totals = [source_rows(s) for s in sources]
    total = sum(t for t in totals if t is not None) if all(t is not None for t in totals) else None
    with tqdm(total=total, unit="rows", desc="ingest", disable=not progress) as bar:
        try:
            for src, columns in zip(sources, schemas):
                sides = [_SideTable.load(j, src) for j in mapping.joins]
                writer = QuarantineWriter(quarantine_path(quarantine_dir, src), columns)
                writers.append(writer)
                for chunk in read_chunks(src, chunk_rows=batch_size, encoding=encoding, max_row_bytes=max_row_bytes):
                    run.process(chunk, sides, writer)
                    bar.update(chunk.rows_read)
        except ValidationError as e:
            # A file that breaks off part-way (a truncated gzip, say): every row read before the
            # break is stored or quarantined, as full batches before it already were, and the
            # error says how far the load got.
            run.finish()
            raise ValidationError(e.field, e.value, f"{e.reason}; {_stopped(run, writers)}") from e
        run.finish()

    quarantined = sum(w.total for w in writers)
    by_reason: dict[str, int] = {}
    for w in writers:
        for reason, n in w.counts.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    files = tuple(p for p in (w.close() for w in writers) if p is not None)
    summary = LoadSummary(
        source=", ".join(s.name for s in sources),
        read=run.read,
        loaded=run.inserted,
        duplicates=run.in_load_duplicates + run.store_duplicates,
        quarantined=quarantined,
        quarantined_by_reason=dict(sorted(by_reason.items())),
        quarantine_file=files[0] if files else None,
        seconds=time.perf_counter() - started,
        quarantine_files=files,
        labels_loaded=run.labels_loaded,
    )
    if summary.read != summary.loaded + summary.duplicates + summary.quarantined:
        raise RingwatchError(
            f"load of {summary.source} does not add up: read {summary.read} != loaded {summary.loaded} "
            f"+ duplicates {summary.duplicates} + quarantined {summary.quarantined}"
        )
    return summary


def _stopped(run: _EventLoad, writers: Sequence[QuarantineWriter]) -> str:
    """What a load that stopped at a broken file did with the rows it read before it."""
    quarantined = sum(w.total for w in writers)
    files = [str(p) for p in (w.close() for w in writers) if p is not None]
    where = f" (in {', '.join(files)})" if files else ""
    return (
        f"the load stopped there, after {run.read:,} rows: {run.inserted:,} events stored, "
        f"{run.in_load_duplicates + run.store_duplicates:,} duplicates, {quarantined:,} rows quarantined{where}; "
        "load the mended file again: events already stored count as duplicates"
    )


class _EventLoad:
    """The running state of one ``load_events`` call across its files and chunks."""

    def __init__(self, store: EventSink, mapping: ColumnMapping, batch_size: int) -> None:
        self.store = store
        self.mapping = mapping
        self.batch_size = batch_size
        self.ip_cache = IpCache()
        self.seen = _SeenTxns()  # txn ids of this load -> content digest of the row that won
        self.pending: list[EventBatch] = []
        self.pending_rows = 0
        self.labels = _LabelCollector(store, mapping.labels)
        self.read = 0
        self.inserted = 0
        self.store_duplicates = 0
        self.in_load_duplicates = 0
        # Only a store that held events before this load can hold a txn_id this load has not seen.
        self.check_store = store.has_events()

    @property
    def labels_loaded(self) -> int:
        return self.labels.loaded

    def process(self, chunk: RawChunk, sides: Sequence[_SideTable], writer: QuarantineWriter) -> None:
        frame = chunk.frame
        self.read += chunk.rows_read
        joined = frame
        for side in sides:
            joined = side.join(joined)
        canonical = self.mapping.apply(joined)
        checked = validate_events(
            canonical,
            ts_unit=self.mapping.ts_unit,
            ts_origin=self.mapping.ts_origin,
            ip_cache=self.ip_cache,
            empty=_blank_rows(frame),
            nested=self.mapping.nested(joined),
        )
        verdicts = None
        if self.mapping.labels is not None:
            fraud, labelled, bad = label_values(joined, self.mapping.labels)
            if bad.any():
                column = self.mapping.labels.column
                values = as_text(joined[column]).to_numpy(dtype=object)[bad]
                checked.reject(bad, BAD_LABEL, [f"{column}={v!r}: neither a fraud nor a legit value" for v in values])
            verdicts = (fraud, labelled)
        good = np.flatnonzero(checked.ok)
        batch = checked.batch(good)
        repeat_of_kept, repeat_of_stored = self._dedupe(checked, good, batch)
        keep = ~repeat_of_kept & ~repeat_of_stored & checked.ok[good]  # conflicts were just marked bad
        self.in_load_duplicates += int(repeat_of_kept.sum())
        self.store_duplicates += int(repeat_of_stored.sum())
        if not keep.all():
            batch = batch.take(keep)
        if verdicts is not None:  # a stored event's row may still bring a new verdict
            self.labels.add(checked, good[keep | repeat_of_stored], *verdicts)
        if len(batch):
            self.pending.append(batch)
            self.pending_rows += len(batch)
        if self.pending_rows >= self.batch_size:
            whole = EventBatch.concat(self.pending)
            full = len(whole) - len(whole) % self.batch_size
            for start in range(0, full, self.batch_size):
                self._flush(whole.slice(start, start + self.batch_size))
            rest = whole.slice(full, len(whole))
            self.pending = [rest] if len(rest) else []
            self.pending_rows = len(rest)
        bad_rows = np.flatnonzero(~checked.ok)
        writer.write(chunk.lines[bad_rows], checked.reason[bad_rows], checked.detail[bad_rows],
                     frame.iloc[bad_rows], chunk.rejects)

    def finish(self) -> None:
        if self.pending:
            self._flush(EventBatch.concat(self.pending))
            self.pending = []
            self.pending_rows = 0
        self.labels.finish()

    def _flush(self, batch: EventBatch) -> None:
        result = store_events(self.store, batch)
        self.inserted += result.inserted
        self.store_duplicates += result.duplicates

    def _dedupe(self, checked: ValidatedEvents, good: np.ndarray, batch: EventBatch) -> tuple[np.ndarray, np.ndarray]:
        """Find repeats of a ``txn_id`` among the good rows ``good`` (``batch`` holds their
        values). The reference for a ``txn_id`` is the stored event when the store held it before
        this load, else its first good row in this load, in an earlier chunk or this one.
        Returns (identical repeats of a row of this load, identical repeats of a stored event);
        different ones are marked bad in ``checked`` as ``duplicate_txn_id_conflict``."""
        n = len(good)
        if not n:
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
        ids = batch.txn_id.tolist()
        digest = batch_digests(batch)
        key1, key2 = _id_keys(ids)
        prior, seen_before = self.seen.find(key1, key2)
        if len(set(ids)) == n:  # the usual case: no txn_id twice within this chunk
            first_of = np.arange(n)
        else:
            codes, _ = pd.factorize(batch.txn_id)
            _, first_pos = np.unique(codes, return_index=True)
            first_of = first_pos[codes]  # position of the first row with the same txn_id
        stored_same, stored_conflict, stored_detail = self._against_store(batch, ids, ~seen_before)
        of_store = stored_same | stored_conflict
        is_new = (first_of == np.arange(n)) & ~seen_before & ~of_store
        reference = np.where(seen_before, prior, digest[first_of])
        same = digest == reference
        conflict = ~is_new & ~same & ~of_store
        details = {int(i): f"txn_id={ids[i]!r}: already in this load with different content" for i in np.flatnonzero(conflict)}
        details.update(stored_detail)
        if details:
            rows = np.array(sorted(details))
            mask = np.zeros(len(checked), dtype=bool)
            mask[good[rows]] = True
            checked.reject(mask, DUPLICATE_TXN_ID_CONFLICT, [details[int(i)] for i in rows])
        self.seen.add(key1[is_new], key2[is_new], digest[is_new])
        return ~is_new & same & ~of_store, stored_same

    def _against_store(
        self, batch: EventBatch, ids: list[str], unseen: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """Rows of ``batch`` (among ``unseen``) whose ``txn_id`` the store held before this load:
        (same content, different content, {row: conflict detail}). A stored event stays the
        reference, so it is looked up again by every later chunk that repeats its id."""
        n = len(ids)
        same, conflict = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        if not self.check_store or not unseen.any():
            return same, conflict, {}
        stored = self.store.stored_events([ids[i] for i in np.flatnonzero(unseen)])
        if not stored:
            return same, conflict, {}
        rows = np.array([i for i in np.flatnonzero(unseen) if ids[i] in stored], dtype=np.intp)
        kept = [stored[ids[i]] for i in rows.tolist()]
        differs = _differs(batch.take(rows), kept)
        same[rows[~differs]] = True
        conflict[rows[differs]] = True
        details = {}
        bad = np.flatnonzero(differs)
        for k, event in zip(bad.tolist(), batch.take(rows[bad]).events(), strict=True):
            differs_here = kept[k].differences(event, "here")
            details[int(rows[k])] = f"conflicting duplicate of txn_id {event.txn_id!r}: stored with {differs_here}"
        return same, conflict, details


def _differs(rows: EventBatch, stored: list[Event]) -> np.ndarray:
    """Per row, whether its content differs from the stored event at the same position (column
    by column: a whole re-load of stored events builds no ``Event`` per row)."""
    differs = np.zeros(len(rows), dtype=bool)
    for name in ("ts", "user_id", "device_id", "ip", "merchant_id", "currency", "status"):
        column = getattr(rows, name)
        differs |= column != np.array([getattr(e, name) for e in stored], dtype=column.dtype)
    amount = np.array([np.nan if e.amount is None else e.amount for e in stored], dtype=np.float64)
    differs |= ~((rows.amount == amount) | (np.isnan(rows.amount) & np.isnan(amount)))
    kinds = np.array([EVENT_KINDS.index(e.event.value) for e in stored], dtype=rows.event.dtype)
    return differs | (rows.event != kinds)


_REVERSED = itemgetter(slice(None, None, -1))


def _id_keys(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes per id (Python's keyed string hash of the id and of the id
    reversed): 128 bits together, so two different ids of one load share a key with a
    probability of about n**2 / 2**129."""
    n = len(ids)
    return (
        np.fromiter(map(hash, ids), dtype=np.int64, count=n),
        np.fromiter(map(hash, map(_REVERSED, ids)), dtype=np.int64, count=n),
    )


class _SeenTxns:
    """The ``txn_id`` keys of one load with the content digest of each one's winning row: a
    128-bit key per id (two independent 64-bit hashes) and a content hash; everything else a
    load holds is bounded by ``batch_size``.

    Held as sorted runs of (key1, key2, digest) numpy arrays that merge like a binary counter
    (a run merges with the one before it once that one is no longer bigger), so a chunk costs
    O(chunk x log n) to look up and adding costs O(n log n) over a whole load, at 24 bytes per
    id, instead of a dict entry (~120 bytes) per id."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def find(self, key1: np.ndarray, key2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(digest, found) for each key; digest is 0 where not found."""
        digest = np.zeros(len(key1), dtype=np.int64)
        found = np.zeros(len(key1), dtype=bool)
        if not self.runs:
            return digest, found
        # Sorted queries walk each run once, front to back: several times fewer cache misses.
        by_key = np.argsort(key1)
        sorted_keys = key1[by_key]
        for k1, k2, dig in self.runs:
            pos = np.empty(len(key1), dtype=np.intp)
            pos[by_key] = np.searchsorted(k1, sorted_keys)
            pos = np.minimum(pos, len(k1) - 1)
            hit = k1[pos] == key1
            exact = hit & (k2[pos] == key2)
            digest[exact], found[exact] = dig[pos[exact]], True
            for i in np.flatnonzero(hit & ~exact):  # key1 shared by another id: look further
                p = int(pos[i]) + 1
                while p < len(k1) and k1[p] == key1[i]:
                    if k2[p] == key2[i]:
                        digest[i], found[i] = dig[p], True
                        break
                    p += 1
        return digest, found

    def add(self, key1: np.ndarray, key2: np.ndarray, digest: np.ndarray) -> None:
        """Remember new keys (none of them already held)."""
        if not len(key1):
            return
        order = np.argsort(key1, kind="stable")
        self.runs.append((key1[order], key2[order], digest[order]))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= len(self.runs[-1][0]) * 2:
            (a1, a2, ad), (b1, b2, bd) = self.runs[-2], self.runs[-1]
            k1 = np.concatenate([a1, b1])
            order = np.argsort(k1, kind="stable")  # two sorted runs: a linear merge
            self.runs[-2:] = [(k1[order], np.concatenate([a2, b2])[order], np.concatenate([ad, bd])[order])]


class _LabelCollector:
    """Verdicts derived from an event column (``ColumnMapping.labels``): transaction labels as
    rows load, user labels once the load is over (fraud if any transaction was)."""

    def __init__(self, store: EventSink, spec: LabelSpec | None) -> None:
        self.store = store
        self.spec = spec
        self.pending: list[Label] = []
        self.users: dict[str, tuple[bool, float]] = {}  # user_id -> (any fraud, latest ts)
        self.loaded = 0

    def add(self, checked: ValidatedEvents, rows: np.ndarray, fraud: np.ndarray, labelled: np.ndarray) -> None:
        if self.spec is None:
            return
        rows = rows[labelled[rows]]
        if not len(rows):
            return
        verdict = _VERDICT_OF[fraud[rows].astype(np.intp)]
        if LabelEntity.TRANSACTION in self.spec.entities:
            self.pending.extend(
                map(Label, repeat(LabelEntity.TRANSACTION), checked.txn_id[rows].tolist(), verdict.tolist(),
                    checked.ts[rows].tolist(), repeat(self.spec.source))
            )
            if len(self.pending) >= _LABEL_BATCH:
                self._flush()
        if LabelEntity.USER in self.spec.entities:
            grouped = (
                pd.DataFrame({"user": checked.user_id[rows], "fraud": fraud[rows], "ts": checked.ts[rows]})
                .groupby("user", sort=False)
                .agg(fraud=("fraud", "max"), ts=("ts", "max"))
            )
            for user, is_fraud, ts in zip(grouped.index.tolist(), grouped["fraud"].tolist(), grouped["ts"].tolist()):
                was_fraud, was_ts = self.users.get(user, (False, ts))
                self.users[user] = (was_fraud or is_fraud, max(was_ts, ts))

    def finish(self) -> None:
        if self.spec is None:
            return
        if self.users:
            source = self.spec.source
            self.pending.extend(
                Label(LabelEntity.USER, user, Verdict.FRAUD if fraud else Verdict.LEGIT, ts, source)
                for user, (fraud, ts) in sorted(self.users.items())
            )
            self.users = {}
        self._flush()

    def _flush(self) -> None:
        for start in range(0, len(self.pending), _LABEL_BATCH):
            self.loaded += self.store.upsert_labels(self.pending[start : start + _LABEL_BATCH])
        self.pending = []


@dataclass(slots=True)
class _SideTable:
    """A side file read whole and indexed on its join key, for left joins chunk by chunk."""

    spec: JoinSpec
    path: Path
    table: pd.DataFrame = field(repr=False)

    @classmethod
    def load(cls, spec: JoinSpec, source: Path) -> _SideTable:
        path = spec.resolve(source)
        raw = read_table(path)
        if raw.rejects:
            first = raw.rejects[0]
            raise ValidationError("joins.file", str(path), f"line {first.line}: {first.reason} ({first.detail})")
        frame = raw.frame
        if spec.key not in frame.columns:
            raise ValidationError("joins.key", spec.key, f"not a column of {path}")
        wanted = list(spec.columns) or [c for c in frame.columns if c != spec.key]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise ValidationError("joins.columns", missing, f"not columns of {path}")
        key = as_text(frame[spec.key])
        # Side rows without a key can match no event; they are not events, so nothing is lost.
        table = frame.loc[key.notna().to_numpy(), wanted]
        table.index = pd.Index(key[key.notna()].to_numpy(dtype=object), name=spec.key)
        repeated = table.index[table.index.duplicated()]
        if len(repeated):
            raise ValidationError(
                "joins.key", repeated[0], f"appears more than once in {path}; a left join needs unique keys"
            )
        return cls(spec=spec, path=path, table=table)

    def join(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus the side columns of the row with the same key (missing when none)."""
        clash = [c for c in self.table.columns if c in frame.columns]
        if clash:
            raise ValidationError("joins.columns", clash, f"{self.path.name} would overwrite source columns")
        if self.spec.key in frame.columns:
            keys = as_text(frame[self.spec.key]).to_numpy(dtype=object, na_value=None)
        else:
            keys = np.full(len(frame), None, dtype=object)
        side = self.table.reindex(keys)
        side.index = frame.index
        return pd.concat([frame, side], axis=1)


def _join_columns(spec: JoinSpec, source: Path) -> tuple[str, ...]:
    """The columns a join adds, from the side file's header (all but the key when unnamed)."""
    if spec.columns:
        return spec.columns
    path = spec.resolve(source)
    columns = source_columns(path) or ()
    return tuple(c for c in columns if c != spec.key)


def _blank_rows(frame: pd.DataFrame) -> np.ndarray | None:
    """Rows whose cells are all empty text (a blank CSV line); None for typed sources."""
    if frame.shape[1] == 0 or not all(isinstance(t, pd.StringDtype) for t in frame.dtypes):
        return None
    return np.logical_and.reduce([(frame[c] == "").to_numpy(dtype=bool, na_value=True) for c in frame.columns])


def _as_paths(source: Path | Sequence[Path]) -> list[Path]:
    if isinstance(source, (str, Path)):
        return [Path(source)]
    paths = [Path(s) for s in source]
    if not paths:
        raise ValidationError("source", [], "no files given")
    return paths


# -- labels ---------------------------------------------------------------------------------------


def load_labels(
    source: Path,
    store: EventSink,
    *,
    quarantine_dir: Path,
    progress: bool = False,
    encoding: str = DEFAULT_ENCODING,
    max_row_bytes: int = MAX_ROW_BYTES,
) -> LabelLoadSummary:
    """Validate a verdicts file (entity, entity_id, label, ts, source; CSV, Parquet or JSON lines)
    and upsert its good rows; bad rows go to ``<file name>.quarantine.csv``. ``encoding``: the
    text file's encoding (rows that are not valid text in it are quarantined); ``max_row_bytes``:
    the most bytes one row may take (as for ``load_events``).

    Raises:
        ValidationError: a missing, unknown or unreadable file, an unknown ``encoding``, or a
            file without the label columns.
        StoreError: the store failed.
    """
    source = Path(source)
    started = time.perf_counter()
    columns = source_columns(source, encoding, max_row_bytes)
    if columns is not None:
        missing = [c for c in LABEL_COLUMNS[:4] if c not in columns]
        if missing:
            raise ValidationError(
                "columns", missing, f"label file {source.name} lacks them; columns are {list(columns)}"
            )
    writer = QuarantineWriter(quarantine_path(quarantine_dir, source), columns)
    read = valid = new = 0
    with tqdm(total=source_rows(source), unit="rows", desc="labels", disable=not progress) as bar:
        for chunk in read_chunks(source, chunk_rows=_LABEL_BATCH, encoding=encoding, max_row_bytes=max_row_bytes):
            read += chunk.rows_read
            checked = validate_labels(chunk.frame, empty=_blank_rows(chunk.frame))
            ok = checked.ok
            rows = np.flatnonzero(ok)
            valid += len(rows)
            new += store.upsert_labels(checked.labels(rows))
            bad = np.flatnonzero(~ok)
            writer.write(
                chunk.lines[bad], checked.reason[bad], checked.detail[bad], chunk.frame.iloc[bad], chunk.rejects
            )
            bar.update(chunk.rows_read)
    if new > valid:
        raise StoreError(f"store {store.backend!r} reported {new} new labels out of {valid} given")
    summary = LabelLoadSummary(
        source=source.name,
        read=read,
        loaded=new,
        quarantined=writer.total,
        quarantined_by_reason=dict(sorted(writer.counts.items())),
        quarantine_file=writer.close(),
        duplicates=valid - new,
        seconds=time.perf_counter() - started,
    )
    if summary.read != summary.loaded + summary.duplicates + summary.quarantined:
        raise RingwatchError(
            f"label load of {source.name} does not add up: read {summary.read} != loaded {summary.loaded} "
            f"+ duplicates {summary.duplicates} + quarantined {summary.quarantined}"
        )
    return summary
