"""Parts by rows (`destination.max_file_rows`) and header and trailer records
(`format_options.preamble` / `trailer`) as flows/sink.py writes them into a local folder: each
part read back by a reader that is not ours (csv, json, lxml, pyarrow, fastavro, openpyxl),
and the records' bytes exact, in the file's encoding and line terminator."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from flows.core.config import FormatOptions
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.core.targets import TargetContext
from flows.destinations.store import MIB, WrittenFile
from flows.request import DestinationConfig
from flows.sink import PartSink

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
FIXED_WIDTH = str(ROOT / "definitions" / "fixed_width.xsl")
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
DATE = datetime(2026, 3, 7, tzinfo=UTC)


def write(
    folder: Path,
    fmt: ExportFormat,
    rows: int,
    *,
    batch_rows: int = 700,
    options: FormatOptions | None = None,
    **destination: Any,
) -> list[WrittenFile]:
    """`rows` rows (id 0.., name `name-<id>`) through a PartSink, in batches of `batch_rows`."""
    config = DestinationConfig(url=f"{folder}/{{export}}.{{ext}}", **destination)
    context = replace(TargetContext.sample(), export="orders", ext=fmt, date=DATE)
    sink = PartSink.open(config, fmt, SCHEMA, options or FormatOptions(), context)
    for start in range(0, rows, batch_rows):
        ids = range(start, min(start + batch_rows, rows))
        names = [f"name-{i}" for i in ids]
        sink.write(pa.record_batch([pa.array(ids, pa.int64()), pa.array(names)], schema=SCHEMA))
    return sink.finish()


def ids_of(data: bytes, fmt: ExportFormat) -> list[int]:
    """The ids of one file, read by a reader that is not ours."""
    if fmt == "csv":
        return [int(row[0]) for row in list(csv.reader(io.StringIO(data.decode())))[1:]]
    if fmt == "json":
        return [item["id"] for item in json.loads(data)]
    if fmt == "jsonl":
        return [json.loads(line)["id"] for line in data.decode().splitlines()]
    if fmt == "xml":
        return [int(item.findtext("id")) for item in etree.fromstring(data)]
    if fmt == "avro":
        return [record["id"] for record in fastavro.reader(io.BytesIO(data))]
    if fmt == "xlsx":
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["data"]
        return [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    return pq.read_table(io.BytesIO(data)).column("id").to_pylist()


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_parts_of_at_most_max_file_rows(tmp_path: Path, fmt: ExportFormat) -> None:
    written = write(tmp_path, fmt, 10_000, max_file_rows=3000)
    assert [Path(item.final_path).name for item in written] == [
        f"orders-000{n}.{fmt}" for n in (1, 2, 3, 4)
    ]
    parts = [ids_of(Path(item.temp_path).read_bytes(), fmt) for item in written]
    assert [len(ids) for ids in parts] == [3000, 3000, 3000, 1000]
    assert [item.rows for item in written] == [3000, 3000, 3000, 1000]
    assert [i for ids in parts for i in ids] == list(range(10_000))


def test_an_exact_multiple_writes_no_empty_part(tmp_path: Path) -> None:
    written = write(tmp_path, "parquet", 9000, max_file_rows=3000)
    tables = [pq.read_table(item.temp_path) for item in written]
    assert [table.num_rows for table in tables] == [3000, 3000, 3000]
    assert tables[2].column("name").to_pylist()[-1] == "name-8999"


def test_one_row_a_part(tmp_path: Path) -> None:
    written = write(tmp_path, "jsonl", 3, max_file_rows=1)
    assert [Path(item.temp_path).read_bytes() for item in written] == [
        b'{"id":0,"name":"name-0"}\n',
        b'{"id":1,"name":"name-1"}\n',
        b'{"id":2,"name":"name-2"}\n',
    ]


@pytest.mark.parametrize(
    ("max_file_rows", "cut_by"), [(500, "rows"), (5000, "size")], ids=["rows", "size"]
)
def test_with_max_file_mb_the_first_limit_reached_cuts(
    tmp_path: Path, max_file_rows: int, cut_by: str
) -> None:
    mb = 0.05  # about 3,300 CSV rows of these
    written = write(tmp_path, "csv", 10_000, max_file_rows=max_file_rows, max_file_mb=mb)
    sizes = [Path(item.temp_path).stat().st_size for item in written]
    counts = [len(ids_of(Path(item.temp_path).read_bytes(), "csv")) for item in written]
    assert sum(counts) == 10_000
    assert all(size <= mb * MIB for size in sizes)
    assert all(count <= max_file_rows for count in counts)
    if cut_by == "rows":
        assert counts == [500] * 20
    else:
        assert len(written) == 3 and counts[0] < max_file_rows


def test_csv_preamble_and_trailer_bytes(tmp_path: Path) -> None:
    options = FormatOptions(
        preamble="HDR|{export}|{part:03d}|{date:%Y%m%d}",
        trailer="TRL|{rows}|{total_rows}|{part}|{date}",
        line_terminator="crlf",
        delimiter=";",
    )
    [item] = write(tmp_path, "csv", 3, options=options)
    assert Path(item.final_path).name == "orders.csv"
    assert Path(item.temp_path).read_bytes() == (
        b"HDR|orders|001|20260307\r\n"
        b"id;name\r\n"
        b"0;name-0\r\n1;name-1\r\n2;name-2\r\n"
        b"TRL|3|3|1|2026-03-07\r\n"
    )


def test_an_empty_csv_has_its_records(tmp_path: Path) -> None:
    options = FormatOptions(preamble="HDR", trailer="TRL|{rows}")
    [item] = write(tmp_path, "csv", 0, options=options)
    assert Path(item.temp_path).read_bytes() == b"HDR\nid,name\nTRL|0\n"


def test_records_are_in_the_files_encoding(tmp_path: Path) -> None:
    options = FormatOptions(preamble="Kopf é", trailer="Ende|{rows}", encoding="utf-16")
    [item] = write(tmp_path, "csv", 2, options=options)
    data = Path(item.temp_path).read_bytes()
    assert data.startswith(codecs.BOM_UTF16_LE)
    text = data[2:].decode("utf-16-le")
    assert text == "Kopf é\nid,name\n0,name-0\n1,name-1\nEnde|2\n"


def test_each_part_has_its_own_trailer(tmp_path: Path) -> None:
    options = FormatOptions(trailer="TRL|{part}|{rows}", header=False)
    written = write(tmp_path, "csv", 10_000, options=options, max_file_rows=3000)
    for number, (item, rows) in enumerate(
        zip(written, (3000, 3000, 3000, 1000), strict=True), start=1
    ):
        lines = Path(item.temp_path).read_text().splitlines()
        assert len(lines) == rows + 1
        assert lines[-1] == f"TRL|{number}|{rows}"
        assert lines[0] == f"{(number - 1) * 3000},name-{(number - 1) * 3000}"


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_trailer_is_counted_inside_max_file_mb(tmp_path: Path, compression: str) -> None:
    long_trailer = "TRL|{rows:>20}|" + "x" * 400  # more than the 64 bytes kept for a footer
    options = FormatOptions(trailer=long_trailer)
    mb = 0.02
    written = write(
        tmp_path, "jsonl", 5000, options=options, max_file_mb=mb, compression=compression
    )
    assert len(written) > 1
    total = 0
    for item in written:
        data = Path(item.temp_path).read_bytes()
        if compression == "none":  # gzip parts are cut between chunks, once they reach it
            assert len(data) <= mb * MIB
        text = (gzip.decompress(data) if compression == "gzip" else data).decode()
        *rows, last = text.splitlines()
        assert last == f"TRL|{len(rows):>20}|" + "x" * 400
        assert [json.loads(row)["id"] for row in rows] == list(range(total, total + len(rows)))
        total += len(rows)
    assert total == 5000


@pytest.mark.parametrize("scope", ["item", "document"])
def test_a_stylesheets_text_gets_its_records(tmp_path: Path, scope: str) -> None:
    sheet = FIXED_WIDTH
    if scope == "document":  # the same lines from the whole document
        sheet = str(tmp_path / "lines.xsl")
        Path(sheet).write_text(
            '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
            '<xsl:output method="text"/><xsl:template match="/root">'
            '<xsl:for-each select="item"><xsl:for-each select="*">'
            "<xsl:value-of select=\"substring(concat(., '                '), 1, 16)\"/>"
            "</xsl:for-each><xsl:text>&#10;</xsl:text></xsl:for-each>"
            "</xsl:template></xsl:stylesheet>"
        )
    options = FormatOptions(
        xslt=sheet, xslt_scope=scope, preamble="H {export}", trailer="T {rows:05d}"
    )
    out = tmp_path / "out"
    [item] = write(out, "xml", 3, options=options)
    cells = "".join(f"{i:<16}{f'name-{i}':<16}\n" for i in range(3))
    assert Path(item.temp_path).read_bytes() == f"H orders\n{cells}T 00003\n".encode()
