"""`SourcePlan.order_by`: every reader returns the rows sorted by the plan's output columns
(after source.columns' renames), so equal keys arrive together: PostgreSQL's COPY (typed and
server-rendered CSV and JSON lines) and SQLAlchemy readers over a table, a query, a stored
cursor's range and each partition of a split read; SQLite's reflected table and a query;
MariaDB's query. NULL keys group last on PostgreSQL, first on SQLite and MariaDB. Rows are read
with the readers the flow calls, and the server-rendered lines with Python's csv and json."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flows.core.columns import rendered_format
from flows.core.config import FormatOptions, SourceConfig
from flows.core.errors import ConfigurationError
from flows.core.formats import ExportFormat
from flows.sources.cursor import CursorMark
from flows.sources.plan import SourcePlan, inspect_source, planned_partitions, read_snapshot
from flows.sources.read import read_for_format, rows_arrive_finished
from tests.flows.conftest import url_for_psycopg
from tests.servers.mariadb import MariaDbServer

IDS = range(1, 31)
# Inserted out of key order, so a table's physical order is not the sorted one.
INSERTED = sorted(IDS, key=lambda i: (i * 7) % 31)
COLUMNS: list[Any] = ["id", {"name": "grp", "as": "Group"}]  # a name PostgreSQL must quote
ORDER = ("Group", "id")
QUERY = "SELECT id, grp FROM events WHERE id > :low"


def _group(i: int) -> str | None:
    return None if i % 5 == 0 else "abc"[i % 3]


ROWS = [(i, _group(i)) for i in INSERTED]


def expected(ids: Iterable[int], *, nulls_last: bool) -> list[tuple[int, str | None]]:
    """(id, group) sorted by (group, id), NULL groups last or first."""
    rows = [(i, _group(i)) for i in ids]
    return sorted(rows, key=lambda r: ((r[1] is None) == nulls_last, r[1] or "", r[0]))


def read(plan: SourcePlan, fmt: ExportFormat, group: str = "Group") -> list[tuple[int, str | None]]:
    """(id, group) of every row the reader hands the writer of `fmt`, in arrival order."""
    got: list[tuple[int, str | None]] = []
    for batch in read_for_format(plan, fmt, FormatOptions()):
        shown = rendered_format(batch.schema)
        if shown == "csv":
            lines = "".join(batch.column("rows").to_pylist())
            got += [(int(i), g or None) for i, g in csv.reader(io.StringIO(lines, newline=""))]
        elif shown == "jsonl":
            items = [json.loads(line) for line in batch.column("rows").to_pylist()]
            got += [(item["id"], item[group]) for item in items]
        else:
            got += list(
                zip(batch.column("id").to_pylist(), batch.column(group).to_pylist(), strict=True)
            )
    return got


def sorted_plan(source: SourceConfig, mark: CursorMark | None = None) -> SourcePlan:
    return replace(inspect_source(source, mark), order_by=ORDER)


# -- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
def pg_events(pg_url: str) -> str:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id int PRIMARY KEY, grp text)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO events VALUES (%s, %s)", ROWS)
    return pg_url


READS = [
    ("postgres_copy", "csv"),  # rendered by the server
    ("postgres_copy", "jsonl"),  # rendered by the server
    ("postgres_copy", "parquet"),  # COPY's typed Arrow path
    ("sqlalchemy", "csv"),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("reader", "fmt"), READS)
def test_postgres_table_and_query_arrive_sorted(
    pg_events: str, reader: str, fmt: ExportFormat
) -> None:
    table = sorted_plan(SourceConfig(url=pg_events, table="events", columns=COLUMNS, reader=reader))
    query = sorted_plan(
        SourceConfig(url=pg_events, query=QUERY, params={"low": 0}, columns=COLUMNS, reader=reader)
    )
    rendered = reader == "postgres_copy" and fmt != "parquet"
    assert rows_arrive_finished(table, fmt, FormatOptions()) is rendered
    assert read(table, fmt) == expected(IDS, nulls_last=True)
    assert read(query, fmt) == expected(IDS, nulls_last=True)


@pytest.mark.postgres
@pytest.mark.parametrize(("reader", "fmt"), READS)
def test_postgres_a_stored_cursors_range_arrives_sorted(
    pg_events: str, reader: str, fmt: ExportFormat
) -> None:
    source = SourceConfig(
        url=pg_events, table="events", columns=COLUMNS, reader=reader, incremental={"cursor": "id"}
    )
    with read_snapshot(sorted_plan(source, CursorMark("id", "12", "int"))) as plan:
        assert read(plan, fmt) == expected(range(13, 31), nulls_last=True)


@pytest.mark.postgres
@pytest.mark.parametrize(("reader", "fmt"), READS)
def test_postgres_each_partition_of_a_split_read_arrives_sorted(
    pg_events: str, reader: str, fmt: ExportFormat
) -> None:
    source = SourceConfig(
        url=pg_events,
        table="events",
        columns=COLUMNS,
        reader=reader,
        partitions=2,
        partition_by="id",
    )
    with planned_partitions(sorted_plan(source), source) as planned:
        parts = [
            read(planned.plan.for_partition(partition, planned.snapshot), fmt)
            for partition in planned.partitions
        ]
    assert len(parts) == 2
    for part in parts:
        assert part and part == expected([i for i, _ in part], nulls_last=True)
    assert sorted(i for part in parts for i, _ in part) == list(IDS)  # each row once


@pytest.mark.postgres
def test_without_order_by_the_sql_is_the_old_one(pg_events: str) -> None:
    plan = inspect_source(SourceConfig(url=pg_events, table="events", columns=COLUMNS))
    quote = '"{}"'.format
    assert plan.statement(quote) == (plan.sql, plan.params)
    sql, _ = replace(plan, order_by=ORDER).statement(quote)
    assert sql == f'SELECT * FROM ({plan.sql}) AS _export_sorted ORDER BY "Group", "id"'


# -- SQLite --------------------------------------------------------------------------------


@pytest.fixture
def sqlite_events(tmp_path: Path) -> str:
    path = tmp_path / "events.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, grp TEXT)")
        conn.executemany("INSERT INTO events VALUES (?, ?)", ROWS)
    return f"sqlite:///{path}"


@pytest.mark.unit
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_sqlite_reflected_table_and_query_arrive_sorted(sqlite_events: str, fmt: str) -> None:
    table = sorted_plan(SourceConfig(url=sqlite_events, table="events", columns=COLUMNS))
    query = sorted_plan(
        SourceConfig(url=sqlite_events, query=QUERY, params={"low": 0}, columns=COLUMNS)
    )
    assert read(table, fmt) == expected(IDS, nulls_last=False)  # type: ignore[arg-type]
    assert read(query, fmt) == expected(IDS, nulls_last=False)  # type: ignore[arg-type]
    unshaped = inspect_source(SourceConfig(url=sqlite_events, table="events"))
    plain = replace(unshaped, order_by=("grp", "id"))  # sa.select(table), no shape
    assert read(plain, fmt, "grp") == expected(IDS, nulls_last=False)  # type: ignore[arg-type]


@pytest.mark.unit
def test_sorting_by_a_column_the_export_does_not_have_names_it(sqlite_events: str) -> None:
    plan = inspect_source(SourceConfig(url=sqlite_events, table="events", columns=COLUMNS))
    with pytest.raises(ConfigurationError) as raised:
        replace(plan, order_by=("Group", "grp"))  # `grp` was renamed
    assert raised.value.field == "order_by"
    assert str(raised.value).startswith("order_by: `grp` is not a column of the export")
    assert "(columns: id, Group)" in str(raised.value)


@pytest.mark.unit
def test_sqlite_each_partition_of_a_split_read_arrives_sorted(sqlite_events: str) -> None:
    source = SourceConfig(
        url=sqlite_events, table="events", columns=COLUMNS, partitions=2, partition_by="id"
    )
    with planned_partitions(sorted_plan(source), source) as planned:
        parts = [read(planned.plan.for_partition(p, None), "csv") for p in planned.partitions]
    assert len(parts) == 2
    for part in parts:
        assert part and part == expected([i for i, _ in part], nulls_last=False)
    assert sorted(i for part in parts for i, _ in part) == list(IDS)


# -- MariaDB -------------------------------------------------------------------------------


def test_mariadb_query_arrives_sorted(mariadb: MariaDbServer, mariadb_url: str) -> None:
    database = mariadb_url.rsplit("/", 1)[1].split("?")[0]
    with closing(mariadb.connect(database)) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE events (id INT PRIMARY KEY, grp VARCHAR(8))")
        cursor.executemany("INSERT INTO events VALUES (%s, %s)", ROWS)
        conn.commit()
    query = sorted_plan(
        SourceConfig(url=mariadb_url, query=QUERY, params={"low": 0}, columns=COLUMNS)
    )
    table = sorted_plan(SourceConfig(url=mariadb_url, table="events", columns=COLUMNS))
    assert read(query, "csv") == expected(IDS, nulls_last=False)
    assert read(table, "parquet") == expected(IDS, nulls_last=False)
