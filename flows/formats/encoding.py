"""The character encoding of a text file (`format_options.encoding`): rows are rendered as
UTF-8 and transcoded here, a byte-order mark goes once at the start of each file, and a
character the encoding cannot hold fails the export naming its row and column, or is replaced
or escaped (`format_options.on_unencodable`)."""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flows.core.columns import column_names, rendered_format
from flows.core.errors import FormatError

# encoding option → (Python codec for the rows, byte-order mark, name in the XML declaration
# and in the HTTP charset)
ENCODINGS: dict[str, tuple[str, bytes, str]] = {
    "utf-8": ("utf-8", b"", "UTF-8"),
    "utf-8-sig": ("utf-8", codecs.BOM_UTF8, "UTF-8"),
    "ascii": ("ascii", b"", "US-ASCII"),
    "latin-1": ("latin-1", b"", "ISO-8859-1"),
    "utf-16": ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"),
}


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    """`\\uXXXX` (a surrogate pair above U+FFFF): JSON's escape, valid wherever a character
    outside ASCII can stand in JSON text (inside strings)."""
    assert isinstance(error, UnicodeEncodeError)
    escaped = []
    for char in error.object[error.start : error.end]:
        units = char.encode("utf-16-be")
        for index in range(0, len(units), 2):
            escaped.append(f"\\u{units[index]:02x}{units[index + 1]:02x}")
    return "".join(escaped), error.end


codecs.register_error("exports.json_escape", _json_escape)


@dataclass(frozen=True)
class Encoder:
    """Turns the UTF-8 bytes the writers render into the file's encoding."""

    encoding: str
    on_unencodable: str
    fmt: str

    @property
    def identity(self) -> bool:
        return ENCODINGS[self.encoding][0] == "utf-8"

    @property
    def bom(self) -> bytes:
        return ENCODINGS[self.encoding][1]

    @property
    def declared_name(self) -> str:
        return ENCODINGS[self.encoding][2]

    def encode(self, data: bytes | memoryview) -> bytes | memoryview:
        """Whole rows (or a header or footer), already UTF-8. Raises UnicodeEncodeError."""
        if self.identity:
            return data
        return bytes(data).decode("utf-8").encode(ENCODINGS[self.encoding][0], self._errors)

    @property
    def _errors(self) -> str:
        if self.on_unencodable == "replace":
            return "replace"
        if self.on_unencodable == "escape":
            return "xmlcharrefreplace" if self.fmt == "xml" else "exports.json_escape"
        return "strict"

    def failure(self, batch: pa.RecordBatch, rows: pa.Array, rows_before: int) -> FormatError:
        """What to tell the user about the first row of `rows` that cannot be encoded."""
        codec = ENCODINGS[self.encoding][0]
        for index, text in enumerate(rows.to_pylist()):
            try:
                text.encode(codec)
            except UnicodeEncodeError as exc:
                char = exc.object[exc.start]
                column = _column_of(batch, index, codec)
                where = f"row {rows_before + index + 1}" + (
                    f", column `{column}`" if column else ""
                )
                return FormatError(
                    f"format_options.encoding: {where} holds {char!r} (U+{ord(char):04X}), "
                    f"which {self.encoding} cannot write; choose another encoding, or "
                    "on_unencodable: replace (writes ?) or escape (XML and JSON character "
                    "references)"
                )
        return FormatError(f"format_options.encoding: a value {self.encoding} cannot write")


def _column_of(batch: pa.RecordBatch, index: int, codec: str) -> str | None:
    """The column of row `index` whose value the codec cannot write."""
    names = column_names(batch.schema)
    rendered = rendered_format(batch.schema)
    values: list[Any]
    if rendered is None:
        values = [batch.column(i)[index].as_py() for i in range(batch.num_columns)]
    else:  # rows PostgreSQL rendered: read the row back
        line = batch.column(0)[index].as_py()
        if rendered == "csv":
            values = next(csv.reader(io.StringIO(line)), [])
        else:
            values = list(json.loads(line).values())
    for name, value in zip(names, values, strict=False):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        try:
            text.encode(codec)
        except UnicodeEncodeError:
            return name
    return None
