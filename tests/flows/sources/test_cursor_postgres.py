"""A stored cursor on a PostgreSQL read takes its `high` in the snapshot the read shares (a
split read's partitions, or an unsplit read's one reader): rows committed after the source was
inspected but before the snapshot are read, a row updated after `high` was taken is read as
that snapshot holds it, and the mark is what that snapshot holds (a real PostgreSQL server; no
Prefect API)."""

from __future__ import annotations

import psycopg
import pytest

from flows.core.config import FormatOptions, SourceConfig
from flows.sources.cursor import CursorMark, cursor_bounds
from flows.sources.plan import SourcePlan, inspect_source, planned_partitions, read_snapshot
from flows.sources.read import read_for_format
from tests.flows.conftest import url_for_psycopg

pytestmark = pytest.mark.postgres


def test_a_split_read_takes_high_in_its_snapshot(pg_url: str) -> None:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, seq int)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 100) g")
    source = SourceConfig(url=pg_url, table="items", partitions=3, incremental={"cursor": "seq"})
    plan = inspect_source(source, CursorMark("seq", "40", "int"))
    assert plan.cursor is not None and plan.cursor.high == 100
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(101, 120) g")
        conn.execute("INSERT INTO items VALUES (0, NULL)")
    with planned_partitions(plan, source) as planned:
        read = planned.plan
        with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
            conn.execute("INSERT INTO items SELECT g, g FROM generate_series(121, 130) g")
        ids = [
            key
            for partition in planned.partitions
            for batch in read_for_format(
                read.for_partition(partition, planned.snapshot), "parquet", FormatOptions()
            )
            for key in batch.column("id").to_pylist()
        ]
    assert sorted(ids) == list(range(41, 121))  # the snapshot's rows above the mark
    assert cursor_bounds(read.cursor) == {"column": "seq", "from": "40", "to": "120"}
    assert read.cursor is not None and read.cursor.nulls == 1


@pytest.mark.parametrize("reader", ["postgres_copy", "sqlalchemy"])
def test_an_unsplit_read_takes_high_and_its_rows_in_one_snapshot(pg_url: str, reader: str) -> None:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, seq int)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 100) g")
    source = SourceConfig(url=pg_url, table="items", reader=reader, incremental={"cursor": "seq"})
    plan = inspect_source(source, CursorMark("seq", "40", "int"))
    assert plan.cursor is not None and plan.cursor.high == 100
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(101, 120) g")
    with read_snapshot(plan) as read:
        with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
            conn.execute("UPDATE items SET seq = 1000 + id WHERE id IN (50, 110)")
            conn.execute("INSERT INTO items SELECT g, g FROM generate_series(121, 130) g")
        versions = _versions(read)
    assert versions == [(key, key) for key in range(41, 121)]  # 50 and 110 as the snapshot holds
    assert cursor_bounds(read.cursor) == {"column": "seq", "from": "40", "to": "120"}
    # Read in a statement of its own after `high` was taken (as an unsplit read did), row 50's
    # version 50 is gone and its new one is above `high`: no run would have delivered (50, 50).
    later = inspect_source(source, CursorMark("seq", "40", "int"))
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute("UPDATE items SET seq = 2000 + id WHERE id = 60")
    assert (60, 60) not in _versions(later)


def _versions(plan: SourcePlan) -> list[tuple[int, int]]:
    """(id, seq) of every row the plan reads."""
    return sorted(
        (key, seq)
        for batch in read_for_format(plan, "parquet", FormatOptions())
        for key, seq in zip(
            batch.column("id").to_pylist(), batch.column("seq").to_pylist(), strict=True
        )
    )
