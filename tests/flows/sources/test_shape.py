"""`source.columns` and `source.filter`: chosen, renamed and reordered columns and filtered
rows, pushed into the SQL of every reader (SQLite, PostgreSQL's COPY and its server rendering,
SQLAlchemy on PostgreSQL) and combined with a query's own WHERE and its window.

The expected rows are computed in Python from the rows the test inserted, never by our code;
files are read back with csv, json, lxml, pyarrow, fastavro and openpyxl.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import openpyxl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree
from pydantic import ValidationError

from flows.core.columns import array_field
from flows.core.config import ColumnSpec, FilterCondition, SourceConfig
from flows.core.errors import ConfigurationError
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.export import export
from flows.parameters import validate_export_parameters
from flows.sources.shape import plan_shape
from tests.flows.conftest import url_for_psycopg

INJECTION = "x' OR '1'='1"


def _row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": INJECTION if i in (30, 31) else f"item {i}",
        "amount": None if i % 17 == 0 else Decimal(f"{(i * 37) % 1000}.{i % 9 + 1}{i % 7 + 1}"),
        "qty": i % 6,
        "flag": i % 3 != 0,
        "day": dt.date(2024, 1, 1) + dt.timedelta(days=i % 30),
        "at": dt.datetime(2024, 1, 1) + dt.timedelta(hours=i, microseconds=i),
        "note": None if i % 4 == 0 else f"note {i}",
    }


ROWS = [_row(i) for i in range(1, 201)]

COLUMNS = [{"name": "amount", "as": "price"}, "id", {"name": "name", "as": "label"}, "day"]
OUTPUT = ["price", "id", "label", "day"]
# Every operator at once; the rows that meet them all are computed by `_meets` below.
FILTER: list[dict[str, Any]] = [
    {"column": "flag", "op": "=", "value": True},
    {"column": "name", "op": "!=", "value": "item 7"},
    {"column": "id", "op": "<", "value": 180},
    {"column": "amount", "op": "<=", "value": 900},
    {"column": "id", "op": ">", "value": 5},
    {"column": "qty", "op": ">=", "value": 2},
    {"column": "qty", "op": "in", "value": [2, 3, 5]},
    {"column": "id", "op": "not_in", "value": [20, 22, 23]},
    {"column": "day", "op": "between", "value": ["2024-01-03", "2024-01-25"]},
    {"column": "note", "op": "is_null"},
    {"column": "amount", "op": "not_null"},
    {"column": "name", "op": "like", "value": "item %"},
]


def _meets(row: dict[str, Any]) -> bool:
    return (
        row["flag"] is True
        and row["name"] != "item 7"
        and row["id"] < 180
        and row["amount"] is not None
        and row["amount"] <= 900
        and row["id"] > 5
        and row["qty"] >= 2
        and row["qty"] in (2, 3, 5)
        and row["id"] not in (20, 22, 23)
        and dt.date(2024, 1, 3) <= row["day"] <= dt.date(2024, 1, 25)
        and row["note"] is None
        and row["name"].startswith("item ")
    )


def _expected(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(r["amount"]), str(r["id"]), r["name"], r["day"].isoformat()] for r in rows]


# -- the databases ------------------------------------------------------------------------------

SQLITE_DDL = """CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, amount NUMERIC(12, 2),
    qty INTEGER, flag BOOLEAN, day DATE, at DATETIME, note TEXT)"""
PG_DDL = """CREATE TABLE items (id bigint PRIMARY KEY, name text, amount numeric(12, 2),
    qty integer, flag boolean, day date, at timestamp, note text)"""


def _values(row: dict[str, Any], *, sqlite: bool) -> tuple[Any, ...]:
    if not sqlite:
        return tuple(row.values())
    amount = None if row["amount"] is None else float(row["amount"])
    at = row["at"].strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's storage format
    day = row["day"].isoformat()
    return (row["id"], row["name"], amount, row["qty"], row["flag"], day, at, row["note"])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    database = tmp_path / "shop.sqlite"
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(SQLITE_DDL)
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_values(row, sqlite=True) for row in ROWS],
        )
    return f"sqlite:///{database}"


@pytest.fixture
def postgres_url(pg_url: str) -> str:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute(PG_DDL)
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [_values(row, sqlite=False) for row in ROWS],
            )
    return pg_url


# -- reading the files back ---------------------------------------------------------------------


def read_back(path: Path, fmt: ExportFormat) -> tuple[list[str], list[list[str]]]:
    """(column names, rows as text) by a reader that is not ours."""
    data = path.read_bytes()
    if fmt == "csv":
        header, *rows = csv.reader(io.StringIO(data.decode(), newline=""))
        return header, rows
    if fmt in ("json", "jsonl"):
        loads: Callable[[str], Any] = lambda text: json.loads(text, parse_float=Decimal)  # noqa: E731
        items = loads(data.decode()) if fmt == "json" else list(map(loads, data.splitlines()))
        names = list(items[0]) if items else []
        return names, [[str(value) for value in item.values()] for item in items]
    if fmt == "xml":
        root = etree.fromstring(data)
        names = [child.tag for child in root[0]] if len(root) else []
        return names, [[child.text or "" for child in item] for item in root]
    if fmt == "avro":
        reader = fastavro.reader(io.BytesIO(data))
        records = list(reader)
        names = [field["name"] for field in reader.writer_schema["fields"]]
        return names, [[_text(value) for value in record.values()] for record in records]
    if fmt == "xlsx":
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        header, *rows = book["data"].iter_rows()
        names = [str(cell.value) for cell in header]
        texts = [[_shown(cell.value, cell.number_format) for cell in row] for row in rows]
        book.close()
        return names, texts
    table = pq.read_table(io.BytesIO(data))
    return table.schema.names, [
        [_text(value) for value in row.values()] for row in table.to_pylist()
    ]


def _shown(value: Any, number_format: str) -> str:
    """An xlsx cell as Excel shows it: a number with the places of its format (`0.00`), a
    date as its day."""
    if isinstance(value, dt.datetime) and number_format == "yyyy-mm-dd":
        return value.date().isoformat()
    if isinstance(value, float) and number_format.startswith("0."):
        return f"{value:.{len(number_format) - 2}f}"
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


def run(url: str, source: dict[str, Any], fmt: ExportFormat, folder: Path, **extra: Any) -> Path:
    result = export(
        source={"url": url, "columns": COLUMNS, "filter": FILTER, **source},
        destination={"url": str(folder / "{export}.{ext}")},
        format=fmt,
        name="items",
        **extra,
    )
    [path] = result.files
    return Path(path)


# -- every format, every reader -----------------------------------------------------------------

SOURCES = {
    "sqlite table": ("sqlite", {"table": "items"}),
    "postgres table, COPY": ("postgres", {"table": "items", "reader": "postgres_copy"}),
    "postgres table, SQLAlchemy": ("postgres", {"table": "items", "reader": "sqlalchemy"}),
}
WINDOW_QUERY = "SELECT * FROM items WHERE at >= :since AND at < :until AND qty <> :skip"
WINDOW = {"since": "2024-01-03T00:00:00", "until": "2024-01-07T12:00:00"}


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("where", list(SOURCES))
def test_columns_and_every_filter_operator(
    where: str, fmt: ExportFormat, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    database, source = SOURCES[where]
    url = request.getfixturevalue(f"{database}_url")
    names, rows = read_back(run(url, source, fmt, tmp_path), fmt)
    assert names == OUTPUT
    expected = _expected([row for row in ROWS if _meets(row)])
    assert len(expected) > 5, "the filter leaves rows to compare"
    assert rows == expected  # the table's order: every reader keeps it here


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_query_with_a_window_and_its_own_where(
    database: str, fmt: ExportFormat, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(f"{database}_url")
    source = {"query": WINDOW_QUERY, "params": {"skip": 3}}
    path = run(url, source, fmt, tmp_path, window=WINDOW)
    names, rows = read_back(path, fmt)
    since, until = dt.datetime(2024, 1, 3), dt.datetime(2024, 1, 7, 12)
    chosen = [r for r in ROWS if since <= r["at"] < until and r["qty"] != 3 and _meets(r)]
    assert names == OUTPUT
    assert len(chosen) > 2
    assert sorted(rows, key=lambda row: int(row[1])) == _expected(chosen)


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_a_value_carrying_sql_is_matched_literally(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(f"{database}_url")
    for op, expected_ids in (("=", [30, 31]), ("like", [30, 31]), ("in", [30, 31])):
        value: Any = [INJECTION] if op == "in" else INJECTION
        result = export(
            source={
                "url": url,
                "table": "items",
                "columns": ["id", "name"],
                "filter": [{"column": "name", "op": op, "value": value}],
            },
            destination={"url": str(tmp_path / op / "{export}.{ext}")},
            format="jsonl",
            name="items",
        )
        lines = Path(result.files[0]).read_text().splitlines()
        assert [json.loads(line) for line in lines] == [
            {"id": i, "name": INJECTION} for i in expected_ids
        ], op


@pytest.mark.usefixtures("prefect_api")
def test_partitions_of_a_filtered_table_read_only_the_filtered_rows(
    postgres_url: str, tmp_path: Path
) -> None:
    """Block ranges add their condition to the filter's WHERE; a column range wraps it."""
    for extra in ({"partitions": 3}, {"partitions": 3, "partition_by": "id"}):
        result = export(
            source={"url": postgres_url, "table": "items", "columns": COLUMNS, "filter": FILTER}
            | extra,
            destination={"url": str(tmp_path / str(len(extra)) / "{export}.{ext}")},
            format="csv",
            name="items",
        )
        rows = [row for path in result.files for row in read_back(Path(path), "csv")[1]]
        expected = _expected([row for row in ROWS if _meets(row)])
        assert sorted(rows, key=lambda row: int(row[1])) == expected, extra


# -- refused before any row is read --------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
def test_a_column_that_does_not_exist_lists_those_that_do(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        export(
            source={"url": sqlite_url, "table": "items", "columns": ["id", "price"]},
            destination={"url": str(tmp_path / "out" / "{export}.{ext}")},
        )
    message = str(raised.value)
    assert "source.columns: no column `price`" in message
    assert "id, name, amount, qty, flag, day, at, note" in message
    assert not (tmp_path / "out").exists(), "nothing written"


@pytest.mark.unit
class TestRefused:
    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ({"columns": []}, "source.columns: an empty list exports nothing"),
            ({"columns": ["a", {"name": "b", "as": "a"}]}, "two columns are written as `a`"),
            ({"columns": [{"name": "a", "as": " "}]}, "renamed to an empty name"),
            ({"filter": [{"column": "a", "op": "is_null", "value": 1}]}, "takes no value"),
            ({"filter": [{"column": "a", "op": "in", "value": 1}]}, "non-empty list"),
            ({"filter": [{"column": "a", "op": "between", "value": [1]}]}, "needs [low, high]"),
            ({"filter": [{"column": "a", "op": "like", "value": 5}]}, "needs a text pattern"),
            ({"filter": [{"column": "a", "op": "=", "value": None}]}, "for NULL use op is_null"),
            ({"filter": [{"column": "a", "op": "~", "value": 1}]}, "filter.0.op"),
        ],
    )
    def test_bad_columns_and_filters(self, source: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError) as raised:
            SourceConfig.model_validate({"url": "sqlite:///x.db", "table": "t", **source})
        assert message in str(raised.value)

    def test_names_that_xml_writes_as_one_element(self) -> None:
        parameters = {
            "source": {"url": "sqlite:///x.db", "table": "t", "columns": ["a b", "a_b"]},
            "destination": {"url": "out/{export}.{ext}"},
        }
        validate_export_parameters({**parameters, "format": "csv"})  # fine in CSV
        with pytest.raises(ConfigurationError) as raised:
            validate_export_parameters({**parameters, "format": "xml"})
        assert "`a b` and `a_b` are both written as the XML element <a_b>" in str(raised.value)

    @pytest.mark.parametrize(
        ("columns", "fold_case", "message"),
        [
            (["a"], False, "source.columns: the query names two columns `a` (columns 1 and 3)"),
            (["b", {"name": "a", "as": "x"}], False, "two columns `a`"),
            (["A"], True, "source.columns: `a` and `A` are one name to SQLite"),
        ],
    )
    def test_a_name_two_columns_of_the_query_share(
        self, columns: list[Any], fold_case: bool, message: str
    ) -> None:
        """A column the query names twice cannot be picked by name (the database would take
        either); one it names once still can."""
        chosen = [
            ColumnSpec.model_validate(c if isinstance(c, dict) else {"name": c}) for c in columns
        ]
        names, fields = ["a", "b", "A" if fold_case else "a"], [None, None, None]
        with pytest.raises(ConfigurationError) as raised:
            plan_shape(chosen, [], names, fields, "db", fold_case)
        assert message in str(raised.value)
        assert plan_shape([ColumnSpec(name="b")], [], names, fields, "db", fold_case)

    @pytest.mark.parametrize(
        ("field", "condition", "message"),
        [
            (pa.decimal128(12, 2), {"op": ">", "value": "abc"}, "give a number, e.g. 12.50"),
            (pa.int64(), {"op": "=", "value": 2.5}, "give an integer"),
            (pa.int64(), {"op": "like", "value": "1%"}, "a text column (like matches text)"),
            (pa.date32(), {"op": "<", "value": "March"}, "give a date"),
            (pa.timestamp("us"), {"op": "<", "value": "2026-01-01T00:00+01:00"}, "without offset"),
            (pa.bool_(), {"op": "=", "value": "yes"}, "give true or false"),
        ],
    )
    def test_a_value_that_does_not_fit_the_column(
        self, field: pa.DataType, condition: dict[str, Any], message: str
    ) -> None:
        conditions = [FilterCondition.model_validate({"column": "amount", **condition})]
        with pytest.raises(ConfigurationError) as raised:
            plan_shape(None, conditions, ["amount"], [pa.field("amount", field)], "db")
        assert "source.filter: `amount " in str(raised.value)
        assert message in str(raised.value)

    def test_an_array_column_takes_only_null_tests(self) -> None:
        fields = [array_field("tags", "str")]
        plan_shape(None, [FilterCondition(column="tags", op="not_null")], ["tags"], fields, "db")
        condition = FilterCondition(column="tags", op="=", value="{a}")
        with pytest.raises(ConfigurationError) as raised:
            plan_shape(None, [condition], ["tags"], fields, "db")
        assert "array columns take only is_null and not_null" in str(raised.value)

    def test_values_become_the_columns_types(self) -> None:
        fields = [
            pa.field("n", pa.decimal128(12, 2)),
            pa.field("d", pa.date32()),
            pa.field("t", pa.timestamp("us", tz="UTC")),
        ]
        conditions = [
            FilterCondition(column="n", op="between", value=["1.50", 3]),
            FilterCondition(column="d", op="in", value=["2026-03-01"]),
            FilterCondition(column="t", op=">=", value="2026-03-01T06:00:00"),
        ]
        shape = plan_shape(None, conditions, ["n", "d", "t"], fields, "db")
        assert shape is not None
        assert shape.values == (
            [Decimal("1.50"), Decimal("3")],
            [dt.date(2026, 3, 1)],
            dt.datetime(2026, 3, 1, 6, tzinfo=dt.UTC),
        )
        assert shape.output_names == ["n", "d", "t"]
