"""The writers' common shape, and opening the writer of a format (flows/core/formats.py).

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

from flows.core.columns import Kind, kind_of, rendered_format
from flows.core.config import FormatOptions
from flows.core.errors import FormatError
from flows.core.formats import FORMATS, XSLT_WRITERS, ExportFormat
from flows.core.records import FileRecords
from flows.formats import render
from flows.formats.encoding import Encoder


class BatchWriter(ABC):
    """Writes batches of one schema into one binary file, then closes the document."""

    def __init__(
        self,
        file: BinaryIO,
        schema: pa.Schema,
        options: FormatOptions,
        records: FileRecords | None = None,
    ) -> None:
        self.file = file
        self.schema = schema
        self.options = options
        self.records = records  # the preamble and trailer lines, in a text format
        self.rows = 0
        self.bytes = 0  # uncompressed bytes written so far

    @abstractmethod
    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:
        """Write the first rows of `batch` that fit in `budget` more bytes (at least one row
        if the file has none yet); return how many rows were written."""

    @abstractmethod
    def close(self) -> None:
        """Finish the document (footer, Parquet metadata); the file stays open."""

    @property
    def reserved(self) -> int:
        """Bytes `close` may write beyond the footer (a trailer line), kept free in a part."""
        return 0

    def abandon(self) -> None:
        """Let go of a document the run throws away, whose file drops every later byte: a
        writer left open would finish it when collected, into a file closed by then."""
        self.close()

    def _emit(self, data: bytes | memoryview) -> None:
        self.file.write(data)
        self.bytes += len(data)


# Rows rendered to text at once: enough for Arrow's kernels to run at full speed, few enough
# that the rendered text and its intermediates stay a few MB whatever chunk_rows is.
RENDER_ROWS = 4_096
# ... and fewer where the values are large: the text of a slice (escapes can make it several
# times its values) must stay within the 2 GiB of an Arrow string array, and memory should
# follow the largest value, not RENDER_ROWS of them.
RENDER_BYTES = 64 * 1024 * 1024


class TextWriter(BatchWriter):
    """A text format: a header, rows rendered column-wise by Arrow kernels, a footer; in the
    file's encoding (flows/formats/encoding.py)."""

    first_row_prefix = 0  # bytes of separator to drop before a file's first row
    escapes_as = "csv"  # how on_unencodable: escape writes a character: "xml" or "json"

    def __init__(
        self,
        file: BinaryIO,
        schema: pa.Schema,
        options: FormatOptions,
        records: FileRecords | None = None,
    ) -> None:
        super().__init__(file, schema, options, records)
        self.encoder = Encoder(options.encoding, options.on_unencodable, self.escapes_as)
        if self.encoder.bom:
            self._emit(self.encoder.bom)
        if records is not None:
            self._emit_record(records.first(), "preamble")
        self._emit_text(self.header(), "the header (column names)")

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
            while piece.num_rows > 1 and piece.nbytes > RENDER_BYTES:
                piece = piece.slice(0, piece.num_rows // 2)  # large values: fewer at once
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
            ends = self._row_ends(batch, rows) - self._encoded_size(skip)
            count = int(np.searchsorted(ends, budget, side="right"))
            if count == 0 and self.rows == 0:
                count = 1  # a single row larger than a part still goes somewhere
        data = render.string_bytes(rows, 0, count)
        try:
            encoded = self.encoder.encode(data[skip:] if skip else data)
        except UnicodeEncodeError:
            raise self.encoder.failure(batch, rows.slice(0, count), self.rows) from None
        self._emit(encoded)
        self.rows += count
        return count

    def _row_ends(self, batch: pa.RecordBatch, rows: pa.Array) -> np.ndarray:
        """Where each row ends, in bytes of the file's encoding."""
        if self.encoder.identity:
            return render.row_ends(rows)
        try:
            sizes = [len(self.encoder.encode(text.encode())) for text in rows.to_pylist()]
        except UnicodeEncodeError:
            raise self.encoder.failure(batch, rows, self.rows) from None
        ends: np.ndarray = np.cumsum(np.array(sizes, dtype=np.int64))
        return ends

    def _encoded_size(self, ascii_bytes: int) -> int:
        return len(self.encoder.encode(b" " * ascii_bytes)) if ascii_bytes else 0

    def _emit_text(self, text: str, what: str) -> None:
        try:
            self._emit(self.encoder.encode(text.encode()))
        except UnicodeEncodeError as exc:
            char = exc.object[exc.start]
            raise FormatError(
                f"format_options.encoding: {what} holds {char!r} (U+{ord(char):04X}), which "
                f"{self.options.encoding} cannot write; rename the column with source.columns "
                "or choose another encoding"
            ) from None

    def close(self) -> None:
        self._emit_text(self.footer(), "the footer")
        if self.records is not None:
            self._emit_record(self.records.last(self.rows), "trailer")

    @property
    def reserved(self) -> int:
        if self.records is None or self.records.trailer is None:
            return 0
        return len(self._record_bytes(self.records.longest_last(), "trailer"))

    def _emit_record(self, text: str, field: str) -> None:
        if text:
            self._emit(self._record_bytes(text, field))

    def _record_bytes(self, text: str, field: str) -> bytes | memoryview:
        """A preamble or trailer line in the file's encoding."""
        try:
            return self.encoder.encode(text.encode())
        except UnicodeEncodeError as exc:
            char = exc.object[exc.start]
            raise FormatError(
                f"format_options.{field}: `{text.rstrip()}` holds {char!r} (U+{ord(char):04X}), "
                f"which {self.options.encoding} cannot write; change the {field} or the "
                "encoding"
            ) from None


def kinds_of(batch: pa.RecordBatch) -> list[Kind]:
    return [kind_of(field) for field in batch.schema]


def open_writer(
    fmt: ExportFormat,
    file: BinaryIO,
    schema: pa.Schema,
    options: FormatOptions,
    records: FileRecords | None = None,
) -> BatchWriter:
    """A writer for `fmt` that writes the document's header into `file` now (after the
    preamble of `records`, which only the formats that write lines are given)."""
    rendered = rendered_format(schema)
    if rendered not in (None, fmt) and (rendered, fmt) != ("jsonl", "json"):
        raise FormatError(f"format: rows rendered as {rendered} cannot be written as {fmt}")
    if fmt == "xml" and options.xslt is not None:
        found = _imported(XSLT_WRITERS[options.xslt_scope])
    else:
        found = writer_class(fmt)
    if records is None:
        return found(file, schema, options)
    return found(file, schema, options, records)


def writer_class(fmt: ExportFormat) -> type[BatchWriter]:
    """The BatchWriter registered for `fmt`, imported on first use."""
    return _imported(FORMATS[fmt].writer)


def _imported(path: str) -> type[BatchWriter]:
    module, _, name = path.partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type) and issubclass(found, BatchWriter), path
    return found
