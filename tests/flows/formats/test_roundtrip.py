"""Acceptance: every format round-trips every cell, from SQLite and PostgreSQL.

Each test runs the real `export` flow, reads the file back with an independent parser (csv,
json with parse_float=Decimal, lxml, pyarrow.parquet, fastavro, openpyxl) and compares every
cell with the rows an independent client read from the source (psycopg, sqlite3, the demo
module). The expected text follows the rendering contract in flows/formats/render.py: floats
as repr, decimals exact, true/false, isoformat() dates and times (timestamptz in UTC, +00:00),
base64 bytes, JSON columns nested in JSON and as JSON text in CSV/XML, NULL as an empty
unquoted CSV field. An xlsx cell is a number, boolean or date where Excel holds the value
exactly, else that same text (README, "How values are written").
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import fastavro
import openpyxl
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from lxml import etree
from openpyxl.utils.escape import unescape

from flows.core.formats import ExportFormat
from tests.flows.conftest import (
    ALL_FORMATS,
    FORBIDDEN_TEXT,
    PG_READERS,
    TEXT_FORMATS,
    Dataset,
    PgSource,
    RunExport,
    SqliteSource,
    demo_dataset,
    first_difference,
    pg_select,
    url_for_psycopg,
)

pytestmark = pytest.mark.usefixtures("prefect_api")

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" ?>'
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# How dicttoxml names the columns that are not valid XML names (everything else is kept).
XML_NAMES: dict[str, tuple[str, dict[str, str]]] = {
    "order id": ("order_id", {}),
    "1st": ("key", {"name": "1st"}),
}
# The Avro field names of the columns that are not Avro names (everything else is kept).
AVRO_NAMES = {"order id": "order_id", "1st": "_1st"}
XML_TYPES = {"int": "int", "float": "float", "decimal": "number", "bool": "bool"}
JSON_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
MAX_REPORTED = 15

Checker = Callable[[Path, Dataset], list[str]]


# ---------------------------------------------------------------------------------------
# Expected forms of one source value
# ---------------------------------------------------------------------------------------


def expected_text(value: Any, kind: str) -> str:
    """The canonical text of a non-NULL value (CSV fields, XML element text)."""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "float":
        return repr(value)
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind in ("date", "time", "timestamp"):
        return str(value.isoformat())
    if kind == "timestamptz":
        return str(value.astimezone(UTC).isoformat())
    return str(value)


def expected_json_document(value: Any) -> Any:
    """A JSON column's value as json.loads(..., parse_float=Decimal) reads it."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return json.loads(text, parse_float=Decimal)


def same_decimal(got: Any, value: Decimal) -> bool:
    """Exactly the same number and scale (sign, digits, exponent); NaN equals NaN."""
    try:
        parsed = got if isinstance(got, Decimal) else Decimal(got)
    except (InvalidOperation, TypeError, ValueError):
        return False
    if parsed.is_finite() and value.is_finite():
        return parsed.as_tuple() == value.as_tuple() or (
            # An integral JSON number may be written without a fraction (`100`): same value.
            isinstance(got, int) and parsed == value
        )
    return str(parsed) == str(value)


def text_mismatch(got: str | None, value: Any, kind: str, *, xml: bool = False) -> str | None:
    """Why a cell read back as text does not match the source value, or None."""
    if value is None:
        return None if got is None else f"expected NULL, got {got!r}"
    if got is None:
        return f"expected {value!r}, got NULL"
    if kind == "decimal":
        if value.is_finite() and got != format(value, "f"):  # plain digits, never 1E-10
            return f"expected decimal {format(value, 'f')}, got {got!r}"
        return None if same_decimal(got, value) else f"expected decimal {value}, got {got!r}"
    if kind == "json":
        try:
            document = json.loads(got, parse_float=Decimal)
        except ValueError:
            return f"not JSON text: {got!r}"
        expected = expected_json_document(value)
        return None if document == expected else f"expected JSON {expected!r}, got {got!r}"
    want = expected_text(value, kind)
    if xml:
        # XML forbids some control characters (written as U+FFFD); a carriage return is
        # written as &#13;, so the parser keeps it.
        want = XML_FORBIDDEN.sub("\ufffd", want)
    return None if got == want else f"expected {want!r}, got {got!r}"


def json_mismatch(got: Any, value: Any, kind: str) -> str | None:
    """Why a value parsed from JSON (parse_float=Decimal) does not match the source."""
    if value is None:
        return None if got is None else f"expected null, got {got!r}"
    if kind == "json":
        expected = expected_json_document(value)
        return None if got == expected else f"expected JSON {expected!r}, got {got!r}"
    if kind == "bool":
        ok = got is value
    elif kind == "int":
        ok = type(got) is int and got == value
    elif kind == "float":
        if math.isfinite(value):
            ok = isinstance(got, Decimal) and got.as_tuple() == Decimal(repr(value)).as_tuple()
        else:
            ok = got == JSON_NON_FINITE[repr(value)]
    elif kind == "decimal":
        if value.is_finite():
            ok = isinstance(got, Decimal | int) and not isinstance(got, bool)
            ok = ok and same_decimal(got, value)
        else:
            ok = got == str(value)
    else:
        ok = got == expected_text(value, kind)
    return None if ok else f"expected {value!r}, got {got!r}"


def parquet_mismatch(got: Any, value: Any, kind: str) -> str | None:
    """Why a Parquet cell (as pyarrow returns it) does not match the source value."""
    if value is None:
        return None if got is None else f"expected NULL, got {got!r}"
    if got is None:
        return f"expected {value!r}, got NULL"
    if kind == "int":
        ok = type(got) is int and got == value
    elif kind == "float":
        ok = type(got) is float and repr(got) == repr(value)
    elif kind == "decimal":
        # numeric(p, s) is decimal(p, s); a decimal with no fixed scale is its exact text
        # (the column types themselves are checked in TestParquetTypes).
        ok = isinstance(got, Decimal | str) and same_decimal(got, value)
    elif kind == "bool":
        ok = got is value
    elif kind == "uuid":
        ok = isinstance(got, uuid.UUID) and str(got) == str(value)
    elif kind == "str":
        ok = got == str(value)
    elif kind == "json":
        if not isinstance(got, str):
            return f"expected JSON text, got {got!r}"
        return text_mismatch(got, value, kind)
    elif kind == "bytes":
        ok = type(got) is bytes and got == value
    elif kind == "date":
        ok = type(got) is date and got == value
    elif kind == "time":
        ok = type(got) is time and got == value
    elif kind == "timestamp":
        ok = type(got) is datetime and got.tzinfo is None and got == value
    elif kind == "timestamptz":
        offset = got.utcoffset() if isinstance(got, datetime) else None
        ok = offset is not None and offset.total_seconds() == 0 and got == value
    else:
        raise AssertionError(f"unknown kind {kind}")
    return None if ok else f"expected {value!r}, got {got!r}"


def _collect(problems: list[str], row: int, column: str, problem: str | None) -> None:
    if problem is not None:
        problems.append(f"row {row}, column {column!r}: {problem}")


# ---------------------------------------------------------------------------------------
# Reading each format back with an independent parser
# ---------------------------------------------------------------------------------------


def check_csv(path: Path, data: Dataset) -> list[str]:
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert records[0] == data.columns, "header row"
    assert len(records) == len(data.rows) + 1
    # Line terminators are LF: every LF / CR in the file is a record end or inside a cell.
    assert text.endswith("\n")
    assert text.count("\n") == len(records) + sum(f.count("\n") for r in records for f in r)
    assert text.count("\r") == sum(field.count("\r") for r in records for field in r)
    # csv.reader reads NULL and "" alike; pyarrow tells an empty unquoted field (NULL)
    # from a quoted one ("").
    table = pacsv.read_csv(
        io.BytesIO(raw),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(data.columns, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    assert table.num_rows == len(data.rows)
    problems: list[str] = []
    for index, (record, row) in enumerate(zip(records[1:], data.rows, strict=True)):
        assert len(record) == len(data.columns), f"row {index} has {len(record)} fields"
        for column_index, (field, value, kind) in enumerate(
            zip(record, row, data.kinds, strict=True)
        ):
            is_null = table.column(column_index)[index].as_py() is None
            if is_null:
                assert field == "", "pyarrow and csv disagree"
            got = None if is_null else field
            _collect(problems, index, data.columns[column_index], text_mismatch(got, value, kind))
    return problems


def _check_json_objects(objects: list[Any], data: Dataset) -> list[str]:
    assert len(objects) == len(data.rows)
    problems: list[str] = []
    for index, (obj, row) in enumerate(zip(objects, data.rows, strict=True)):
        assert isinstance(obj, dict)
        assert list(obj) == data.columns, f"row {index}: keys in column order"
        for column, value, kind in zip(data.columns, row, data.kinds, strict=True):
            _collect(problems, index, column, json_mismatch(obj[column], value, kind))
    return problems


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def check_json(path: Path, data: Dataset) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    document = _loads(text)
    assert isinstance(document, list)
    if not data.rows:
        assert text == "[]\n"
        return _check_json_objects(document, data)
    # Layout: "[\n{...},\n{...}\n]\n", one object per line.
    lines = text.split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""], "array brackets on their own lines"
    body = lines[1:-2]
    assert all(line.endswith(",") for line in body[:-1]) and not body[-1].endswith(",")
    assert [_loads(line.removesuffix(",")) for line in body] == document
    return _check_json_objects(document, data)


def check_jsonl(path: Path, data: Dataset) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("\n") or not data.rows
    lines = text.split("\n")[:-1]
    return _check_json_objects([_loads(line) for line in lines], data)


def xml_name(column: str) -> tuple[str, dict[str, str]]:
    return XML_NAMES.get(column, (column, {}))


def check_xml(path: Path, data: Dataset) -> list[str]:
    raw = path.read_bytes()
    assert raw.startswith(XML_DECLARATION + b"<root>") and raw.endswith(b"</root>")
    root = etree.fromstring(raw)
    assert root.tag == "root" and len(root) == len(data.rows)
    problems: list[str] = []
    for index, (item, row) in enumerate(zip(root, data.rows, strict=True)):
        assert item.tag == "item" and dict(item.attrib) == {"type": "dict"}
        assert len(item) == len(data.columns)
        for element, column, value, kind in zip(item, data.columns, row, data.kinds, strict=True):
            tag, attrs = xml_name(column)
            expected_attrs = {
                **attrs,
                "type": "null" if value is None else XML_TYPES.get(kind, "str"),
            }
            if element.tag != tag or dict(element.attrib) != expected_attrs:
                problems.append(
                    f"row {index}, column {column!r}: element <{element.tag} "
                    f"{dict(element.attrib)}>, expected <{tag} {expected_attrs}>"
                )
            assert len(element) == 0, "values are text, never nested elements"
            got = element.text if value is None else (element.text or "")
            _collect(problems, index, column, text_mismatch(got, value, kind, xml=True))
    return problems


def check_parquet(path: Path, data: Dataset) -> list[str]:
    table = pq.read_table(path)
    assert table.column_names == data.columns
    assert table.num_rows == len(data.rows)
    problems: list[str] = []
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    for index, row in enumerate(data.rows):
        for column_index, (value, kind) in enumerate(zip(row, data.kinds, strict=True)):
            got = columns[column_index][index]
            _collect(
                problems, index, data.columns[column_index], parquet_mismatch(got, value, kind)
            )
    return problems


def check_avro(path: Path, data: Dataset) -> list[str]:
    """Avro cells as fastavro reads them: the same Python values pyarrow reads from Parquet
    (logical types: Decimal, UUID, date, time, naive and UTC datetimes)."""
    with path.open("rb") as file:
        reader = fastavro.reader(file)
        records = list(reader)
        names = [field["name"] for field in reader.writer_schema["fields"]]
    assert names == [AVRO_NAMES.get(column, column) for column in data.columns]
    assert len(records) == len(data.rows)
    problems: list[str] = []
    for index, (row, record) in enumerate(zip(data.rows, records, strict=True)):
        for column, name, value, kind in zip(data.columns, names, row, data.kinds, strict=True):
            _collect(problems, index, column, parquet_mismatch(record[name], value, kind))
    return problems


def _excel_digits(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.strip("0")) or 1


def _excel_time(value: Any) -> bool:
    """Whether Excel holds a time or timestamp exactly: whole milliseconds, 1900..9999."""
    in_range = not isinstance(value, datetime) or 1900 <= value.year <= 9999
    return in_range and value.microsecond % 1000 == 0


def xlsx_native(value: Any, kind: str) -> Any:
    """The value openpyxl reads from the cell Excel holds a value in exactly, or None where
    the cell is the value's text."""
    if kind == "bool":
        return value
    if kind == "int":
        return value if abs(value) < 10**15 else None
    if kind == "float":
        fits = value == 0 or 2.2250738585072014e-308 <= abs(value) <= 9.99999999999999e307
        return value if fits and _excel_digits(repr(value)) <= 15 else None
    if kind == "decimal":
        finite = value.is_finite() and _excel_digits(format(value, "f")) <= 15
        return value if finite else None
    if kind == "date":
        return datetime(value.year, value.month, value.day) if value.year >= 1900 else None
    if kind == "time":
        return value if _excel_time(value) else None
    if kind == "timestamp":
        return value if _excel_time(value) else None
    if kind == "timestamptz":
        wall = value.astimezone(UTC).replace(tzinfo=None)
        return wall if _excel_time(wall) else None
    return None


def xlsx_mismatch(got: Any, value: Any, kind: str) -> str | None:
    """Why an xlsx cell (as openpyxl reads it) does not match the source value."""
    if value is None or got is None:
        return text_mismatch(got, value, kind)
    native = xlsx_native(value, kind)
    if native is None:
        if not isinstance(got, str):
            return f"expected the text of {value!r}, got {got!r}"
        return text_mismatch(got, value, kind)
    # Excel has one number type: 3.0 reads back as 3, 12.50 as 12.5.
    if kind == "float":
        ok = isinstance(got, int | float) and float(got) == native
    elif kind == "decimal":
        ok = isinstance(got, int | float) and Decimal(repr(got)) == native
    else:
        ok = type(got) is type(native) and got == native
    return None if ok else f"expected {native!r}, got {got!r}"


def check_xlsx(path: Path, data: Dataset) -> list[str]:
    """Cells as openpyxl reads them (read_only), OOXML's _xHHHH_ escapes undone as Excel
    undoes them (openpyxl leaves them in inline strings)."""
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["data"]
    rows = [
        [unescape(v) if isinstance(v, str) else v for v in row]
        for row in book["data"].iter_rows(values_only=True)
    ]
    book.close()
    assert rows[0] == data.columns, "header row"
    assert len(rows) == len(data.rows) + 1
    problems: list[str] = []
    for index, (row, record) in enumerate(zip(data.rows, rows[1:], strict=True)):
        for column, got, value, kind in zip(data.columns, record, row, data.kinds, strict=True):
            _collect(problems, index, column, xlsx_mismatch(got, value, kind))
    return problems


CHECKERS: dict[ExportFormat, Checker] = {
    "csv": check_csv,
    "json": check_json,
    "jsonl": check_jsonl,
    "xml": check_xml,
    "parquet": check_parquet,
    "avro": check_avro,
    "xlsx": check_xlsx,
}


def assert_round_trip(fmt: ExportFormat, path: Path, data: Dataset) -> None:
    problems = CHECKERS[fmt](path, data)
    shown = "\n".join(problems[:MAX_REPORTED])
    assert not problems, f"{len(problems)} cells differ from the source:\n{shown}"


# ---------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------


def pg_source(pg: PgSource, reader: str, **extra: Any) -> dict[str, Any]:
    return {"url": pg.url, "query": pg_select(), "reader": reader, **extra}


class TestPostgresRoundTrip:
    """Every PostgreSQL type and awkward value comes back unchanged, from both readers."""

    @pytest.mark.parametrize("reader", PG_READERS)
    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_query_every_cell(
        self, pg_awkward: PgSource, run_export: RunExport, fmt: ExportFormat, reader: str
    ) -> None:
        rows = len(pg_awkward.dataset.rows)
        done = run_export(pg_source(pg_awkward, reader), fmt, rows=rows, name="awkward")
        assert_round_trip(fmt, done.path, pg_awkward.dataset)

    @pytest.mark.parametrize("reader", PG_READERS)
    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_table_every_cell(
        self, pg_awkward: PgSource, run_export: RunExport, fmt: ExportFormat, reader: str
    ) -> None:
        # A fresh table that was only inserted into is scanned in insertion order, which
        # is the order pg_awkward.dataset holds.
        source = {"url": pg_awkward.url, "table": "awkward", "reader": reader}
        done = run_export(source, fmt, rows=len(pg_awkward.dataset.rows))
        assert_round_trip(fmt, done.path, pg_awkward.dataset)

    def test_source_covers_the_awkward_cases(self, pg_awkward: PgSource) -> None:
        """Guards the fixture: a test over it is only as good as the values it holds."""
        data = pg_awkward.dataset
        columns = {name: [row[i] for row in data.rows] for i, name in enumerate(data.columns)}
        assert any(all(value is None for value in row) for row in data.rows)
        assert all(None in values for values in columns.values())
        texts = [v for v in columns["label"] if v is not None]
        for needle in (",", '"', "'", "\n", "\r\n", "\t", "&", "<", ">", "\\", "👩‍💻", "🇯🇵"):
            assert any(needle in text for text in texts), needle
        assert "" in texts and "NULL" in texts and "null" in texts
        assert FORBIDDEN_TEXT in texts
        floats = [v for v in columns["ratio"] if v is not None]
        assert any(math.isnan(v) for v in floats) and math.inf in floats and -math.inf in floats
        assert any(v == 0 and math.copysign(1, v) < 0 for v in floats)
        assert 0.1 + 0.2 in floats and 1e-05 in floats and 1e16 in floats
        assert any(v is not None and v.is_nan() for v in columns["exact"])
        assert Decimal("12345678901234567890.0123456789") in columns["wide"]
        assert b"" in columns["blob"] and b"\x00\xff" in columns["blob"]
        offsets = [v for v in columns["happened_at"] if v is not None]
        assert any(v.microsecond for v in offsets) and any(not v.microsecond for v in offsets)


class TestPostgresReadersAgree:
    """COPY and SQLAlchemy, over a query or a table, write the very same bytes."""

    @pytest.mark.parametrize("fmt", TEXT_FORMATS)
    def test_identical_files(
        self, pg_awkward: PgSource, run_export: RunExport, fmt: ExportFormat
    ) -> None:
        rows = len(pg_awkward.dataset.rows)
        outputs: dict[str, bytes] = {}
        for reader in PG_READERS:
            query = run_export(pg_source(pg_awkward, reader), fmt, rows=rows, name="awkward")
            outputs[f"{reader}/query"] = query.path.read_bytes()
            table_source = {"url": pg_awkward.url, "table": "awkward", "reader": reader}
            table = run_export(table_source, fmt, rows=rows)
            outputs[f"{reader}/table"] = table.path.read_bytes()
        reference = outputs["postgres_copy/query"]
        differing = {
            label: first_difference(reference, data)
            for label, data in outputs.items()
            if data != reference
        }
        assert not differing, f"differs from postgres_copy/query: {differing}"


class TestAvroCodecs:
    """Each Avro codec: the file says which it used, and fastavro reads back every cell."""

    @pytest.mark.parametrize("codec", ["null", "deflate", "zstandard", "snappy"])
    def test_every_codec(self, pg_awkward: PgSource, run_export: RunExport, codec: str) -> None:
        rows = len(pg_awkward.dataset.rows)
        source = pg_source(pg_awkward, "postgres_copy")
        done = run_export(source, "avro", rows=rows, name="a", format_options={"avro_codec": codec})
        with done.path.open("rb") as file:
            assert fastavro.reader(file).codec == codec
        assert_round_trip("avro", done.path, pg_awkward.dataset)


class TestChunking:
    """The chunk size changes memory use, never the output."""

    @pytest.mark.parametrize("reader", PG_READERS)
    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_single_row_chunks(
        self, pg_awkward: PgSource, run_export: RunExport, fmt: ExportFormat, reader: str
    ) -> None:
        # The first row is all NULLs, so a one-row first chunk says nothing about types.
        rows = len(pg_awkward.dataset.rows)
        assert all(value is None for value in pg_awkward.dataset.rows[0])
        done = run_export(pg_source(pg_awkward, reader, chunk_rows=1), fmt, rows=rows, name="a")
        assert_round_trip(fmt, done.path, pg_awkward.dataset)

    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_sqlite_query_starting_with_nulls(
        self, sqlite_measurements: SqliteSource, run_export: RunExport, fmt: ExportFormat
    ) -> None:
        # A SQLite query declares no types; a first chunk of NULLs must not decide them.
        params = {"lo": 9}
        data = SqliteSource(
            sqlite_measurements.url, sqlite_measurements.path, sqlite_measurements.query, params
        ).fetch()
        assert data.rows[0][0] == 10 and all(value is None for value in data.rows[0][1:])
        source = {
            "url": sqlite_measurements.url,
            "query": sqlite_measurements.query,
            "params": params,
            "chunk_rows": 1,
        }
        done = run_export(source, fmt, rows=len(data.rows))
        assert_round_trip(fmt, done.path, data)

    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_demo_orders_in_odd_chunks(
        self, demo_db: Path, run_export: RunExport, fmt: ExportFormat
    ) -> None:
        data = demo_dataset("orders")
        source = {"url": f"sqlite:///{demo_db}", "table": "orders", "chunk_rows": 7}
        done = run_export(source, fmt, rows=len(data.rows))
        assert_round_trip(fmt, done.path, data)
        if fmt == "parquet":
            assert pq.ParquetFile(done.path).metadata.num_row_groups == math.ceil(
                len(data.rows) / 7
            )


class TestSqliteRoundTrip:
    """The committed demo database and a query with bind parameters round-trip."""

    @pytest.mark.parametrize("table", ["orders", "customers"])
    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_demo_table(
        self, demo_db: Path, run_export: RunExport, fmt: ExportFormat, table: str
    ) -> None:
        data = demo_dataset(table)
        done = run_export({"url": f"sqlite:///{demo_db}", "table": table}, fmt, rows=len(data.rows))
        assert done.result.name == table
        assert_round_trip(fmt, done.path, data)

    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_query_with_params(
        self, sqlite_measurements: SqliteSource, run_export: RunExport, fmt: ExportFormat
    ) -> None:
        data = sqlite_measurements.fetch()
        assert len(data.rows) == 21 and all(row[0] > 3 for row in data.rows)
        assert data.kinds == ["int", "str", "float", "int", "bytes", "str"]
        source = {
            "url": sqlite_measurements.url,
            "query": sqlite_measurements.query,
            "params": sqlite_measurements.params,
        }
        done = run_export(source, fmt, rows=len(data.rows))
        assert done.result.name == "export"
        assert_round_trip(fmt, done.path, data)

    @pytest.mark.parametrize("fmt", ALL_FORMATS)
    def test_empty_result(
        self, sqlite_measurements: SqliteSource, run_export: RunExport, fmt: ExportFormat
    ) -> None:
        source = {
            "url": sqlite_measurements.url,
            "query": sqlite_measurements.query,
            "params": {"lo": 10_000},
        }
        done = run_export(source, fmt, rows=0, name="nothing")
        data = Dataset(["id", "label", "reading", "order id", "payload", "1st"], ["str"] * 6, [])
        expected_text = {
            "csv": "id,label,reading,order id,payload,1st\n",
            "json": "[]\n",
            "jsonl": "",
            "xml": XML_DECLARATION.decode() + "<root></root>",
        }
        if fmt in expected_text:
            assert done.path.read_text(encoding="utf-8") == expected_text[fmt]
        assert_round_trip(fmt, done.path, data)


class TestCsvLayout:
    """RFC 4180 details the readers above cannot see."""

    def test_null_empty_and_quoting(self, tmp_path: Path, run_export: RunExport) -> None:
        path = tmp_path / "layout.sqlite"
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (a TEXT, b TEXT, c INTEGER)")
            conn.executemany(
                "INSERT INTO t VALUES (?, ?, ?)",
                [
                    ("", None, 1),
                    ('say "hi"', "x,y", None),
                    ("two\nlines", "cr\r\nlf", 3),
                    (" padded ", "NULL", 4),
                ],
            )
            conn.commit()
        source = {"url": f"sqlite:///{path}", "query": "SELECT a, b, c FROM t ORDER BY rowid"}
        done = run_export(source, "csv", rows=4, name="layout")
        assert done.path.read_bytes() == (
            b'a,b,c\n"",,1\n"say ""hi""","x,y",\n"two\nlines","cr\r\nlf",3\n padded ,NULL,4\n'
        )


class TestParquetTypes:
    """Parquet columns carry the declared SQL types, whichever reader produced them."""

    EXPECTED: dict[str, Callable[[pa.DataType], bool]] = {
        "id": pa.types.is_integer,
        "big": lambda t: t == pa.int64(),
        "small": pa.types.is_integer,
        "uid": lambda t: t == pa.uuid(),  # Parquet's UUID logical type
        "label": pa.types.is_string,
        "happened_at": lambda t: t == pa.timestamp("us", tz="UTC"),
        "local_at": lambda t: t == pa.timestamp("us"),
        "day": lambda t: t == pa.date32(),
        "at_time": lambda t: t == pa.time64("us"),
        "price": lambda t: t == pa.decimal128(12, 2),
        "wide": lambda t: t == pa.decimal128(30, 10),
        "exact": pa.types.is_string,  # no fixed scale: exact text
        "flag": pa.types.is_boolean,
        "ratio": lambda t: t == pa.float64(),
        "ratio4": pa.types.is_floating,
        "doc": lambda t: t == pa.json_(),  # Parquet's JSON logical type
        "raw_doc": lambda t: t == pa.json_(),
        "blob": pa.types.is_binary,
    }

    @pytest.mark.parametrize("source_kind", ["query", "table"])
    @pytest.mark.parametrize("reader", PG_READERS)
    def test_postgres_types(
        self, pg_awkward: PgSource, run_export: RunExport, reader: str, source_kind: str
    ) -> None:
        source: dict[str, Any] = {"url": pg_awkward.url, "reader": reader}
        if source_kind == "query":
            source["query"] = pg_select()
        else:
            source["table"] = "awkward"
        done = run_export(source, "parquet", rows=len(pg_awkward.dataset.rows), name="types")
        schema = pq.read_schema(done.path)
        wrong = {
            name: str(schema.field(name).type)
            for name, is_expected in self.EXPECTED.items()
            if not is_expected(schema.field(name).type)
        }
        assert not wrong, f"unexpected Parquet types: {wrong}"

    def test_demo_types(self, demo_db: Path, run_export: RunExport) -> None:
        done = run_export({"url": f"sqlite:///{demo_db}", "table": "orders"}, "parquet", rows=1000)
        schema = pq.read_schema(done.path)
        assert schema.field("amount").type == pa.decimal128(12, 2)
        assert schema.field("big_amount").type == pa.decimal128(30, 10)
        assert schema.field("ordered_at").type == pa.timestamp("us")
        assert schema.field("paid").type == pa.bool_()
        assert schema.field("receipt").type == pa.binary()
        assert schema.field("discount").type == pa.float64()


# ---------------------------------------------------------------------------------------
# JSON columns: the document inside a jsonb/json value survives exactly.
# ---------------------------------------------------------------------------------------

JSON_CASES: dict[str, list[tuple[str | None, str | None]]] = {
    # (jsonb text, json text) per row, in id order
    "precise numbers": [
        (
            '{"big": 12345678901234567890.123456789, "cents": 1.10, "exp": 1e2, "tiny": 1e-30}',
            '{"big": 12345678901234567890.123456789, "cents": 1.10}',
        ),
        ("[0.1, 2.50, -0.0, 100000000000000000000000]", "[0.1, 2.50]"),
    ],
    "scalar first": [
        ('"just a string"', '"text"'),
        ('{"then": "an object"}', '{"then": "an object"}'),
        ("42", "[1, 2]"),
        ("true", "false"),
    ],
    "json null is not SQL NULL": [
        ('{"a": null}', '{"a": null}'),
        ("null", "null"),
        (None, None),
    ],
    "json text as written": [
        ('{"b": 1, "a": [1, 2]}', '{"b":1,  "a" : [1,2]}'),
        ('{"x": "y"}', '  {"x": "y"}  '),
    ],
}


@pytest.fixture
def pg_documents(pg_url: str, request: pytest.FixtureRequest) -> Dataset:
    rows = JSON_CASES[request.param]
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE documents (id integer, doc jsonb, raw json)")
        for index, (doc, raw) in enumerate(rows, start=1):
            conn.execute(
                "INSERT INTO documents VALUES (%s, %s::jsonb, %s::json)", [index, doc, raw]
            )
        data = conn.execute("SELECT id, doc::text, raw::text FROM documents ORDER BY id").fetchall()
    return Dataset(["id", "doc", "raw"], ["int", "json", "json"], data)


class TestJsonColumns:
    """jsonb and json values keep every number, scalar and null, from both readers."""

    @pytest.mark.parametrize("pg_documents", list(JSON_CASES), indirect=True)
    @pytest.mark.parametrize("reader", PG_READERS)
    @pytest.mark.parametrize("fmt", ["csv", "jsonl", "xml"])
    def test_documents(
        self,
        pg_url: str,
        pg_documents: Dataset,
        run_export: RunExport,
        fmt: ExportFormat,
        reader: str,
    ) -> None:
        source = {
            "url": pg_url,
            "query": "SELECT id, doc, raw FROM documents ORDER BY id",
            "reader": reader,
        }
        done = run_export(source, fmt, rows=len(pg_documents.rows), name="documents")
        assert_round_trip(fmt, done.path, pg_documents)

    @pytest.mark.parametrize("pg_documents", list(JSON_CASES), indirect=True)
    def test_readers_agree(self, pg_url: str, pg_documents: Dataset, run_export: RunExport) -> None:
        outputs = []
        for reader in PG_READERS:
            source = {
                "url": pg_url,
                "query": "SELECT id, doc, raw FROM documents ORDER BY id",
                "reader": reader,
            }
            done = run_export(source, "csv", rows=len(pg_documents.rows), name="documents")
            outputs.append(done.path.read_bytes())
        assert outputs[0] == outputs[1], first_difference(*outputs)
