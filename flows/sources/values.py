"""Database values into Arrow: the field a SQLAlchemy column type or a first value maps to,
and chunks of DB-API rows transposed into record batches (the SQLAlchemy reader's hot path).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy.types as sqltypes

from flows.core.columns import (
    Kind,
    decimal_field,
    is_undetermined,
    kind_of,
    make_field,
    undetermined_field,
)
from flows.core.errors import SourceError

# Set on JSON columns whose values arrive as Python objects (a driver decoded them) rather
# than as the database's JSON text, which is passed through unchanged.
JSON_OBJECTS_KEY = b"exports.json_values"
# Set on text columns that hold durations (MySQL TIME): the digits of their fraction.
DURATION_DIGITS_KEY = b"exports.duration_digits"


def field_for_sqltype(name: str, sqltype: sqltypes.TypeEngine[Any]) -> pa.Field | None:
    """The field a reflected SQLAlchemy column type maps to; None means infer from values."""
    if isinstance(sqltype, sqltypes.Boolean):
        return make_field(name, "bool")
    if isinstance(sqltype, sqltypes.Integer):
        return make_field(name, "int")
    if isinstance(sqltype, sqltypes.Float):
        return make_field(name, "float")
    if isinstance(sqltype, sqltypes.Numeric):
        return decimal_field(name, sqltype.precision, sqltype.scale)
    if isinstance(sqltype, sqltypes.DateTime):
        return make_field(name, "timestamptz" if sqltype.timezone else "timestamp")
    if isinstance(sqltype, sqltypes.Date):
        return make_field(name, "date")
    if isinstance(sqltype, sqltypes.Time):
        return make_field(name, "time")
    if isinstance(sqltype, sqltypes.JSON):
        return make_field(name, "json")
    if isinstance(sqltype, sqltypes._Binary):
        return make_field(name, "bytes")
    if isinstance(sqltype, sqltypes.Uuid):
        return make_field(name, "uuid")
    if isinstance(sqltype, sqltypes.String):
        return make_field(name, "str")
    return None


def field_for_value(name: str, value: Any) -> pa.Field:
    """Infer a column's field from its first non-NULL value (sources without declared types)."""
    if isinstance(value, bool):
        return make_field(name, "bool")
    if isinstance(value, int):
        return make_field(name, "int")
    if isinstance(value, float):
        return make_field(name, "float")
    if isinstance(value, decimal.Decimal):
        return make_field(name, "decimal")
    if isinstance(value, dt.datetime):
        return make_field(name, "timestamptz" if value.tzinfo is not None else "timestamp")
    if isinstance(value, dt.date):
        return make_field(name, "date")
    if isinstance(value, dt.time):
        return make_field(name, "time")
    if isinstance(value, bytes | bytearray | memoryview):
        return make_field(name, "bytes")
    if isinstance(value, uuid.UUID):
        return make_field(name, "uuid")
    if isinstance(value, dict | list):
        field = make_field(name, "json")
        return field.with_metadata({**field.metadata, JSON_OBJECTS_KEY: b"objects"})
    return make_field(name, "str")


def infer_fields(
    names: Sequence[str], known: Sequence[pa.Field | None], rows: Sequence[Sequence[Any]]
) -> list[pa.Field]:
    """Fields for a chunk of a query result: the declared or already settled type where there
    is one, else the type of the column's first non-NULL value in `rows`, else undetermined."""
    fields = []
    for index, (name, field) in enumerate(zip(names, known, strict=True)):
        if field is not None and not is_undetermined(field):
            fields.append(field)
            continue
        first = next((row[index] for row in rows if row[index] is not None), None)
        fields.append(undetermined_field(name) if first is None else field_for_value(name, first))
    return fields


def rows_to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Transpose a chunk of DB-API rows into one Arrow record batch of `schema`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [_to_array(field, values) for field, values in zip(schema, columns, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _to_array(field: pa.Field, values: Sequence[Any]) -> pa.Array:
    if is_undetermined(field):
        return pa.nulls(len(values))
    kind = kind_of(field)
    convert = None if pa.types.is_decimal(field.type) else _CONVERTERS.get(kind)
    metadata = field.metadata or {}
    if kind == "json" and metadata.get(JSON_OBJECTS_KEY) == b"objects":
        convert = _json_dump
    if DURATION_DIGITS_KEY in metadata:  # a duration column: its text has a fixed precision
        digits = int(metadata[DURATION_DIGITS_KEY])
        convert = functools.partial(_duration_or_text, digits=digits)
    try:
        if convert is not None and kind in _ALWAYS_CONVERT:
            values = [None if v is None else convert(v) for v in values]
        try:
            return pa.array(values, type=field.type, from_pandas=False)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            if convert is None or kind in _ALWAYS_CONVERT:
                raise
            values = [None if v is None else convert(v) for v in values]
            return pa.array(values, type=field.type, from_pandas=False)
    except MemoryError:  # pyarrow's is an ArrowException too: not a value that does not fit
        raise
    except _CONVERSION_ERRORS as exc:
        bad = _first_bad_value(field, values)
        raise SourceError(
            f"column `{field.name}`: value `{bad!r}` does not fit its type {kind} ({exc}); "
            f"CAST the column in a `query` to the type you want exported"
        ) from exc


def _first_bad_value(field: pa.Field, values: Sequence[Any]) -> Any:
    for value in values:
        try:
            pa.array([value], type=field.type)
        except Exception:  # noqa: BLE001 - any failure marks the culprit
            return value
    return None


def _decimal_text(value: Any) -> str:
    """str(Decimal): the canonical decimal text (flows/formats/render.py), exact, as dicttoxml
    writes it."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(decimal.Decimal(str(value)))


def _json_text(value: Any) -> str:
    """JSON columns carry the database's JSON text; objects only from drivers that decode."""
    return value if isinstance(value, str) else _json_dump(value)


def _json_dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dt.timedelta):
        return duration_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def duration_text(value: dt.timedelta, digits: int | None = None) -> str:
    """A duration as MySQL writes a TIME: `[-]HH:MM:SS[.ffffff]`, hours beyond 24 kept
    (838:59:59), never folded into a day count; `digits` of fraction (by default, six when
    there is a fraction)."""
    micros = abs(value) // dt.timedelta(microseconds=1)
    seconds, fraction = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    sign = "-" if value < dt.timedelta(0) else ""
    text = f"{sign}{hours:02d}:{minute:02d}:{second:02d}"
    if digits is None:
        digits = 6 if fraction else 0
    return f"{text}.{f'{fraction:06d}'[:digits]}" if digits else text


def _duration_or_text(value: Any, *, digits: int) -> str:
    return duration_text(value, digits) if isinstance(value, dt.timedelta) else _text(value)


def _int(value: Any) -> Any:
    """A BIT value (bytes, big-endian) as an integer; anything else as it is (a float in an
    integer column stays an error, never a truncated number)."""
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return value


def _float(value: Any) -> float:
    return value if isinstance(value, float) else float(value)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value)


_CONVERSION_ERRORS = (
    pa.ArrowException,
    TypeError,
    ValueError,
    OverflowError,
    decimal.InvalidOperation,
)
# Values of these kinds always need converting (Decimal → exact text, objects → JSON text);
# the others are tried as they come and converted only when Arrow refuses them.
_ALWAYS_CONVERT: frozenset[Kind] = frozenset({"decimal", "json"})

_CONVERTERS: dict[Kind, Callable[[Any], Any]] = {
    "decimal": _decimal_text,
    "json": _json_text,
    "str": _text,
    "uuid": _text,
    "float": _float,
    "bytes": _bytes,
    "int": _int,
}
