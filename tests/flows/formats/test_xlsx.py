"""The xlsx writer read back by openpyxl (read_only, as a large sheet is read): which values
are native Excel cells and which are text, the values formats get wrong (NULLs, unicode, long
ids, leading zeros, 38-digit decimals, instants in other zones, UUIDs, JSON), the sheet's row
limit cutting an export into parts, bounded memory, and what is refused.

openpyxl returns inline strings with OOXML's `_xHHHH_` escapes (of a carriage return, a NUL)
still in them, which Excel undoes; `cell_text` undoes them with openpyxl's own `unescape`."""

from __future__ import annotations

import io
import math
import tempfile
import tracemalloc
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pytest
from openpyxl.utils.escape import unescape

from flows.core import formats
from flows.core.columns import array_field, decimal_field, make_field, undetermined_field
from flows.core.config import FormatOptions
from flows.core.errors import FormatError
from flows.core.targets import TargetContext
from flows.formats.writers import open_writer
from flows.formats.xlsx_writer import XlsxWriter
from flows.request import DestinationConfig
from flows.sink import PartSink

pytestmark = pytest.mark.unit

KOLKATA = timezone(timedelta(hours=5, minutes=30))
SCHEMA = pa.schema(
    [
        make_field("id", "int"),
        make_field("label", "str"),
        make_field("code", "str"),
        make_field("ratio", "float"),
        decimal_field("wide", 38, 10),
        decimal_field("price", 12, 2),
        decimal_field("exact", None, None),
        make_field("flag", "bool"),
        make_field("uid", "uuid"),
        make_field("doc", "json"),
        make_field("blob", "bytes"),
        make_field("day", "date"),
        make_field("at_time", "time"),
        make_field("local_at", "timestamp"),
        make_field("happened_at", "timestamptz", pa.timestamp("us", tz="Asia/Kolkata")),
        array_field("tags", "str"),
        make_field("order id", "int"),
    ]
)
LABEL = 'emoji 😀 👩\u200d💻 🇯🇵, 中文, "quoted", line\r\nbreak, \x00 nul, _x0041_ literal  '
ROWS: list[dict[str, Any]] = [
    {
        "id": 2**63 - 1,  # a long id: 19 digits, text
        "label": LABEL,
        "code": "007",  # leading zeros: text stays text
        "ratio": 0.1 + 0.2,  # 17 significant digits: text
        "wide": Decimal("1234567890123456789012345678.0123456789"),
        "price": Decimal("12.50"),
        "exact": "NaN",
        "flag": True,
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "doc": '{"a": [1, 2.50, "ü"]}',
        "blob": b"\x00\xff",
        "day": date(1, 1, 1),  # before Excel's first day: text
        "at_time": time(23, 59, 59, 999000),
        "local_at": datetime(9999, 12, 31, 23, 59, 59, 999000),
        "happened_at": datetime(2023, 6, 15, 12, 0, 0, 123000, tzinfo=KOLKATA),
        "tags": '{"a b",NULL,"c,d"}',
        "order id": 7,
    },
    dict.fromkeys(SCHEMA.names),
    {
        "id": 999_999_999_999_999,  # 15 digits: still a number
        "label": "",
        "code": "=1+1",  # never a formula
        "ratio": 1.5,
        "wide": Decimal("-0.0000000001"),
        "price": Decimal("-0.01"),
        "exact": "12345678901234567890.000000000000000000001",
        "flag": False,
        "uid": "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "doc": "null",
        "blob": b"",
        "day": date(1900, 1, 1),
        "at_time": time(0, 0),
        "local_at": datetime(2024, 2, 29, 8, 30, 0, 1),  # a microsecond: text
        "happened_at": datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        "tags": "{}",
        "order id": -(10**15),  # 16 digits: text
    },
    {
        "id": 0,
        "label": "https://example.com/x",  # never a link
        "code": "0012",
        "ratio": -math.inf,
        "wide": Decimal("123456789.0123456"),  # 16 significant digits: text
        "price": Decimal("1000.00"),
        "exact": "1E+2",
        "flag": None,
        "uid": None,
        "doc": "[]",
        "blob": None,
        "day": date(2024, 2, 29),
        "at_time": time(12, 0, 0, 1),  # a microsecond: text
        "local_at": datetime(1900, 3, 1),
        "happened_at": datetime(2024, 3, 31, 1, 30, tzinfo=timezone(timedelta(hours=-7))),
        "tags": None,
        "order id": None,
    },
]


def batch_of(rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def written(batches: list[pa.RecordBatch], schema: pa.Schema = SCHEMA) -> bytes:
    file = io.BytesIO()
    writer = open_writer("xlsx", file, schema, FormatOptions())
    try:
        for batch in batches:
            writer.write(batch)
    except BaseException:
        writer.abandon()  # as the sink does with a failed part: its temporary folder goes
        raise
    writer.close()
    return file.getvalue()


def sheet_of(data: bytes) -> Any:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["data"]
    return book["data"]


def cell_text(value: Any) -> Any:
    return unescape(value) if isinstance(value, str) else value


def records(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """(the header row, each row as {name: value}); an empty cell is None."""
    rows = [[cell_text(v) for v in row] for row in sheet_of(data).iter_rows(values_only=True)]
    header = rows[0]
    return header, [dict(zip(header, row, strict=True)) for row in rows[1:]]


def cells(data: bytes) -> list[dict[str, Any]]:
    """Each data row's cells as {name: cell}: data_type n (number), s (text), b (boolean)."""
    rows = list(sheet_of(data).iter_rows())
    header = [cell.value for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def test_every_value_reads_back_exactly() -> None:
    header, (first, empty, second, third) = records(written([batch_of(ROWS)]))
    assert header == SCHEMA.names
    assert empty == dict.fromkeys(SCHEMA.names)  # NULL: an empty cell
    assert (first["id"], second["id"], third["id"]) == (str(2**63 - 1), 999_999_999_999_999, 0)
    assert (first["label"], second["label"], third["label"]) == (LABEL, "", "https://example.com/x")
    assert (first["code"], second["code"], third["code"]) == ("007", "=1+1", "0012")
    assert (first["ratio"], second["ratio"], third["ratio"]) == ("0.30000000000000004", 1.5, "-inf")
    assert first["wide"] == "1234567890123456789012345678.0123456789"
    assert Decimal(repr(second["wide"])) == Decimal("-0.0000000001")
    assert third["wide"] == "123456789.0123456000"  # its text at the column's scale
    assert (first["price"], second["price"], third["price"]) == (12.5, -0.01, 1000)
    assert (first["exact"], third["exact"]) == ("NaN", 100)
    assert second["exact"] == "12345678901234567890.000000000000000000001"
    assert (first["flag"], second["flag"]) == (True, False) and third["flag"] is None
    assert (first["uid"], second["uid"]) == (ROWS[0]["uid"], ROWS[2]["uid"])
    assert (first["doc"], second["doc"], third["doc"]) == (ROWS[0]["doc"], "null", "[]")
    assert (first["blob"], second["blob"]) == ("AP8=", "")  # base64, as CSV writes bytes
    assert first["day"] == "0001-01-01"
    assert second["day"] == datetime(1900, 1, 1) and third["day"] == datetime(2024, 2, 29)
    assert (first["at_time"], second["at_time"]) == (time(23, 59, 59, 999000), time(0, 0))
    assert third["at_time"] == "12:00:00.000001"
    assert first["local_at"] == datetime(9999, 12, 31, 23, 59, 59, 999000)
    assert second["local_at"] == "2024-02-29T08:30:00.000001"
    assert third["local_at"] == datetime(1900, 3, 1)
    # A timestamp with a zone: its UTC wall-clock time (Excel has no zones).
    assert first["happened_at"] == datetime(2023, 6, 15, 6, 30, 0, 123000)
    assert second["happened_at"] == datetime(1969, 12, 31, 23, 59, 59)
    assert third["happened_at"] == datetime(2024, 3, 31, 8, 30)
    assert (first["tags"], second["tags"]) == ('{"a b",NULL,"c,d"}', "{}")
    assert (first["order id"], second["order id"]) == (7, str(-(10**15)))


def test_numbers_dates_and_booleans_are_native_cells_and_shown_as_such() -> None:
    first, _, second, third = cells(written([batch_of(ROWS)]))
    kinds = {name: cell.data_type for name, cell in second.items()}
    assert kinds["id"] == kinds["ratio"] == kinds["price"] == "n"
    assert kinds["day"] == kinds["happened_at"] == "d"  # a number shown as a date
    assert kinds["local_at"] == "s" and kinds["order id"] == "s" and kinds["code"] == "s"
    assert kinds["flag"] == "b" and first["id"].data_type == "s"
    assert third["day"].number_format == "yyyy-mm-dd"
    assert third["local_at"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert first["local_at"].number_format == "yyyy-mm-dd hh:mm:ss.000"
    assert first["at_time"].number_format == "hh:mm:ss.000"
    assert first["price"].number_format == "0.00"  # 12.50 is shown with its scale
    assert first["id"].number_format == "General"


def test_a_decimal_of_more_digits_than_pythons_context_is_text() -> None:
    """30 digits round to one in Python's 28-digit context (-1E+20): they are counted as
    written, so the cell keeps all 30."""
    schema = pa.schema([decimal_field("d", 30, 10)])
    value = Decimal("-99999999999999999999.9999999999")
    _, rows = records(written([batch_of([{"d": value}], schema)], schema))
    assert rows == [{"d": "-99999999999999999999.9999999999"}]


def test_no_rows_is_a_sheet_with_its_header() -> None:
    header, rows = records(written([]))
    assert header == SCHEMA.names and rows == []


def test_a_column_of_nulls_takes_its_values_when_they_come() -> None:
    first = pa.schema([make_field("id", "int"), undetermined_field("v")])
    later = pa.schema([make_field("id", "int"), make_field("v", "date")])
    data = written(
        [
            batch_of([{"id": 1, "v": None}], first),
            batch_of([{"id": 2, "v": date(2024, 1, 2)}], later),
        ],
        first,
    )
    assert records(data)[1] == [{"id": 1, "v": None}, {"id": 2, "v": datetime(2024, 1, 2)}]


def test_text_longer_than_a_cell_is_refused_naming_the_column_and_row() -> None:
    schema = pa.schema([make_field("id", "int"), make_field("note", "str")])
    rows = [{"id": 1, "note": "x" * 32_767}, {"id": 2, "note": "y" * 32_768}]
    with pytest.raises(FormatError) as raised:
        written([batch_of(rows, schema)], schema)
    assert str(raised.value) == (
        "column `note`: row 2 holds 32,768 characters, more than the 32,767 of an Excel cell; "
        "shorten it in the query (e.g. left(column, 32767)) or export csv, jsonl or parquet"
    )


def test_an_abandoned_workbook_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    writer = XlsxWriter(io.BytesIO(), SCHEMA, FormatOptions())
    writer.write(batch_of(ROWS))
    assert list(tmp_path.iterdir())  # XlsxWriter's rows of the sheet, on disk
    writer.abandon()
    assert list(tmp_path.iterdir()) == []


class FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # noqa: ARG002 - every write fails
        raise OSError(28, "No space left on device")


def test_a_workbook_that_cannot_be_written_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    writer = XlsxWriter(FullDisk(), SCHEMA, FormatOptions())  # type: ignore[arg-type]
    writer.write(batch_of(ROWS))
    with pytest.raises(Exception, match="No space left on device"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_flat_as_rows_grow() -> None:
    """constant_memory: each row leaves memory once written, so ten times the rows need no
    more memory (a workbook held in memory needs some 13 MB more here)."""
    schema = pa.schema([make_field("name", "str")])
    batch = batch_of([{"name": f"name {i}"} for i in range(4_096)], schema)

    def peak(batches: int) -> int:
        tracemalloc.start()
        writer = XlsxWriter(io.BytesIO(), schema, FormatOptions())
        for _ in range(batches):
            writer.write(batch)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        writer.close()
        return size

    small, large = peak(1), peak(10)
    assert large < small + 256 * 1024, (small, large)


# -- the sheet's row limit -------------------------------------------------------------------

ID_SCHEMA = pa.schema([pa.field("id", pa.int64())])


def sink_write(folder: Path, rows: int, **destination: Any) -> list[tuple[str, list[int], int]]:
    """(final name, the ids read back, the rows counted) of each file a PartSink writes of
    `rows` rows in batches of 4; its temporary files are removed once read."""
    config = DestinationConfig(url=f"{folder}/{{export}}.{{ext}}", **destination)
    context = replace(TargetContext.sample(), export="orders", ext="xlsx")
    sink = PartSink.open(config, "xlsx", ID_SCHEMA, FormatOptions(), context)
    for start in range(0, rows, 4):
        ids = range(start, min(start + 4, rows))
        sink.write(pa.record_batch([pa.array(ids, pa.int64())], schema=ID_SCHEMA))
    found = []
    for item in sink.finish():
        temp = Path(item.temp_path)
        _, records_read = records(temp.read_bytes())
        temp.unlink()
        found.append((Path(item.final_path).name, [row["id"] for row in records_read], item.rows))
    return found


def test_a_sheet_holds_excels_rows_but_the_header() -> None:
    assert formats.XLSX_MAX_ROWS == 1_048_575 == 2**20 - 1


def test_an_export_past_the_limit_is_cut_into_numbered_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "XLSX_MAX_ROWS", 5)
    assert sink_write(tmp_path, 12) == [
        ("orders-0001.xlsx", [0, 1, 2, 3, 4], 5),
        ("orders-0002.xlsx", [5, 6, 7, 8, 9], 5),
        ("orders-0003.xlsx", [10, 11], 2),
    ]


def test_an_export_within_the_limit_keeps_its_one_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "XLSX_MAX_ROWS", 5)
    assert sink_write(tmp_path, 5) == [("orders.xlsx", [0, 1, 2, 3, 4], 5)]


@pytest.mark.parametrize(("max_file_rows", "sizes"), [(3, [3, 3, 3, 3]), (50, [5, 5, 2])])
def test_max_file_rows_cuts_where_it_is_lower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_file_rows: int, sizes: list[int]
) -> None:
    monkeypatch.setattr(formats, "XLSX_MAX_ROWS", 5)
    parts = sink_write(tmp_path, 12, max_file_rows=max_file_rows)
    assert [len(ids) for _, ids, _ in parts] == sizes
    assert [name for name, _, _ in parts][:2] == ["orders-0001.xlsx", "orders-0002.xlsx"]
    assert [i for _, ids, _ in parts for i in ids] == list(range(12))
