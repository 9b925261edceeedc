"""What `checks` asks the database, counted where the rows are so memory stays flat however
many there are: the keys of `unique` held by more than one row (GROUP BY … HAVING), and the
NULLs of `not_null` where the rows were not counted as they streamed (PostgreSQL's COPY
writing finished CSV or JSON rows: no column reaches the writer). The same SQL and bound
values the readers ran (the table or query, its columns, filter and window); on PostgreSQL,
with a split read, in the very snapshot its partitions read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from flows.sources import postgres
from flows.sources.connections import create_engine, is_psycopg
from flows.sources.failures import source_errors
from flows.sources.plan import SourcePlan


def duplicate_keys(plan: SourcePlan, columns: list[str], snapshot: str | None = None) -> int:
    """How many distinct values of `columns` (together) occur in more than one row of what
    `plan` reads. Rows with a NULL in any of them are not compared (as a UNIQUE constraint
    does): `checks.not_null` is the check for those. `snapshot` (PostgreSQL, from
    pg_export_snapshot) makes the count see exactly the state the partitions read."""
    with _connected(plan, snapshot) as (conn, quote):
        keys = ", ".join(quote(column) for column in columns)
        present = " AND ".join(f"{quote(column)} IS NOT NULL" for column in columns)
        sql = (
            "SELECT count(*) FROM (SELECT 1 AS _one "
            f"FROM ({plan.sql}) AS _export_checked WHERE {present} "
            f"GROUP BY {keys} HAVING count(*) > 1) AS _export_duplicates"
        )
        return int(conn.execute(sa.text(sql), plan.params).scalar_one())


def null_values(
    plan: SourcePlan, columns: list[str], snapshot: str | None = None
) -> dict[str, int]:
    """The NULLs of each of `columns` in what `plan` reads (`count(*) - count(column)`)."""
    with _connected(plan, snapshot) as (conn, quote):
        counted = ", ".join(f"count(*) - count({quote(column)})" for column in columns)
        sql = f"SELECT {counted} FROM ({plan.sql}) AS _export_checked"
        found = conn.execute(sa.text(sql), plan.params).one()
        return {column: int(count) for column, count in zip(columns, found, strict=True)}


@contextmanager
def _connected(
    plan: SourcePlan, snapshot: str | None
) -> Iterator[tuple[sa.Connection, Callable[[str], str]]]:
    engine = create_engine(plan.url)
    try:
        with source_errors(plan.display_url, plan.table), engine.connect() as conn:
            if is_psycopg(engine):
                postgres.prepare_connection(conn, (), snapshot)
            yield conn, conn.dialect.identifier_preparer.quote
    finally:
        engine.dispose()
