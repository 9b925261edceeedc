"""CSV: RFC 4180 quoting, UTF-8, a header row; NULL is an empty field and "" an empty string."""

from __future__ import annotations

import pyarrow as pa

from flows.core.columns import column_names, rendered_format
from flows.formats import render
from flows.formats.writers import TextWriter, kinds_of


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
        for index, kind in enumerate(kinds_of(batch)):
            if index:
                parts.append(self._delimiter)
            parts.append(render.csv_cells(batch.column(index), kind, self._delimiter))
        parts.append(self.options.newline)
        return render.concat(parts)
