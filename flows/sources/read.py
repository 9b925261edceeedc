"""Reading a source as a stream of record batches of at most `chunk_rows` rows.

Two readers feed the same Arrow batches: PostgreSQL's COPY protocol (flows/sources/postgres.py,
the fast path) and SQLAlchemy with a server-side cursor (any other database, or on request).
For CSV and JSON from PostgreSQL the server renders the rows itself
(flows/sources/pg_render.py).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from flows.core.columns import decimal_field, is_undetermined, rendered_rows
from flows.core.config import FormatOptions
from flows.core.formats import ExportFormat
from flows.sources import mysql, pg_render, postgres
from flows.sources.connections import create_engine, is_psycopg, is_pymysql
from flows.sources.failures import source_errors
from flows.sources.masking import hash_batches
from flows.sources.partitions import partition_clause
from flows.sources.plan import SourcePlan, reflect_table
from flows.sources.shape import shaped_table_select
from flows.sources.values import infer_fields, rows_to_batch

# Rows per chunk read for a text format (CSV, JSON, XML) on the Arrow path: its writer renders
# a few thousand rows at a time (writers.RENDER_ROWS), so whole 50,000-row chunks would only
# hold the rows twice over (the chunk and its concatenation): ~30 MB of XML's peak
# (docs/benchmarks.md). Parquet keeps `chunk_rows`: its chunks are its row groups. Avro reads
# decimals as decimal128 too (its decimal logical type), and writes blocks of its own size.
BINARY_FORMATS: tuple[ExportFormat, ...] = ("parquet", "avro")
TEXT_CHUNK_ROWS = 16_384

# How much the SQLAlchemy reader holds back while a column's type is unknown (only NULLs so
# far, in a query without declared types). Past it, such a column is written as text.
HOLD_BYTES = 64 * 1024 * 1024


def read_for_format(
    plan: SourcePlan, fmt: ExportFormat, options: FormatOptions
) -> Generator[pa.RecordBatch, None, None]:
    """What a writer of `fmt` is fed: from PostgreSQL, the finished CSV or JSON rows that
    COPY writes with our canonical text (flows/sources/pg_render.py); else typed batches."""
    rendered = _rendered_query(plan, fmt, options)
    if rendered is not None:
        yield from _server_rendered(plan, *rendered)
        return
    if fmt not in BINARY_FORMATS:
        plan = replace(
            plan, chunk_rows=min(plan.chunk_rows, TEXT_CHUNK_ROWS), declared=_exact_text(plan)
        )
    yield from read_batches(plan)


def rows_arrive_finished(plan: SourcePlan, fmt: ExportFormat, options: FormatOptions) -> bool:
    """Whether COPY hands the writer finished rows of `fmt` (no column to count NULLs in)."""
    return _rendered_query(plan, fmt, options) is not None


def _rendered_query(
    plan: SourcePlan, fmt: ExportFormat, options: FormatOptions
) -> tuple[pg_render.RenderedQuery, dict[str, Any]] | None:
    if plan.reader != "postgres_copy" or plan.hashed:  # hashes are made here, per batch
        return None
    sql, params = plan.statement(postgres.quote_identifier)
    order = tuple(plan.column_names.index(name) for name in plan.order_by)
    query = pg_render.server_rendered(sql, plan.declared, plan.type_oids, fmt, options, order)
    return None if query is None else (query, params)


def _exact_text(plan: SourcePlan) -> list[pa.Field | None]:
    """A text format writes a decimal's exact text, so it reads that text rather than a
    decimal128: PostgreSQL's `NaN` (which a numeric(p,s) column may hold and no decimal128
    can) is then written as the server-rendered path writes it, a string in JSON."""
    return [
        decimal_field(field.name, None, None).with_metadata(field.metadata)
        if field is not None and pa.types.is_decimal(field.type)
        else field
        for field in plan.declared
    ]


def _server_rendered(
    plan: SourcePlan, query: pg_render.RenderedQuery, params: dict[str, Any]
) -> Iterator[pa.RecordBatch]:
    blocks = postgres.copy_rows(
        plan.url,
        query.select,
        params,
        query.copy_options,
        plan.display_url,
        plan.snapshot,
        partitioned=plan.partition is not None,
    )
    empty = True
    for rows in blocks:
        empty = False
        yield rendered_rows(rows, query.rows_format, plan.column_names)
    if empty:
        yield rendered_rows(pa.array([], pa.string()), query.rows_format, plan.column_names)


def read_batches(plan: SourcePlan) -> Iterator[pa.RecordBatch]:
    """Stream the source as record batches of at most `chunk_rows` rows (hashed columns
    hashed: flows/sources/masking.py)."""
    if plan.hashed:
        yield from hash_batches(_read_batches(plan), plan.hashed)
        return
    yield from _read_batches(plan)


def _read_batches(plan: SourcePlan) -> Generator[pa.RecordBatch, None, None]:
    if plan.reader == "postgres_copy":
        sql, params = plan.statement(postgres.quote_identifier)
        yield from postgres.copy_batches(
            plan.url,
            sql,
            params,
            plan.declared,
            plan.chunk_rows,
            plan.display_url,
            plan.snapshot,
            partitioned=plan.partition is not None,
        )
        return
    yield from _sqlalchemy_batches(plan)


def _sqlalchemy_batches(plan: SourcePlan) -> Iterator[pa.RecordBatch]:
    engine = create_engine(plan.url)
    fields = list(plan.declared)
    yielded = False
    try:
        with source_errors(plan.display_url, plan.table), engine.connect() as conn:
            sql, params = plan.statement(engine.dialect.identifier_preparer.quote)
            statement: sa.Executable = sa.text(sql)
            if is_psycopg(engine):
                # Same session and same text forms as COPY, so both readers agree.
                postgres.prepare_connection(
                    conn, plan.text_oids, plan.snapshot, partitioned=plan.partition is not None
                )
            elif is_pymysql(engine):
                # The driver's own values (SQLAlchemy's TIME type would fold durations into a
                # time of day), TIMESTAMP in UTC; the types were declared at inspection.
                mysql.prepare_connection(conn)
            elif plan.table is not None:
                # A reflected table's select applies SQLAlchemy's type processing (SQLite
                # keeps datetimes, decimals and booleans as text or numbers).
                table = reflect_table(conn, plan.table, plan.display_url, json_as_text=True)
                statement, params = _table_select(table, plan), {}
            options = conn.execution_options(stream_results=True, yield_per=plan.chunk_rows)
            result = options.execute(statement, params)
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
    finally:
        engine.dispose()
    if not yielded:  # no rows at all: still describe the columns
        yield rows_to_batch([], pa.schema(infer_fields(plan.column_names, fields, [])))


def _table_select(table: sa.Table, plan: SourcePlan) -> sa.Select[Any]:
    """The reflected table's rows (shaped by source.columns and source.filter, with typed
    binds), those of the plan's range if the read is split."""
    shape, partition = plan.shape, plan.partition
    statement = sa.select(table) if shape is None else shaped_table_select(table, shape)
    if partition is not None:
        assert partition.column is not None, "block ranges are PostgreSQL's, read as text SQL"
        column = partition.column if shape is None else shape.source_of(partition.column)
        statement = statement.where(partition_clause(partition, table.c[column]))
    if plan.order_by:  # by the output columns, as the plan's statement() sorts
        statement = statement.order_by(*(statement.selected_columns[n] for n in plan.order_by))
    return statement


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
