"""Values that came back wrong or unclear through independent readers (issue 15): a `json`
column whose text holds line breaks, carriage returns in XML, small decimals, and the empty
string beside NULL in CSV. Read back with DuckDB, lxml, Python's csv and json, from both
PostgreSQL readers (COPY, with the server rendering CSV and JSON, and SQLAlchemy)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from lxml import etree

from flows.export import export
from flows.formats.registry import ExportFormat
from tests.flows.conftest import url_for_psycopg

pytestmark = pytest.mark.usefixtures("prefect_api")

DOC = '{\n  "a": 1.10,\r\n  "b": "x\\ny"\n}'
ROWS: list[tuple[Any, ...]] = [
    (1, "crlf\r\nend", DOC, Decimal("0.0000000001")),
    (2, "a\rb", "null", Decimal("0.0000000000")),
    (3, "", None, Decimal("12345678901234567890.1234567890")),
    (4, None, "[1,\n2]", Decimal("-1.5000000000")),
]
PLAIN = ["0.0000000001", "0.0000000000", "12345678901234567890.1234567890", "-1.5000000000"]


@pytest.fixture
def adversarial(pg_url: str) -> str:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE adversarial (id int, note text, doc json, amount numeric(38,10))"
        )
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO adversarial VALUES (%s, %s, %s, %s)", ROWS)
    return pg_url


def run(url: str, reader: str, fmt: ExportFormat, folder: Path) -> Path:
    result = export(
        source={"url": url, "table": "adversarial", "reader": reader},
        destination={"url": str(folder / "{export}.{ext}")},
        format=fmt,
    )
    return Path(result.files[0])


READERS = ["postgres_copy", "sqlalchemy"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_column_with_line_breaks_stays_one_record_per_line(
    adversarial: str, reader: str, fmt: ExportFormat, tmp_path: Path
) -> None:
    path = run(adversarial, reader, fmt, tmp_path)
    text = path.read_text()
    lines = text.splitlines()
    records = (
        [json.loads(line, parse_float=Decimal) for line in lines]
        if fmt == "jsonl"
        else json.loads(text, parse_float=Decimal)
    )
    if fmt == "json":
        assert len(lines) == len(ROWS) + 2, "one object per line between [ and ]"
    assert [r["doc"] for r in records] == [
        {"a": Decimal("1.10"), "b": "x\ny"},  # the number's text kept: 1.10
        None,  # a JSON null and SQL NULL both read back as null (README)
        None,
        [1, 2],
    ]
    assert [str(r["amount"]) for r in records] == [str(Decimal(p)) for p in PLAIN]
    assert '"amount":0.0000000001' in text and "E-" not in text
    layout = "newline_delimited" if fmt == "jsonl" else "array"
    # DuckDB reads JSON numbers as doubles: exact decimals need a reader that keeps their
    # digits (json with parse_float=Decimal, above).
    query = f"SELECT id, note, amount FROM read_json('{path}', format = '{layout}')"
    got = duckdb.sql(query + " ORDER BY id").fetchall()
    assert got == [(row[0], row[1], float(row[3])) for row in ROWS]


@pytest.mark.parametrize("reader", READERS)
def test_xml_keeps_carriage_returns_and_plain_decimals(
    adversarial: str, reader: str, tmp_path: Path
) -> None:
    root = etree.parse(str(run(adversarial, reader, "xml", tmp_path))).getroot()
    notes = [item.findtext("note") for item in root]
    assert notes[:3] == ["crlf\r\nend", "a\rb", ""]
    assert root[3].find("note").get("type") == "null"
    assert [item.findtext("amount") for item in root] == PLAIN


@pytest.mark.parametrize("reader", READERS)
def test_csv_empty_string_and_null_with_the_readers_that_keep_them_apart(
    adversarial: str, reader: str, tmp_path: Path
) -> None:
    path = run(adversarial, reader, "csv", tmp_path)
    text = path.read_bytes().decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [row[1] for row in rows] == ["crlf\r\nend", "a\rb", "", ""]
    assert [row[3] for row in rows] == PLAIN
    assert '\n3,"",' in text and "\n4,," in text  # the empty string quoted, NULL empty
    kept = duckdb.sql(
        f"SELECT note FROM read_csv('{path}', allow_quoted_nulls = false) ORDER BY id"
    ).fetchall()
    assert kept == [("crlf\r\nend",), ("a\rb",), ("",), (None,)]
    default = duckdb.sql(f"SELECT note FROM read_csv('{path}') ORDER BY id").fetchall()
    assert default[2] == (None,), "DuckDB's default reads a quoted empty string as NULL (README)"


@pytest.mark.parametrize("reader", READERS)
def test_parquet_decimals_read_back_by_duckdb(
    adversarial: str, reader: str, tmp_path: Path
) -> None:
    path = run(adversarial, reader, "parquet", tmp_path)
    got = duckdb.sql(f"SELECT amount, note FROM read_parquet('{path}') ORDER BY id").fetchall()
    assert got == [(row[3], row[1]) for row in ROWS]
    types = duckdb.sql(f"SELECT typeof(doc), typeof(amount) FROM read_parquet('{path}') LIMIT 1")
    assert types.fetchall() == [("JSON", "DECIMAL(38,10)")]  # Parquet's JSON logical type


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_decimals_as_strings_reach_duckdb_exactly(
    adversarial: str, reader: str, fmt: ExportFormat, tmp_path: Path
) -> None:
    """A number beyond a double's precision is rounded by DuckDB (and most JSON readers);
    `format_options.decimals: string` keeps every digit."""
    result = export(
        source={"url": adversarial, "table": "adversarial", "reader": reader},
        destination={"url": str(tmp_path / "{export}.{ext}")},
        format=fmt,
        format_options={"decimals": "string"},
    )
    path = result.files[0]
    layout = "newline_delimited" if fmt == "jsonl" else "array"
    query = f"SELECT amount FROM read_json('{path}', format = '{layout}') ORDER BY id"
    assert duckdb.sql(query).fetchall() == [(text,) for text in PLAIN]
    assert '"amount":"12345678901234567890.1234567890"' in Path(path).read_text()
