"""`checks.unique`, answered by the database: how many keys the export's rows hold more than
once, counted where the rows are (GROUP BY … HAVING), so memory stays flat however many keys
there are. The same SQL and bound values the readers ran (the table or query, its columns,
filter and window); on PostgreSQL, with a split read, in the very snapshot its partitions read."""

from __future__ import annotations

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
    engine = create_engine(plan.url)
    try:
        with source_errors(plan.display_url, plan.table), engine.connect() as conn:
            if is_psycopg(engine):
                postgres.prepare_connection(conn, (), snapshot)
            quote = conn.dialect.identifier_preparer.quote
            keys = ", ".join(quote(column) for column in columns)
            present = " AND ".join(f"{quote(column)} IS NOT NULL" for column in columns)
            sql = (
                "SELECT count(*) FROM (SELECT 1 AS _one "
                f"FROM ({plan.sql}) AS _export_checked WHERE {present} "
                f"GROUP BY {keys} HAVING count(*) > 1) AS _export_duplicates"
            )
            return int(conn.execute(sa.text(sql), plan.params).scalar_one())
    finally:
        engine.dispose()
