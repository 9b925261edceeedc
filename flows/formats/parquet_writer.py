"""Apache Parquet through pyarrow: one row group per chunk."""

from __future__ import annotations

import logging
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from flows.config import FormatOptions
from flows.errors import FormatError
from flows.formats import render
from flows.formats.columns import is_undetermined, kind_of, make_field
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
        self._writer = pq.ParquetWriter(
            file, file_schema, compression=None if codec == "none" else codec
        )

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.schema.equals(self.schema):
            return batch
        arrays = []
        for column, have, want in zip(batch.columns, batch.schema, self.schema, strict=True):
            if have.type == want.type:
                arrays.append(column)
            elif pa.types.is_string(want.type) and kind_of(want) == "str":
                arrays.append(render.text(column, kind_of(have)))
            else:
                raise FormatError(
                    f"column `{want.name}` changed type from {want.type} to {have.type} "
                    "between chunks; CAST it in the query so Parquet gets one type"
                )
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:  # noqa: ARG002
        if batch.num_rows == 0:
            return 0
        batch = self._conform(batch)
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
