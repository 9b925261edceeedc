"""One streaming writer per format, fed record batch by record batch.

A writer writes one output file (one part). It never holds more than the batch it is given,
and text writers can stop at an exact row boundary so size-split parts stay under the limit.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from typing import BinaryIO

import dicttoxml
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flows import render
from flows.columns import column_names, is_undetermined, kind_of, make_field, rendered_format
from flows.config import FormatOptions
from flows.errors import FormatError
from flows.types import ExportFormat, Kind

logging.getLogger("dicttoxml").setLevel(logging.WARNING)  # it logs every call at INFO
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" ?>'


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


class CsvWriter(TextWriter):
    """RFC 4180 quoting, UTF-8, header row; NULL is an empty field and "" an empty string."""

    def header(self) -> str:
        if not self.options.header:
            return ""
        names = pa.array(column_names(self.schema), pa.string())
        cells = render.csv_cells(names, "str", self._delimiter)
        return self._delimiter.join(cells.to_pylist()) + self.options.newline

    @property
    def _delimiter(self) -> str:
        return self.options.delimiter

    def render(self, batch: pa.RecordBatch) -> pa.Array:
        if rendered_format(batch.schema) == "csv":  # PostgreSQL's COPY wrote the rows
            return batch.column(0)
        parts: list[pa.Array | str] = []
        for index, kind in enumerate(_kinds(batch)):
            if index:
                parts.append(self._delimiter)
            parts.append(render.csv_cells(batch.column(index), kind, self._delimiter))
        parts.append(self.options.newline)
        return render.concat(parts)


class _JsonObjects(TextWriter):
    """Rows as JSON objects with keys in column order."""

    row_prefix = ""
    row_suffix = ""

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        self.keys = [json.dumps(name, ensure_ascii=False) for name in column_names(schema)]
        super().__init__(file, schema, options)

    def render(self, batch: pa.RecordBatch) -> pa.Array:
        if rendered_format(batch.schema) == "jsonl":  # PostgreSQL's COPY wrote the objects
            lines = batch.column(0)
            if not self.row_prefix:
                return lines
            objects = pc.utf8_slice_codeunits(lines, 0, -1)  # without the line break
            return pc.binary_join_element_wise(self.row_prefix, objects, "")
        parts: list[pa.Array | str] = []
        kinds = _kinds(batch)
        for index, kind in enumerate(kinds):
            opener = self.row_prefix + "{" if index == 0 else ","
            parts.append(f"{opener}{self.keys[index]}:")
            parts.append(render.json_values(batch.column(index), kind))
        if not kinds:
            parts.append(self.row_prefix + "{")
        parts.append("}" + self.row_suffix)
        return render.concat(parts)


class JsonLinesWriter(_JsonObjects):
    """One JSON object per line (JSON Lines)."""

    row_suffix = "\n"


class JsonArrayWriter(_JsonObjects):
    """One JSON array of objects, one object per line, written incrementally."""

    row_prefix = ",\n"
    first_row_prefix = 1  # the first row keeps only the newline after "["

    def header(self) -> str:
        return "["

    def footer(self) -> str:
        return "\n]\n" if self.rows else "]\n"


class XmlWriter(TextWriter):
    """dicttoxml's document layout for a list of row dicts, written as a stream.

    Element names come from dicttoxml itself (`make_valid_xml_name`), once per column, so a
    column that is not a valid XML name becomes `<key name="...">` exactly as dicttoxml does.
    """

    def __init__(self, file: BinaryIO, schema: pa.Schema, options: FormatOptions) -> None:
        self._tags: dict[tuple[int, Kind], tuple[str, str, str]] = {}
        super().__init__(file, schema, options)

    def _tag(self, index: int, kind: Kind) -> tuple[str, str, str]:
        key = (index, kind)
        if key not in self._tags:
            name = self.schema.names[index]
            self._tags[key] = _xml_tags(name, kind, self.options.xml_type_attributes)
        return self._tags[key]

    def header(self) -> str:
        return f"{XML_DECLARATION}<{self.options.xml_root}>"

    def footer(self) -> str:
        return f"</{self.options.xml_root}>"

    def render(self, batch: pa.RecordBatch) -> pa.Array:
        item = self.options.xml_item
        type_attr = ' type="dict"' if self.options.xml_type_attributes else ""
        parts: list[pa.Array | str] = [f"<{item}{type_attr}>"]
        for index, kind in enumerate(_kinds(batch)):
            open_tag, close_tag, null_element = self._tag(index, kind)
            parts.append(
                render.xml_elements(batch.column(index), kind, open_tag, close_tag, null_element)
            )
        parts.append(f"</{item}>")
        return render.concat(parts)


def _xml_tags(column: str, kind: Kind, type_attributes: bool) -> tuple[str, str, str]:
    """(open tag, close tag, NULL element) for one column, named the way dicttoxml names it."""
    safe_column = _replace_xml_forbidden(column)
    name, attrs = dicttoxml.make_valid_xml_name(safe_column, {})
    attrs = dict(attrs)
    null_attrs = dict(attrs)
    if type_attributes:
        attrs["type"] = render.XML_TYPE_NAMES.get(kind, "str")
        null_attrs["type"] = "null"
    open_tag = f"<{name}{dicttoxml.make_attrstring(attrs)}>"
    null_element = f"<{name}{dicttoxml.make_attrstring(null_attrs)}></{name}>"
    return open_tag, f"</{name}>", null_element


def _replace_xml_forbidden(value: str) -> str:
    return re.sub(render.XML_FORBIDDEN, render.XML_REPLACEMENT, value)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    # Imported here: the writers run without Prefect too (bench, tests), and importing it
    # costs ~50 MB of memory before the first row.
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("exports.formats")


def _kinds(batch: pa.RecordBatch) -> list[Kind]:
    return [kind_of(field) for field in batch.schema]


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


WRITERS: dict[ExportFormat, type[BatchWriter]] = {
    "csv": CsvWriter,
    "json": JsonArrayWriter,
    "jsonl": JsonLinesWriter,
    "xml": XmlWriter,
    "parquet": ParquetWriter,
}


def open_writer(
    fmt: ExportFormat, file: BinaryIO, schema: pa.Schema, options: FormatOptions
) -> BatchWriter:
    """A writer for `fmt` that writes the document's header into `file` now."""
    rendered = rendered_format(schema)
    if rendered not in (None, fmt) and (rendered, fmt) != ("jsonl", "json"):
        raise FormatError(f"format: rows rendered as {rendered} cannot be written as {fmt}")
    return WRITERS[fmt](file, schema, options)
