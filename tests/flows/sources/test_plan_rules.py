"""Planning a read (flows/sources/partitions.py, plan.py): the ranges a split read is cut into
(equal spans, open ends, the NULL partition, `bounds`), the SQL and binds of each range, the
kind of the partition column, and what inspecting a local SQLite file finds, without a server.
The ranges read back from PostgreSQL under writes are test_partitions.py's (server tier); the
cases in its TestRanges are not repeated."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from flows.core.config import SourceConfig
from flows.core.errors import ConfigurationError
from flows.sources.partitions import (
    HIGH_PARAM,
    LOW_PARAM,
    Partition,
    block_ranges,
    column_kind,
    column_ranges,
    partition_clause,
    partition_sql,
)
from flows.sources.plan import check_bind_params, inspect_source, planned_partitions

pytestmark = pytest.mark.unit

D = dt.date
T = dt.datetime


def spans(partitions: list[Partition]) -> list[tuple[Any, Any, bool]]:
    return [(p.low, p.high, p.nulls) for p in partitions]


@pytest.mark.parametrize(
    ("kind", "low", "high", "count", "expected"),
    [
        ("int", 0, 9, 2, [(None, 5, False), (5, None, False)]),
        ("int", 1, 10, 3, [(None, 4, False), (4, 7, False), (7, None, False)]),
        ("int", -10, 10, 4, [(None, -5, False), (-5, 0, False), (0, 5, False),
                             (5, None, False)]),
        ("int", 7, 7, 4, [(None, None, False)]),
        ("int", 9, 1, 4, [(None, None, False)]),
        ("int", 1, 3, 8, [(None, 2, False), (2, 3, False), (3, None, False)]),
        ("int", 1, 1_000_000, 1, [(None, None, False)]),
        ("float", 0.0, 1.0, 4, [(None, 0.25, False), (0.25, 0.5, False), (0.5, 0.75, False),
                                (0.75, None, False)]),
        ("float", -1.5, 1.5, 2, [(None, 0.0, False), (0.0, None, False)]),
        ("decimal", Decimal("0.00"), Decimal("1.00"), 2, [(None, Decimal("0.5"), False),
                                                          (Decimal("0.5"), None, False)]),
        ("decimal", "10", "20", 2, [(None, Decimal("15"), False), (Decimal("15"), None, False)]),
        ("date", D(2026, 1, 1), D(2026, 1, 31), 3,
         [(None, D(2026, 1, 11), False), (D(2026, 1, 11), D(2026, 1, 21), False),
          (D(2026, 1, 21), None, False)]),
        ("date", D(2026, 1, 1), D(2026, 1, 2), 4, [(None, D(2026, 1, 2), False),
                                                   (D(2026, 1, 2), None, False)]),
        ("timestamp", T(2026, 1, 1), T(2026, 1, 2), 2,
         [(None, T(2026, 1, 1, 12), False), (T(2026, 1, 1, 12), None, False)]),
        ("timestamp", T(2026, 1, 1), T(2026, 1, 1, 0, 0, 0, 4), 2,
         [(None, T(2026, 1, 1, 0, 0, 0, 2), False), (T(2026, 1, 1, 0, 0, 0, 2), None, False)]),
    ],
    ids=[
        "ten ints in two", "ten ints in three", "negative to positive", "one value",
        "high below low", "fewer values than partitions", "one partition", "floats",
        "floats around zero", "decimals", "decimal text", "a month of dates", "two dates",
        "a day of timestamps", "microseconds",
    ],
)  # fmt: skip
def test_a_range_is_cut_into_equal_spans_open_at_both_ends(
    kind: str, low: Any, high: Any, count: int, expected: list[tuple[Any, Any, bool]]
) -> None:
    ranges = column_ranges("k", kind, low, high, count, with_nulls=False)
    assert spans(ranges) == expected
    assert [p.number for p in ranges] == list(range(1, len(expected) + 1))
    assert sum(p.share for p in ranges) == pytest.approx(1.0)


def test_a_column_of_nulls_only_is_one_open_range_and_the_null_partition() -> None:
    ranges = column_ranges("k", "int", None, None, 4, with_nulls=True)
    assert spans(ranges) == [(None, None, False), (None, None, True)]
    assert [p.describe() for p in ranges] == ["k [-∞, ∞)", "k IS NULL"]
    assert [p.share for p in ranges] == [1.0, 0.0]


@pytest.mark.parametrize("kind", ["str", "bool", "uuid", "json", "bytes", "time", "array"])
def test_a_column_of_another_kind_is_refused(kind: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        column_ranges("code", kind, "a", "b", 2, with_nulls=False)
    assert str(caught.value) == (
        f"source.partition_by: column `code` is {kind}, which cannot be cut into ranges; use an "
        "integer, numeric, date or timestamp column"
    )


@pytest.mark.parametrize(
    ("blocks", "count", "expected"),
    [
        (100, 1, [(None, None)]),
        (100, 3, [(None, 33), (33, 66), (66, None)]),
        (7, 7, [(None, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, None)]),
        (3, 64, [(None, 1), (1, 2), (2, None)]),
        (0, 8, [(None, None)]),
    ],
)
def test_a_tables_blocks_are_cut_into_ranges(
    blocks: int, count: int, expected: list[tuple[int | None, int | None]]
) -> None:
    assert [(p.low, p.high) for p in block_ranges(blocks, count)] == expected


QUOTE = '"{}"'.format


@pytest.mark.parametrize(
    ("partition", "filtered", "sql", "binds"),
    [
        (Partition(1, "id", None, 10), False,
         'SELECT * FROM (SELECT 1) AS _export_part WHERE "id" < :_export_part_high',
         {HIGH_PARAM: 10}),
        (Partition(3, "id", 20, None), False,
         'SELECT * FROM (SELECT 1) AS _export_part WHERE "id" >= :_export_part_low',
         {LOW_PARAM: 20}),
        (Partition(1, "id"), False,
         'SELECT * FROM (SELECT 1) AS _export_part WHERE "id" IS NOT NULL', {}),
        (Partition(4, "order id", nulls=True), False,
         'SELECT * FROM (SELECT 1) AS _export_part WHERE "order id" IS NULL', {}),
        (Partition(2, None, 250, 500), False,
         "SELECT 1 WHERE ctid >= CAST(:_export_part_low AS tid) AND ctid < "
         "CAST(:_export_part_high AS tid)",
         {LOW_PARAM: "(250,0)", HIGH_PARAM: "(500,0)"}),
        (Partition(1, None, None, 250), True,
         "SELECT 1 AND ctid < CAST(:_export_part_high AS tid)", {HIGH_PARAM: "(250,0)"}),
        (Partition(1, None), False, "SELECT 1", {}),
    ],
    ids=["first", "last", "the only one", "nulls", "blocks", "blocks after a filter",
         "the whole table"],
)  # fmt: skip
def test_each_partitions_sql_and_binds(
    partition: Partition, filtered: bool, sql: str, binds: dict[str, Any]
) -> None:
    assert partition_sql("SELECT 1", partition, QUOTE, filtered=filtered) == sql
    assert partition.bind_values() == binds


@pytest.mark.parametrize(
    ("partition", "where", "describe"),
    [
        (Partition(1, "id", None, 10), "t.id IS NOT NULL AND t.id < 10", "id [-∞, 10)"),
        (Partition(2, "id", 10, 20), "t.id IS NOT NULL AND t.id >= 10 AND t.id < 20",
         "id [10, 20)"),
        (Partition(3, "id", 20, None), "t.id IS NOT NULL AND t.id >= 20", "id [20, ∞)"),
        (Partition(4, "id", nulls=True), "t.id IS NULL", "id IS NULL"),
    ],
)  # fmt: skip
def test_a_reflected_tables_partition_condition(
    partition: Partition, where: str, describe: str
) -> None:
    table = sa.table("t", sa.column("id"))
    clause = partition_clause(partition, table.c.id)
    compiled = clause.compile(dialect=sqlite_dialect(),
                              compile_kwargs={"literal_binds": True})  # fmt: skip
    assert str(compiled) == where
    assert partition.describe() == describe


@pytest.mark.parametrize(
    ("declared", "sample", "kind"),
    [
        (pa.field("k", pa.int64()), None, "int"),
        (pa.field("k", pa.date32()), None, "date"),
        (pa.field("k", pa.string()), 5, "str"),
        (None, 5, "int"),
        (None, True, "bool"),
        (None, Decimal("1.5"), "decimal"),
        (None, 1.5, "float"),
        (None, T(2026, 1, 1), "timestamp"),
        (None, D(2026, 1, 1), "date"),
        (None, "2026-01-01", "str"),
        (None, None, "int"),
    ],
)
def test_the_kind_of_the_partition_column(
    declared: pa.Field | None, sample: Any, kind: str
) -> None:
    assert column_kind("k", ["id", "k"], [None, declared], sample) == kind


def test_a_partition_column_that_is_not_there_lists_those_that_are() -> None:
    with pytest.raises(ConfigurationError) as caught:
        column_kind("idd", ["id", "total"], [None, None], None)
    assert str(caught.value) == (
        "source.partition_by: column `idd` is not in the table or query; its columns are id, total"
    )


@pytest.mark.parametrize(
    ("sql", "params", "missing"),
    [
        ("SELECT * FROM t WHERE a = :a AND b = :b", {"a": 1}, "b"),
        ("SELECT * FROM t WHERE a = :a", {}, "a"),
        ("SELECT * FROM t WHERE a = :a", {"a": 1, "unused": 2}, None),
        ("SELECT '10\\:30' AS at", {}, None),
        ("SELECT * FROM t", {}, None),
    ],
)
def test_every_bind_parameter_needs_a_value(
    sql: str, params: dict[str, Any], missing: str | None
) -> None:
    if missing is None:
        check_bind_params(sql, params)
        return
    with pytest.raises(ConfigurationError) as caught:
        check_bind_params(sql, params)
    assert str(caught.value) == (
        f"source.params: the query uses `:{missing}` but no value was given; add it to "
        "source.params (write \\: for a literal colon before a word)"
    )


@pytest.fixture
def readings(tmp_path: Path) -> str:
    """A local SQLite file: 10 readings, ids 1-10, two with no `at`, one with no id."""
    path = tmp_path / "readings.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER, at TEXT, value REAL, note TEXT)")
        rows: list[tuple[int | None, str | None, float, str]] = [
            (i, f"2026-03-{i:02d}", i * 1.5, f"n{i}") for i in range(1, 11)
        ]
        rows[2] = (3, None, 4.5, "no time")
        rows.append((None, "2026-03-31", 0.0, "no id"))
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", rows)
        conn.commit()
    return f"sqlite:///{path}"


def test_inspecting_a_table_finds_its_columns_reader_and_rows(readings: str) -> None:
    plan = inspect_source(SourceConfig(url=readings, table="readings"))
    assert plan.column_names == ["id", "at", "value", "note"]
    assert plan.reader == "sqlalchemy"
    assert plan.row_count == 11
    assert plan.label == "readings"
    assert plan.source_types == ("INTEGER", "TEXT", "REAL", "TEXT")
    assert [None if f is None else str(f.type) for f in plan.declared] == [
        "int64", "string", "double", "string"
    ]  # fmt: skip


def test_inspecting_a_query_counts_no_rows_unless_asked(readings: str) -> None:
    sql = "SELECT id, note AS remark FROM readings WHERE id > :lo"
    plan = inspect_source(SourceConfig(url=readings, query=sql, params={"lo": 7}))
    assert (plan.column_names, plan.row_count, plan.label) == (["id", "remark"], None, "query")
    counted = inspect_source(
        SourceConfig(url=readings, query=sql, params={"lo": 7}, count_rows=True)
    )
    assert counted.row_count == 3


def test_columns_and_filter_are_planned_into_the_sql(readings: str) -> None:
    source = SourceConfig.model_validate(
        {
            "url": readings,
            "table": "readings",
            "columns": ["note", {"name": "id", "as": "reading"}],
            "filter": [{"column": "id", "op": "between", "value": [2, 4]}],
        }
    )
    plan = inspect_source(source)
    assert plan.column_names == ["note", "reading"]
    assert plan.row_count == 3
    engine = sa.create_engine(readings)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(plan.sql), plan.params).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("n2", 2), ("no time", 3), ("n4", 4)]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"table": "reading"}, "source.table: table `reading` not found in `sqlite:///"),
        ({"table": "readings", "reader": "postgres_copy"},
         "source.reader: `postgres_copy` needs a postgresql:// (psycopg) URL, not "
         "`sqlite+pysqlite`; use `auto` or `sqlalchemy`"),
        ({"query": "SELECT nope FROM readings"},
         "source.query: the database rejected the query (no such column: nope)"),
        ({"query": "SELECT * FROM readings WHERE id = :id"},
         "source.params: the query uses `:id` but no value was given"),
        ({"table": "readings", "columns": ["idd"]}, "source.columns: "),
    ],
    ids=["unknown table", "copy reader", "unknown column", "missing bind", "unknown column"],
)  # fmt: skip
def test_inspecting_refuses_what_the_user_must_fix(
    readings: str, source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        inspect_source(SourceConfig.model_validate({"url": readings, **source}))
    assert str(caught.value).startswith(message), caught.value
    assert "\n" not in str(caught.value)


def test_an_unknown_table_lists_the_tables_there(readings: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        inspect_source(SourceConfig(url=readings, table="reading"))
    assert str(caught.value).endswith("; tables there: readings")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"partition_by": "id", "partitions": 3},
         [(None, 4, False), (4, 7, False), (7, None, False), (None, None, True)]),
        ({"partition_by": "id", "partitions": 2, "bounds": [0, 100]},
         [(None, 50, False), (50, None, False), (None, None, True)]),
        ({"partition_by": "value", "partitions": 2},
         [(None, 7.5, False), (7.5, None, False)]),
    ],
    ids=["min and max, with the NULL id", "bounds", "no NULL"],
)  # fmt: skip
def test_a_split_read_is_planned_from_the_columns_range(
    readings: str, fields: dict[str, Any], expected: list[tuple[Any, Any, bool]]
) -> None:
    source = SourceConfig(url=readings, query="SELECT * FROM readings", **fields)
    plan = inspect_source(source)
    with planned_partitions(plan, source) as planned:
        assert planned.snapshot is None  # SQLite shares no snapshot
        assert spans(planned.partitions) == expected
    engine = sa.create_engine(readings)
    counts = []
    with engine.connect() as conn:
        for partition in planned.partitions:
            sql, binds = plan.for_partition(partition, None).statement(
                conn.dialect.identifier_preparer.quote
            )
            counts.append(len(conn.execute(sa.text(sql), binds).all()))
    engine.dispose()
    assert sum(counts) == 11  # every row in exactly one partition


def test_a_text_partition_column_is_refused_when_planned(readings: str) -> None:
    source = SourceConfig(url=readings, table="readings", partition_by="note", partitions=2)
    plan = inspect_source(source)
    with pytest.raises(ConfigurationError) as caught, planned_partitions(plan, source):
        pass
    assert str(caught.value).startswith("source.partition_by: column `note` is str")
