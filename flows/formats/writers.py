"""The writers' common shape, and opening the writer of a format (flows/formats/registry.py).

A writer writes one output file (one part). It never holds more than the batch it is given,
and text writers can stop at an exact row boundary so size-split parts stay under the limit.
Each format's writer is a module of its own: csv_writer, json_writer, xml_writer and
parquet_writer.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from flows.config import FormatOptions
from flows.errors import FormatError
from flows.formats import render
from flows.formats.columns import Kind, kind_of, rendered_format
from flows.formats.registry import FORMATS, ExportFormat


class BatchWriter(ABC):
    """Writes batches of one schema into one binary file, then closes the document."""

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        self.file = file
        self.schema = schema
        self.options = options
        self.rows = 0
        self.bytes = 0  # uncompressed bytes written so far

    @abstractmethod
    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:
        """Write the first rows of `batch` that fit in `budget` more bytes (at least one row
        if the file has none yet); return how many rows were written."""

    @abstractmethod
    def close(self) -> None:
        """Finish the document (footer, Parquet metadata); the file stays open."""

    def _emit(self, data: bytes | memoryview) -> None:
        self.file.write(data)
        self.bytes += len(data)


# Rows rendered to text at once: enough for Arrow's kernels to run at full speed, few enough
# that the rendered text and its intermediates stay a few MB whatever chunk_rows is.
RENDER_ROWS = 4_096


class TextWriter(BatchWriter):
    """A text format: a header, rows rendered column-wise by Arrow kernels, a footer."""

    first_row_prefix = 0  # bytes of separator to drop before a file's first row

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        super().__init__(file, schema, options)
        self._emit(self.header().encode())

    def header(self) -> str:
        return ""

    def footer(self) -> str:
        return ""

    @abstractmethod
    def render(self, batch: pa.RecordBatch) -> pa.Array:
        """A NULL-free string array: the bytes of each row, separators included.

        Kinds are read from each batch's own schema: a column that was all NULL so far
        (undetermined) gets its type from the first batch that has a value.
        """

    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:
        """Rendered in slices of RENDER_ROWS rows: the text of a whole chunk, and the
        intermediate arrays of rendering it, are never held at once (XML's are several times
        the chunk's size)."""
        written = spent = 0
        while written < batch.num_rows:
            piece = batch.slice(written, RENDER_ROWS)
            before = self.bytes
            count = self._write_rows(piece, None if budget is None else budget - spent)
            spent += self.bytes - before
            written += count
            if count < piece.num_rows:
                break  # the part is full
        return written

    def _write_rows(self, batch: pa.RecordBatch, budget: int | None) -> int:
        if batch.num_rows == 0:
            return 0
        rows = self.render(batch)
        skip = self.first_row_prefix if self.rows == 0 else 0
        count = len(rows)
        if budget is not None:
            ends = render.row_ends(rows) - skip
            count = int(np.searchsorted(ends, budget, side="right"))
            if count == 0 and self.rows == 0:
                count = 1  # a single row larger than a part still goes somewhere
        data = render.string_bytes(rows, 0, count)
        self._emit(data[skip:] if skip else data)
        self.rows += count
        return count

    def close(self) -> None:
        self._emit(self.footer().encode())


def kinds_of(batch: pa.RecordBatch) -> list[Kind]:
    return [kind_of(field) for field in batch.schema]


def open_writer(
    fmt: ExportFormat, file: BinaryIO, schema: pa.Schema, options: FormatOptions
) -> BatchWriter:
    """A writer for `fmt` that writes the document's header into `file` now."""
    rendered = rendered_format(schema)
    if rendered not in (None, fmt) and (rendered, fmt) != ("jsonl", "json"):
        raise FormatError(f"format: rows rendered as {rendered} cannot be written as {fmt}")
    return writer_class(fmt)(file, schema, options)


def writer_class(fmt: ExportFormat) -> type[BatchWriter]:
    """The BatchWriter registered for `fmt`, imported on first use."""
    module, _, name = FORMATS[fmt].writer.partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type) and issubclass(found, BatchWriter), FORMATS[fmt].writer
    return found
