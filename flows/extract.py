"""Extraction: connect, check the table or query, then stream record batches of `chunk_rows`.

Two readers feed the same Arrow batches: PostgreSQL's COPY protocol (flows/postgres.py, the
fast path) and SQLAlchemy with a server-side cursor (any other database, or on request).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from flows import postgres
from flows.columns import field_for_sqltype, infer_fields, rows_to_batch
from flows.config import SourceConfig
from flows.errors import ConfigurationError, SourceError, TransientSourceError

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
            if reader == "postgres_copy":
                declared = postgres.describe(conn, sql, source.params)
            count = _count_rows(conn, sql, source.params) if source.count_rows else None
    except (ConfigurationError, SourceError):
        raise
    except DBAPIError as exc:
        raise _source_error(exc, shown) from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"source `{shown}`: {_first_line(exc)}") from exc
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
    )


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
    schema: pa.Schema | None = None
    try:
        with engine.connect() as conn:
            # A reflected table's select applies SQLAlchemy's type processing (SQLite keeps
            # datetimes, decimals and booleans as text or numbers).
            statement: sa.Executable = (
                sa.select(_reflect_table(conn, plan.table, plan.display_url))
                if plan.table is not None
                else sa.text(plan.sql)
            )
            options = conn.execution_options(stream_results=True, yield_per=plan.chunk_rows)
            result = options.execute(statement, plan.params)
            for rows in result.partitions(plan.chunk_rows):
                if schema is None:
                    schema = pa.schema(infer_fields(plan.column_names, plan.declared, rows))
                yield rows_to_batch(rows, schema)
    except DBAPIError as exc:
        raise _source_error(exc, plan.display_url) from exc
    except SQLAlchemyError as exc:
        raise SourceError(f"source `{plan.display_url}`: {_first_line(exc)}") from exc
    finally:
        engine.dispose()
    if schema is None:  # no rows at all: still describe the columns
        yield rows_to_batch([], pa.schema(infer_fields(plan.column_names, plan.declared, [])))


def _choose_reader(source: SourceConfig, engine: Engine) -> str:
    is_psycopg = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    if source.reader == "postgres_copy" and not is_psycopg:
        raise ConfigurationError(
            f"source.reader: `postgres_copy` needs a postgresql:// (psycopg) URL, "
            f"not `{engine.dialect.name}+{engine.dialect.driver}`; use `auto` or `sqlalchemy`"
        )
    if source.reader == "sqlalchemy":
        return "sqlalchemy"
    return "postgres_copy" if is_psycopg else "sqlalchemy"


def _reflect_table(conn: sa.Connection, name: str, shown: str) -> sa.Table:
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
    return sa.Table(table_name, sa.MetaData(), schema=schema or None, autoload_with=conn)


def _query_columns(conn: sa.Connection, sql: str, params: dict[str, Any], shown: str) -> list[str]:
    probe = sa.text(f"SELECT * FROM ({sql}) AS _export_probe LIMIT 0")
    try:
        result = conn.execute(probe, params)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"source.params: {_first_line(exc)}") from exc
    except sa.exc.StatementError as exc:
        if isinstance(exc, DBAPIError) and _is_connection_problem(exc):
            raise
        missing = getattr(exc.orig, "args", [""])[0] if exc.orig is not None else ""
        raise ConfigurationError(
            f"source.query: the database rejected the query ({_first_line(exc.orig or exc)}); "
            f"fix the SQL or its params{(' ' + str(missing)) if not missing else ''} "
            f"(source `{shown}`)"
        ) from exc
    return list(result.keys())


def _count_rows(conn: sa.Connection, sql: str, params: dict[str, Any]) -> int:
    count = conn.execute(sa.text(f"SELECT count(*) FROM ({sql}) AS _export_count"), params)
    return int(count.scalar_one())


def _is_connection_problem(exc: DBAPIError) -> bool:
    return (
        bool(exc.connection_invalidated)
        or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
        and any(
            word in str(exc.orig).lower()
            for word in ("connection", "could not connect", "timeout", "terminat", "server closed")
        )
    )


def _source_error(exc: DBAPIError, shown: str) -> SourceError:
    message = _first_line(exc.orig or exc)
    if _is_connection_problem(exc):
        return TransientSourceError(
            f"source `{shown}`: lost or could not open the connection ({message}); "
            "check the database is running and reachable"
        )
    if "not a database" in message or "unable to open database" in message:
        return ConfigurationError(f"source.url: `{shown}` is not a readable database ({message})")  # type: ignore[return-value]
    return SourceError(f"source `{shown}`: {message}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
