"""JSON Lines and JSON arrays: one object per row, keys in column order, UTF-8 kept."""

from __future__ import annotations

import json
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from flows.core.columns import column_names, rendered_format
from flows.core.config import FormatOptions
from flows.core.records import FileRecords
from flows.formats import arrays, render
from flows.formats.writers import TextWriter, kinds_of


class _JsonObjects(TextWriter):
    """Rows as JSON objects with keys in column order."""

    row_prefix = ""
    row_suffix = ""
    escapes_as = "json"

    def __init__(
        self,
        file: BinaryIO,
        schema: pa.Schema,
        options: FormatOptions,
        records: FileRecords | None = None,
    ) -> None:
        self.keys = [json.dumps(name, ensure_ascii=False) for name in column_names(schema)]
        super().__init__(file, schema, options, records)

    def render(self, batch: pa.RecordBatch) -> pa.Array:
        if rendered_format(batch.schema) == "jsonl":  # PostgreSQL's COPY wrote the objects
            lines = batch.column(0)
            if not self.row_prefix:
                return lines
            objects = pc.utf8_slice_codeunits(lines, 0, -1)  # without the line break
            return pc.binary_join_element_wise(self.row_prefix, objects, "")
        parts: list[pa.Array | str] = []
        kinds = kinds_of(batch)
        as_strings = self.options.decimals == "string"
        for index, kind in enumerate(kinds):
            opener = self.row_prefix + "{" if index == 0 else ","
            parts.append(f"{opener}{self.keys[index]}:")
            column = batch.column(index)
            if kind == "array":
                field = batch.schema.field(index)
                parts.append(arrays.json_arrays(column, field, decimals_as_strings=as_strings))
            else:
                parts.append(render.json_values(column, kind, decimals_as_strings=as_strings))
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
