"""What `format_options` mean for an export's format: the combinations that cannot work
(refused before a run, a stylesheet compiled to check it), and the extension and Content-Type
of the files, which a stylesheet's output decides (flows/formats/xslt.py)."""

from __future__ import annotations

import re
from typing import Any

from flows.core.codecs import codec_media_type
from flows.core.config import FormatOptions
from flows.core.errors import ConfigurationError
from flows.core.formats import CHARSETS, ExportFormat, file_extension, media_type
from flows.core.records import check_record_rules, render_record
from flows.core.targets import TargetContext

_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}")


def check_format_options(fmt: ExportFormat, options: FormatOptions | None) -> None:
    """The options that only some formats can honour.

    Raises:
        ConfigurationError: an encoding other than UTF-8 for Parquet, `escape` for CSV, a
            stylesheet for anything but XML or one that does not compile, a bad `ext`.
    """
    if options is None:
        return
    if fmt in ("parquet", "avro", "xlsx") and options.encoding != "utf-8":
        name = {"parquet": "Parquet", "avro": "Avro", "xlsx": "Excel (xlsx)"}[fmt]
        raise ConfigurationError(
            f"format_options.encoding: {name} stores text as UTF-8, not {options.encoding}",
            field="format_options.encoding",
            hint="remove encoding or export CSV, JSON or XML",
        )
    if fmt != "avro" and options.avro_codec is not None:
        raise ConfigurationError(
            "format_options.avro_codec: compresses the blocks of an Avro file",
            field="format_options.avro_codec",
            hint=f"set format: avro (not {fmt}), or remove avro_codec",
        )
    if fmt == "xlsx" and not options.header:
        raise ConfigurationError(
            "format_options.header: an xlsx sheet always starts with its header row (the "
            "column names)",
            field="format_options.header",
            hint="remove header (it is for CSV)",
        )
    if options.ext is not None and not _EXTENSION.fullmatch(options.ext):
        raise ConfigurationError(
            f"format_options.ext: `{options.ext}` is not a file extension",
            field="format_options.ext",
            hint="use letters and digits, e.g. txt",
        )
    if options.xslt_block is not None and options.xslt is None:
        raise ConfigurationError(
            "format_options.xslt_block: names credentials for an xslt URL",
            field="format_options.xslt_block",
            hint="set xslt",
        )
    if options.xslt is not None or options.ext is not None:
        if fmt != "xml":
            field = "xslt" if options.xslt is not None else "ext"
            raise ConfigurationError(
                f"format_options.{field}: a stylesheet transforms the XML export",
                field=f"format_options.{field}",
                hint=f"set format: xml (not {fmt})",
            )
        if options.xslt is None:
            raise ConfigurationError(
                "format_options.ext: names a stylesheet's files",
                field="format_options.ext",
                hint="set xslt",
            )
        from flows.formats.stylesheets import is_url
        from flows.formats.xslt import options_stylesheet

        if options.xslt_block is not None and not is_url(options.xslt):
            raise ConfigurationError(
                f"format_options.xslt_block: `{options.xslt}` is a file of this machine, read "
                "without credentials",
                field="format_options.xslt_block",
                hint="remove xslt_block, or give xslt as a URL",
            )
        options_stylesheet(options)  # read, compiled and checked now
    if fmt == "csv" and options.on_unencodable == "escape":
        raise ConfigurationError(
            "format_options.on_unencodable: CSV has no escape for a character",
            field="format_options.on_unencodable",
            hint="use error or replace, or an encoding that holds every character (utf-8)",
        )


def check_format_compression(fmt: ExportFormat, compression: str) -> None:
    """destination.compression for a format that compresses itself: an Avro file's blocks
    are compressed by its own codec, which every Avro reader undoes (a gzip around the file
    is one no Avro reader opens); an xlsx workbook is a zip, which Excel opens only as it is.

    Raises:
        ConfigurationError: naming destination.compression (and format_options.avro_codec).
    """
    if fmt == "avro" and compression != "none":
        raise ConfigurationError(
            f"destination.compression: an Avro file compresses its blocks itself, not with "
            f"{compression}",
            field="destination.compression",
            hint="remove compression and set format_options.avro_codec (deflate, zstandard, "
            "snappy)",
        )
    if fmt == "xlsx" and compression != "none":
        raise ConfigurationError(
            f"destination.compression: xlsx is already a zip, not compressed again with "
            f"{compression}",
            field="destination.compression",
            hint="remove compression (none is the only choice for xlsx)",
        )


def check_format_size(fmt: ExportFormat, max_file_mb: float | None) -> None:
    """destination.max_file_mb for xlsx: a workbook is a zip whose size is known only once
    it is closed, so it cannot be cut at a size; max_file_rows cuts it by rows.

    Raises:
        ConfigurationError: naming destination.max_file_mb and max_file_rows.
    """
    if fmt == "xlsx" and max_file_mb is not None:
        raise ConfigurationError(
            "destination.max_file_mb: an xlsx workbook is a zip whose size is known only when "
            "it is finished, so it cannot be cut by size",
            field="destination.max_file_mb",
            hint="remove max_file_mb and set destination.max_file_rows (at most 1048575 rows "
            "a file, Excel's limit)",
        )


def check_record_options(
    fmt: ExportFormat, options: FormatOptions | None, *, split: bool, partitions: int
) -> None:
    """`preamble` and `trailer` (flows/core/records.py): lines of a text file, so CSV, JSON
    Lines and a stylesheet's text output (xsl:output method="text") only; what their tokens
    can say of this export's files.

    Raises:
        ConfigurationError: naming the field and the formats that take it.
    """
    if options is None:
        return
    for field in ("preamble", "trailer"):
        template = getattr(options, field)
        if template is None:
            continue
        if not _writes_lines(fmt, options):
            what = f"format {fmt}" if options.xslt is None else "a stylesheet's XML or HTML"
            raise ConfigurationError(
                f"format_options.{field}: {what} has no lines to add a {field} line to",
                field=f"format_options.{field}",
                hint="export csv or jsonl, or xml with an xslt whose xsl:output method is text",
            )
        check_record_rules(field, template, split=split, partitions=partitions)
        _check_encodable(field, template, options)


def _check_encodable(field: str, template: str, options: FormatOptions) -> None:
    """The record's own characters fit the file's encoding (a token's value is checked as
    the file is written)."""
    from flows.formats.encoding import Encoder

    text = render_record(template, TargetContext.sample(), rows=0, part=1)
    try:
        Encoder(options.encoding, options.on_unencodable, "csv").encode(text.encode())
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start]
        raise ConfigurationError(
            f"format_options.{field}: holds {char!r} (U+{ord(char):04X}), which "
            f"{options.encoding} cannot write",
            field=f"format_options.{field}",
            hint=f"change the {field} or the encoding",
        ) from None


def _writes_lines(fmt: ExportFormat, options: FormatOptions) -> bool:
    if fmt in ("csv", "jsonl"):
        return True
    if fmt != "xml" or options.xslt is None:
        return False
    from flows.formats.xslt import options_stylesheet

    return options_stylesheet(options).method == "text"


def export_media_type(fmt: str, compression: str, options: Any) -> str:
    """Content-Type of an export's files, given its format_options: a stylesheet's result
    has the stylesheet's media type (flows/formats/xslt.py), a compressed file its codec's."""
    if codec_media_type(compression) is not None or getattr(options, "xslt", None) is None:
        return media_type(fmt, compression, getattr(options, "encoding", "utf-8"))
    from flows.formats.xslt import stylesheet_media_type

    found = stylesheet_media_type(options) or "application/octet-stream"
    return f"{found}; charset={CHARSETS.get(options.encoding, 'utf-8')}"


def export_extension(fmt: ExportFormat, options: Any) -> str:
    """`{ext}` of an export's files: a stylesheet's result has its own (`ext`, or what its
    xsl:output says)."""
    if getattr(options, "xslt", None) is None:
        return file_extension(fmt)
    from flows.formats.xslt import xslt_file_name_extension

    return xslt_file_name_extension(options) or file_extension(fmt)
