"""Row validation: one reason per bad row, cleaned values for good ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.types import Event, EventKind, LabelEntity, Verdict
from ingestion.mapping import CANONICAL_FIELDS, ColumnMapping
from ingestion.validate import (
    MAX_FUTURE_SECONDS,
    IpCache,
    RowRejected,
    events_from,
    parse_timestamps,
    validate_event,
    validate_events,
    validate_label,
    validate_labels,
)

GOOD = {
    "txn_id": "t1", "ts": "2024-03-01T12:00:00Z", "user_id": "u1", "device_id": "d1", "ip": "10.0.0.1",
    "merchant_id": "m1", "amount": "10.5", "currency": "usd", "event": "payment", "status": "approved",
}


def _check(**changes: str | None) -> tuple[str | None, str | None]:
    row = {**GOOD, **changes}
    frame = pd.DataFrame({k: pd.Series([row[k]], dtype="str") for k in CANONICAL_FIELDS})
    checked = validate_events(ColumnMapping().apply(frame))
    return checked.reason[0], checked.detail[0]


def test_good_row_is_cleaned() -> None:
    frame = pd.DataFrame({k: pd.Series([v], dtype="str") for k, v in GOOD.items()})
    checked = validate_events(ColumnMapping().apply(frame))
    assert checked.ok.tolist() == [True]
    (event,) = events_from(checked.columns(np.array([0])))
    assert event.ts == pd.Timestamp("2024-03-01T12:00:00Z").timestamp()
    assert event.currency == "USD" and event.amount == 10.5 and event.event is EventKind.PAYMENT


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"txn_id": ""}, "missing_txn_id"),
        ({"user_id": "  "}, "missing_user_id"),
        ({"ts": ""}, "missing_ts"),
        ({"ts": "yesterday"}, "bad_timestamp"),
        ({"ts": "2024-02-30T00:00:00Z"}, "bad_timestamp"),
        ({"ts": "1999-12-31T23:59:59Z"}, "bad_timestamp"),
        ({"ts": "2101-01-01T00:00:00Z"}, "bad_timestamp"),
        ({"ts": "01/02/2024"}, "bad_timestamp"),
        ({"user_id": "u" * 129}, "id_too_long"),
        ({"device_id": "d" * 200}, "id_too_long"),
        ({"event": "transfer"}, "unknown_event"),
        ({"merchant_id": ""}, "missing_merchant"),
        ({"event": "refund", "amount": ""}, "missing_amount"),
        ({"amount": "ten"}, "bad_amount"),
        ({"amount": "inf"}, "bad_amount"),
        ({"amount": "-0.01"}, "negative_amount"),
        ({"amount": "1e300"}, "bad_amount"),
        ({"amount": "1000000001"}, "bad_amount"),
        ({"user_id": "u\n1"}, "bad_id"),
        ({"txn_id": "t\t1"}, "bad_id"),
        ({"device_id": "d\x001"}, "bad_id"),
        ({"merchant_id": "m\x7f"}, "bad_id"),
        ({"ip": "999.1.1.1"}, "bad_ip"),
        ({"ip": "10.0.0"}, "bad_ip"),
        ({"ip": "2001:db8::zz"}, "bad_ip"),
        ({"currency": "US"}, "bad_currency"),
        ({"currency": "U5D"}, "bad_currency"),
    ],
)
def test_each_problem_gets_its_reason(changes: dict[str, str], reason: str) -> None:
    got, detail = _check(**changes)
    assert got == reason
    assert detail and detail.split("=")[0] in CANONICAL_FIELDS  # the detail names the field


def test_first_failing_check_wins() -> None:
    assert _check(user_id="", ip="bad")[0] == "missing_user_id"


@pytest.mark.parametrize(
    "changes",
    [
        {"event": "signup", "merchant_id": "", "amount": ""},  # no merchant needed
        {"event": "LOGIN", "merchant_id": ""},
        {"event": ""},  # payment by default
        {"ip": "", "device_id": "", "currency": "", "status": ""},
        {"ip": "2001:DB8:0:0:0:0:0:1"},
        {"amount": "0"},
        {"ts": "2024-03-01 12:00:00"},
        {"ts": "2024-03-01T14:00:00+02:00"},
    ],
)
def test_acceptable_variants(changes: dict[str, str]) -> None:
    assert _check(**changes) == (None, None)


def test_timestamps_naive_is_utc_and_offsets_convert() -> None:
    seconds, present, out_of_range = parse_timestamps(
        pd.Series(["2024-03-01T12:00:00", "2024-03-01T14:00:00+02:00", None, "1970-01-01T00:00:00Z"], dtype="str")
    )
    assert seconds[0] == seconds[1] == pd.Timestamp("2024-03-01T12:00:00Z").timestamp()
    assert present.tolist() == [True, True, False, True]
    assert out_of_range.tolist() == [False, False, False, True] and np.isnan(seconds[3])


def test_numeric_timestamps_count_from_origin() -> None:
    origin = pd.Timestamp("2020-01-01", tz="UTC").timestamp()
    seconds, _, _ = parse_timestamps(pd.Series([0, 86_400, np.nan]), unit="s", origin=origin)
    assert seconds[:2].tolist() == [origin, origin + 86_400] and np.isnan(seconds[2])
    ms, _, _ = parse_timestamps(pd.Series(["1000", "x"], dtype="str"), unit="ms", origin=origin)
    assert ms[0] == origin + 1 and np.isnan(ms[1])


def test_datetime_columns_are_accepted() -> None:
    naive = pd.Series(pd.to_datetime(["2024-03-01 12:00:00"]))
    aware = naive.dt.tz_localize("Europe/Berlin")
    a, _, _ = parse_timestamps(naive)
    b, _, _ = parse_timestamps(aware)
    assert a[0] - b[0] == 3600


def test_ip_cache_normalises_and_parses_each_distinct_value_once() -> None:
    cache = IpCache()
    text = pd.Series(["2001:DB8::1", "2001:DB8::1", "10.0.0.1", None, "::ffff:10.0.0.1", "x"], dtype="str")
    values, invalid = cache.normalise(text)
    assert values.tolist() == ["2001:db8::1", "2001:db8::1", "10.0.0.1", None, "::ffff:a00:1", None]
    assert invalid.tolist() == [False, False, False, False, False, True]
    assert len(cache._known) == 3  # plain IPv4 never reaches the cache


def test_labels_validation() -> None:
    frame = pd.DataFrame(
        {
            "entity": ["user", "Transaction", "account", "user", "user", "user", "user"],
            "entity_id": ["u1", "t1", "u2", "", "u3", "u4", "u5"],
            "label": ["fraud", "LEGIT", "fraud", "fraud", "maybe", "fraud", "fraud"],
            "ts": ["2024-01-01T00:00:00Z"] * 5 + ["", "2024-13-01"],
            "source": ["chargeback", "", "x", "x", "x", "x", "x"],
        },
        dtype="str",
    )
    checked = validate_labels(frame)
    assert checked.reason.tolist() == [
        None, None, "bad_entity", "missing_entity_id", "bad_label", "missing_ts", "bad_timestamp"
    ]
    first, second = checked.labels(np.array([0, 1]))
    assert (first.entity, first.label, first.source) == (LabelEntity.USER, Verdict.FRAUD, "chargeback")
    assert (second.entity, second.label, second.source) == (LabelEntity.TRANSACTION, Verdict.LEGIT, "unknown")


def test_events_from_builds_the_same_events_as_the_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from graph.types import Event
    from ingestion import validate

    rows = [
        {**GOOD},
        {**GOOD, "txn_id": "t2", "event": "signup", "merchant_id": "", "amount": "", "ip": "", "status": ""},
    ]
    frame = pd.DataFrame({k: pd.Series([r[k] for r in rows], dtype="str") for k in CANONICAL_FIELDS})
    checked = validate_events(ColumnMapping().apply(frame))
    columns = checked.columns(np.flatnonzero(checked.ok))
    fast = events_from(columns)
    expected = [Event(*(columns[f.name][i] for f in dataclasses.fields(Event))) for i in range(2)]
    assert fast == expected
    assert [hash(e) for e in fast] == [hash(e) for e in expected]
    assert fast[1].merchant_id is None and fast[1].event is EventKind.SIGNUP
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast[0].user_id = "other"  # type: ignore[misc]
    monkeypatch.setattr(validate, "_SLOT_SETTERS", None)  # the constructor path
    assert events_from(columns) == expected


@pytest.mark.parametrize(
    "changes",
    [{"user_id": "u\n1"}, {"txn_id": "t\t1"}, {"device_id": "d\x001"}, {"amount": "1e300"},
     {"amount": "1000000001"}, {"user_id": "u" * 129}, {}, {"amount": "1000000000"}],
)  # fmt: skip
def test_files_and_the_api_accept_and_refuse_the_same_values(changes: dict[str, str]) -> None:
    """One validation: a value ingest quarantines is one the checkout API refuses with the same
    words, and a value one accepts the other stores as the same event."""
    from pydantic import ValidationError as RequestInvalid

    from api.models import CheckoutRequest

    file_reason, file_detail = _check(**changes)
    row = {**GOOD, **changes}
    body = {k: row[k] for k in ("txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "currency", "event")}
    body.update(amount=float(row["amount"]))
    try:
        event = CheckoutRequest.model_validate(body).to_event(now=_NOW)
        api_reason, api_detail = None, None
    except RequestInvalid:
        api_reason, api_detail = "request", None
    except RowRejected as e:
        api_reason, api_detail = e.code, str(e)
    assert api_reason == file_reason, (changes, file_reason, api_reason)
    if file_reason is None:
        assert event == _file_event({**GOOD, **changes, "status": None})  # the API sends no status
    elif "amount" not in changes:  # the API sends the number, a file its text: the quote differs
        assert api_detail == file_detail


# -- the one-request validation gives what a file's row gets ---------------------------------------

_NOW = pd.Timestamp("2026-06-01T00:00:00Z").timestamp()
_NOT_AFTER = _NOW + MAX_FUTURE_SECONDS
_ODD = ["", " ", "null", "None", "NaN", " x ", "\t", "a\nb", "é", "x" * 129, "💳", "\x00", "\x7f", "0", "-1"]
_TEXT = st.one_of(st.sampled_from(_ODD), st.text(max_size=6), st.none())


def _file_event(row: dict[str, object]) -> Event:
    frame = pd.DataFrame({k: pd.Series([row.get(k)], dtype="str") for k in CANONICAL_FIELDS})
    checked = validate_events(ColumnMapping().apply(frame))
    assert checked.ok[0], checked.detail[0]
    (event,) = events_from(checked.columns(np.array([0])))
    return event


@st.composite
def _event_rows(draw: st.DrawFn) -> dict[str, str | None]:
    row: dict[str, str | None] = dict(GOOD)
    for field, choices in {
        "txn_id": _TEXT, "user_id": _TEXT, "device_id": _TEXT, "merchant_id": _TEXT, "status": _TEXT,
        "ts": st.one_of(_TEXT, st.sampled_from([
            "2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z", "2026-06-01 10:00:00", "2024-03-01T12:00:00+05:30",
            "2024-03-01", "2024-03-01T12:00:00.25Z", "1999-12-31T23:59:59Z", "2100-12-31T23:59:59Z",
            "2101-01-01T00:00:00Z", "1800-01-01T00:00:00Z", "9999-01-01T00:00:00Z", "2024-02-30T00:00:00Z",
            " 2024-03-01T12:00:00Z ", "20240301T120000Z", "2024-03-01T12:00Z", "2024-W09-5",
            "2026-06-01T10:00:00.030451+00:00", "2078-11-15T02:53:22.7Z", "2024-03-01T12:00:00.123456-08:00",
            "2024-03-01 12:00:00.84186", "2024-03-01T12:00:00.1234567Z", "2024-03-01T12:00:00+25:00"])),
        "amount": st.one_of(_TEXT, st.sampled_from(
            ["10", "1e300", "inf", "-inf", "nan", "-0.01", "1000000000", "1000000000.5", "1_000", "0x10", " 7 ", "1e-400"])),
        "ip": st.one_of(_TEXT, st.sampled_from(
            ["10.0.0.1", "010.0.0.1", "256.1.1.1", "::1", "2001:DB8::1", " 10.0.0.2 ", "fe80::1%eth0", "1.2.3"])),
        "currency": st.one_of(_TEXT, st.sampled_from(["usd", "EUR", "Eu", "EURO", " gbp "])),
        "event": st.one_of(_TEXT, st.sampled_from(["payment", "REFUND", "signup", "Login", "transfer"])),
    }.items():  # fmt: skip
        if draw(st.booleans()):
            row[field] = draw(choices)
    return row


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_event_rows())
def test_one_request_is_checked_exactly_as_a_file_row_is(row: dict[str, str | None]) -> None:
    """``validate_event`` (the API's path) and ``validate_events`` (a file's) agree on every
    row: the same reason and words for a bad one, the same event for a good one."""
    frame = pd.DataFrame({k: pd.Series([row.get(k)], dtype="str") for k in CANONICAL_FIELDS})
    checked = validate_events(ColumnMapping().apply(frame))
    _assert_same_outcome(row, lambda: validate_event(row), checked.reason[0], checked.detail[0],
                         lambda: events_from(checked.columns(np.array([0])))[0])  # fmt: skip


@st.composite
def _iso_timestamps(draw: st.DrawFn) -> str:
    """ISO-8601 text as checkout services send it: a date and time, 0 to 9 fraction digits, an
    optional zone (``Z`` or an offset)."""
    day = draw(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)))
    digits = draw(st.text(alphabet="0123456789", min_size=0, max_size=9))
    zone = draw(st.sampled_from(["", "Z", "+00:00", "-08:00", "+05:30", "+14:00", "-00:45"]))
    sep = draw(st.sampled_from(["T", " "]))
    return day.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{digits}" if digits else "") + zone


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_iso_timestamps())
def test_a_request_ts_is_the_same_float_as_a_file_row_ts(ts: str) -> None:
    """The request path reads most timestamps without pandas; the float must still be the one a
    file's row gets, to the last bit (an event's ts feeds features and the journal)."""
    row = {**GOOD, "ts": ts}
    frame = pd.DataFrame({k: pd.Series([row.get(k)], dtype="str") for k in CANONICAL_FIELDS})
    checked = validate_events(ColumnMapping().apply(frame))
    (from_file,) = events_from(checked.columns(np.array([0])))
    assert validate_event(row).ts == from_file.ts, ts


def _assert_same_outcome(
    row: dict[str, str | None], one: Callable[[], object], reason: str | None, detail: str | None,
    from_file: Callable[[], object],
) -> None:
    """The one-request check ``one`` fails with the file's ``reason`` and ``detail``, or both
    pass and give equal records."""
    try:
        record = one()
    except RowRejected as e:
        assert (e.code, str(e)) == (reason, detail), row
        return
    assert reason is None, (row, reason, detail)
    assert record == from_file(), row


@st.composite
def _label_rows(draw: st.DrawFn) -> dict[str, str | None]:
    row: dict[str, str | None] = {"entity": "user", "entity_id": "u1", "label": "fraud", "ts": "2024-03-01T12:00:00Z",
                                  "source": "chargeback"}  # fmt: skip
    for field, choices in {
        "entity": st.one_of(_TEXT, st.sampled_from(["USER", "transaction", "account"])),
        "entity_id": _TEXT, "source": _TEXT,
        "label": st.one_of(_TEXT, st.sampled_from(["FRAUD", "legit", "maybe"])),
        "ts": st.one_of(_TEXT, st.sampled_from(["2026-06-03T00:00:00Z", "1999-01-01T00:00:00Z", "2024-03-01 12:00:00",
                                                "2024-03-01T12:00:00.5+01:00"])),
    }.items():  # fmt: skip
        if draw(st.booleans()):
            row[field] = draw(choices)
    return row


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_label_rows())
def test_one_verdict_is_checked_exactly_as_a_file_row_is(row: dict[str, str | None]) -> None:
    frame = pd.DataFrame({k: pd.Series([v], dtype="str") for k, v in row.items()})
    checked = validate_labels(frame)
    _assert_same_outcome(row, lambda: validate_label(row), checked.reason[0], checked.detail[0],
                         lambda: checked.labels(np.array([0]))[0])  # fmt: skip


def test_a_live_request_dated_past_the_clock_is_refused_and_a_file_row_is_not() -> None:
    late = {**GOOD, "ts": "2026-06-02T00:00:01Z"}  # a day and a second after _NOW
    assert _check(**late)[0] is None  # files carry history and replays of any date
    with pytest.raises(RowRejected, match="after the clock"):
        validate_event(late, not_after=_NOT_AFTER)
    assert validate_event({**late, "ts": "2026-06-02T00:00:00Z"}, not_after=_NOT_AFTER).ts == _NOT_AFTER
