"""Splitting one read into ranges that run at once (`source.partitions`).

A PostgreSQL table needs no key: it is split by physical block ranges (`ctid`), as DuckDB's
scanner does. Anything else is split by `source.partition_by`: the range of that column (its
min and max, or `source.bounds`) cut into equal spans, the first and last open-ended so no row
is left out, and the column's NULLs in a partition of their own, last. A query is wrapped,
never edited: `SELECT * FROM (query) AS _export_part WHERE column >= :low AND column < :high`.

Ranges are planned once, before anything is written, inside the snapshot the partitions read
(PostgreSQL), and numbered in range order: partition 1 holds the lowest range.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from flows.core.columns import kind_of
from flows.core.errors import ConfigurationError

LOW_PARAM = "_export_part_low"
HIGH_PARAM = "_export_part_high"
# Kinds a range can be cut into spans of (the column's Arrow kind, flows/core/columns.py).
SPLITTABLE_KINDS = ("int", "decimal", "float", "date", "timestamp", "timestamptz")


@dataclass(frozen=True)
class Partition:
    """One range of the read. `low` is included and `high` excluded; None is open-ended."""

    number: int  # from 1, in range order
    column: str | None  # None: a PostgreSQL block range (ctid), low/high are block numbers
    low: Any = None
    high: Any = None
    nulls: bool = False  # the rows whose column is NULL
    share: float = 1.0  # the part of the table it is expected to hold (progress estimates)

    def describe(self) -> str:
        """For the run log: `id [1000, 2000)`, `blocks [0, 1250)`, `id IS NULL`."""
        if self.nulls:
            return f"{self.column} IS NULL"
        name = "blocks" if self.column is None else self.column
        low = "-∞" if self.low is None else str(self.low)
        high = "∞" if self.high is None else str(self.high)
        return f"{name} [{low}, {high})"

    def bind_values(self) -> dict[str, Any]:
        """The values the partition's condition binds."""
        if self.column is None:  # block numbers → tids (the first row of that block)
            return {
                name: f"({value},0)"
                for name, value in ((LOW_PARAM, self.low), (HIGH_PARAM, self.high))
                if value is not None
            }
        values = {LOW_PARAM: self.low, HIGH_PARAM: self.high}
        return {} if self.nulls else {k: v for k, v in values.items() if v is not None}


def partition_sql(
    sql: str, partition: Partition, quote: Callable[[str], str], *, filtered: bool = False
) -> str:
    """The partition's SQL with `:name` binds (values: `Partition.bind_values`).

    A block range filters the table's own SELECT (ours, not the user's: a table export); a
    column range wraps the table's or the query's SQL as a subquery.
    """
    if partition.column is None:
        conditions = []
        if partition.low is not None:
            conditions.append(f"ctid >= CAST(:{LOW_PARAM} AS tid)")
        if partition.high is not None:
            conditions.append(f"ctid < CAST(:{HIGH_PARAM} AS tid)")
        if not conditions:
            return sql
        joined = " AND ".join(conditions)  # after source.filter's WHERE, if the table has one
        return f"{sql} AND {joined}" if filtered else f"{sql} WHERE {joined}"
    column = quote(partition.column)
    if partition.nulls:
        condition = f"{column} IS NULL"
    else:
        bounds = []
        if partition.low is not None:
            bounds.append(f"{column} >= :{LOW_PARAM}")
        if partition.high is not None:
            bounds.append(f"{column} < :{HIGH_PARAM}")
        condition = " AND ".join(bounds) or f"{column} IS NOT NULL"
    return f"SELECT * FROM ({sql}) AS _export_part WHERE {condition}"


def partition_clause(partition: Partition, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The partition's condition on a reflected table's column (SQLAlchemy readers)."""
    if partition.nulls:
        return column.is_(None)
    conditions: list[sa.ColumnElement[bool]] = [column.is_not(None)]
    if partition.low is not None:
        conditions.append(column >= sa.bindparam(LOW_PARAM, partition.low))
    if partition.high is not None:
        conditions.append(column < sa.bindparam(HIGH_PARAM, partition.high))
    return sa.and_(*conditions)


def block_ranges(blocks: int, count: int) -> list[Partition]:
    """`count` ranges of a table's `blocks` pages; the last is open-ended (pages added while
    the export reads hold no row of its snapshot, but a wrong page count must lose nothing)."""
    count = max(1, min(count, blocks))
    cuts = [blocks * index // count for index in range(1, count)]
    edges: list[int | None] = [None, *cuts, None]
    return [
        Partition(number, None, edges[number - 1], edges[number], share=1 / count)
        for number in range(1, count + 1)
    ]


def column_ranges(
    column: str, kind: str, low: Any, high: Any, count: int, *, with_nulls: bool
) -> list[Partition]:
    """`count` equal spans of [low, high] of `column` (fewer where the range has fewer
    values), open-ended at both ends, then the NULL partition if there may be NULLs."""
    if kind not in SPLITTABLE_KINDS:
        raise ConfigurationError(
            f"source.partition_by: column `{column}` is {kind}, which cannot be cut into ranges",
            field="source.partition_by",
            hint="use an integer, numeric, date or timestamp column",
        )
    cuts = _cuts(kind, low, high, count) if low is not None and high is not None else []
    edges: list[Any] = [None, *cuts, None]
    spans = len(edges) - 1
    partitions = [
        Partition(number, column, edges[number - 1], edges[number], share=1 / spans)
        for number in range(1, spans + 1)
    ]
    if with_nulls:
        partitions.append(Partition(spans + 1, column, nulls=True, share=0.0))
    return partitions


def _cuts(kind: str, low: Any, high: Any, count: int) -> list[Any]:
    """The `count - 1` inner edges between low and high, strictly increasing (duplicates,
    from a range narrower than `count`, are dropped)."""
    if high <= low:
        return []
    if kind == "int":
        width = int(high) - int(low) + 1
        raw: list[Any] = [int(low) + width * index // count for index in range(1, count)]
    elif kind == "date":
        days = (high - low).days + 1
        raw = [low + dt.timedelta(days=days * index // count) for index in range(1, count)]
    elif kind in ("timestamp", "timestamptz"):
        raw = [low + (high - low) * index / count for index in range(1, count)]
    elif kind == "decimal":
        low, high = decimal.Decimal(str(low)), decimal.Decimal(str(high))
        raw = [low + (high - low) * index / count for index in range(1, count)]
    else:
        raw = [float(low) + (float(high) - float(low)) * index / count for index in range(1, count)]
    cuts: list[Any] = []
    for value in raw:
        if low < value <= high and (not cuts or value > cuts[-1]):
            cuts.append(value)
    return cuts


def column_kind(column: str, names: list[str], declared: list[Any], sample: Any) -> str:
    """The kind of `column`: declared by the source, else from a value of it (its min)."""
    if column not in names:
        raise ConfigurationError(
            f"source.partition_by: column `{column}` is not in the table or query; its "
            f"columns are {', '.join(names)}",
            field="source.partition_by",
        )
    field = declared[names.index(column)]
    if field is not None:
        return kind_of(field)
    for kind, types in _VALUE_KINDS:
        if isinstance(sample, types):
            return kind
    return "str" if sample is not None else "int"  # all NULL: any kind cuts nothing


_VALUE_KINDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("bool", bool),
    ("int", int),
    ("decimal", decimal.Decimal),
    ("float", float),
    ("timestamp", dt.datetime),
    ("date", dt.date),
)
