"""Shared names: the export formats and the column kinds the writers render."""

from __future__ import annotations

from typing import Any, Literal

ExportFormat = Literal["csv", "json", "jsonl", "xml", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "jsonl", "xml", "parquet")

Compression = Literal["none", "gzip"]

Row = dict[str, Any]

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
]
KIND_METADATA_KEY = b"exports.kind"

FILE_EXTENSIONS: dict[ExportFormat, str] = {
    "csv": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "xml": "xml",
    "parquet": "parquet",
}
