"""Validation of events and labels, from files and from HTTP alike (DESIGN §5, §9).

``validate_events`` / ``validate_labels`` check a file's rows a whole column at a time; Python
runs once per *distinct* IP and event kind (cached) and once per *bad* row (to word its detail).
``validate_event`` / ``validate_label`` run the same checks on one request's values, where a
one-row frame would cost milliseconds. Both give the same reason code and words for the same
values (a property test holds them to it). A row gets the reason of the first check it fails,
in the order of ``EVENT_REASONS``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import types
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute

from graph.errors import RingwatchError, ValidationError
from graph.types import EVENT_KINDS, Event, EventBatch, EventKind, Label, LabelEntity, Verdict
from ingestion.mapping import NESTED_TYPES, NULL_TOKENS, as_text, nested_values
from ingestion.readers import EMPTY_ROW

#: Cleaned values of good rows, one list per ``Event`` field name.
EventColumns = dict[str, list[Any]]

# The limits files and the API share (``api/models.py`` reads them from here).
MAX_ID_LENGTH = 128
#: Characters an identifier may not hold: ASCII control characters (newline, tab, NUL ...).
ID_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"
MAX_AMOUNT = 1_000_000_000.0
MIN_YEAR = 2000
MAX_YEAR = 2100
#: How far past the clock a live event or verdict may be dated (clock skew between services);
#: the API passes ``not_after``, files carry history and replays of any date.
MAX_FUTURE_SECONDS = 86_400.0

# Reason codes, in the order the checks run (the first failing one is reported). EMPTY_ROW
# (every cell empty) comes from ``readers``, which also reports blank JSON lines with it.
NOT_SCALAR = "not_scalar"
MISSING_TXN_ID = "missing_txn_id"
MISSING_USER_ID = "missing_user_id"
MISSING_TS = "missing_ts"
ID_TOO_LONG = "id_too_long"
BAD_ID = "bad_id"
BAD_TIMESTAMP = "bad_timestamp"
UNKNOWN_EVENT = "unknown_event"
MISSING_MERCHANT = "missing_merchant"
MISSING_AMOUNT = "missing_amount"
BAD_AMOUNT = "bad_amount"
NEGATIVE_AMOUNT = "negative_amount"
BAD_IP = "bad_ip"
BAD_CURRENCY = "bad_currency"
BAD_LABEL = "bad_label"
DUPLICATE_TXN_ID_CONFLICT = "duplicate_txn_id_conflict"
EVENT_REASONS: tuple[str, ...] = (
    EMPTY_ROW, NOT_SCALAR, MISSING_TXN_ID, MISSING_USER_ID, MISSING_TS, ID_TOO_LONG, BAD_ID, BAD_TIMESTAMP,
    UNKNOWN_EVENT, MISSING_MERCHANT, MISSING_AMOUNT, BAD_AMOUNT, NEGATIVE_AMOUNT, BAD_IP,
    BAD_CURRENCY, BAD_LABEL, DUPLICATE_TXN_ID_CONFLICT,
)

# Label-file reasons (besides MISSING_TS, BAD_TIMESTAMP, ID_TOO_LONG, EMPTY_ROW).
BAD_ENTITY = "bad_entity"
MISSING_ENTITY_ID = "missing_entity_id"

_ID_FIELDS = ("txn_id", "user_id", "device_id", "merchant_id")
# Dotted-quad IPv4 without leading zeros: exactly the text ``ipaddress`` accepts and prints back,
# so these skip the per-value parse (IP columns have many distinct values).
_PLAIN_IPV4 = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
# Epoch seconds of the first instant of MIN_YEAR and of the year after MAX_YEAR.
_TS_LO = (pd.Timestamp(f"{MIN_YEAR}-01-01", tz="UTC") - _EPOCH) / pd.Timedelta(seconds=1)
_TS_HI = (pd.Timestamp(f"{MAX_YEAR + 1}-01-01", tz="UTC") - _EPOCH) / pd.Timedelta(seconds=1)
# The words for each failed check, shared by the column and the one-request paths.
_REQUIRED = "required"
_REQUIRED_FOR_MONEY = "required for payment and refund"
_YEAR_RANGE = f"year outside {MIN_YEAR}..{MAX_YEAR}"
_NOT_ISO = "not an ISO-8601 timestamp"
_UNKNOWN_KIND = f"expected one of {', '.join(EVENT_KINDS)}"
_NOT_FINITE = "not a finite number"
_NEGATIVE = "must be >= 0"
_TOO_MUCH = f"more than {MAX_AMOUNT:,.0f}"
_NOT_IP = "not an IPv4 or IPv6 address"
_NOT_CURRENCY = "must be a 3-letter ISO 4217 code"
_NOT_ENTITY = "expected user or transaction"
_NOT_VERDICT = "expected fraud or legit"
_CONTROL = "holds a control character (newline, tab, NUL ...)"
_KIND_CODES = {k: np.int8(i) for i, k in enumerate(EVENT_KINDS)}
_KINDS = np.array([EventKind(k) for k in EVENT_KINDS], dtype=object)
_VERDICTS = {v.value: v for v in Verdict}
_ENTITIES = {e.value: e for e in LabelEntity}


@dataclass(slots=True)
class ValidatedEvents:
    """Cleaned canonical columns of one chunk and, per row, why it is bad (None when good).

    Text columns are object arrays with None for missing; ``ts`` is UTC epoch seconds;
    ``amount`` is NaN when absent; ``event`` indexes ``EVENT_KINDS``."""

    reason: np.ndarray  # object [n]: reason code or None
    detail: np.ndarray  # object [n]: words for the reason, or None
    txn_id: np.ndarray
    user_id: np.ndarray
    device_id: np.ndarray
    ip: np.ndarray
    merchant_id: np.ndarray
    currency: np.ndarray
    status: np.ndarray
    ts: np.ndarray  # float64 [n]
    amount: np.ndarray  # float64 [n]
    event: np.ndarray  # int8 [n]

    def __len__(self) -> int:
        return int(self.reason.shape[0])

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(self.reason)

    def reject(self, mask: np.ndarray, reason: str, details: Sequence[str] | str) -> None:
        """Mark rows of ``mask`` that are still good as bad with ``reason``; ``details`` is one
        text for all or one per True entry of ``mask``."""
        _mark(self.reason, self.detail, mask, reason, details)

    def batch(self, rows: np.ndarray) -> EventBatch:
        """The cleaned values of the good rows ``rows`` as columns (the loader's fast path)."""
        return EventBatch(
            txn_id=self.txn_id[rows],
            ts=self.ts[rows],
            user_id=self.user_id[rows],
            device_id=self.device_id[rows],
            ip=self.ip[rows],
            merchant_id=self.merchant_id[rows],
            amount=self.amount[rows],
            currency=self.currency[rows],
            event=self.event[rows],
            status=self.status[rows],
        )

    def columns(self, rows: np.ndarray) -> EventColumns:
        """The cleaned values of the good rows ``rows`` as Python lists keyed by ``Event`` field
        name (ready for ``events_from`` and ``digests``)."""
        amount = self.amount[rows]
        amounts = amount.astype(object)
        amounts[np.isnan(amount)] = None
        return {
            "txn_id": self.txn_id[rows].tolist(),
            "ts": self.ts[rows].tolist(),
            "user_id": self.user_id[rows].tolist(),
            "device_id": self.device_id[rows].tolist(),
            "ip": self.ip[rows].tolist(),
            "merchant_id": self.merchant_id[rows].tolist(),
            "amount": amounts.tolist(),
            "currency": self.currency[rows].tolist(),
            "event": _KINDS[self.event[rows]].tolist(),
            "status": self.status[rows].tolist(),
        }


def events_from(columns: EventColumns) -> list[Event]:
    """``Event`` objects from ``ValidatedEvents.columns`` output: the one per-row step.

    Why not ``map(Event, ...)``: a frozen dataclass's ``__init__`` assigns each field through
    ``object.__setattr__`` in Python bytecode, about half the CPU time of a whole load. Here every
    field's slot is filled by its slot descriptor, one C-level ``map`` per field, which gives
    the very same objects (equal, same hash) in about half the time. ``Event`` has no
    ``__post_init__`` for this to skip; if it ever gets one, or a field that is not a plain slot,
    the constructor is used instead.
    """
    n = len(columns["txn_id"])
    if _SLOT_SETTERS is None:
        return list(map(Event, *(columns[f.name] for f in dataclasses.fields(Event))))
    events: list[Event] = list(map(object.__new__, repeat(Event, n)))
    for name, setter in _SLOT_SETTERS:
        deque(map(setter, events, columns[name]), maxlen=0)
    return events


def digests(columns: EventColumns) -> np.ndarray:
    """A 64-bit content hash per row of ``ValidatedEvents.columns`` output, to tell an identical
    repeat of a transaction from a conflicting one within one load. Python's tuple hash: cheap
    (string hashes are cached on the strings) and stable within a process, which is all a load
    needs."""
    n = len(columns["txn_id"])
    return np.fromiter(map(hash, zip(*columns.values())), dtype=np.int64, count=n)


def batch_digests(batch: EventBatch) -> np.ndarray:
    """``digests`` for an ``EventBatch``: a 64-bit content hash per row (Python's tuple hash of
    the cleaned values; stable within a process, which is all one load needs). An absent amount
    hashes as -1.0, a value no good row has (negative amounts are rejected)."""
    amount = np.where(np.isnan(batch.amount), -1.0, batch.amount)
    rows = zip(
        batch.txn_id.tolist(),
        batch.ts.tolist(),
        batch.user_id.tolist(),
        batch.device_id.tolist(),
        batch.ip.tolist(),
        batch.merchant_id.tolist(),
        amount.tolist(),
        batch.currency.tolist(),
        batch.event.tolist(),
        batch.status.tolist(),
    )
    return np.fromiter(map(hash, rows), dtype=np.int64, count=len(batch))


def _slot_setters() -> tuple[tuple[str, Callable[[object, object], None]], ...] | None:
    """(field name, slot setter) for every ``Event`` field, or None when ``Event`` cannot be
    filled slot by slot (it validates in ``__post_init__`` or a field is not a plain slot)."""
    if hasattr(Event, "__post_init__"):
        return None
    setters = []
    for f in dataclasses.fields(Event):
        slot = Event.__dict__.get(f.name)
        if type(slot) is not types.MemberDescriptorType:
            return None
        setters.append((f.name, slot.__set__))
    return tuple(setters)


_SLOT_SETTERS = _slot_setters()


class IpCache:
    """Normalised text of IP addresses (``ipaddress`` form, e.g. compressed lower-case IPv6), or
    None for invalid ones; one parse per distinct value, cleared past ``max_size`` entries."""

    def __init__(self, max_size: int = 1_000_000) -> None:
        self.max_size = max_size
        self._known: dict[str, str | None] = {}

    def lookup(self, value: str) -> str | None:
        try:
            return self._known[value]
        except KeyError:
            pass
        if len(self._known) >= self.max_size:
            self._known.clear()
        try:
            norm: str | None = str(ipaddress.ip_address(value))
        except ValueError:
            norm = None
        self._known[value] = norm
        return norm

    def normalise(self, text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(normalised object array with None for missing or invalid, invalid mask). Plain IPv4
        text is checked by one vectorised regex; anything else (IPv6, odd forms) is parsed once
        per distinct value."""
        present = text.notna().to_numpy()
        plain = text.str.fullmatch(_PLAIN_IPV4).to_numpy(dtype=bool, na_value=False)
        values = text.to_numpy(dtype=object, na_value=None)
        other = present & ~plain
        if other.any():
            codes, uniques = pd.factorize(values[other])
            mapped = np.array([self.lookup(u) for u in uniques], dtype=object)
            values[other] = mapped[codes]
        return values, present & pd.isna(values)


def parse_timestamps(
    raw: pd.Series, unit: str = "iso", origin: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UTC epoch seconds with NaN where missing or bad, present mask, out-of-range mask).

    ``iso``: ISO-8601 text (UTC when it has no zone) or datetime values (naive ones are UTC).
    ``s`` / ``ms``: numbers of seconds / milliseconds after ``origin`` (epoch seconds).
    Years outside ``MIN_YEAR``..``MAX_YEAR`` come back NaN, like unparseable text.
    """
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        present = raw.notna().to_numpy()
        stamps = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
        seconds = ((stamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    elif unit == "iso":
        text = as_text(raw)
        present = text.notna().to_numpy()
        stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        seconds = ((stamps - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
            numbers = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            present = ~np.isnan(numbers)
        else:
            text = as_text(raw)
            present = text.notna().to_numpy()
            numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        seconds = origin + numbers * (1.0 if unit == "s" else 1e-3)
    with np.errstate(invalid="ignore"):
        in_range = (seconds >= _TS_LO) & (seconds < _TS_HI)
    out_of_range = ~np.isnan(seconds) & ~in_range
    return np.where(in_range, seconds, np.nan), np.asarray(present, dtype=bool), out_of_range


def validate_events(
    canonical: pd.DataFrame,
    *,
    ts_unit: str = "iso",
    ts_origin: float = 0.0,
    ip_cache: IpCache | None = None,
    empty: np.ndarray | None = None,
    nested: Mapping[str, np.ndarray] | None = None,
) -> ValidatedEvents:
    """Check every row of a canonical frame (``ColumnMapping.apply`` output).

    Args:
        canonical: the canonical columns (text fields as ``str`` Series, ``ts``/``amount`` raw).
        ts_unit, ts_origin: how to read ``ts`` (see ``parse_timestamps``).
        ip_cache: shared across chunks of a load so each distinct IP is parsed once.
        empty: rows whose source cells are all empty (reported as ``empty_row``).
        nested: per canonical field, the JSON object or array its source held in each row, or
            None (``ColumnMapping.nested`` output); such rows are ``not_scalar``.
    """
    n = len(canonical)
    ip_cache = ip_cache or IpCache()
    text = {name: canonical[name] for name in ("txn_id", "user_id", "device_id", "merchant_id", "status")}
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)

    def mark(mask: np.ndarray, code: str, field: str, values: pd.Series, why: str) -> None:
        idx = np.flatnonzero(mask)
        if len(idx):  # values are converted for the bad rows only
            vals = values.iloc[idx].to_numpy(dtype=object)
            _mark(reason, detail, mask, code, [f"{field}={_show(v)}: {why}" for v in vals])

    if empty is not None:
        _mark(reason, detail, empty, EMPTY_ROW, "every cell is empty")
    for field, values in (nested or {}).items():
        _mark_nested(reason, detail, field, values)
    for field, code in (("txn_id", MISSING_TXN_ID), ("user_id", MISSING_USER_ID)):
        mark(text[field].isna().to_numpy(), code, field, text[field], _REQUIRED)

    ts, ts_present, ts_out_of_range = parse_timestamps(canonical["ts"], ts_unit, ts_origin)
    raw_ts = canonical["ts"]
    mark(~ts_present, MISSING_TS, "ts", raw_ts, _REQUIRED)

    for field in _ID_FIELDS:
        _mark_bad_id(reason, detail, field, text[field])

    why_ts = _NOT_ISO if ts_unit == "iso" else f"not a number of {ts_unit} after the origin"
    mark(ts_out_of_range, BAD_TIMESTAMP, "ts", raw_ts, _YEAR_RANGE)
    mark(ts_present & np.isnan(ts), BAD_TIMESTAMP, "ts", raw_ts, why_ts)

    kind_text = as_text(canonical["event"]).str.lower()
    codes, uniques = pd.factorize(kind_text)
    kind_of = np.array([_KIND_CODES.get(u, -1) for u in uniques] + [_KIND_CODES["payment"]], dtype=np.int8)
    event = kind_of[codes]  # missing (code -1) -> payment, the default kind
    mark(event < 0, UNKNOWN_EVENT, "event", canonical["event"], _UNKNOWN_KIND)
    needs_merchant = (event == _KIND_CODES["payment"]) | (event == _KIND_CODES["refund"])

    mark(needs_merchant & text["merchant_id"].isna().to_numpy(), MISSING_MERCHANT, "merchant_id",
         text["merchant_id"], _REQUIRED_FOR_MONEY)

    amount, amount_present = _parse_amounts(canonical["amount"])
    raw_amount = canonical["amount"]
    mark(needs_merchant & ~amount_present, MISSING_AMOUNT, "amount", raw_amount, _REQUIRED_FOR_MONEY)
    mark(amount_present & ~np.isfinite(amount), BAD_AMOUNT, "amount", raw_amount, _NOT_FINITE)
    with np.errstate(invalid="ignore"):
        mark(amount < 0, NEGATIVE_AMOUNT, "amount", raw_amount, _NEGATIVE)
        mark(amount > MAX_AMOUNT, BAD_AMOUNT, "amount", raw_amount, _TOO_MUCH)

    ip_text = as_text(canonical["ip"])
    ip, bad_ip = ip_cache.normalise(ip_text)
    mark(bad_ip, BAD_IP, "ip", ip_text, _NOT_IP)

    currency = as_text(canonical["currency"])
    bad_currency = currency.notna() & ~currency.str.fullmatch(r"[A-Za-z]{3}").fillna(False).astype(bool)
    mark(bad_currency.to_numpy(dtype=bool), BAD_CURRENCY, "currency", currency, _NOT_CURRENCY)

    return ValidatedEvents(
        reason=reason,
        detail=detail,
        txn_id=_objects(text["txn_id"]),
        user_id=_objects(text["user_id"]),
        device_id=_objects(text["device_id"]),
        ip=ip,
        merchant_id=_objects(text["merchant_id"]),
        currency=_objects(currency.str.upper()),
        status=_objects(text["status"]),
        ts=ts,
        amount=np.where(amount_present & np.isfinite(amount), amount, np.nan),
        event=np.where(event < 0, 0, event).astype(np.int8),
    )


@dataclass(slots=True)
class ValidatedLabels:
    """Cleaned label columns of one chunk and per-row reasons (None when good)."""

    reason: np.ndarray
    detail: np.ndarray
    entity: np.ndarray  # object [n]: LabelEntity or None
    entity_id: np.ndarray  # object [n]
    label: np.ndarray  # object [n]: Verdict or None
    ts: np.ndarray  # float64 [n]
    source: np.ndarray  # object [n]

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(self.reason)

    def labels(self, rows: np.ndarray) -> list[Label]:
        return list(
            map(
                Label,
                self.entity[rows].tolist(),
                self.entity_id[rows].tolist(),
                self.label[rows].tolist(),
                self.ts[rows].tolist(),
                self.source[rows].tolist(),
            )
        )


def validate_labels(frame: pd.DataFrame, *, empty: np.ndarray | None = None) -> ValidatedLabels:
    """Check label rows in the canonical label schema: entity, entity_id, label, ts, source
    (DESIGN §5). A missing ``source`` becomes ``unknown``; ``source`` obeys the id limits."""
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)

    def col(name: str) -> pd.Series:
        if name in frame.columns:
            return as_text(frame[name])
        return pd.Series(np.full(n, np.nan, dtype=object), index=frame.index, dtype="str")

    def mark(mask: np.ndarray, code: str, field: str, values: pd.Series, why: str) -> None:
        idx = np.flatnonzero(mask)
        if len(idx):
            vals = values.iloc[idx].to_numpy(dtype=object, na_value=None)
            _mark(reason, detail, mask, code, [f"{field}={_show(v)}: {why}" for v in vals])

    if empty is not None:
        _mark(reason, detail, empty, EMPTY_ROW, "every cell is empty")
    for name in ("entity", "entity_id", "label", "ts", "source"):
        if name in frame.columns and (mask := nested_values(frame[name])).any():
            _mark_nested(reason, detail, name, np.where(mask, frame[name].to_numpy(dtype=object), None))
    entity_text, entity_id, label_text = col("entity").str.lower(), col("entity_id"), col("label").str.lower()
    source = col("source").fillna(Label.__dataclass_fields__["source"].default)
    raw_ts = frame["ts"] if "ts" in frame.columns else col("ts")
    ts, ts_present, ts_out_of_range = parse_timestamps(raw_ts)

    entity = entity_text.map(_ENTITIES).to_numpy(dtype=object, na_value=None)
    mark(pd.isna(entity), BAD_ENTITY, "entity", col("entity"), _NOT_ENTITY)
    mark(entity_id.isna().to_numpy(), MISSING_ENTITY_ID, "entity_id", entity_id, _REQUIRED)
    _mark_bad_id(reason, detail, "entity_id", entity_id)
    label = label_text.map(_VERDICTS).to_numpy(dtype=object, na_value=None)
    mark(pd.isna(label), BAD_LABEL, "label", col("label"), _NOT_VERDICT)
    ts_shown = as_text(raw_ts) if not pd.api.types.is_datetime64_any_dtype(raw_ts.dtype) else raw_ts.astype("str")
    mark(~ts_present, MISSING_TS, "ts", ts_shown, _REQUIRED)
    mark(ts_out_of_range, BAD_TIMESTAMP, "ts", ts_shown, _YEAR_RANGE)
    mark(ts_present & np.isnan(ts), BAD_TIMESTAMP, "ts", ts_shown, _NOT_ISO)
    _mark_bad_id(reason, detail, "source", source)
    return ValidatedLabels(
        reason=reason,
        detail=detail,
        entity=entity,
        entity_id=_objects(entity_id),
        label=label,
        ts=ts,
        source=_objects(source),
    )


# -- one request ---------------------------------------------------------------------------------


class RowRejected(ValidationError):
    """One event or verdict that fails a check: its reason code, the field, and the words a
    file's quarantine gives for the same values."""

    def __init__(self, code: str, field: str, detail: str) -> None:
        RingwatchError.__init__(self, detail)
        self.code = code
        self.field = field
        self.value = None
        self.reason = detail


def validate_event(values: Mapping[str, object], *, not_after: float | None = None) -> Event:
    """One event given as canonical field values (``ts`` ISO-8601 text), checked as
    ``validate_events`` checks a file's row: same order, reason codes and words. ``not_after``:
    the latest ``ts`` a live request may carry (the clock plus ``MAX_FUTURE_SECONDS``), or None.

    Raises:
        RowRejected: the first check the values fail.
    """
    _reject_nested(values, ("txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount",
                            "currency", "event", "status"))  # fmt: skip
    text = {name: _text(values.get(name)) for name in ("txn_id", "user_id", "device_id", "merchant_id",
                                                        "status", "event", "ip", "currency")}  # fmt: skip
    for field, code in (("txn_id", MISSING_TXN_ID), ("user_id", MISSING_USER_ID)):
        if text[field] is None:
            raise _rejected(code, field, None, _REQUIRED)
    raw_ts = values.get("ts")
    if _text(raw_ts) is None:
        raise _rejected(MISSING_TS, "ts", raw_ts, _REQUIRED)
    for field in _ID_FIELDS:
        _check_id(field, text[field])
    ts = _one_timestamp(raw_ts, not_after)
    kind = EventKind.PAYMENT if text["event"] is None else _EVENT_KINDS.get(text["event"].lower())
    if kind is None:
        raise _rejected(UNKNOWN_EVENT, "event", text["event"], _UNKNOWN_KIND)
    needs_merchant = kind in (EventKind.PAYMENT, EventKind.REFUND)
    if needs_merchant and text["merchant_id"] is None:
        raise _rejected(MISSING_MERCHANT, "merchant_id", None, _REQUIRED_FOR_MONEY)
    raw_amount = values.get("amount")
    amount, present = _one_amount(raw_amount)
    if needs_merchant and not present:
        raise _rejected(MISSING_AMOUNT, "amount", raw_amount, _REQUIRED_FOR_MONEY)
    if present and not np.isfinite(amount):
        raise _rejected(BAD_AMOUNT, "amount", raw_amount, _NOT_FINITE)
    if amount < 0:
        raise _rejected(NEGATIVE_AMOUNT, "amount", raw_amount, _NEGATIVE)
    if amount > MAX_AMOUNT:
        raise _rejected(BAD_AMOUNT, "amount", raw_amount, _TOO_MUCH)
    ip = None if text["ip"] is None else _IP_CACHE.lookup(text["ip"])
    if text["ip"] is not None and ip is None:
        raise _rejected(BAD_IP, "ip", text["ip"], _NOT_IP)
    currency = text["currency"]
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise _rejected(BAD_CURRENCY, "currency", currency, _NOT_CURRENCY)
    return Event(
        txn_id=str(text["txn_id"]),
        ts=ts,
        user_id=str(text["user_id"]),
        device_id=text["device_id"],
        ip=ip,
        merchant_id=text["merchant_id"],
        amount=amount if present and np.isfinite(amount) else None,
        currency=None if currency is None else currency.upper(),
        event=kind,
        status=text["status"],
    )


def validate_label(values: Mapping[str, object], *, not_after: float | None = None) -> Label:
    """One verdict given as label field values (``ts`` ISO-8601 text), checked as
    ``validate_labels`` checks a file's row: same order, reason codes and words; ``not_after``
    as for ``validate_event``.

    Raises:
        RowRejected: the first check the values fail.
    """
    _reject_nested(values, ("entity", "entity_id", "label", "ts", "source"))
    entity_text, entity_id, label_text = (_text(values.get(n)) for n in ("entity", "entity_id", "label"))
    entity = None if entity_text is None else _ENTITIES.get(entity_text.lower())
    if entity is None:
        raise _rejected(BAD_ENTITY, "entity", entity_text, _NOT_ENTITY)
    if entity_id is None:
        raise _rejected(MISSING_ENTITY_ID, "entity_id", None, _REQUIRED)
    _check_id("entity_id", entity_id)
    label = None if label_text is None else _VERDICTS.get(label_text.lower())
    if label is None:
        raise _rejected(BAD_LABEL, "label", label_text, _NOT_VERDICT)
    raw_ts = values.get("ts")
    if _text(raw_ts) is None:
        raise _rejected(MISSING_TS, "ts", _text(raw_ts), _REQUIRED)
    ts = _one_timestamp(_text(raw_ts), not_after)
    source = _text(values.get("source")) or str(Label.__dataclass_fields__["source"].default)
    _check_id("source", source)
    return Label(entity=entity, entity_id=entity_id, label=label, ts=ts, source=source)


_FUTURE = f"more than {MAX_FUTURE_SECONDS / 3600:.0f} hours after the clock"
_EVENT_KINDS = {k.value: k for k in EventKind}
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_ID_CONTROL = re.compile(ID_CONTROL_CHARACTERS)
# ISO-8601 in 1900..2199 with at most microseconds: ``datetime.fromisoformat`` reads these in a
# few microseconds where pandas takes a tenth of a millisecond or more. Both give the same float:
# pandas reads such text at microsecond resolution and divides the microseconds since the epoch
# by 1e6, as ``datetime.timestamp`` does (``total_seconds``); a finer fraction goes to pandas.
_PLAIN_TS = re.compile(r"(?:19|20|21)\d\d-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?")
_IP_CACHE = IpCache(max_size=100_000)


def _text(value: object) -> str | None:
    """``value`` as ``as_text`` gives it: stripped text, None when empty or a null token."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return None if text in NULL_TOKENS else text


def _rejected(code: str, field: str, value: object, why: str) -> RowRejected:
    return RowRejected(code, field, f"{field}={_show(value)}: {why}")


def _reject_nested(values: Mapping[str, object], fields: Sequence[str]) -> None:
    for field in fields:
        value = values.get(field)
        if isinstance(value, NESTED_TYPES):
            kind = "object" if isinstance(value, dict) else "array"
            raise RowRejected(NOT_SCALAR, field, f"{field}={_show_json(value)}: a JSON {kind}, not one value")


def _check_id(field: str, text: str | None) -> None:
    if text is None:
        return
    if len(text) > MAX_ID_LENGTH:
        raise _rejected(ID_TOO_LONG, field, text, f"{len(text):,} characters, more than {MAX_ID_LENGTH}")
    if _ID_CONTROL.search(text):
        raise _rejected(BAD_ID, field, text, _CONTROL)


def _one_timestamp(raw: object, not_after: float | None) -> float:
    """UTC epoch seconds of present ISO-8601 ``raw``, as ``parse_timestamps`` reads it."""
    text = _text(raw)
    assert text is not None
    seconds: float | None = None
    if _PLAIN_TS.fullmatch(text):
        try:
            parsed = datetime.fromisoformat(text)
            seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        except ValueError:  # an impossible date or offset: pandas decides, as for a file row
            seconds = None
    if seconds is None:
        stamp = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        seconds = np.nan if pd.isna(stamp) else (stamp - _EPOCH) / pd.Timedelta(seconds=1)
    if np.isnan(seconds):
        raise _rejected(BAD_TIMESTAMP, "ts", raw, _NOT_ISO)
    if not _TS_LO <= seconds < _TS_HI:
        raise _rejected(BAD_TIMESTAMP, "ts", raw, _YEAR_RANGE)
    if not_after is not None and seconds > not_after:
        raise _rejected(BAD_TIMESTAMP, "ts", raw, _FUTURE)
    return float(seconds)


def _one_amount(raw: object) -> tuple[float, bool]:
    """(amount, present) of one value, as ``_parse_amounts`` reads it (NaN when absent or bad)."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
        return value, not np.isnan(value)
    values, present = _parse_amounts(pd.Series([raw], dtype=object))
    return float(values[0]), bool(present[0])


# -- helpers -------------------------------------------------------------------------------------


def _parse_amounts(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(amount as float64 with NaN where missing or non-numeric, present mask). Present but
    unparseable values come back NaN with ``present`` True; ``inf`` stays inf (both are bad)."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, ~np.isnan(values)
    text = as_text(raw)
    present = text.notna().to_numpy()
    try:  # fast path: every present value is a plain number
        values = pa_compute.cast(pa.array(text, from_pandas=True), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values, present


def _mark_bad_id(reason: np.ndarray, detail: np.ndarray, field: str, text: pd.Series) -> None:
    """Identifiers longer than ``MAX_ID_LENGTH`` or holding a control character."""
    lengths = text.str.len().to_numpy(dtype=np.float64, na_value=0.0)
    too_long = lengths > MAX_ID_LENGTH
    if too_long.any():
        shown = [f"{field}={_show(v)}: {int(n):,} characters, more than {MAX_ID_LENGTH}"
                 for v, n in zip(text.to_numpy(dtype=object)[too_long], lengths[too_long])]
        _mark(reason, detail, too_long, ID_TOO_LONG, shown)
    control = text.str.contains(ID_CONTROL_CHARACTERS, regex=True).to_numpy(dtype=bool, na_value=False)
    if control.any():
        shown = [f"{field}={_show(v)}: {_CONTROL}"
                 for v in text.to_numpy(dtype=object)[control]]
        _mark(reason, detail, control, BAD_ID, shown)


def _mark_nested(reason: np.ndarray, detail: np.ndarray, field: str, values: np.ndarray) -> None:
    """Rows where ``values`` (an object array, None for one value) holds a JSON object or array."""
    mask = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    if mask.any():
        shown = [f"{field}={_show_json(v)}: a JSON {'object' if isinstance(v, dict) else 'array'}, not one value"
                 for v in values[mask]]
        _mark(reason, detail, mask, NOT_SCALAR, shown)


def _show_json(value: object) -> str:
    """``value`` as JSON text, at most 80 characters."""
    shown = json.dumps(value, default=_json_default, ensure_ascii=False)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _json_default(value: object) -> object:
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return str(value)


def _objects(text: pd.Series) -> np.ndarray:
    return text.to_numpy(dtype=object, na_value=None)


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "<empty>"
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _mark(reason: np.ndarray, detail: np.ndarray, mask: np.ndarray, code: str, details: Sequence[str] | str) -> None:
    """Give ``code`` to the rows of ``mask`` that have no reason yet. ``details`` is one text for
    all of them or one text per True entry of ``mask``."""
    marked = np.flatnonzero(mask)
    free = pd.isna(reason[marked])
    idx = marked[free]
    if not len(idx):
        return
    reason[idx] = code
    if isinstance(details, str):
        detail[idx] = details
    else:
        texts = np.empty(len(marked), dtype=object)
        texts[:] = list(details)
        detail[idx] = texts[free]
