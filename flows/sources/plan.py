"""Inspecting a source before anything is written: connect, check the table or query, learn
its columns and their types, choose the reader, and count the rows for the progress bar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from flows.config import SourceConfig
from flows.errors import ConfigurationError, SourceError, TransientSourceError, first_line
from flows.sources import postgres
from flows.sources.connections import create_engine, display_url, is_psycopg, resolve_url
from flows.sources.failures import source_failure
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
                table = reflect_table(conn, source.table, shown)
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
            if is_psycopg(engine):  # PostgreSQL declares every column's type, queries too
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
        raise source_failure(exc, shown) from exc
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


def _choose_reader(source: SourceConfig, engine: sa.Engine) -> str:
    copy_possible = is_psycopg(engine)
    if source.reader == "postgres_copy" and not copy_possible:
        raise ConfigurationError(
            f"source.reader: `postgres_copy` needs a postgresql:// (psycopg) URL, "
            f"not `{engine.dialect.name}+{engine.dialect.driver}`; use `auto` or `sqlalchemy`"
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
        error = source_failure(exc, shown)
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
