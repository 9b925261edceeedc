"""Every format is registered once (flows/core/formats.py): its name in ExportFormat, its
extension, media type and writer; the writers load only when a file is written."""

from __future__ import annotations

import typing

import pytest

from flows.core.formats import (
    EXPORT_FORMATS,
    FORMATS,
    ExportFormat,
    file_extension,
    media_type,
)
from flows.formats.writers import BatchWriter, writer_class

pytestmark = pytest.mark.unit


def test_every_format_of_the_parameter_is_registered() -> None:
    assert typing.get_args(ExportFormat) == EXPORT_FORMATS == tuple(FORMATS)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_each_writer_loads_and_is_a_batch_writer(fmt: ExportFormat) -> None:
    assert issubclass(writer_class(fmt), BatchWriter)


def test_extensions_and_media_types() -> None:
    assert [file_extension(fmt) for fmt in EXPORT_FORMATS] == [
        "csv",
        "json",
        "jsonl",
        "xml",
        "parquet",
        "avro",
        "xlsx",
    ]
    assert media_type("avro") == "application/avro"
    assert media_type("xlsx") == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert media_type("csv") == "text/csv; charset=utf-8"
    assert media_type("jsonl") == "application/x-ndjson"
    assert media_type("parquet", "gzip") == "application/gzip"
    assert media_type("csv", "zstd") == "application/zstd"
    assert media_type("json", "bz2", "latin-1") == "application/x-bzip2"
    assert media_type("parquet", "xz") == "application/x-xz"
    assert media_type("xls") == "application/octet-stream"
