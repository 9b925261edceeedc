"""Apache Parquet through pyarrow: one row group per chunk."""

from __future__ import annotations

import logging
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
from flows.formats.writers import BatchWriter


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    # Imported here: the writers run without Prefect too (bench, tests), and importing it
    # costs ~50 MB of memory before the first row.
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("exports.formats")


class ParquetWriter(BatchWriter):
    """Apache Parquet via pyarrow: one row group per batch (chunk).

    A Parquet file has one schema, fixed when it is opened. A column whose type is still
    undetermined then (only NULLs in the first chunk of a query without declared types) is
    stored as text: later values are written in their canonical text form.
    """

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        self.undetermined = [f.name for f in schema if is_undetermined(f)]
        file_schema = pa.schema(
            [make_field(f.name, "str") if is_undetermined(f) else f for f in schema]
        )
        super().__init__(file, file_schema, options)
        if self.undetermined:
            _logger().warning(
                "column(s) %s held only NULLs in the rows read before the Parquet schema was "
                "fixed; writing them as text. CAST them in the query to get typed columns",
                ", ".join(self.undetermined),
            )
        codec = options.parquet_compression
        self._stored = pa.schema([_stored_field(f) for f in file_schema])
        self._writer = pq.ParquetWriter(
            file, self._stored, compression=None if codec == "none" else codec
        )

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.schema.equals(self.schema):
            return batch
        columns = []
        for column, have, want in zip(batch.columns, batch.schema, self.schema, strict=True):
            if have.type == want.type:
                columns.append(column)
            elif pa.types.is_string(want.type) and kind_of(want) == "str":
                columns.append(render.text(column, kind_of(have)))
            else:
                raise FormatError(
                    f"column `{want.name}` changed type from {want.type} to {have.type} "
                    "between chunks; CAST it in the query so Parquet gets one type"
                )
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def _stored_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """UUID and JSON columns as Arrow's extension types, which Parquet stores with its
        UUID and JSON logical types (readers then know what the bytes and text hold), and
        arrays as lists of their elements' type."""
        if self._stored.equals(batch.schema):
            return batch
        columns = [
            _stored_array(column, want, have)
            for column, want, have in zip(batch.columns, self._stored, batch.schema, strict=True)
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self._stored)

    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:  # noqa: ARG002
        if batch.num_rows == 0:
            return 0
        batch = self._stored_batch(self._conform(batch))
        before = int(self.file.tell())
        self._writer.write_batch(batch, row_group_size=batch.num_rows)
        self.bytes += int(self.file.tell()) - before
        rows = int(batch.num_rows)
        self.rows += rows
        return rows

    def close(self) -> None:
        before = int(self.file.tell())
        self._writer.close()
        self.bytes += int(self.file.tell()) - before


_UUID_TEXT = 32  # hex digits of a UUID without its dashes


def _stored_field(field: pa.Field) -> pa.Field:
    kind = kind_of(field)
    if kind == "array":
        element_kind, _ = element_kind_of(field)
        element = _stored_field(make_field("element", element_kind, element_type_of(field)))
        return pa.field(field.name, pa.list_(element.type), field.nullable, field.metadata)
    if kind == "uuid" and pa.types.is_string(field.type):
        return pa.field(field.name, pa.uuid(), field.nullable, field.metadata)
    if kind == "json" and pa.types.is_string(field.type):
        return pa.field(field.name, pa.json_(), field.nullable, field.metadata)
    return field


def _stored_array(column: pa.Array, want: pa.Field, have: pa.Field | None = None) -> pa.Array:
    if column.type == want.type:
        return column
    if pa.types.is_list(want.type):
        assert have is not None
        lists = arrays.list_array(column, have)
        element = pa.field(want.name, want.type.value_type)
        values = _stored_array(lists.values, element)
        return pa.ListArray.from_arrays(lists.offsets, values, want.type, mask=lists.is_null())
    if want.type == pa.json_():
        return pa.ExtensionArray.from_storage(pa.json_(), column)
    # UUID text → 16 bytes: one bytes.fromhex over every value at once (NULLs as zeros).
    digits = pc.fill_null(pc.replace_substring(column, "-", ""), "0" * _UUID_TEXT)
    if not pc.all(pc.equal(pc.utf8_length(digits), _UUID_TEXT)).as_py():
        raise FormatError(f"column `{want.name}`: a value is not a UUID")
    raw = bytes.fromhex(render.string_bytes(digits).tobytes().decode("ascii"))
    validity = None
    if column.null_count:
        valid = pc.is_valid(column)  # a fresh bitmap from bit 0, as the new values are
        assert valid.offset == 0
        validity = valid.buffers()[1]
    storage = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(column), [validity, pa.py_buffer(raw)], column.null_count
    )
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)
