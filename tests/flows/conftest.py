"""Fixtures for the flow tests: awkward source tables and a helper that runs the real flow.

`Dataset` is a source fetched *independently* of the product (psycopg, sqlite3 or the demo
module's expected rows): column names, the kind each column is rendered as, and the rows as
Python values. JSON columns hold JSON text (PostgreSQL) or parsed objects (SQLite demo).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from demo.build import demo_customers, demo_orders
from flows.core.formats import ExportFormat, file_extension
from flows.export import export
from flows.runs.result import ExportResult

TEXT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "jsonl", "xml")
ALL_FORMATS: tuple[ExportFormat, ...] = (*TEXT_FORMATS, "parquet", "avro", "xlsx")
PG_READERS = ("postgres_copy", "sqlalchemy")


@dataclass(frozen=True)
class Dataset:
    """Rows read from the source by an independent client, plus how each column renders."""

    columns: list[str]
    kinds: list[str]  # int float decimal bool str uuid json bytes date time timestamp timestamptz
    rows: list[tuple[Any, ...]]

    def __post_init__(self) -> None:
        assert len(self.columns) == len(self.kinds)
        assert all(len(row) == len(self.columns) for row in self.rows)

    def select(self, names: Sequence[str]) -> Dataset:
        """The same rows with only the columns `names`, in that order."""
        indexes = [self.columns.index(name) for name in names]
        return Dataset(
            [self.columns[i] for i in indexes],
            [self.kinds[i] for i in indexes],
            [tuple(row[i] for i in indexes) for row in self.rows],
        )


@dataclass(frozen=True)
class Exported:
    """One finished export: the flow's result and the single file it delivered."""

    result: ExportResult
    path: Path


RunExport = Callable[..., Exported]


@pytest.fixture
def run_export(
    tmp_path: Path,
    prefect_api: None,  # noqa: ARG001 - needs the API started
) -> RunExport:
    """Run the real `export` flow into a fresh folder and check its ExportResult.

    Call as run_export(source, fmt, rows=N, name=..., format_options=...). The result must
    report N rows, the delivered file's size and exactly that one local file.
    """
    counter = itertools.count()

    def run(
        source: dict[str, Any],
        fmt: ExportFormat,
        *,
        rows: int,
        name: str | None = None,
        format_options: dict[str, Any] | None = None,
    ) -> Exported:
        folder = tmp_path / f"run{next(counter)}"
        result = export(
            source=source,
            destination={"url": str(folder / "{export}.{ext}")},
            format=fmt,
            name=name,
            format_options=format_options,
        )
        expected_name = name or source.get("table") or "export"
        path = folder / f"{expected_name}.{file_extension(fmt)}"
        assert isinstance(result, ExportResult)
        assert result.format == fmt
        assert result.files == [str(path)]
        assert path.is_file()
        assert sorted(p.name for p in folder.iterdir()) == [path.name], "temporary files left"
        assert result.rows == rows
        assert result.bytes == path.stat().st_size
        return Exported(result, path)

    return run


# --------------------------------------------------------------------------------------
# PostgreSQL: one table with every type and the awkward values the formats must survive.
# --------------------------------------------------------------------------------------

# (column, SQL type, rendering kind)
PG_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "integer", "int"),
    ("big", "bigint", "int"),
    ("small", "smallint", "int"),
    ("uid", "uuid", "uuid"),
    ("label", "text", "str"),
    ("code", "varchar(40)", "str"),
    ("happened_at", "timestamptz", "timestamptz"),
    ("local_at", "timestamp", "timestamp"),
    ("day", "date", "date"),
    ("at_time", "time", "time"),
    ("price", "numeric(12,2)", "decimal"),
    ("wide", "numeric(30,10)", "decimal"),
    ("exact", "numeric", "decimal"),
    ("flag", "boolean", "bool"),
    ("ratio", "double precision", "float"),
    ("ratio4", "real", "float"),
    ("doc", "jsonb", "json"),
    ("raw_doc", "json", "json"),
    ("blob", "bytea", "bytes"),
    ("order id", "integer", "int"),
    ("1st", "text", "str"),
)

AWKWARD_TEXT: tuple[str | None, ...] = (
    "comma, separated, value",
    'double "quoted" text',
    "single 'quoted' text, O'Brien's",
    "line one\nline two",
    "windows line\r\nending",
    "lone\rcarriage return",
    "tab\tseparated\tvalues",
    "  leading and trailing spaces  ",
    "",
    None,
    "中文字符 · 日本語 · 한국어",
    "مرحبا بالعالم and שלום עולם",
    "emoji 😀 👩‍💻 👨‍👩‍👧‍👦 🇯🇵 🇫🇷 🏳️‍🌈",
    "XML specials & < > \" ' &amp; <![CDATA[x]]> ]]>",
    "back\\slash C:\\temp\\new \\N \\x00",
    "NULL",
    "null",
    "e\u0301 combining, non\u00a0breaking, zero\u200bwidth, bom\ufeff",
)
# XML 1.0 forbids these; the XML writer replaces each with U+FFFD (row FORBIDDEN_ID only).
FORBIDDEN_TEXT = "bell\x07 vt\x0b ff\x0c esc\x1b us\x1f nonchar\ufffe\uffff end"
FORBIDDEN_ID = 99

# Values as PostgreSQL input text (None = NULL); bytea values are bytes.
PG_VALUES: dict[str, tuple[Any, ...]] = {
    "big": ("9223372036854775807", "-9223372036854775808", "0", None, "42"),
    "small": ("32767", "-32768", "0", None, "7"),
    "uid": (
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "00000000-0000-0000-0000-000000000000",
        None,
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ),
    "label": AWKWARD_TEXT,
    "code": tuple(reversed(AWKWARD_TEXT)),
    "happened_at": (
        "2023-06-15 12:00:00.123456+05:30",
        "2023-03-26 01:30:00+00",
        "2023-12-31 23:59:59.999999-08:00",
        "2024-02-29 00:00:00+14:00",
        "1969-12-31 23:59:59.5-03:30",
        None,
        "2000-01-01 00:00:00.000001+00:00",
        "2023-10-29 01:59:59+05:45",
        "1900-01-01 00:00:00+00",
    ),
    "local_at": (
        "2023-01-01 00:00:00",
        "2023-01-01 00:00:00.5",
        "1900-01-01 12:34:56.789",
        None,
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59.999999",
        "1969-12-31 23:59:59.000001",
    ),
    "day": ("2023-01-01", "2024-02-29", "0001-01-01", "9999-12-31", None, "1969-12-31"),
    "at_time": ("00:00:00", "23:59:59.999999", "12:00:00.5", None, "08:30:00.000001"),
    "price": ("0.00", "-0.01", "9999999999.99", "-9999999999.99", None, "19.99", "1"),
    "wide": (
        "12345678901234567890.0123456789",
        "-99999999999999999999.9999999999",
        "0",
        "0.0000000001",
        None,
        "1.5",
        "-0.0000001",
    ),
    "exact": (
        "NaN",
        "0.1",
        "0.00000000000000000001",
        "1e40",
        None,
        "-123456789012345678901234567890.123456789",
        "1.50",
        "Infinity",
        "-Infinity",
        "0",
    ),
    "flag": ("true", "false", None),
    "ratio": (
        repr(0.1 + 0.2),
        "1e-05",
        "1e16",
        "-0.0",
        "NaN",
        "Infinity",
        "-Infinity",
        None,
        "5e-324",
        "1.7976931348623157e308",
        "123456789.125",
        "100",
        "0.0001",
    ),
    "ratio4": ("0.1", "3.4028235e38", "1e-45", "-0", "NaN", "Infinity", None, "16777216", "1.5"),
    "doc": (
        '{"a": 1, "nested": {"list": [1, 2.5, null, true, false, "x"], "empty": {}}}',
        '{"ключ": "значение", "日本": ["🇯🇵", "👩‍💻"], "quote\\"key": "a,b\\nc\\r\\nd\\te"}',
        "[]",
        None,
        '[1, [2, [3, {"deep": "</x> & \'y\' <z/>"}]]]',
        '{"ctl": "\\u0001\\u001f", "back": "\\\\", "": ""}',
        "{}",
    ),
    "raw_doc": (
        '{"b": 2, "a": [1, "x", null]}',
        None,
        '{"emoji": "😀 🇫🇷", "rtl": "שלום"}',
        "[]",
        '{"xml": "<a href=\\"x\\">&amp;</a>"}',
    ),
    "blob": (b"", b"\x00\xff", None, bytes(range(256)), b"plain ascii", b"\\x00"),
    "order id": ("2147483647", "-2147483648", None, "0"),
    "1st": ("first", None, "", "1st, 2nd"),
}
PG_ROW_COUNT = len(AWKWARD_TEXT)  # rows with ids 1..N, plus one row of NULLs, plus row FORBIDDEN_ID


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_insert_rows() -> list[dict[str, Any]]:
    """The rows to insert, in insertion order: all NULLs first, then ids 1..N, then forbidden."""
    rows: list[dict[str, Any]] = [dict.fromkeys(name for name, _, _ in PG_COLUMNS)]
    for index in range(PG_ROW_COUNT):
        row: dict[str, Any] = {"id": str(index + 1)}
        for name, values in PG_VALUES.items():
            row[name] = values[index % len(values)]
        rows.append(row)
    forbidden = dict(rows[1])
    forbidden.update({"id": str(FORBIDDEN_ID), "label": FORBIDDEN_TEXT, "1st": FORBIDDEN_TEXT})
    rows.append(forbidden)
    return rows


def pg_select(where: str = "") -> str:
    """The export query: every column, NULL id first, fixed order."""
    return f"SELECT * FROM awkward {where} ORDER BY id NULLS FIRST"


@dataclass(frozen=True)
class PgSource:
    url: str
    dataset: Dataset

    def where(self, predicate: Callable[[dict[str, Any]], bool]) -> Dataset:
        """The dataset restricted to rows (as column → value dicts) matching `predicate`."""
        names = self.dataset.columns
        keep = [row for row in self.dataset.rows if predicate(dict(zip(names, row, strict=True)))]
        return Dataset(self.dataset.columns, self.dataset.kinds, keep)


def fetch_pg(url: str, sql: str) -> Dataset:
    """Read rows with psycopg (UTC session; JSON columns as their text), independently."""
    kinds = {name: kind for name, _, kind in PG_COLUMNS}
    select = ", ".join(
        f"{_pg_ident(name)}::text" if kind == "json" else _pg_ident(name)
        for name, _, kind in PG_COLUMNS
    )
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cursor = conn.execute(f"SELECT {select} FROM ({sql}) AS source")
        names = [column.name for column in cursor.description or []]
        rows = cursor.fetchall()
    return Dataset(names, [kinds[name] for name in names], rows)


@pytest.fixture
def pg_awkward(pg_url: str) -> PgSource:
    """Table `awkward` in a fresh database, filled with every type and awkward value."""
    columns = ", ".join(f"{_pg_ident(name)} {sql_type}" for name, sql_type, _ in PG_COLUMNS)
    names = [name for name, _, _ in PG_COLUMNS]
    types = {name: sql_type for name, sql_type, _ in PG_COLUMNS}
    placeholders = ", ".join(f"%s::{types[name]}" for name in names)
    insert = (
        f"INSERT INTO awkward ({', '.join(_pg_ident(n) for n in names)}) VALUES ({placeholders})"
    )
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE awkward ({columns})")
        for row in pg_insert_rows():
            conn.execute(insert, [row[name] for name in names])
    dataset = fetch_pg(url_for_psycopg(pg_url), pg_select())
    assert len(dataset.rows) == PG_ROW_COUNT + 2
    return PgSource(pg_url, dataset)


def url_for_psycopg(url: str) -> str:
    """pg_url is a SQLAlchemy URL; libpq accepts the same postgresql:// form as conninfo."""
    return url.replace("postgresql+psycopg://", "postgresql://")


# --------------------------------------------------------------------------------------
# SQLite: a small table queried with bind parameters (types inferred from the values).
# --------------------------------------------------------------------------------------

SQLITE_QUERY = (
    'SELECT id, label, reading, "count" AS "order id", payload, note AS "1st" '
    "FROM measurements WHERE id > :lo ORDER BY id"
)
SQLITE_LO = 3
SQLITE_FLOATS: tuple[float | None, ...] = (
    0.1 + 0.2,
    1e-05,
    1e16,
    -1.5,
    float("inf"),
    float("-inf"),
    None,
    5e-324,
    1.7976931348623157e308,
    123456789.125,
    100.0,
    0.0001,
    2.0**53 + 2,
)


def _sqlite_rows() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    blobs: tuple[bytes | None, ...] = (b"", b"\x00\xff", None, bytes(range(256)), b"ascii")
    texts = AWKWARD_TEXT
    for index in range(1, 25):
        rows.append(
            (
                index,
                texts[index % len(texts)],
                SQLITE_FLOATS[index % len(SQLITE_FLOATS)],
                None if index % 7 == 0 else (index - 12) * 1_000_000_007,
                blobs[index % len(blobs)],
                texts[(index * 5) % len(texts)],
            )
        )
    return rows


@dataclass(frozen=True)
class SqliteSource:
    url: str
    path: Path
    query: str
    params: dict[str, Any]

    def fetch(self) -> Dataset:
        """The query's rows read with the sqlite3 module."""
        with closing(sqlite3.connect(self.path)) as conn:
            cursor = conn.execute(self.query, self.params)
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        kinds = [kind_of_values([row[i] for row in rows]) for i in range(len(names))]
        return Dataset(names, kinds, rows)


def kind_of_values(values: Sequence[Any]) -> str:
    """The rendering kind of a column of Python values (for sources without declared types)."""
    first = next((v for v in values if v is not None), None)
    checks: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (decimal.Decimal, "decimal"),
        (dt.datetime, "timestamp"),
        (dt.date, "date"),
        (dt.time, "time"),
        (bytes, "bytes"),
        ((dict, list), "json"),
        (uuid.UUID, "uuid"),
    ]
    for types, kind in checks:
        if isinstance(first, types):
            if kind == "timestamp" and first.tzinfo is not None:
                return "timestamptz"
            return kind
    return "str"


@pytest.fixture
def sqlite_measurements(tmp_path: Path) -> SqliteSource:
    """A SQLite file with table `measurements`, exported through a query with :lo."""
    path = tmp_path / f"measurements-{uuid.uuid4().hex[:8]}.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE measurements (id INTEGER PRIMARY KEY, label TEXT, reading REAL, "
            '"count" INTEGER, payload BLOB, note TEXT)'
        )
        conn.executemany("INSERT INTO measurements VALUES (?, ?, ?, ?, ?, ?)", _sqlite_rows())
        # A row of NULLs inside the exported range: every column NULL except the key.
        conn.execute(
            "UPDATE measurements SET label = NULL, reading = NULL, "
            '"count" = NULL, payload = NULL, note = NULL WHERE id = 10'
        )
        conn.commit()
    return SqliteSource(f"sqlite:///{path}", path, SQLITE_QUERY, {"lo": SQLITE_LO})


def demo_dataset(table: str) -> Dataset:
    """The committed demo table `orders` or `customers`, as demo/build.py describes it."""
    rows = demo_orders() if table == "orders" else demo_customers()
    columns = list(rows[0])
    kinds = [kind_of_values([row[c] for row in rows]) for c in columns]
    return Dataset(columns, kinds, [tuple(row[c] for c in columns) for row in rows])


def first_difference(left: bytes, right: bytes) -> str:
    """Where two files first differ, with some context from each."""
    at = next(
        (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
        min(len(left), len(right)),
    )
    start = max(0, at - 60)
    return (
        f"byte {at}: {left[start : at + 60].decode('utf-8', 'replace')!r} vs "
        f"{right[start : at + 60].decode('utf-8', 'replace')!r}"
    )
