"""MySQL / MariaDB as a source, against a real MariaDB server: the values its column types hold
come back exactly, the same from a table as from a query over it, and a query splits by a
column. Files are read back with Python's csv and json, pyarrow, fastavro and openpyxl."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
import pytest

from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.export import export
from tests.flows.sources.split_reads import by_id, check_manifest, read_nullable

pytestmark = pytest.mark.usefixtures("prefect_api")

TABLE = """
CREATE TABLE awkward (
    id BIGINT UNSIGNED PRIMARY KEY,
    small TINYINT UNSIGNED,
    span TIME(6),
    amount DECIMAL(38, 10),
    doc JSON,
    raw VARBINARY(16),
    stamped TIMESTAMP(6) NULL,
    happened DATETIME(6),
    ratio DOUBLE,
    made YEAR,
    flag BIT(1),
    note TEXT
)
"""
ROWS: list[tuple[Any, ...]] = [
    (
        18446744073709551615, 255, "838:59:59", Decimal("1234567890123456789012345678.0123456789"),
        '{"a": [1, 2.5, "x"], "b": {"c": null}}', b"\x00\xff\x10", "2026-03-01 12:00:00.5",
        "2026-03-01 12:00:00.25", 0.1, 2026, b"\x01", "commas, \"quotes\"\nand lines",
    ),
    (
        1, 0, "-838:59:59", Decimal("-0.0000000001"), "[1]", b"", "1970-01-01 00:00:01",
        "1000-01-01 00:00:00", -1e300, 1901, b"\x00", "hé 日本",
    ),
    (2, None, "-00:00:01.5", None, None, None, None, None, None, None, None, None),
]  # fmt: skip
COLUMNS = ["id", "small", "span", "amount", "doc", "raw", "stamped", "happened", "ratio", "made",
           "flag", "note"]  # fmt: skip


@pytest.fixture
def awkward(mariadb_url: str) -> str:
    with pymysql.connect(**_connect_args(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
        cursor.execute(TABLE)
        cursor.executemany(f"INSERT INTO awkward VALUES ({', '.join(['%s'] * 12)})", ROWS)
        conn.commit()
    return mariadb_url


def _connect_args(url: str) -> dict[str, Any]:
    rest = url.split("@", 1)[1]
    host_port, _, database = rest.partition("/")
    host, _, port = host_port.partition(":")
    return {
        "host": host,
        "port": int(port),
        "user": "root",
        "database": database.partition("?")[0],
        "charset": "utf8mb4",
    }


def run(url: str, source: dict[str, Any], fmt: ExportFormat, folder: Path) -> Path:
    result = export(
        source={"url": url, **source},
        destination={"url": str(folder / "{export}.{ext}")},
        format=fmt,
        name="awkward",
    )
    [path] = result.files
    assert result.rows == len(ROWS)
    return Path(path)


SOURCES = {
    "table": {"table": "awkward"},
    "query": {"query": "SELECT * FROM awkward ORDER BY id DESC"},
}
EXPECTED_CSV = {
    18446744073709551615: [
        "18446744073709551615", "255", "838:59:59.000000",
        "1234567890123456789012345678.0123456789", '{"a": [1, 2.5, "x"], "b": {"c": null}}',
        "AP8Q", "2026-03-01T12:00:00.500000+00:00", "2026-03-01T12:00:00.250000", "0.1", "2026",
        "1", 'commas, "quotes"\nand lines',
    ],
    1: [
        "1", "0", "-838:59:59.000000", "-0.0000000001", "[1]", '""', "1970-01-01T00:00:01+00:00",
        "1000-01-01T00:00:00", "-1e+300", "1901", "0", "hé 日本",
    ],
    2: ["2", "", "-00:00:01.500000", "", "", "", "", "", "", "", "", ""],
}  # fmt: skip


@pytest.mark.parametrize("kind", list(SOURCES))
def test_csv_values_from_a_table_and_a_query(awkward: str, tmp_path: Path, kind: str) -> None:
    text = run(awkward, SOURCES[kind], "csv", tmp_path).read_text(encoding="utf-8")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    assert header == COLUMNS
    got = {int(row[0]): row for row in rows}
    for key, expected in EXPECTED_CSV.items():
        assert got[key] == ["" if cell == '""' else cell for cell in expected], key
    # Empty bytes are an empty string, quoted; NULL is an empty field, unquoted.
    assert ',"",1970-01-01T00:00:01+00:00,' in text
    assert text.splitlines()[-1].startswith("2,,-00:00:01.500000,,") or "\n2,,-00:00:01" in text


def test_json_lines_keep_exact_numbers_and_nested_json(awkward: str, tmp_path: Path) -> None:
    path = run(awkward, SOURCES["query"], "jsonl", tmp_path)
    rows = {
        row["id"]: row
        for row in (json.loads(line, parse_float=Decimal) for line in path.read_text().splitlines())
    }
    top = rows[18446744073709551615]
    assert top["doc"] == {"a": [1, Decimal("2.5"), "x"], "b": {"c": None}}
    assert top["amount"] == Decimal("1234567890123456789012345678.0123456789")
    assert top["span"] == "838:59:59.000000" and rows[1]["span"] == "-838:59:59.000000"
    assert top["flag"] == 1 and top["made"] == 2026 and top["small"] == 255
    assert top["stamped"] == "2026-03-01T12:00:00.500000+00:00"
    assert rows[2]["span"] == "-00:00:01.500000" and rows[2]["doc"] is None


@pytest.mark.parametrize("kind", list(SOURCES))
def test_avro_keeps_every_value_from_a_table_and_a_query(
    awkward: str, tmp_path: Path, kind: str
) -> None:
    with run(awkward, SOURCES[kind], "avro", tmp_path).open("rb") as file:
        reader = fastavro.reader(file)
        records = {int(record["id"]): record for record in reader}
        types = {field["name"]: field["type"][1] for field in reader.writer_schema["fields"]}
    assert types["id"] == {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0}
    assert types["stamped"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["happened"] == {"type": "long", "logicalType": "local-timestamp-micros"}
    top, first, nulls = records[18446744073709551615], records[1], records[2]
    assert top["id"] == Decimal(18446744073709551615)
    assert top["amount"].as_tuple() == ROWS[0][3].as_tuple()
    assert first["amount"].as_tuple() == Decimal("-0.0000000001").as_tuple()
    assert (top["small"], top["made"], top["flag"], top["ratio"]) == (255, 2026, 1, 0.1)
    assert top["span"] == "838:59:59.000000" and nulls["span"] == "-00:00:01.500000"
    assert top["doc"] == ROWS[0][4] and (top["raw"], first["raw"]) == (b"\x00\xff\x10", b"")
    assert top["stamped"] == datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert first["stamped"] == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert top["happened"] == datetime(2026, 3, 1, 12, 0, 0, 250000)
    assert first["happened"] == datetime(1000, 1, 1) and first["ratio"] == -1e300
    assert (top["note"], first["note"]) == (ROWS[0][11], "hé 日本")
    assert [name for name, value in nulls.items() if value is not None] == ["id", "span"]


@pytest.mark.parametrize("kind", list(SOURCES))
def test_xlsx_keeps_every_value_from_a_table_and_a_query(
    awkward: str, tmp_path: Path, kind: str
) -> None:
    """Native cells where Excel holds the value exactly; the text CSV writes where it would
    not (a 20-digit id, 38-digit decimals, a duration past a day, year 1000)."""
    book = openpyxl.load_workbook(run(awkward, SOURCES[kind], "xlsx", tmp_path), read_only=True)
    header, *rows = book["data"].iter_rows(values_only=True)
    book.close()
    assert list(header) == COLUMNS
    got = {str(row[0]): dict(zip(COLUMNS, row, strict=True)) for row in rows}
    top, first, nulls = got["18446744073709551615"], got["1"], got["2"]
    assert top["amount"] == "1234567890123456789012345678.0123456789"
    assert first["amount"] == -1e-10 and first["id"] == 1
    assert (top["small"], top["made"], top["flag"], top["ratio"]) == (255, 2026, 1, 0.1)
    assert top["span"] == "838:59:59.000000" and nulls["span"] == "-00:00:01.500000"
    assert top["doc"] == ROWS[0][4] and (top["raw"], first["raw"]) == ("AP8Q", "")
    # TIMESTAMP as its UTC wall-clock time, DATETIME as it is; both Excel dates.
    assert top["stamped"] == datetime(2026, 3, 1, 12, 0, 0, 500000)
    assert first["stamped"] == datetime(1970, 1, 1, 0, 0, 1)
    assert top["happened"] == datetime(2026, 3, 1, 12, 0, 0, 250000)
    assert first["happened"] == "1000-01-01T00:00:00" and first["ratio"] == -1e300
    assert (top["note"], first["note"]) == (ROWS[0][11], "hé 日本")
    assert [name for name, value in nulls.items() if value is not None] == ["id", "span"]


def test_parquet_types_are_the_same_from_a_table_and_a_query(awkward: str, tmp_path: Path) -> None:
    tables = {
        kind: pq.read_table(run(awkward, source, "parquet", tmp_path / kind))
        for kind, source in SOURCES.items()
    }
    for table in tables.values():
        schema = table.schema
        assert schema.field("id").type == pa.uint64()
        assert schema.field("amount").type == pa.decimal128(38, 10)
        assert schema.field("span").type == pa.string()
        assert schema.field("stamped").type == pa.timestamp("us", tz="UTC")
        assert schema.field("doc").type == pa.json_()  # Parquet's JSON logical type
        values = {row["id"]: row for row in table.to_pylist()}
        assert values[18446744073709551615]["amount"] == Decimal(
            "1234567890123456789012345678.0123456789"
        )
        assert values[1]["span"] == "-838:59:59.000000"
    assert tables["table"].schema == tables["query"].schema


ORDERS = [(None if i % 100 == 0 else i, f"order {i}") for i in range(1, 5001)]


@pytest.fixture
def orders(mariadb_url: str) -> str:
    """5,000 orders (id, v), every 100th id NULL."""
    with pymysql.connect(**_connect_args(mariadb_url)) as conn, conn.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS orders")
        cursor.execute("CREATE TABLE orders (id INT, v VARCHAR(20))")
        cursor.executemany("INSERT INTO orders VALUES (%s, %s)", ORDERS)
        conn.commit()
    return mariadb_url


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_a_query_split_by_a_column(orders: str, tmp_path: Path, fmt: ExportFormat) -> None:
    result = export(
        source={
            "url": orders,
            "query": "SELECT id, v FROM orders WHERE v LIKE :pattern",
            "params": {"pattern": "order %"},
            "partition_by": "id",
            "partitions": 3,
        },
        destination={"url": str(tmp_path / "{export}.{ext}"), "manifest": True},
        format=fmt,
        name="orders",
    )
    parts = [read_nullable(Path(path), fmt) for path in result.files]
    assert len(parts) == 4 and all(row_id is None for row_id, _ in parts[-1]), "NULLs apart"
    ids = [row_id for part in parts[:3] for row_id, _ in part]
    assert ids == sorted(ids) == [i for i in range(1, 5001) if i % 100], "ranges in order"
    assert sorted((row for part in parts for row in part), key=by_id) == sorted(ORDERS, key=by_id)
    manifest = check_manifest(result, fmt, parts)
    assert manifest["snapshot"] is None
    assert [column["type"] for column in manifest["columns"]] == ["int", "varchar"]
