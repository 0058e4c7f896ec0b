"""Column mappings: how another schema's columns become ringwatch's canonical event columns.

A mapping is a small YAML (``.yaml``/``.yml``) or TOML (``.toml``) file, so a user can point
ringwatch at their own export without editing it (the README's "Your own data" shows its keys;
``mappings/ieee_cis.yaml`` is a full one). Every key is optional; a canonical field the mapping
does not name is read from the source column of the same name, if there is one. Read one with
``ColumnMapping.from_file``, which refuses a file over ``MAX_MAPPING_BYTES`` or with more than
``MAX_MAPPING_VALUES`` values (YAML aliases counted in full) before anything walks it.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import yaml

from graph.errors import ValidationError
from graph.types import LabelEntity

#: The canonical event columns (DESIGN §5), in order.
CANONICAL_FIELDS: tuple[str, ...] = (
    "txn_id",
    "ts",
    "user_id",
    "device_id",
    "ip",
    "merchant_id",
    "amount",
    "currency",
    "event",
    "status",
)
#: Fields every row must have (merchant_id and amount too, for payments and refunds).
REQUIRED_FIELDS: tuple[str, ...] = ("txn_id", "ts", "user_id")
#: Fields parsed as numbers or instants rather than text: no composing or prefixing.
_NON_TEXT_FIELDS = frozenset({"ts", "amount"})
TIMESTAMP_UNITS: tuple[str, ...] = ("iso", "s", "ms")
#: Cell values that mean "no value" in exports (what pandas treats as NA by default, roughly).
NULL_TOKENS: tuple[str, ...] = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "none")
#: The largest mapping file read. A mapping is a few kilobytes; this leaves room for long value
#: lists and keeps parsing quick.
MAX_MAPPING_BYTES = 256 << 10
#: The most values (keys, list items, scalars) a mapping file may hold once its YAML aliases are
#: expanded.
MAX_MAPPING_VALUES = 10_000
# Tables and lists in a mapping nest four deep at most; this leaves room and bounds the recursion.
_MAX_MAPPING_DEPTH = 32
# What a JSON object or array becomes in a frame: dict and list from ``json``, dict and numpy
# array from pyarrow.
NESTED_TYPES = (dict, list, tuple, np.ndarray)
# libyaml's parser when PyYAML was built with it: several times faster, and it refuses deep nesting.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_FIELD_KEYS = frozenset({"column", "columns", "separator", "prefix", "constant", "default",
                         "allow_missing_parts", "unit", "origin"})
_TOP_KEYS = frozenset({"name", "fields", "joins", "labels"})
_JOIN_KEYS = frozenset({"file", "key", "columns"})
_LABEL_KEYS = frozenset({"column", "fraud_values", "legit_values", "entities", "source"})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where one canonical field comes from: one source column (a rename), several (a composite
    joined with ``separator``), or a ``constant``. ``prefix`` is put before every present value;
    ``default`` fills missing values; with ``allow_missing_parts`` false a missing part makes the
    whole composite missing. ``unit``/``origin`` apply to ``ts`` only: ``iso`` (ISO-8601 text,
    UTC when it has no zone), ``s`` or ``ms`` (numbers counted from ``origin``, default
    1970-01-01 UTC). Text fields are stripped; empty cells and ``NULL_TOKENS`` count as missing."""

    columns: tuple[str, ...] = ()
    separator: str = "|"
    prefix: str = ""
    constant: str | None = None
    default: str | None = None
    allow_missing_parts: bool = False
    unit: str = "iso"
    origin: float = 0.0  # epoch seconds that numeric ``ts`` values count from


@dataclass(frozen=True, slots=True)
class JoinSpec:
    """A left join of a side file on column ``key`` (e.g. IEEE-CIS identity rows on
    TransactionID). ``columns`` are the side file's columns to bring in (all when empty). Side
    files are read whole, so they should be small next to the events; their keys must be unique."""

    file: str
    key: str
    columns: tuple[str, ...] = ()

    def resolve(self, source: Path) -> Path:
        """The side file's path: as written when absolute, else next to ``source``."""
        p = Path(self.file).expanduser()
        return p if p.is_absolute() else Path(source).parent / p


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """Verdicts derived from a source column while loading events. A row whose value is in
    ``fraud_values`` / ``legit_values`` (compared as stripped, lower-cased text) labels its
    transaction and/or user; an empty value gives no label; any other value is a bad row.

    A user's verdict is ``fraud`` if any of its labelled transactions in the load is fraud, else
    ``legit``, stamped with the time of the user's latest labelled transaction."""

    column: str
    fraud_values: tuple[str, ...] = ("1", "1.0", "true", "fraud", "yes")
    legit_values: tuple[str, ...] = ("0", "0.0", "false", "legit", "no")
    entities: tuple[LabelEntity, ...] = (LabelEntity.TRANSACTION,)
    source: str = "mapping"


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """How a source schema becomes canonical events (the file format: README, "Your own data")."""

    fields: Mapping[str, FieldSpec] = field(default_factory=lambda: MappingProxyType({}))
    joins: tuple[JoinSpec, ...] = ()
    labels: LabelSpec | None = None
    name: str = "canonical"

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_file(
        cls, path: Path, *, max_bytes: int = MAX_MAPPING_BYTES, max_values: int = MAX_MAPPING_VALUES
    ) -> ColumnMapping:
        """Read a YAML or TOML mapping file.

        Args:
            path: the file (``.yaml``, ``.yml`` or ``.toml``, UTF-8).
            max_bytes: the largest file read (checked before parsing).
            max_values: the most values the file may hold, every use of a YAML alias counted in
                full (checked before the mapping is built).

        Raises:
            ValidationError: missing file, unknown extension, a file over ``max_bytes``, text
                that is not UTF-8 or cannot be parsed, more than ``max_values`` values or an alias
                that holds itself, or a mapping that breaks the rules (unknown field or key,
                composite ``ts``, bad unit...).
        """
        path = Path(path)
        if not path.is_file():
            raise ValidationError("mapping", str(path), "file not found")
        suffix = path.suffix.lower()
        if suffix not in (".yaml", ".yml", ".toml"):
            raise ValidationError("mapping", str(path), "expected a .yaml, .yml or .toml file")
        text = _mapping_text(path, max_bytes)
        try:
            if suffix == ".toml":
                data = tomllib.loads(text)
            else:
                data = yaml.load(text, Loader=_YAML_LOADER)
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
            raise ValidationError("mapping", str(path), f"cannot be parsed: {e}") from e
        except RecursionError as e:
            raise ValidationError("mapping", str(path), "cannot be parsed: nested too deeply") from e
        _check_values(data, str(path), max_values)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValidationError("mapping", str(path), "top level must be a table of keys")
        data.setdefault("name", path.stem)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ColumnMapping:
        """Build a mapping from parsed YAML/TOML (the same keys as the file)."""
        _check_keys("mapping", data, _TOP_KEYS)
        raw_fields = data.get("fields") or {}
        if not isinstance(raw_fields, Mapping):
            raise ValidationError("fields", raw_fields, "must be a table of canonical field -> spec")
        fields: dict[str, FieldSpec] = {}
        for name, spec in raw_fields.items():
            if name not in CANONICAL_FIELDS:
                expected = ", ".join(CANONICAL_FIELDS)
                raise ValidationError("fields", name, f"not a canonical field; expected one of {expected}")
            fields[name] = _field_spec(name, spec)
        raw_joins = data.get("joins") or []
        if not isinstance(raw_joins, list):
            raise ValidationError("joins", raw_joins, "must be a list of joins")
        joins = tuple(_join_spec(j) for j in raw_joins)
        raw_labels = data.get("labels")
        labels = _label_spec(raw_labels) if raw_labels is not None else None
        return cls(
            fields=MappingProxyType(fields), joins=joins, labels=labels, name=str(data.get("name") or "mapping")
        )

    # -- use --------------------------------------------------------------------------------

    def spec(self, name: str) -> FieldSpec:
        """The spec of canonical field ``name`` (same-named column when the mapping is silent)."""
        return self.fields.get(name) or FieldSpec(columns=(name,))

    def referenced_columns(self) -> tuple[str, ...]:
        """Source columns the fields and labels read (after joins), in first-use order."""
        names: list[str] = []
        for f in CANONICAL_FIELDS:
            if f in self.fields:
                names.extend(self.fields[f].columns)
        if self.labels is not None:
            names.append(self.labels.column)
        return tuple(dict.fromkeys(names))

    def check_columns(self, available: tuple[str, ...], source: str) -> None:
        """Fail early when the source schema cannot feed the mapping.

        Raises:
            ValidationError: a column the mapping names is absent, or a required field
                (txn_id, ts, user_id) has neither a mapping nor a same-named column.
        """
        have = set(available)
        for col in self.referenced_columns():
            if col not in have:
                raise ValidationError(
                    "columns", col, f"named by mapping {self.name!r} but not in {source}; columns are {list(available)}"
                )
        for f in REQUIRED_FIELDS:
            spec = self.spec(f)
            if spec.constant is None and not any(c in have for c in spec.columns):
                raise ValidationError(
                    "columns",
                    f,
                    f"required field has no source column in {source}; columns are {list(available)} (use --mapping)",
                )

    def nested(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The canonical fields that some rows of ``frame`` feed with a JSON object or array
        instead of one value (see ``nested_values``): per such field, an object array holding,
        for each row, the first nested source value or None. Fields without any are left out."""
        out: dict[str, np.ndarray] = {}
        for name in CANONICAL_FIELDS:
            spec = self.spec(name)
            if spec.constant is not None:
                continue
            masks = [(c, nested_values(frame[c])) for c in spec.columns if c in frame.columns]
            if not any(m.any() for _, m in masks):
                continue
            found = np.full(len(frame), None, dtype=object)
            seen = np.zeros(len(frame), dtype=bool)
            for column, mask in masks:
                take = mask & ~seen
                found[take] = frame[column].to_numpy(dtype=object)[take]
                seen |= take
            out[name] = found
        return out

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The canonical columns for ``frame`` (source columns, joins already added).

        Text fields come back as pandas ``str`` Series with NaN for missing; ``ts`` and ``amount``
        keep their source values (text or numbers) for the validator to parse. Columns absent
        from ``frame`` (a JSON-lines chunk without that key) read as missing.
        """
        n = len(frame)
        out: dict[str, pd.Series] = {}
        for name in CANONICAL_FIELDS:
            spec = self.spec(name)
            out[name] = _field_values(name, spec, frame, n)
        return pd.DataFrame(out, index=frame.index)

    @property
    def ts_unit(self) -> str:
        return self.spec("ts").unit

    @property
    def ts_origin(self) -> float:
        return self.spec("ts").origin


def as_text(values: pd.Series) -> pd.Series:
    """``values`` as stripped text (pandas ``str`` dtype); empty cells and ``NULL_TOKENS`` become
    NaN. Numbers become their usual text (``7`` -> ``"7"``, ``315.0`` -> ``"315.0"``)."""
    if isinstance(values.dtype, pd.StringDtype):
        text = values
    else:
        text = values.astype("str")
    text = text.str.strip()
    return text.mask(text.isin(NULL_TOKENS))


def nested_values(values: pd.Series) -> np.ndarray:
    """Per row, whether ``values`` holds a JSON object or array there (a dict, list or array, as
    JSON lines and nested Parquet columns give them) rather than one value. Only columns of
    Python objects can; text and number columns cost nothing."""
    if values.dtype != object:
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((isinstance(v, NESTED_TYPES) for v in values.to_numpy()), dtype=bool, count=len(values))


def label_values(frame: pd.DataFrame, spec: LabelSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``spec.column`` of ``frame``: (is_fraud, labelled, bad) boolean arrays. ``labelled``
    rows carry a known verdict; ``bad`` rows carry a value that is neither fraud nor legit."""
    text = as_text(_column(frame, spec.column, len(frame))).str.lower()
    fraud = text.isin([v.lower() for v in spec.fraud_values]).to_numpy(dtype=bool)
    legit = text.isin([v.lower() for v in spec.legit_values]).to_numpy(dtype=bool)
    present = text.notna().to_numpy(dtype=bool)
    return fraud, fraud | legit, present & ~(fraud | legit)


# -- helpers -------------------------------------------------------------------------------------


def _mapping_text(path: Path, max_bytes: int) -> str:
    """The file's text, read only when it is at most ``max_bytes`` long."""
    too_big = f"more than the limit of {max_bytes:,} bytes for a mapping file"
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValidationError("mapping", str(path), f"{size:,} bytes, {too_big}")
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)  # bounded also if the file grows meanwhile
    except OSError as e:
        raise ValidationError("mapping", str(path), f"cannot be read: {e.strerror or e}") from e
    if len(raw) > max_bytes:
        raise ValidationError("mapping", str(path), too_big)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValidationError("mapping", str(path), f"not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x})") from e


def _check_values(data: object, where: str, max_values: int) -> None:
    """Refuse parsed mapping data holding more than ``max_values`` values once YAML aliases (one
    object used in several places) are counted at every use, or an alias that holds itself.
    Each shared object is counted once and remembered, so a file of nested aliases is refused
    after a few steps, not after expanding it."""
    counted: dict[int, int] = {}
    open_now: set[int] = set()

    def count(value: object, depth: int) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key in counted:
            return counted[key]
        if key in open_now:
            raise ValidationError("mapping", where, "a YAML alias refers to a value holding it: the mapping is endless")
        if depth > _MAX_MAPPING_DEPTH:
            raise ValidationError("mapping", where, f"nested more than {_MAX_MAPPING_DEPTH} levels deep")
        open_now.add(key)
        total = 1
        for item in (x for kv in value.items() for x in kv) if isinstance(value, dict) else value:
            total += count(item, depth + 1)
            if total > max_values:
                raise ValidationError(
                    "mapping",
                    where,
                    f"holds more than {max_values:,} values, every use of a YAML alias (*name) counted; "
                    "a mapping needs far fewer",
                )
        open_now.discard(key)
        counted[key] = total
        return total

    count(data, 0)


def _column(frame: pd.DataFrame, name: str, n: int) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.full(n, np.nan, dtype=object), index=frame.index, dtype="str")


def _field_values(name: str, spec: FieldSpec, frame: pd.DataFrame, n: int) -> pd.Series:
    if spec.constant is not None:
        return pd.Series(np.full(n, spec.constant, dtype=object), index=frame.index, dtype="str")
    if name in _NON_TEXT_FIELDS:
        raw = _column(frame, spec.columns[0], n)
        if spec.default is not None:
            raw = as_text(raw).fillna(spec.default)
        return raw
    parts = [as_text(_column(frame, c, n)) for c in spec.columns]
    if len(parts) == 1:
        text = parts[0]
    else:
        na_rep = "" if spec.allow_missing_parts else None
        text = parts[0].str.cat(parts[1:], sep=spec.separator, na_rep=na_rep)
        if spec.allow_missing_parts:
            # Every part missing is still a missing value, not a bare run of separators.
            none = np.logical_and.reduce([p.isna().to_numpy() for p in parts])
            text = text.mask(none)
    if spec.prefix:
        text = spec.prefix + text
    if spec.default is not None:
        text = text.fillna(spec.default)
    return text


def _check_keys(where: str, data: Mapping[str, object], allowed: frozenset[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ValidationError(where, key, f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _str_tuple(where: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return tuple(str(v) for v in value)
    raise ValidationError(where, value, "must be a string or a list of strings")


def _field_spec(name: str, spec: object) -> FieldSpec:
    where = f"fields.{name}"
    if isinstance(spec, str):
        return FieldSpec(columns=(spec,))
    if not isinstance(spec, Mapping):
        raise ValidationError(where, spec, "must be a source column name or a table")
    _check_keys(where, spec, _FIELD_KEYS)
    if "column" in spec and "columns" in spec:
        raise ValidationError(where, spec, "give 'column' or 'columns', not both")
    columns = _str_tuple(f"{where}.columns", spec.get("columns", spec.get("column", [])))
    constant = spec.get("constant")
    if constant is not None and columns:
        raise ValidationError(where, spec, "a constant takes no source columns")
    if constant is None and not columns:
        columns = (name,)
    if name in _NON_TEXT_FIELDS and (len(columns) > 1 or spec.get("prefix")):
        raise ValidationError(where, spec, f"{name} is parsed, not text: one column, no prefix")
    unit = str(spec.get("unit", "iso"))
    if unit not in TIMESTAMP_UNITS:
        raise ValidationError(f"{where}.unit", unit, f"expected one of {', '.join(TIMESTAMP_UNITS)}")
    if name != "ts" and ("unit" in spec or "origin" in spec):
        raise ValidationError(where, spec, "unit and origin apply to ts only")
    default = spec.get("default")
    return FieldSpec(
        columns=columns,
        separator=str(spec.get("separator", "|")),
        prefix=str(spec.get("prefix", "")),
        constant=None if constant is None else str(constant),
        default=None if default is None else str(default),
        allow_missing_parts=bool(spec.get("allow_missing_parts", False)),
        unit=unit,
        origin=_origin(f"{where}.origin", spec.get("origin", 0.0)),
    )


def _origin(where: str, value: object) -> float:
    """An origin given as epoch seconds or as an ISO-8601 instant (UTC when it has no zone)."""
    if isinstance(value, bool):
        raise ValidationError(where, value, "must be epoch seconds or an ISO-8601 instant")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValidationError(where, value, "must be finite")
        return float(value)
    try:
        ts = pd.Timestamp(str(value))
    except ValueError as e:
        raise ValidationError(where, value, "must be epoch seconds or an ISO-8601 instant") from e
    if ts is pd.NaT:
        raise ValidationError(where, value, "must be epoch seconds or an ISO-8601 instant")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return float(ts.timestamp())


def _join_spec(data: object) -> JoinSpec:
    if not isinstance(data, Mapping):
        raise ValidationError("joins", data, "each join must be a table with file, key, columns")
    if True in data:
        raise ValidationError("joins", "on", "YAML reads 'on' as true; name the join column with 'key'")
    _check_keys("joins", data, _JOIN_KEYS)
    for name in ("file", "key"):
        if not isinstance(data.get(name), str) or not data.get(name):
            raise ValidationError(f"joins.{name}", data.get(name), "required text")
    columns = _str_tuple("joins.columns", data.get("columns", []))
    return JoinSpec(file=str(data["file"]), key=str(data["key"]), columns=columns)


def _label_spec(data: object) -> LabelSpec:
    if not isinstance(data, Mapping):
        raise ValidationError("labels", data, "must be a table with at least 'column'")
    _check_keys("labels", data, _LABEL_KEYS)
    column = data.get("column")
    if not isinstance(column, str) or not column:
        raise ValidationError("labels.column", column, "required text")
    entities: list[LabelEntity] = []
    for e in _str_tuple("labels.entities", data.get("entities", ["transaction"])):
        try:
            entities.append(LabelEntity(e))
        except ValueError as err:
            raise ValidationError("labels.entities", e, "expected user or transaction") from err
    defaults = LabelSpec(column=column)
    fraud = _str_tuple("labels.fraud_values", data.get("fraud_values", list(defaults.fraud_values)))
    legit = _str_tuple("labels.legit_values", data.get("legit_values", list(defaults.legit_values)))
    overlap = {v.lower() for v in fraud} & {v.lower() for v in legit}
    if overlap:
        raise ValidationError("labels", sorted(overlap), "a value cannot be both fraud and legit")
    return LabelSpec(
        column=column,
        fraud_values=fraud,
        legit_values=legit,
        entities=tuple(dict.fromkeys(entities)),
        source=str(data.get("source", "mapping")),
    )
