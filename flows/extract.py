"""Extraction: connect, check the table or query, then stream record batches of `chunk_rows`.

Two readers feed the same Arrow batches: PostgreSQL's COPY protocol (flows/postgres.py, the
fast path) and SQLAlchemy with a server-side cursor (any other database, or on request).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from flows import pg_render, postgres
from flows.columns import (
    field_for_sqltype,
    infer_fields,
    is_undetermined,
    rendered_rows,
    rows_to_batch,
)
from flows.config import FormatOptions, SourceConfig
from flows.errors import (
    ConfigurationError,
    SourceError,
    TransientSourceError,
    classify_source_failure,
    first_line,
)
from flows.types import ExportFormat

_MAX_TABLES_LISTED = 20
# How much the SQLAlchemy reader holds back while a column's type is unknown (only NULLs so
# far, in a query without declared types). Past it, such a column is written as text.
HOLD_BYTES = 64 * 1024 * 1024


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


def resolve_url(source: SourceConfig) -> str:
    """The SQLAlchemy URL of the source, from the config or its saved block."""
    if source.url is not None:
        return normalise_url(source.url)
    from blocks.sources import SqlSource

    try:
        block = cast(SqlSource, SqlSource.load(str(source.block)))
    except ValueError as exc:
        raise ConfigurationError(
            f"source.block: no saved SqlSource block named `{source.block}`; "
            "create it with SqlSource(url=...).save(name)"
        ) from exc
    return normalise_url(block.url.get_secret_value())


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (it is the driver we install)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL with its password hidden: the only form that is logged."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"source.url: `{display_url(url)}` is not a SQLAlchemy URL; use e.g. "
            "sqlite:///path/to.db or postgresql://user:pass@host/db"
        ) from exc
    _check_sqlite_file(parsed)
    try:
        return sa.create_engine(parsed, pool_pre_ping=False)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(
            f"source.url: no driver for `{parsed.drivername}`; install its DB-API package "
            "or use postgresql://, sqlite:// or mysql+pymysql://"
        ) from exc


def _check_sqlite_file(url: URL) -> None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if url.database.startswith("file:"):
        return
    if not os.path.isfile(url.database):
        raise ConfigurationError(
            f"source.url: SQLite database `{url.database}` does not exist "
            f"(relative to {os.getcwd()}); check the path"
        )


def inspect_source(source: SourceConfig) -> SourcePlan:
    """Connect, check the table or query, learn its columns and (optionally) count its rows.

    Raises ConfigurationError for anything the user must fix, TransientSourceError when the
    database cannot be reached.
    """
    url = resolve_url(source)
    engine = create_engine(url)
    shown = display_url(url)
    try:
        with engine.connect() as conn:
            if source.table is not None:
                table = _reflect_table(conn, source.table, shown)
                sql = str(sa.select(table).compile(conn, compile_kwargs={"literal_binds": True}))
                declared: list[pa.Field | None] = [
                    field_for_sqltype(column.name, column.type) for column in table.columns
                ]
                names = [column.name for column in table.columns]
                label = source.table
            else:
                sql = source.query or ""
                names = _query_columns(conn, sql, source.params, shown)
                declared = [None] * len(names)
                label = "query"
            reader = _choose_reader(source, engine)
            text_oids: tuple[int, ...] = ()
            type_oids: tuple[int, ...] = ()
            if _is_psycopg(engine):  # PostgreSQL declares every column's type, queries too
                described = postgres.describe(conn, sql, source.params)
                declared = list(described.fields)
                text_oids, type_oids = described.text_oids, described.type_oids
            wants_count = (
                source.table is not None if source.count_rows is None else source.count_rows
            )
            count = _count_rows(conn, sql, source.params) if wants_count else None
    except (ConfigurationError, SourceError):
        raise
    except DBAPIError as exc:
        raise _source_error(exc, shown) from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"source `{shown}`: {first_line(exc)}") from exc
    finally:
        engine.dispose()
    return SourcePlan(
        url=url,
        display_url=shown,
        sql=sql,
        params=dict(source.params),
        reader=reader,
        column_names=names,
        declared=declared,
        row_count=count,
        chunk_rows=source.chunk_rows,
        label=label,
        table=source.table,
        text_oids=text_oids,
        type_oids=type_oids,
    )


def read_for_format(
    plan: SourcePlan, fmt: ExportFormat, options: FormatOptions
) -> Generator[pa.RecordBatch, None, None]:
    """What a writer of `fmt` is fed: from PostgreSQL, the finished CSV or JSON rows that
    COPY writes with our canonical text (see flows/pg_render.py); otherwise typed batches."""
    if plan.reader == "postgres_copy":
        query = pg_render.server_rendered(plan.sql, plan.declared, plan.type_oids, fmt, options)
        if query is not None:
            yield from _server_rendered(plan, query)
            return
    yield from read_batches(plan)


def _server_rendered(plan: SourcePlan, query: pg_render.RenderedQuery) -> Iterator[pa.RecordBatch]:
    blocks = postgres.copy_rows(
        plan.url, query.select, plan.params, query.copy_options, plan.display_url
    )
    empty = True
    for rows in blocks:
        empty = False
        yield rendered_rows(rows, query.rows_format, plan.column_names)
    if empty:
        yield rendered_rows(pa.array([], pa.string()), query.rows_format, plan.column_names)


def read_batches(plan: SourcePlan) -> Iterator[pa.RecordBatch]:
    """Stream the source as record batches of at most `chunk_rows` rows."""
    if plan.reader == "postgres_copy":
        yield from postgres.copy_batches(
            plan.url, plan.sql, plan.params, plan.declared, plan.chunk_rows, plan.display_url
        )
        return
    yield from _sqlalchemy_batches(plan)


def _sqlalchemy_batches(plan: SourcePlan) -> Iterator[pa.RecordBatch]:
    engine = create_engine(plan.url)
    fields = list(plan.declared)
    yielded = False
    try:
        with engine.connect() as conn:
            statement: sa.Executable = sa.text(plan.sql)
            if _is_psycopg(engine):
                # Same session and same text forms as COPY, so both readers agree.
                postgres.prepare_connection(conn, plan.text_oids)
            elif plan.table is not None:
                # A reflected table's select applies SQLAlchemy's type processing (SQLite
                # keeps datetimes, decimals and booleans as text or numbers).
                table = _reflect_table(conn, plan.table, plan.display_url, json_as_text=True)
                statement = sa.select(table)
            options = conn.execution_options(stream_results=True, yield_per=plan.chunk_rows)
            result = options.execute(statement, plan.params)
            held: list[pa.RecordBatch] = []
            for rows in result.partitions(plan.chunk_rows):
                # Columns with only NULLs so far settle their type on their first value;
                # chunks are held back (boundedly) until every column has one.
                fields = infer_fields(plan.column_names, fields, rows)
                held.append(rows_to_batch(rows, pa.schema(fields)))
                if _settled(fields) or sum(b.nbytes for b in held) >= HOLD_BYTES:
                    yield from _conformed(held, pa.schema(fields))
                    held, yielded = [], True
            if held:
                yield from _conformed(held, pa.schema(fields))
                yielded = True
    except DBAPIError as exc:
        raise _source_error(exc, plan.display_url) from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"source `{plan.display_url}`: {first_line(exc)}") from exc
    finally:
        engine.dispose()
    if not yielded:  # no rows at all: still describe the columns
        yield rows_to_batch([], pa.schema(infer_fields(plan.column_names, fields, [])))


def _settled(fields: list[pa.Field | None]) -> bool:
    return not any(field is None or is_undetermined(field) for field in fields)


def _conformed(batches: list[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Give held batches the latest schema: their all-NULL columns take the settled type."""
    for batch in batches:
        if batch.schema.equals(schema):
            yield batch
            continue
        arrays = [
            pa.nulls(batch.num_rows, field.type) if pa.types.is_null(column.type) else column
            for column, field in zip(batch.columns, schema, strict=True)
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _is_psycopg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def _choose_reader(source: SourceConfig, engine: Engine) -> str:
    is_psycopg = _is_psycopg(engine)
    if source.reader == "postgres_copy" and not is_psycopg:
        raise ConfigurationError(
            f"source.reader: `postgres_copy` needs a postgresql:// (psycopg) URL, "
            f"not `{engine.dialect.name}+{engine.dialect.driver}`; use `auto` or `sqlalchemy`"
        )
    if source.reader == "sqlalchemy":
        return "sqlalchemy"
    return "postgres_copy" if is_psycopg else "sqlalchemy"


def _reflect_table(
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
                + (f"tables there: {listed}" if known else "the database has no tables")
            )
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
        error = _source_error(exc, shown)
        if isinstance(error, ConfigurationError | TransientSourceError):
            raise error from exc
        raise ConfigurationError(
            f"source.query: the database rejected the query ({first_line(exc.orig or exc)}); "
            f"fix the SQL (source `{shown}`)"
        ) from exc
    except sa.exc.StatementError as exc:
        raise ConfigurationError(f"source.query: {first_line(exc)}") from exc
    return list(result.keys())


def check_bind_params(sql: str, params: dict[str, Any]) -> None:
    """Every :name in the query needs a value in source.params."""
    missing = [name for name in sa.text(sql).compile().params if name not in params]
    if missing:
        raise ConfigurationError(
            f"source.params: the query uses `:{missing[0]}` but no value was given; add it to "
            "source.params (write \\: for a literal colon before a word)"
        )


def _count_rows(conn: sa.Connection, sql: str, params: dict[str, Any]) -> int:
    count = conn.execute(sa.text(f"SELECT count(*) FROM ({sql}) AS _export_count"), params)
    return int(count.scalar_one())


def _source_error(exc: DBAPIError, shown: str) -> SourceError:
    return classify_source_failure(first_line(exc.orig or exc), shown)
