"""The exact bytes each writer puts in a file (flows/formats/writers.py and the format's
module), for one small batch with every common kind and its NULLs: CSV's quoting and header,
compact JSON objects and the JSON array's separators across batches, XML as dicttoxml writes
it, the encodings with their BOM and their refusals, and where a size-split part stops. In
memory, with no source or store; the same files from real databases and stores are the server
tier's (test_roundtrip.py, test_encoding.py, test_delivery.py)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.core.columns import make_field
from flows.core.config import FormatOptions
from flows.core.errors import FormatError
from flows.core.formats import ExportFormat
from flows.formats.writers import BatchWriter, open_writer

pytestmark = pytest.mark.unit

SCHEMA = pa.schema(
    [
        make_field("id", "int", pa.int64()),
        make_field("name", "str", pa.string()),
        make_field("price", "decimal", pa.decimal128(6, 2)),
        make_field("ok", "bool", pa.bool_()),
        make_field("day", "date", pa.date32()),
    ]
)
BATCH = pa.RecordBatch.from_arrays(
    [
        pa.array([1, 2, None]),
        pa.array(["a,b", "é", None]),
        pa.array([Decimal("1.50"), None, Decimal("-0.01")], pa.decimal128(6, 2)),
        pa.array([True, None, False]),
        pa.array([dt.date(2026, 3, 1), None, dt.date(1, 1, 1)]),
    ],
    schema=SCHEMA,
)
CSV = 'id,name,price,ok,day\n1,"a,b",1.50,true,2026-03-01\n2,é,,,\n,,-0.01,false,0001-01-01\n'
JSONL_ROWS = [
    '{"id":1,"name":"a,b","price":1.50,"ok":true,"day":"2026-03-01"}',
    '{"id":2,"name":"é","price":null,"ok":null,"day":null}',
    '{"id":null,"name":null,"price":-0.01,"ok":false,"day":"0001-01-01"}',
]
XML_ITEMS = [
    '<item type="dict"><id type="int">1</id><name type="str">a,b</name>'
    '<price type="number">1.50</price><ok type="bool">true</ok>'
    '<day type="str">2026-03-01</day></item>',
    '<item type="dict"><id type="int">2</id><name type="str">é</name>'
    '<price type="null"></price><ok type="null"></ok><day type="null"></day></item>',
    '<item type="dict"><id type="null"></id><name type="null"></name>'
    '<price type="number">-0.01</price><ok type="bool">false</ok>'
    '<day type="str">0001-01-01</day></item>',
]
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" ?>'
LINE = [len(row.encode()) + 1 for row in JSONL_ROWS]  # bytes of each JSON Lines row


def written(
    fmt: ExportFormat, batches: list[pa.RecordBatch] | None = None, **options: Any
) -> tuple[bytes, BatchWriter]:
    file = io.BytesIO()
    writer = open_writer(fmt, file, SCHEMA, FormatOptions(**options))
    for batch in [BATCH] if batches is None else batches:
        writer.write(batch)
    writer.close()
    return file.getvalue(), writer


@pytest.mark.parametrize(
    ("fmt", "options", "text"),
    [
        ("csv", {}, CSV),
        ("csv", {"line_terminator": "crlf", "delimiter": ";"},
         "id;name;price;ok;day\r\n1;a,b;1.50;true;2026-03-01\r\n2;é;;;\r\n"
         ";;-0.01;false;0001-01-01\r\n"),
        ("csv", {"delimiter": "\t"},
         "id\tname\tprice\tok\tday\n1\ta,b\t1.50\ttrue\t2026-03-01\n2\té\t\t\t\n"
         "\t\t-0.01\tfalse\t0001-01-01\n"),
        ("csv", {"header": False}, CSV.split("\n", 1)[1]),
        ("jsonl", {}, "\n".join(JSONL_ROWS) + "\n"),
        ("json", {}, "[\n" + ",\n".join(JSONL_ROWS) + "\n]\n"),
        ("json", {"decimals": "string"},
         "[\n" + ",\n".join(row.replace(":1.50", ':"1.50"').replace(":-0.01", ':"-0.01"')
                            for row in JSONL_ROWS) + "\n]\n"),
        ("xml", {}, XML_DECLARATION + "<root>" + "".join(XML_ITEMS) + "</root>"),
        ("xml", {"xml_type_attributes": False, "xml_root": "orders", "xml_item": "order"},
         XML_DECLARATION + "<orders><order><id>1</id><name>a,b</name><price>1.50</price>"
         "<ok>true</ok><day>2026-03-01</day></order><order><id>2</id><name>é</name><price>"
         "</price><ok></ok><day></day></order><order><id></id><name></name><price>-0.01"
         "</price><ok>false</ok><day>0001-01-01</day></order></orders>"),
    ],
    ids=["csv", "csv crlf semicolon", "csv tab", "csv without header", "jsonl", "json",
         "json decimals as strings", "xml", "xml names without types"],
)  # fmt: skip
def test_a_batch_is_written_as_these_bytes(
    fmt: ExportFormat, options: dict[str, Any], text: str
) -> None:
    data, writer = written(fmt, **options)
    assert data.decode("utf-8") == text
    assert (writer.rows, writer.bytes) == (3, len(data))


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("csv", CSV + CSV.split("\n", 1)[1]),
        ("jsonl", ("\n".join(JSONL_ROWS) + "\n") * 2),
        ("json", "[\n" + ",\n".join(JSONL_ROWS * 2) + "\n]\n"),
        ("xml", XML_DECLARATION + "<root>" + "".join(XML_ITEMS * 2) + "</root>"),
    ],
)
def test_batches_continue_one_document(fmt: ExportFormat, text: str) -> None:
    data, writer = written(fmt, [BATCH, BATCH.slice(0, 0), BATCH])
    assert data.decode("utf-8") == text
    assert writer.rows == 6


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("csv", "id,name,price,ok,day\n"),
        ("jsonl", ""),
        ("json", "[]\n"),
        ("xml", XML_DECLARATION + "<root></root>"),
    ],
)
def test_no_rows_is_still_a_document(fmt: ExportFormat, text: str) -> None:
    data, writer = written(fmt, [])
    assert (data.decode("utf-8"), writer.rows) == (text, 0)


@pytest.mark.parametrize(
    ("fmt", "options", "data"),
    [
        ("csv", {"encoding": "utf-8-sig"}, b"\xef\xbb\xbf" + CSV.encode()),
        ("csv", {"encoding": "latin-1"}, CSV.encode("latin-1")),
        ("csv", {"encoding": "utf-16"}, b"\xff\xfe" + CSV.encode("utf-16-le")),
        ("csv", {"encoding": "ascii", "on_unencodable": "replace"},
         CSV.replace("é", "?").encode("ascii")),
        ("jsonl", {"encoding": "ascii", "on_unencodable": "escape"},
         ("\n".join(JSONL_ROWS) + "\n").replace("é", "\\u00e9").encode("ascii")),
        ("xml", {"encoding": "ascii", "on_unencodable": "escape"},
         (XML_DECLARATION.replace("UTF-8", "US-ASCII") + "<root>" + "".join(XML_ITEMS)
          + "</root>").replace("é", "&#233;").encode("ascii")),
        ("xml", {"encoding": "latin-1"},
         (XML_DECLARATION.replace("UTF-8", "ISO-8859-1") + "<root>" + "".join(XML_ITEMS)
          + "</root>").encode("latin-1")),
    ],
    ids=["utf-8 with BOM", "latin-1", "utf-16 with BOM", "ascii replace", "json escape",
         "xml escape", "xml latin-1 declared"],
)  # fmt: skip
def test_each_encoding_writes_these_bytes(
    fmt: ExportFormat, options: dict[str, Any], data: bytes
) -> None:
    got, writer = written(fmt, **options)
    assert got == data
    assert writer.bytes == len(data)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "xml"])
def test_a_character_the_encoding_cannot_hold_names_its_row_and_column(
    fmt: ExportFormat,
) -> None:
    with pytest.raises(FormatError) as caught:
        written(fmt, encoding="ascii")
    assert str(caught.value) == (
        "format_options.encoding: row 2, column `name` holds 'é' (U+00E9), which ascii cannot "
        "write; choose another encoding, or on_unencodable: replace (writes ?) or escape (XML "
        "and JSON character references)"
    )


def test_a_column_name_the_encoding_cannot_hold_is_refused_at_the_header() -> None:
    schema = pa.schema([make_field("prénom", "str", pa.string())])
    with pytest.raises(FormatError) as caught:
        open_writer("csv", io.BytesIO(), schema, FormatOptions(encoding="ascii"))
    assert str(caught.value) == (
        "format_options.encoding: the header (column names) holds 'é' (U+00E9), which ascii "
        "cannot write; rename the column with source.columns or choose another encoding"
    )


@pytest.mark.parametrize(
    ("fmt", "budget", "rows"),
    [
        ("jsonl", 0, 1),  # a part's first row goes in whatever its size
        ("jsonl", LINE[0], 1),
        ("jsonl", LINE[0] + LINE[1] - 1, 1),
        ("jsonl", LINE[0] + LINE[1], 2),
        ("jsonl", 10_000, 3),
        ("csv", 0, 1),
        ("csv", len('1,"a,b",1.50,true,2026-03-01\n2,é,,,\n'.encode()), 2),
    ],
)
def test_a_size_split_part_stops_at_a_row_boundary(
    fmt: ExportFormat, budget: int, rows: int
) -> None:
    file = io.BytesIO()
    writer = open_writer(fmt, file, SCHEMA, FormatOptions())
    header = writer.bytes
    assert writer.write(BATCH, budget=budget) == rows
    assert writer.bytes - header <= max(budget, LINE[0])
    assert file.getvalue().count(b"\n") == rows + (1 if fmt == "csv" else 0)


def test_a_later_row_that_does_not_fit_waits_for_the_next_part() -> None:
    file = io.BytesIO()
    writer = open_writer("jsonl", file, SCHEMA, FormatOptions())
    assert writer.write(BATCH.slice(0, 1)) == 1
    assert writer.write(BATCH.slice(1), budget=5) == 0  # not the part's first row: none fits


@pytest.mark.parametrize("compression", ["snappy", "zstd", "gzip", "none"])
def test_parquet_holds_every_value_and_its_type(compression: str) -> None:
    data, writer = written("parquet", parquet_compression=compression)
    table = pq.read_table(io.BytesIO(data))
    assert table.to_pylist() == BATCH.to_pylist()
    assert [str(field.type) for field in table.schema] == [
        "int64", "string", "decimal128(6, 2)", "bool", "date32[day]"
    ]  # fmt: skip
    assert writer.rows == 3
    codec = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).compression
    assert codec == ("UNCOMPRESSED" if compression == "none" else compression.upper())
