"""Inspecting a source before anything is written: connect, check the table or query, learn
its columns and their types, choose the reader, count the rows for the progress bar, and plan
the partitions of a split read (in the snapshot they all read) or hold the snapshot an unsplit
PostgreSQL read shares with its cursor and checks."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, cast

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from flows.core.columns import make_field
from flows.core.config import SourceConfig
from flows.core.errors import ConfigurationError, TransientSourceError, first_line
from flows.sources import mysql, postgres
from flows.sources.connections import (
    create_engine,
    display_url,
    is_psycopg,
    is_pymysql,
    resolve_url,
)
from flows.sources.cursor import (
    CursorMark,
    CursorRange,
    cursor_kind,
    cursor_range,
    max_statement,
    source_max,
)
from flows.sources.failures import source_errors, source_failure
from flows.sources.masking import HashedColumn, hashed_columns
from flows.sources.partitions import (
    Partition,
    block_ranges,
    column_kind,
    column_ranges,
    partition_sql,
)
from flows.sources.shape import (
    FILTER_PARAM,
    Shape,
    compile_named,
    plan_shape,
    shaped_query_sql,
    shaped_table_select,
)
from flows.sources.values import field_for_sqltype

_MAX_TABLES_LISTED = 20


@dataclass(frozen=True)
class SourcePlan:
    """What inspecting the source found: how to read it and what its columns are."""

    url: str = field(repr=False)  # may hold a password: never logged, see display_url
    display_url: str
    sql: str
    params: dict[str, Any]
    reader: str  # "postgres_copy" or "sqlalchemy"
    column_names: list[str]
    declared: list[pa.Field | None]  # None: inferred from the first chunk
    row_count: int | None
    chunk_rows: int
    label: str  # the table name, or "query"
    table: str | None = None
    text_oids: tuple[int, ...] = ()  # PostgreSQL types read as the server's text
    type_oids: tuple[int, ...] = ()  # PostgreSQL: each column's type
    source_types: tuple[str, ...] = ()  # each column's type as the database names it
    partition: Partition | None = None  # the range this plan reads, if the read is split
    snapshot: str | None = None  # PostgreSQL: the exported snapshot every partition reads
    shape: Shape | None = None  # source.columns and source.filter, already in `sql`
    hashed: tuple[HashedColumn, ...] = ()  # hashed per batch by the reader (masking.py)
    cursor: CursorRange | None = None  # source.incremental's range, already in `sql`
    # Output columns (after source.columns' renames) every reader returns the rows sorted by,
    # ascending, so equal keys arrive together (a partitioned layout's folders). NULLs group
    # too: last on PostgreSQL, first on MySQL, MariaDB and SQLite.
    order_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.order_by if name not in self.column_names]
        if unknown:
            raise ConfigurationError(
                f"order_by: `{unknown[0]}` is not a column of the export "
                f"(columns: {', '.join(self.column_names)})",
                field="order_by",
                hint="sort by an output column (after source.columns' renames)",
            )

    def for_partition(self, partition: Partition, snapshot: str | None) -> SourcePlan:
        """The plan of one partition of this read."""
        count = None if self.row_count is None else round(self.row_count * partition.share)
        return replace(self, partition=partition, snapshot=snapshot, row_count=count)

    def statement(self, quote: Callable[[str], str]) -> tuple[str, dict[str, Any]]:
        """The SQL this plan reads (its partition's range, if any) and the values it binds;
        `quote` quotes a column name for the database's dialect."""
        sql, params = self.sql, self.params
        if self.partition is not None:
            filtered = self.shape is not None and bool(self.shape.conditions)
            sql = partition_sql(sql, self.partition, quote, filtered=filtered)
            params = {**params, **self.partition.bind_values()}
        if self.order_by:
            keys = ", ".join(quote(name) for name in self.order_by)
            sql = f"SELECT * FROM ({sql}) AS _export_sorted ORDER BY {keys}"
        return sql, params


@dataclass(frozen=True)
class PartitionPlan:
    """The ranges of a split read, planned once, and the snapshot they read (PostgreSQL)."""

    partitions: list[Partition]
    snapshot: str | None
    plan: SourcePlan  # the plan the partitions read: a stored cursor's high taken in the snapshot


def inspect_source(source: SourceConfig, mark: CursorMark | None = None) -> SourcePlan:
    """Connect, check the table or query, learn its columns and (optionally) count its rows.
    With `source.incremental`, the range above `mark` (the stored one) up to the cursor's
    largest value now goes into the SQL as two bound conditions (flows/sources/cursor.py).

    Raises ConfigurationError for anything the user must fix, TransientSourceError when the
    database cannot be reached.
    """
    url = resolve_url(source)
    engine = create_engine(url)
    shown = display_url(url)
    try:
        with source_errors(shown, source.table), engine.connect() as conn:
            table: sa.Table | None = None
            if source.table is not None:
                table = reflect_table(conn, source.table, shown)
                sql = str(sa.select(table).compile(conn, compile_kwargs={"literal_binds": True}))
                declared: list[pa.Field | None] = [
                    field_for_sqltype(column.name, column.type) for column in table.columns
                ]
                names = [column.name for column in table.columns]
                source_types = tuple(_type_name(column.type, conn) for column in table.columns)
                label = source.table
            else:
                sql = source.query or ""
                names = _query_columns(conn, sql, source.params, shown)
                declared = [None] * len(names)
                source_types = ("",) * len(names)  # known once rows are read
                label = "query"
            reader = _choose_reader(source, engine)
            text_oids: tuple[int, ...] = ()
            type_oids: tuple[int, ...] = ()
            if is_psycopg(engine):  # PostgreSQL declares every column's type, queries too
                described = postgres.describe(conn, sql, source.params)
                declared = list(described.fields)
                text_oids, type_oids = described.text_oids, described.type_oids
                source_types = described.type_names
            elif is_pymysql(engine):  # so do MySQL and MariaDB, in their column metadata
                described_mysql = mysql.describe(conn, sql, source.params)
                declared = list(described_mysql.fields)
                source_types = described_mysql.type_names
            params = dict(source.params)
            fold_case = conn.dialect.name == "sqlite"  # SQLite: `a` and `A` are one name
            dialect = conn.dialect.name
            shape = plan_shape(
                source.columns, source.filter, names, declared, shown, fold_case, dialect
            )
            cursor: CursorRange | None = None
            if source.incremental is not None:
                cursor = _cursor_range(conn, source, mark, table, sql, names, declared, shown)
                shape, cursor = _with_cursor(shape, cursor, names)
            if shape is not None:  # the projection and WHERE, in the SQL every reader runs
                if table is not None:
                    sql, filter_values = compile_named(
                        shaped_table_select(table, shape), conn.dialect
                    )
                else:
                    sql, filter_values = shaped_query_sql(sql, names, shape, conn.dialect)
                params.update(filter_values)
                order = [names.index(name) for name, _ in shape.columns]
                declared = [
                    _renamed(declared[i], out)
                    for i, (_, out) in zip(order, shape.columns, strict=True)
                ]
                source_types = tuple(source_types[i] for i in order)
                type_oids = tuple(type_oids[i] for i in order) if type_oids else ()
                names = shape.output_names
                declared, type_oids = _as_text(shape, declared, type_oids)
            wants_count = (
                source.table is not None if source.count_rows is None else source.count_rows
            )
            count = _count_rows(conn, sql, params) if wants_count else None
    finally:
        engine.dispose()
    return SourcePlan(
        url=url,
        display_url=shown,
        sql=sql,
        params=params,
        reader=reader,
        column_names=names,
        declared=declared,
        row_count=count,
        chunk_rows=source.chunk_rows,
        label=label,
        table=source.table,
        text_oids=text_oids,
        type_oids=type_oids,
        source_types=source_types,
        shape=shape,
        hashed=hashed_columns(source.columns),
        cursor=cursor,
    )


_TEXT_OID = 25


def _as_text(
    shape: Shape, declared: list[pa.Field | None], type_oids: tuple[int, ...]
) -> tuple[list[pa.Field | None], tuple[int, ...]]:
    """A hashed or last4 column is selected as text (flows/sources/masking.py), whatever
    its type was (a uuid): its field and, on PostgreSQL, its type are text's."""
    texts = [spec.hash is not None or spec.mask == "last4" for spec in shape.specs]
    if not any(texts):
        return declared, type_oids
    fields = [
        make_field(field.name, "str") if text and field is not None else field
        for field, text in zip(declared, texts, strict=True)
    ]
    if type_oids:
        type_oids = tuple(
            _TEXT_OID if text else oid for oid, text in zip(type_oids, texts, strict=True)
        )
    return fields, type_oids


def _cursor_range(
    conn: sa.Connection,
    source: SourceConfig,
    mark: CursorMark | None,
    table: sa.Table | None,
    sql: str,
    names: list[str],
    declared: list[pa.Field | None],
    shown: str,
) -> CursorRange:
    """The run's cursor range: the column checked, and its largest value taken now."""
    assert source.incremental is not None
    column = source.incremental.cursor
    kind, field = cursor_kind(source.incremental, names, declared, shown)
    if table is not None:
        statement = max_statement(table, column)
    else:
        rows = sa.text(sql).columns(*(sa.column(name) for name in names)).subquery("_export_cur")
        statement = max_statement(rows, column)
    high, nulls = source_max(conn, statement, source.params)
    cursor = cursor_range(source.incremental, kind, field, mark, high, nulls)
    max_sql, _ = compile_named(cast("sa.Select[Any]", statement), conn.dialect)
    return replace(cursor, max_sql=max_sql)


def _with_cursor(
    shape: Shape | None, cursor: CursorRange, names: list[str]
) -> tuple[Shape, CursorRange]:
    """The shape with the cursor's range added to its WHERE (every column when none), and
    the cursor knowing which bound parameter holds its `high` (the last condition's)."""
    if shape is None:
        shape = Shape(tuple((name, name) for name in names), (), ())
    conditions, values = cursor.conditions()
    shaped = replace(  # the columns and their masks as they are
        shape, conditions=(*shape.conditions, *conditions), values=(*shape.values, *values)
    )
    return shaped, replace(cursor, high_param=f"{FILTER_PARAM}_{len(shaped.conditions) - 1}")


def _renamed(field: pa.Field | None, name: str) -> pa.Field | None:
    return None if field is None else field.with_name(name)


def _type_name(sqltype: sa.types.TypeEngine[Any], conn: sa.Connection) -> str:
    try:
        return str(sqltype.compile(dialect=conn.dialect))
    except Exception:  # noqa: BLE001 - a type the dialect cannot write back: its class name
        return type(sqltype).__name__


@contextmanager
def planned_partitions(plan: SourcePlan, source: SourceConfig) -> Iterator[PartitionPlan]:
    """The partitions of `source.partitions`, planned in one transaction that stays open until
    the block exits. On PostgreSQL it is REPEATABLE READ and exports its snapshot: every
    partition reads exactly that state, so the parts together are the table at one instant
    however it changes meanwhile. Other databases share no snapshot: each partition reads the
    committed state of its own moment (README, "Partitions")."""
    engine = create_engine(plan.url)
    try:
        with _held_snapshot(plan, engine) as (conn, snapshot, plan):
            partitions = _partitions(conn, plan, source)
            yield PartitionPlan(partitions, snapshot, plan)
    finally:
        engine.dispose()


@contextmanager
def read_snapshot(plan: SourcePlan) -> Iterator[SourcePlan]:
    """An unsplit read's plan in a snapshot held until the block exits (PostgreSQL): its
    `snapshot` set for the reader to import and a stored cursor's `high` taken in it, so the
    rows read, the range (and the mark) and the checks counted meanwhile are one state of the
    database. Elsewhere `plan` as it is, and no connection is made."""
    engine = create_engine(plan.url)
    try:
        if not is_psycopg(engine):
            yield plan
            return
        with _held_snapshot(plan, engine) as (_, snapshot, held):
            yield replace(held, snapshot=snapshot)
    finally:
        engine.dispose()


@contextmanager
def _held_snapshot(
    plan: SourcePlan, engine: sa.Engine
) -> Iterator[tuple[sa.Connection, str | None, SourcePlan]]:
    """A connection to the source; on PostgreSQL in a REPEATABLE READ transaction, held until
    the block exits, that exports its snapshot, and the plan with a stored cursor's `high`
    taken in it."""
    with source_errors(plan.display_url, plan.table), engine.connect() as conn:
        snapshot: str | None = None
        if is_psycopg(engine):
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            exported = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            snapshot = str(exported)
            plan = _cursor_in_snapshot(conn, plan)
        yield conn, snapshot, plan


def _cursor_in_snapshot(conn: sa.Connection, plan: SourcePlan) -> SourcePlan:
    """A stored cursor's `high` taken again in the snapshot the run reads, so the run
    delivers, and its mark moves to, exactly what that snapshot holds. (A source without a
    cursor value at inspection keeps its empty range: the next run reads what came since.)"""
    cursor = plan.cursor
    if cursor is None or cursor.high is None or not cursor.max_sql:
        return plan
    high, nulls = conn.execute(sa.text(cursor.max_sql), plan.params).one()
    if high is None:
        return plan
    params = {**plan.params, cursor.high_param: high}
    return replace(plan, params=params, cursor=replace(cursor, high=high, nulls=int(nulls or 0)))


def _partitions(conn: sa.Connection, plan: SourcePlan, source: SourceConfig) -> list[Partition]:
    if source.partition_by is None:
        assert plan.table is not None, "the config asks queries for partition_by"
        return block_ranges(_table_blocks(conn, plan), source.partitions)
    column = source.partition_by
    quote = conn.dialect.identifier_preparer.quote
    if source.bounds is not None:
        low, high = source.bounds
        kind = column_kind(column, plan.column_names, plan.declared, low)
        nulls = True  # not counted: the NULL partition may well be empty
    else:
        sql = (
            f"SELECT min({quote(column)}), max({quote(column)}), "
            f"count(*) - count({quote(column)}) FROM ({plan.sql}) AS _export_bounds"
        )
        if column not in plan.column_names:  # say so before the database does
            column_kind(column, plan.column_names, plan.declared, None)
        low, high, null_count = conn.execute(sa.text(sql), plan.params).one()
        kind = column_kind(column, plan.column_names, plan.declared, low)
        nulls = bool(null_count)
    return column_ranges(column, kind, low, high, source.partitions, with_nulls=nulls)


def _table_blocks(conn: sa.Connection, plan: SourcePlan) -> int:
    """How many pages the table has; a view or a partitioned table has none to split."""
    schema, _, name = (plan.table or "").rpartition(".")
    found = conn.execute(
        sa.text(
            "SELECT c.relkind, pg_relation_size(c.oid) / current_setting('block_size')::int "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(CASE WHEN :schema = '' THEN quote_ident(:name) "
            "ELSE quote_ident(:schema) || '.' || quote_ident(:name) END)"
        ),
        {"schema": schema, "name": name},
    ).one()
    kind, blocks = found
    if kind not in ("r", "m"):
        raise ConfigurationError(
            f"source.partitions: `{plan.table}` is not a plain table (a view or a partitioned "
            "table has no blocks to split)",
            field="source.partitions",
            hint="set source.partition_by, a column to split it by",
        )
    return int(blocks)


def _choose_reader(source: SourceConfig, engine: sa.Engine) -> str:
    copy_possible = is_psycopg(engine)
    if source.reader == "postgres_copy" and not copy_possible:
        raise ConfigurationError(
            "source.reader: `postgres_copy` needs a postgresql:// (psycopg) URL, "
            f"not `{engine.dialect.name}+{engine.dialect.driver}`",
            field="source.reader",
            hint="use `auto` or `sqlalchemy`",
        )
    if source.reader == "sqlalchemy":
        return "sqlalchemy"
    return "postgres_copy" if copy_possible else "sqlalchemy"


def reflect_table(
    conn: sa.Connection, name: str, shown: str, *, json_as_text: bool = False
) -> sa.Table:
    """The table, reflected; `json_as_text` reads JSON columns as their stored text."""
    schema, _, table_name = name.rpartition(".")
    inspector = sa.inspect(conn)
    if not inspector.has_table(table_name, schema=schema or None):
        try:
            tables = inspector.get_table_names(schema=schema or None)
            views = inspector.get_view_names(schema=schema or None)
        except SQLAlchemyError:
            tables, views = [], []
        if table_name in views:
            pass  # views reflect like tables
        else:
            known = sorted(tables + views)
            listed = ", ".join(known[:_MAX_TABLES_LISTED]) + (", …" if len(known) > 20 else "")
            raise ConfigurationError(
                f"source.table: table `{name}` not found in `{shown}`; "
                + (f"tables there: {listed}" if known else "the database has no tables"),
                field="source.table",
            )
    with warnings.catch_warnings():  # a type SQLAlchemy does not know (box, a domain) is
        # still exported: its field comes from the database's description or from its values
        warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
        table = sa.Table(table_name, sa.MetaData(), schema=schema or None, autoload_with=conn)
    if json_as_text:
        for column in table.columns:
            if isinstance(column.type, sa.JSON):
                column.type = sa.Text()
    return table


def _query_columns(conn: sa.Connection, sql: str, params: dict[str, Any], shown: str) -> list[str]:
    check_bind_params(sql, params)
    probe = sa.text(f"SELECT * FROM ({sql}) AS _export_probe LIMIT 0")
    try:
        result = conn.execute(probe, params)
    except DBAPIError as exc:
        error = source_failure(exc, shown)
        if isinstance(error, ConfigurationError | TransientSourceError):
            raise error from exc
        raise ConfigurationError(
            f"source.query: the database rejected the query ({first_line(exc.orig or exc)})",
            field="source.query",
            hint=f"fix the SQL (source `{shown}`)",
        ) from exc
    except sa.exc.StatementError as exc:
        raise ConfigurationError(f"source.query: {first_line(exc)}", field="source.query") from exc
    names = list(result.keys())
    if conn.dialect.name == "sqlite" and _renamed_by_sqlite(names):
        names = _sqlite_query_names(conn, sql, params)
    return names


_NUMBERED = re.compile(r"(.*):[0-9]+")


def _renamed_by_sqlite(names: list[str]) -> bool:
    """Whether SQLite may have renamed a column of the wrapped query: it makes a subquery's
    names unique (ignoring case) by replacing a repeated name's `:digits` tail, if any, with
    `:N`, so `select 1 as a, 2 as a` wrapped names `a` and `a:1`."""
    seen: set[str] = set()
    for name in names:
        numbered = _NUMBERED.fullmatch(name)
        if numbered is not None and numbered.group(1).casefold() in seen:
            return True
        seen.add(name.casefold())
        seen.add(_NUMBERED.sub(r"\1", name).casefold())
    return False


def _sqlite_query_names(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[str]:
    """The query's own column names, as it writes them (`a`, `a`), not as SQLite renamed them
    in the wrapped probe: from running the query itself, closed before any row is fetched
    (SQLite prepares no statement it does not start; run only when a name looks renamed)."""
    result = conn.execute(sa.text(sql), params)
    try:
        return list(result.keys())
    finally:
        result.close()


def check_bind_params(sql: str, params: dict[str, Any]) -> None:
    """Every :name in the query needs a value in source.params."""
    missing = [name for name in sa.text(sql).compile().params if name not in params]
    if missing:
        raise ConfigurationError(
            f"source.params: the query uses `:{missing[0]}` but no value was given",
            field="source.params",
            hint="add it to source.params (write \\: for a literal colon before a word)",
        )


def _count_rows(conn: sa.Connection, sql: str, params: dict[str, Any]) -> int:
    count = conn.execute(sa.text(f"SELECT count(*) FROM ({sql}) AS _export_count"), params)
    return int(count.scalar_one())
