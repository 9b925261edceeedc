"""Apache Avro Object Container Files through fastavro: a header with the schema, then one
block per few thousand rows, each compressed on its own by `format_options.avro_codec`.

The schema comes from the columns' kinds (flows/core/columns.py); every field is nullable
(`["null", T]`). Values reach fastavro already in their Avro form (timestamps as integer
microseconds, dates as days), so no Python datetime limits or local time zone get in the way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from decimal import Decimal
from typing import Any, BinaryIO

import pyarrow as pa
from fastavro import parse_schema
from fastavro.write import Writer

from flows.core.columns import (
    element_kind_of,
    element_type_of,
    is_undetermined,
    kind_of,
    make_field,
)
from flows.core.config import FormatOptions
from flows.core.errors import FormatError
from flows.formats import arrays, render
from flows.formats.avro_names import avro_name
from flows.formats.writers import BatchWriter

# Rows per block: enough for the codec to find repeats, few enough that the rows held as
# Python values while a block is encoded stay a few MB ...
BLOCK_ROWS = 4_096
# ... and fewer where the values are large.
BLOCK_BYTES = 16 * 1024 * 1024
RECORD_NAME = "row"
DEFAULT_CODEC = "deflate"  # the one codec besides null that every Avro reader must have
# The Avro types of Arrow's integer types that fit an Avro int (32 bits); others are long.
_INT32 = (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16())
_FLOAT32 = (pa.float16(), pa.float32())
_UINT64 = {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0}


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    # Imported here, as in parquet_writer: the writers run without Prefect too.
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("exports.formats")


def avro_type(field: pa.Field) -> Any:
    """The Avro type of a column's values (without its `null`)."""
    if is_undetermined(field):
        return "string"
    kind, arrow_type = kind_of(field), field.type
    if kind == "array":
        element_kind, _ = element_kind_of(field)
        element = make_field("element", element_kind, element_type_of(field))
        return {"type": "array", "items": ["null", avro_type(element)]}
    if kind == "int":
        if arrow_type == pa.uint64():  # MySQL's BIGINT UNSIGNED: past a long, so exact digits
            return _UINT64
        return "int" if arrow_type in _INT32 else "long"
    if kind == "float":
        return "float" if arrow_type in _FLOAT32 else "double"
    if kind == "decimal" and pa.types.is_decimal(arrow_type):
        precision, scale = arrow_type.precision, arrow_type.scale
        return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    return _SIMPLE.get(kind, "string")  # str, json, a decimal with no fixed scale: exact text


_SIMPLE: dict[str, Any] = {
    "bool": "boolean",
    "bytes": "bytes",
    "uuid": {"type": "string", "logicalType": "uuid"},
    "date": {"type": "int", "logicalType": "date"},
    "time": {"type": "long", "logicalType": "time-micros"},
    # A timestamp with a zone is an instant (UTC microseconds); one without is a wall-clock
    # reading, which Avro calls local-timestamp-micros.
    "timestamptz": {"type": "long", "logicalType": "timestamp-micros"},
    "timestamp": {"type": "long", "logicalType": "local-timestamp-micros"},
}


def avro_schema(schema: pa.Schema) -> dict[str, Any]:
    """The record schema of a file: one nullable field per column, under its Avro name (the
    column's own name is the field's `doc` where they differ)."""
    fields = []
    for field in schema:
        item: dict[str, Any] = {"name": avro_name(field.name), "type": ["null", avro_type(field)]}
        if item["name"] != field.name:
            item["doc"] = field.name
        fields.append(item)
    return {"type": "record", "name": RECORD_NAME, "fields": fields}


def avro_values(column: pa.Array, field: pa.Field) -> list[Any]:
    """A column's values in the form fastavro writes as they are (NULL as None)."""
    if is_undetermined(field):
        return [None] * len(column)
    kind, arrow_type = kind_of(field), field.type
    if kind == "array":
        return _lists(column, field)
    if kind in ("timestamp", "timestamptz"):
        micros = pa.timestamp("us", getattr(arrow_type, "tz", None))
        column = column.cast(micros).cast(pa.int64())
    elif kind == "date":
        column = column.cast(pa.date32()).cast(pa.int32())
    elif kind == "time":
        column = column.cast(pa.time64("us")).cast(pa.int64())
    elif arrow_type == pa.uint64():
        return [None if value is None else Decimal(value) for value in column.to_pylist()]
    elif avro_type(field) in ("string", _SIMPLE["uuid"]) and not (
        pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    ):
        column = render.text(column, kind)
    values: list[Any] = column.to_pylist()  # numbers, booleans, bytes, Decimals, text
    return values


def _lists(column: pa.Array, field: pa.Field) -> list[Any]:
    lists = arrays.list_array(column, field, "Avro")
    element_kind, _ = element_kind_of(field)
    element = make_field("element", element_kind, element_type_of(field))
    values = avro_values(lists.values, element)
    offsets = lists.offsets.to_pylist()
    valid = lists.is_valid().to_pylist()
    return [values[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(lists))]


class AvroWriter(BatchWriter):
    """An Avro Object Container File: the header now, a block per BLOCK_ROWS rows.

    The file's schema is fixed when it is opened: a column still undetermined then (only
    NULLs so far) is a string field, its later values written as their canonical text. A
    block is encoded before it is written, so a size-limited part takes only the blocks that
    fit (a smaller block for the last rows), and stays under `max_file_mb`.
    """

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        super().__init__(file, schema, options)
        self.undetermined = [f.name for f in schema if is_undetermined(f)]
        if self.undetermined:
            _logger().warning(
                "column(s) %s held only NULLs in the rows read before the Avro schema was "
                "fixed; writing them as text. CAST them in the query to get typed columns",
                ", ".join(self.undetermined),
            )
        self._types = [avro_type(f) for f in schema]
        self._names = [avro_name(name) for name in schema.names]
        record = avro_schema(schema)
        text = json.dumps(record, sort_keys=True).encode()
        self._buffer = io.BytesIO()
        self._writer = Writer(
            self._buffer,
            parse_schema(record),
            codec=options.avro_codec or DEFAULT_CODEC,
            sync_interval=2**62,  # blocks end where write() says, never by size
            sync_marker=hashlib.md5(text, usedforsecurity=False).digest(),  # same rows, same bytes
        )
        self._emit(self._drain())  # the header

    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:
        written = spent = 0
        while written < batch.num_rows:
            if budget is not None and budget <= spent and self.rows > 0:
                break  # the part is full
            piece = batch.slice(written, BLOCK_ROWS)
            while piece.num_rows > 1 and piece.nbytes > BLOCK_BYTES:
                piece = piece.slice(0, piece.num_rows // 2)
            block = self._block(piece)
            if budget is not None:
                while len(block) > budget - spent and piece.num_rows > 1:
                    piece = piece.slice(0, piece.num_rows // 2)  # the rows that still fit
                    block = self._block(piece)
                if len(block) > budget - spent and self.rows > 0:
                    break  # the part is full
            self._emit(block)
            spent += len(block)
            written += piece.num_rows
            self.rows += piece.num_rows
        return written

    def _block(self, piece: pa.RecordBatch) -> bytes:
        """One encoded block of the rows of `piece` (not yet written to the file)."""
        columns = [self._column(piece.column(i), field, i) for i, field in enumerate(piece.schema)]
        write = self._writer.write
        for values in zip(*columns, strict=True):
            write(dict(zip(self._names, values, strict=True)))
        self._writer.flush()
        return self._drain()

    def _column(self, column: pa.Array, field: pa.Field, index: int) -> list[Any]:
        if is_undetermined(field) or avro_type(field) == self._types[index]:
            return avro_values(column, field)
        want = self.schema.field(index)
        if is_undetermined(want):  # written as text since the file was opened
            texts: list[Any] = render.text(column, kind_of(field)).to_pylist()
            return texts
        raise FormatError(
            f"column `{want.name}` changed type from {want.type} to {field.type} between "
            "chunks; CAST it in the query so Avro gets one type"
        )

    def _drain(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    def close(self) -> None:
        """Nothing to finish: an Avro file ends with its last block."""
