"""Column mappings: rename, compose, prefix, constants, defaults, timestamps, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from graph.errors import ValidationError
from graph.types import LabelEntity
from ingestion.mapping import ColumnMapping, as_text, label_values


def _frame(**cols: list[object]) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in cols.items()})


def _text(series: pd.Series) -> list[object]:
    return series.to_numpy(dtype=object, na_value=None).tolist()


def test_default_mapping_reads_canonical_columns_and_blanks_the_rest() -> None:
    frame = _frame(txn_id=["t1"], ts=["2024-01-01T00:00:00Z"], user_id=[" u1 "], extra=["x"])
    out = ColumnMapping().apply(frame)
    assert list(out.columns) == ["txn_id", "ts", "user_id", "device_id", "ip", "merchant_id", "amount",
                                 "currency", "event", "status"]
    assert _text(out["user_id"]) == ["u1"]  # stripped
    assert _text(out["device_id"]) == [None]


def test_rename_compose_prefix_constant_default() -> None:
    mapping = ColumnMapping.from_dict(
        {
            "fields": {
                "txn_id": "order",
                "user_id": {"columns": ["card", "net", "zip"], "separator": "-", "prefix": "card:"},
                "merchant_id": {"column": "shop", "prefix": "m:"},
                "event": {"constant": "refund"},
                "status": {"column": "state", "default": "approved"},
            }
        }
    )
    frame = _frame(order=["o1", "o2", "o3"], card=["4111", "4222", "4333"], net=["visa", "mc", "visa"],
                   zip=["10115", "", "NaN"], shop=["s1", "", "s3"], state=["declined", "", "approved"])
    out = mapping.apply(frame)
    assert _text(out["txn_id"]) == ["o1", "o2", "o3"]
    # A missing part makes the composite missing (no invented identity) unless allowed.
    assert _text(out["user_id"]) == ["card:4111-visa-10115", None, None]
    assert _text(out["merchant_id"]) == ["m:s1", None, "m:s3"]
    assert _text(out["event"]) == ["refund"] * 3
    assert _text(out["status"]) == ["declined", "approved", "approved"]


def test_composite_may_allow_missing_parts() -> None:
    mapping = ColumnMapping.from_dict(
        {"fields": {"user_id": {"columns": ["a", "b"], "allow_missing_parts": True, "prefix": "p:"}}}
    )
    out = mapping.apply(_frame(a=["1", "", ""], b=["x", "y", ""]))
    assert _text(out["user_id"]) == ["p:1|x", "p:|y", None]  # all parts missing -> still missing


def test_numbers_from_typed_sources_become_text() -> None:
    mapping = ColumnMapping.from_dict({"fields": {"user_id": {"columns": ["card1", "addr1"]}}})
    frame = pd.DataFrame({"card1": [13926, 2755], "addr1": [315.0, np.nan]})
    out = mapping.apply(frame)
    assert _text(out["user_id"]) == ["13926|315.0", None]


def test_mapping_file_yaml_and_toml_agree(tmp_path: Path) -> None:
    yaml_path = tmp_path / "m.yaml"
    yaml_path.write_text(
        "fields:\n"
        "  txn_id: {column: id, prefix: 'x:'}\n"
        "  ts: {column: secs, unit: s, origin: '2020-01-01T00:00:00Z'}\n"
        "joins:\n"
        "  - {file: side.csv, key: id, columns: [dev]}\n"
        "labels: {column: bad, entities: [transaction, user], source: chargeback}\n",
        encoding="utf-8",
    )
    toml_path = tmp_path / "m.toml"
    toml_path.write_text(
        'name = "m"\n'
        "[fields]\n"
        'txn_id = { column = "id", prefix = "x:" }\n'
        'ts = { column = "secs", unit = "s", origin = "2020-01-01T00:00:00Z" }\n'
        "[[joins]]\n"
        'file = "side.csv"\nkey = "id"\ncolumns = ["dev"]\n'
        "[labels]\n"
        'column = "bad"\nentities = ["transaction", "user"]\nsource = "chargeback"\n',
        encoding="utf-8",
    )
    a, b = ColumnMapping.from_file(yaml_path), ColumnMapping.from_file(toml_path)
    assert a == b
    assert a.name == "m"
    assert a.ts_unit == "s" and a.ts_origin == pd.Timestamp("2020-01-01", tz="UTC").timestamp()
    assert a.joins[0].resolve(Path("/data/events.csv")) == Path("/data/side.csv")
    assert a.labels is not None and a.labels.entities == (LabelEntity.TRANSACTION, LabelEntity.USER)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"fields": {"userid": "u"}}, "fields"),
        ({"fields": {"user_id": {"colum": "u"}}}, "fields.user_id"),
        ({"fields": {"ts": {"columns": ["a", "b"]}}}, "fields.ts"),
        ({"fields": {"amount": {"column": "a", "prefix": "x"}}}, "fields.amount"),
        ({"fields": {"ts": {"column": "a", "unit": "days"}}}, "fields.ts.unit"),
        ({"fields": {"user_id": {"column": "a", "unit": "s"}}}, "fields.user_id"),
        ({"fields": {"ts": {"column": "a", "unit": "s", "origin": "yesterday-ish"}}}, "fields.ts.origin"),
        ({"fields": {"event": {"constant": "payment", "column": "e"}}}, "fields.event"),
        ({"joins": [{"file": "x.csv", True: "id"}]}, "joins"),  # YAML's `on:` reads as True
        ({"joins": [{"file": "x.csv"}]}, "joins.key"),
        ({"labels": {"column": "f", "entities": ["account"]}}, "labels.entities"),
        ({"labels": {"column": "f", "fraud_values": ["1"], "legit_values": ["1"]}}, "labels"),
        ({"mapping": {}}, "mapping"),
    ],
)
def test_bad_mappings_are_refused_naming_the_field(data: dict[object, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        ColumnMapping.from_dict(data)  # type: ignore[arg-type]
    assert err.value.field == field


def test_bad_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not found"):
        ColumnMapping.from_file(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="cannot be parsed"):
        ColumnMapping.from_file(bad)
    wrong = tmp_path / "m.json"
    wrong.write_text("{}", encoding="utf-8")
    with pytest.raises(ValidationError, match="yaml"):
        ColumnMapping.from_file(wrong)


def test_check_columns_fails_early_on_missing_sources() -> None:
    mapping = ColumnMapping.from_dict({"fields": {"user_id": {"columns": ["card", "zip"]}}})
    mapping.check_columns(("txn_id", "ts", "card", "zip"), "e.csv")
    with pytest.raises(ValidationError, match="zip"):
        mapping.check_columns(("txn_id", "ts", "card"), "e.csv")
    with pytest.raises(ValidationError, match="ts"):
        ColumnMapping().check_columns(("txn_id", "user_id"), "e.csv")


def test_as_text_treats_null_tokens_as_missing() -> None:
    out = as_text(pd.Series(["", " NA ", "null", "None", "x", "nan"], dtype="str"))
    assert _text(out) == [None, None, None, None, "x", None]


def test_label_values() -> None:
    mapping = ColumnMapping.from_dict({"labels": {"column": "f", "fraud_values": ["1", "yes"], "legit_values": ["0"]}})
    assert mapping.labels is not None
    fraud, labelled, bad = label_values(_frame(f=["1", "0", "", "YES", "2"]), mapping.labels)
    assert fraud.tolist() == [True, False, False, True, False]
    assert labelled.tolist() == [True, True, False, True, False]
    assert bad.tolist() == [False, False, False, False, True]


def test_nested_finds_json_objects_and_arrays_in_the_columns_a_field_reads() -> None:
    mapping = ColumnMapping.from_dict(
        {"fields": {"user_id": {"columns": ["card", "zip"]}, "event": {"constant": "payment"}}}
    )
    frame = pd.DataFrame(
        {
            "txn_id": pd.Series(["t1", "t2", "t3"], dtype="str"),
            "card": pd.Series(["4111", {"a": 1}, "4333"], dtype=object),
            "zip": pd.Series([np.array([1, 2]), [3], "10115"], dtype=object),
            "event": pd.Series([{"x": 1}, None, None], dtype=object),  # a constant reads no column
            "meta": pd.Series([{"k": 1}] * 3, dtype=object),  # read by no field
        }
    )
    nested = mapping.nested(frame)
    assert list(nested) == ["user_id"]
    assert nested["user_id"][1] == {"a": 1}  # the first nested part of the row
    assert nested["user_id"][2] is None and nested["user_id"][0].tolist() == [1, 2]
    assert ColumnMapping().nested(_frame(txn_id=["t1"], user_id=["u1"])) == {}
