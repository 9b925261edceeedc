"""The Arrow schema every source fills and every writer renders: each column's kind (how it is
written), its Arrow type, and the batches of finished rows a database rendered itself.

Arrow is the currency between extraction and the writers, so every source (SQLAlchemy rows,
PostgreSQL COPY) lands in the same typed arrays and every format renders from them. The
sources' conversion of database values into these arrays is flows/sources/values.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal, cast

import pyarrow as pa

# How a column is rendered. Most kinds follow from the Arrow type; `decimal` and `json`
# are stored as Arrow strings when no exact Arrow type fits, so they are tagged in the
# field metadata under KIND_METADATA_KEY.
Kind = Literal[
    "int",
    "float",
    "decimal",
    "bool",
    "str",
    "uuid",
    "json",
    "bytes",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "array",
]
KIND_METADATA_KEY = b"exports.kind"
# An array column travels as its database's array text (PostgreSQL's `{1,2,NULL}`, the form
# CSV and XML write); JSON and Parquet read its elements (flows/formats/arrays.py), whose
# kind and separator are in the field metadata under these keys.
ELEMENT_KIND_KEY = b"exports.element_kind"
ELEMENT_DELIMITER_KEY = b"exports.element_delimiter"
ELEMENT_TYPE_KEY = b"exports.element_type"  # an Arrow type alias, e.g. int32
MAX_DECIMAL128_PRECISION = 38
# Schema metadata of a batch whose one column holds finished rows of a format (the
# database rendered them), and the names of the columns those rows hold.
RENDERED_FORMAT_KEY = b"exports.rendered_format"
RENDERED_COLUMNS_KEY = b"exports.rendered_columns"


def rendered_rows(rows: pa.Array, fmt: str, names: Sequence[str]) -> pa.RecordBatch:
    """A batch of finished rows (each with its line break) of format `fmt`."""
    metadata = {RENDERED_FORMAT_KEY: fmt.encode(), RENDERED_COLUMNS_KEY: json.dumps(list(names))}
    schema = pa.schema([pa.field("rows", pa.string(), nullable=False)], metadata=metadata)
    return pa.RecordBatch.from_arrays([rows], schema=schema)


def rendered_format(schema: pa.Schema) -> str | None:
    """The format whose finished rows a batch of this schema holds, if it holds any."""
    value = (schema.metadata or {}).get(RENDERED_FORMAT_KEY)
    return None if value is None else value.decode()


def column_names(schema: pa.Schema) -> list[str]:
    """The source's column names, for typed and rendered batches alike."""
    value = (schema.metadata or {}).get(RENDERED_COLUMNS_KEY)
    return schema.names if value is None else list(json.loads(value))


def make_field(name: str, kind: Kind, arrow_type: pa.DataType | None = None) -> pa.Field:
    """An Arrow field for a column of `kind`; decimals without an exact type are strings."""
    if arrow_type is None:
        arrow_type = _DEFAULT_TYPES[kind]
    return pa.field(name, arrow_type, nullable=True, metadata={KIND_METADATA_KEY: kind.encode()})


def decimal_field(name: str, precision: int | None, scale: int | None) -> pa.Field:
    """decimal128(p, s) when the database declares one that fits, else exact text."""
    if precision and scale is not None and 0 <= scale <= precision <= MAX_DECIMAL128_PRECISION:
        return make_field(name, "decimal", pa.decimal128(precision, scale))
    return make_field(name, "decimal", pa.string())


def array_field(
    name: str, element_kind: Kind, delimiter: str = ",", element_type: pa.DataType | None = None
) -> pa.Field:
    """A column of arrays, held as the database's array text, of elements of `element_kind`
    (held in `element_type`, an integer width; by default the kind's own type)."""
    field = make_field(name, "array")
    metadata = {
        **field.metadata,
        ELEMENT_KIND_KEY: element_kind.encode(),
        ELEMENT_DELIMITER_KEY: delimiter.encode(),
    }
    if element_type is not None and pa.types.is_integer(element_type):
        metadata[ELEMENT_TYPE_KEY] = str(element_type).encode()
    return field.with_metadata(metadata)


def element_kind_of(field: pa.Field) -> tuple[Kind, str]:
    """The kind of an array column's elements, and the character between them."""
    meta = field.metadata or {}
    kind = cast(Kind, meta.get(ELEMENT_KIND_KEY, b"str").decode())
    return kind, meta.get(ELEMENT_DELIMITER_KEY, b",").decode()


def element_type_of(field: pa.Field) -> pa.DataType:
    """The Arrow type of an array column's elements."""
    alias = (field.metadata or {}).get(ELEMENT_TYPE_KEY)
    return (
        default_type(element_kind_of(field)[0])
        if alias is None
        else pa.type_for_alias(alias.decode())
    )


def kind_of(field: pa.Field) -> Kind:
    """The rendering kind of a field: from its metadata, else from its Arrow type."""
    meta = field.metadata or {}
    if KIND_METADATA_KEY in meta:
        return cast(Kind, meta[KIND_METADATA_KEY].decode())
    return kind_of_arrow_type(field.type)


def kind_of_arrow_type(arrow_type: pa.DataType) -> Kind:
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "bytes"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_time(arrow_type):
        return "time"
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz is not None else "timestamp"
    return "str"


_DEFAULT_TYPES: dict[Kind, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "decimal": pa.string(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "bytes": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "array": pa.string(),
}


def default_type(kind: Kind) -> pa.DataType:
    """The Arrow type a value of `kind` is held in when its column declares nothing finer."""
    return _DEFAULT_TYPES[kind]


def undetermined_field(name: str) -> pa.Field:
    """A column with only NULLs so far: its type is settled by its first value."""
    return pa.field(name, pa.null())


def is_undetermined(field: pa.Field) -> bool:
    return bool(pa.types.is_null(field.type))
