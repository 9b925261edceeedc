"""The export formats: each one's name, file extension, media type and writer, registered once.

Adding a format is one entry in FORMATS (and its name in ExportFormat) plus its writer module.
Writers are named by import path and loaded when a file is written, so what only needs a
format's facts (validating parameters, naming files, the gateway's Content-Type) does not load
pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from flows.core.codecs import codec_media_type

ExportFormat = Literal["csv", "json", "jsonl", "xml", "parquet", "avro", "xlsx"]


@dataclass(frozen=True)
class Format:
    """What the rest of the pipe knows about a format."""

    extension: str  # `{ext}` in file names
    media_type: str  # Content-Type of an HTTP POST and of the gateway's download
    writer: str  # "module:Class" of its BatchWriter (flows/formats/writers.py)


FORMATS: dict[ExportFormat, Format] = {
    "csv": Format("csv", "text/csv; charset=utf-8", "flows.formats.csv_writer:CsvWriter"),
    "json": Format("json", "application/json", "flows.formats.json_writer:JsonArrayWriter"),
    "jsonl": Format("jsonl", "application/x-ndjson", "flows.formats.json_writer:JsonLinesWriter"),
    "xml": Format("xml", "application/xml", "flows.formats.xml_writer:XmlWriter"),
    "parquet": Format(
        "parquet",
        "application/vnd.apache.parquet",
        "flows.formats.parquet_writer:ParquetWriter",
    ),
    "avro": Format("avro", "application/avro", "flows.formats.avro_writer:AvroWriter"),
    "xlsx": Format(
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "flows.formats.xlsx_writer:XlsxWriter",
    ),
}
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
# The XML writers that run a stylesheet (format_options.xslt), by xslt_scope.
XSLT_WRITERS = {
    "item": "flows.formats.xslt:XsltItemWriter",
    "document": "flows.formats.xslt:XsltDocumentWriter",
}


# An Excel sheet holds 1,048,576 rows: the header and 1,048,575 data rows. A larger export is
# cut into parts of at most this many rows (flows/sink.py), as max_file_rows cuts.
XLSX_MAX_ROWS = 1_048_575


def format_max_rows(fmt: str) -> int | None:
    """The most data rows one file of `fmt` holds, if the format has a limit."""
    return XLSX_MAX_ROWS if fmt == "xlsx" else None


def file_extension(fmt: ExportFormat) -> str:
    return FORMATS[fmt].extension


# format_options.encoding → the charset parameter of a text file's Content-Type
CHARSETS = {"utf-8-sig": "utf-8", "ascii": "us-ascii", "latin-1": "iso-8859-1", "utf-16": "utf-16"}


def media_type(fmt: str, compression: str = "none", encoding: str = "utf-8") -> str:
    """Content-Type of a file: by format (with the charset of a text file not in UTF-8), or
    the codec's for a compressed file, e.g. application/gzip (the body is the .gz file
    itself, not a Content-Encoding of the document)."""
    if (layer := codec_media_type(compression)) is not None:
        return layer
    known: dict[str, str] = {name: item.media_type for name, item in FORMATS.items()}
    found = known.get(fmt, "application/octet-stream")
    if fmt in ("parquet", "avro", "xlsx") or encoding not in CHARSETS:
        return found
    return f"{found.split(';')[0]}; charset={CHARSETS[encoding]}"
