"""Values that came back wrong or unclear through independent readers (issue 15), all in one
adversarial PostgreSQL table: a `json` column whose text holds line breaks, carriage returns,
small and huge decimals, the empty string beside NULL, UUID and JSONB columns, arrays and an
interval. Every format is read back with DuckDB and with lxml, Python's csv and json or
pyarrow, from both PostgreSQL readers (COPY, with the server rendering CSV and JSON, and
SQLAlchemy)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from flows.core.errors import FormatError
from flows.core.formats import ExportFormat
from flows.export import export
from tests.flows.conftest import url_for_psycopg

pytestmark = pytest.mark.usefixtures("prefect_api")

DOC = '{\n  "a": 1.10,\r\n  "b": "x\\ny"\n}'
UIDS = [
    uuid.UUID(int=0),
    uuid.UUID("0b4e7f5c-9a3d-4f7e-8c1a-2d3e4f5a6b7c"),
    None,
    uuid.UUID(int=2**128 - 1),
]
UTC = dt.UTC
ROWS: list[tuple[Any, ...]] = [
    (
        1,
        "crlf\r\nend",
        DOC,
        Decimal("0.0000000001"),
        UIDS[0],
        '{"k": [1, "two"]}',
        ["a b", "", None, "x,y"],
        [1, None, 3],
        [dt.datetime(2024, 1, 1, 10, tzinfo=UTC)],
        dt.timedelta(days=1, hours=2),
    ),
    (
        2,
        "a\rb",
        "null",
        Decimal("0.0000000000"),
        UIDS[1],
        "null",
        [],
        [],
        [],
        dt.timedelta(microseconds=-1),
    ),
    (
        3,
        "",
        None,
        Decimal("12345678901234567890.1234567890"),
        UIDS[2],
        None,
        None,
        None,
        None,
        None,
    ),
    (
        4,
        None,
        "[1,\n2]",
        Decimal("-1.5000000000"),
        UIDS[3],
        '{"é": "\\u00e9\\n"}',
        ['quote"s', "back\\slash", "NULL", "{braces}"],
        [-2147483648, 2147483647],
        [dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None],
        dt.timedelta(0),
    ),
]
PLAIN = ["0.0000000001", "0.0000000000", "12345678901234567890.1234567890", "-1.5000000000"]
# PostgreSQL's own text of the arrays and intervals, which CSV and XML write as they are.
TAGS_TEXT = ['{"a b","",NULL,"x,y"}', "{}", None, '{"quote\\"s","back\\\\slash","NULL","{braces}"}']
NUMS_TEXT = ["{1,NULL,3}", "{}", None, "{-2147483648,2147483647}"]
MOMENTS_TEXT = ['{"2024-01-01 10:00:00+00"}', "{}", None, '{"1999-12-31 23:59:59.999999+00",NULL}']
SPAN_TEXT = ["1 day 02:00:00", "-1 days +23:59:59.999999", None, "00:00:00"]
COLUMNS = "id, note, doc, amount, uid, body, tags, nums, moments, span"


@pytest.fixture
def adversarial(pg_url: str) -> str:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE adversarial (id int, note text, doc json, amount numeric(38,10), "
            "uid uuid, body jsonb, tags text[], nums int[], moments timestamptz[], "
            "span interval)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO adversarial ({COLUMNS}) VALUES ({', '.join(['%s'] * 10)})", ROWS
            )
        texts = conn.execute(
            "SELECT tags::text, nums::text, moments::text, span::text FROM adversarial ORDER BY id"
        ).fetchall()
    assert [list(row) for row in zip(*texts, strict=True)] == [
        TAGS_TEXT,
        NUMS_TEXT,
        MOMENTS_TEXT,
        SPAN_TEXT,
    ], "the fixture's own idea of PostgreSQL's text"
    return pg_url


def run(url: str, reader: str, fmt: ExportFormat, folder: Path, **options: Any) -> Path:
    result = export(
        source={"url": url, "table": "adversarial", "reader": reader},
        destination={"url": str(folder / "{export}.{ext}")},
        format=fmt,
        format_options=options or None,
    )
    return Path(result.files[0])


def iso(moment: dt.datetime | None) -> str | None:
    return (
        None if moment is None else moment.isoformat(timespec="microseconds").replace(".000000", "")
    )


READERS = ["postgres_copy", "sqlalchemy"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_reads_back_every_value(
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
    assert [list(r) for r in records] == [COLUMNS.split(", ")] * len(ROWS)
    assert [r["note"] for r in records] == [row[1] for row in ROWS]
    assert [r["doc"] for r in records] == [
        {"a": Decimal("1.10"), "b": "x\ny"},  # the number's text kept: 1.10
        None,  # a JSON null and SQL NULL both read back as null (README)
        None,
        [1, 2],
    ]
    assert [str(r["amount"]) for r in records] == [str(Decimal(p)) for p in PLAIN]
    assert '"amount":0.0000000001' in text and "E-" not in text
    assert [r["uid"] for r in records] == [None if u is None else str(u) for u in UIDS]
    assert [r["body"] for r in records] == [{"k": [1, "two"]}, None, None, {"é": "é\n"}]
    assert [r["tags"] for r in records] == [row[6] for row in ROWS]  # JSON arrays
    assert [r["nums"] for r in records] == [row[7] for row in ROWS]
    assert [r["moments"] for r in records] == [
        None if row[8] is None else [iso(m) for m in row[8]] for row in ROWS
    ]
    assert [r["span"] for r in records] == SPAN_TEXT  # PostgreSQL's text (README)
    layout = "newline_delimited" if fmt == "jsonl" else "array"
    # DuckDB reads JSON numbers as doubles: exact decimals need a reader that keeps their
    # digits (json with parse_float=Decimal, above).
    query = (
        f"SELECT id, note, amount, uid, tags, nums FROM read_json('{path}', format = '{layout}')"
    )
    got = duckdb.sql(query + " ORDER BY id").fetchall()
    assert got == [(row[0], row[1], float(row[3]), row[4], row[6], row[7]) for row in ROWS]


@pytest.mark.parametrize("reader", READERS)
def test_xml_reads_back_every_value(adversarial: str, reader: str, tmp_path: Path) -> None:
    root = etree.parse(str(run(adversarial, reader, "xml", tmp_path))).getroot()

    def texts(name: str) -> list[str | None]:
        elements = [item.find(name) for item in root]
        return [None if e.get("type") == "null" else (e.text or "") for e in elements]

    assert texts("note") == ["crlf\r\nend", "a\rb", "", None]  # CR kept: &#13;
    assert texts("doc") == [DOC, "null", None, "[1,\n2]"]
    assert texts("amount") == PLAIN
    assert texts("uid") == [None if u is None else str(u) for u in UIDS]
    assert [json.loads(t) if t else None for t in texts("body")] == [
        {"k": [1, "two"]},
        None,
        None,
        {"é": "é\n"},
    ]
    assert texts("tags") == TAGS_TEXT
    assert texts("nums") == NUMS_TEXT
    assert texts("moments") == MOMENTS_TEXT
    assert texts("span") == SPAN_TEXT


@pytest.mark.parametrize("reader", READERS)
def test_csv_reads_back_every_value(adversarial: str, reader: str, tmp_path: Path) -> None:
    path = run(adversarial, reader, "csv", tmp_path)
    text = path.read_bytes().decode()
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    assert header == COLUMNS.split(", ")
    columns = dict(zip(header, zip(*rows, strict=True), strict=True))
    assert columns["note"] == ("crlf\r\nend", "a\rb", "", "")
    assert columns["doc"] == (DOC, "null", "", "[1,\n2]")
    assert list(columns["amount"]) == PLAIN
    assert list(columns["uid"]) == ["" if u is None else str(u) for u in UIDS]
    assert list(columns["tags"]) == [t or "" for t in TAGS_TEXT]
    assert list(columns["nums"]) == [t or "" for t in NUMS_TEXT]
    assert list(columns["moments"]) == [t or "" for t in MOMENTS_TEXT]
    assert list(columns["span"]) == [t or "" for t in SPAN_TEXT]
    assert '\n3,"",' in text and "\n4,," in text  # the empty string quoted, NULL empty
    kept = duckdb.sql(
        f"SELECT note FROM read_csv('{path}', allow_quoted_nulls = false) ORDER BY id"
    ).fetchall()
    assert kept == [("crlf\r\nend",), ("a\rb",), ("",), (None,)]
    default = duckdb.sql(f"SELECT note FROM read_csv('{path}') ORDER BY id").fetchall()
    assert default[2] == (None,), "DuckDB's default reads a quoted empty string as NULL (README)"


@pytest.mark.parametrize("reader", READERS)
def test_parquet_reads_back_every_value_with_its_logical_type(
    adversarial: str, reader: str, tmp_path: Path
) -> None:
    path = run(adversarial, reader, "parquet", tmp_path)
    table = pq.read_table(path)
    assert table.schema.field("uid").type == pa.uuid()
    assert table.schema.field("body").type == pa.json_()
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("nums").type == pa.list_(pa.int32())
    assert table.schema.field("moments").type == pa.list_(pa.timestamp("us", tz="UTC"))
    columns = table.to_pydict()
    assert columns["note"] == [row[1] for row in ROWS]
    assert columns["amount"] == [row[3] for row in ROWS]
    assert columns["uid"] == UIDS  # 16 bytes each, read back as UUIDs
    assert columns["tags"] == [row[6] for row in ROWS]
    assert columns["nums"] == [row[7] for row in ROWS]
    assert columns["moments"] == [row[8] for row in ROWS]
    assert columns["span"] == SPAN_TEXT
    got = duckdb.sql(
        f"SELECT amount, note, uid, tags, nums, moments FROM read_parquet('{path}') ORDER BY id"
    ).fetchall()
    assert got == [(row[3], row[1], row[4], row[6], row[7], row[8]) for row in ROWS]
    types = duckdb.sql(
        "SELECT typeof(doc), typeof(amount), typeof(uid), typeof(body), typeof(tags), "
        f"typeof(nums), typeof(moments) FROM read_parquet('{path}') LIMIT 1"
    )
    assert types.fetchall() == [
        (
            "JSON",
            "DECIMAL(38,10)",
            "UUID",
            "JSON",
            "VARCHAR[]",
            "INTEGER[]",
            "TIMESTAMP WITH TIME ZONE[]",
        )
    ]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_decimals_as_strings_reach_duckdb_exactly(
    adversarial: str, reader: str, fmt: ExportFormat, tmp_path: Path
) -> None:
    """A number beyond a double's precision is rounded by DuckDB (and most JSON readers);
    `format_options.decimals: string` keeps every digit."""
    path = run(adversarial, reader, fmt, tmp_path, decimals="string")
    layout = "newline_delimited" if fmt == "jsonl" else "array"
    query = f"SELECT amount FROM read_json('{path}', format = '{layout}') ORDER BY id"
    assert duckdb.sql(query).fetchall() == [(text,) for text in PLAIN]
    assert '"amount":"12345678901234567890.1234567890"' in path.read_text()


@pytest.fixture
def grids(pg_url: str) -> str:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE grids (id int, grid numeric[], boxes box[])")
        conn.execute(
            "INSERT INTO grids VALUES (1, '{{1.50,NULL},{0.0000000001,-2}}', "
            "'{\"(1,1),(0,0)\";\"(3,3),(2,2)\"}'), (2, '[0:1]={7,8}', NULL)"
        )
    return pg_url


@pytest.mark.parametrize("reader", READERS)
def test_multidimensional_arrays_nest_in_json_and_are_refused_by_parquet(
    grids: str, reader: str, tmp_path: Path
) -> None:
    def export_grids(fmt: ExportFormat) -> Path:
        result = export(
            source={"url": grids, "table": "grids", "reader": reader},
            destination={"url": str(tmp_path / fmt / "{export}.{ext}")},
            format=fmt,
        )
        return Path(result.files[0])

    lines = export_grids("jsonl").read_text().splitlines()
    assert lines == [
        '{"id":1,"grid":[[1.50,null],[0.0000000001,-2]],"boxes":["(1,1),(0,0)","(3,3),(2,2)"]}',
        '{"id":2,"grid":[7,8],"boxes":null}',  # lower bounds are not kept
    ]
    with pytest.raises(FormatError, match=r"column `grid` holds a multi-dimensional array"):
        export_grids("parquet")
    assert not list((tmp_path / "parquet").glob("*")), "nothing published"
