"""The stored cursor (`source.incremental`) pushed into the SQL every reader runs.

A run delivers `low < cursor <= high`: `low` is the mark the last successful run left
(exclusive), or on the first run `initial` (inclusive), or nothing (every row); `high` is the
largest cursor the source holds when the run inspects it, before any row is read (the mark the
run leaves once everything is published). Both bounds are bound values in the source's WHERE
(flows/sources/shape.py), so a table, a query and every partition read the same range. A NULL
cursor is never delivered: comparisons leave it out, and the run counts and logs them.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from flows.core.columns import kind_of
from flows.core.config import FilterCondition, IncrementalConfig
from flows.core.errors import ConfigurationError
from flows.sources.shape import typed_filter_value

# Kinds a cursor cannot be: they have no order a "changed since" could follow.
_UNORDERED = {"json": "JSON", "bytes": "bytes", "array": "array", "bool": "boolean"}
_TEMPORAL = ("date", "timestamp", "timestamptz")


@dataclass(frozen=True)
class CursorMark:
    """A stored mark: the cursor column, its value as canonical text, and its kind."""

    column: str
    value: str
    kind: str


@dataclass(frozen=True)
class CursorRange:
    """The range one run delivers, as values of the column's type (None: open)."""

    column: str
    kind: str
    low: Any  # the mark (exclusive) or `initial` (inclusive), less the lookback; None: open
    low_inclusive: bool
    high: Any  # the largest cursor now; None when the source has no non-NULL cursor
    nulls: int  # rows whose cursor is NULL: never delivered
    start: str | None  # the range's start as reported (`from`): the mark or `initial`
    stored: Any = None  # the stored mark, as a value (None on a first run)
    initial: Any = None  # `initial`, as a value, on a first run that has one
    max_sql: str = ""  # the SQL that takes `high` and the NULL count (again, in a snapshot)
    high_param: str = ""  # the bound parameter holding `high` in the plan's SQL

    @property
    def mark(self) -> str | None:
        """The mark the run leaves once published: `high`, or the stored mark when the
        source holds nothing above it (None: no mark yet)."""
        if self.high is None or (self.stored is not None and self.high <= self.stored):
            return None if self.stored is None else cursor_text(self.stored)
        if self.initial is not None and _below(self.high, self.initial):
            return None  # nothing from `initial` on yet: the next run starts there again
        return cursor_text(self.high)

    def conditions(self) -> tuple[list[FilterCondition], list[Any]]:
        """The WHERE conditions of this range and their (typed) values."""
        column = self.column
        if self.high is None:  # no cursor at all: nothing to deliver
            return [
                FilterCondition(column=column, op="is_null"),
                FilterCondition(column=column, op="not_null"),
            ], [None, None]
        conditions, values = [], []
        if self.low is not None:
            op = ">=" if self.low_inclusive else ">"
            conditions.append(FilterCondition(column=column, op=op, value=str(self.low)))
            values.append(self.low)
        conditions.append(FilterCondition(column=column, op="<=", value=str(self.high)))
        values.append(self.high)
        return conditions, values


def cursor_kind(
    incremental: IncrementalConfig, names: list[str], fields: list[pa.Field | None], shown: str
) -> tuple[str, pa.Field | None]:
    """The cursor column's kind ("" when the database declares none) and field.

    Raises ConfigurationError naming source.incremental.cursor: a column that does not exist
    or has no order."""
    column = incremental.cursor
    if column not in names:
        listed = ", ".join(names[:30]) + (", …" if len(names) > 30 else "")
        raise ConfigurationError(
            f"source.incremental.cursor: no column `{column}` in the source (`{shown}`); its "
            f"columns are: {listed}",
            field="source.incremental.cursor",
        )
    field = fields[names.index(column)]
    kind = kind_of(field) if field is not None else ""
    if kind in _UNORDERED:
        raise ConfigurationError(
            f"source.incremental.cursor: `{column}` is a {_UNORDERED[kind]} column, which has "
            "no order to follow",
            field="source.incremental.cursor",
            hint="use a column that grows as rows change: an integer id, a numeric, a text, "
            "a date or a timestamp such as updated_at",
        )
    return kind, field


def cursor_range(
    incremental: IncrementalConfig,
    kind: str,
    field: pa.Field | None,
    stored: CursorMark | None,
    high: Any,
    nulls: int,
) -> CursorRange:
    """The range a run delivers, from the stored mark (or `initial`) and the source's max."""
    column = incremental.cursor
    if stored is not None and stored.column != column:
        raise ConfigurationError(
            f"source.incremental.cursor: the stored mark is for the column `{stored.column}`, "
            f"not `{column}`",
            field="source.incremental.cursor",
            hint="run `exports cursor reset NAME` to start over with the new column (or "
            "`exports cursor set NAME VALUE` to start from a value)",
        )
    if not kind:  # a query the database declares no types for (SQLite): its values say
        kind = _kind_of_value(high) if high is not None else (stored.kind if stored else "")
    start: str | None
    floor = first = None
    if stored is not None:
        try:
            floor = parse_cursor(stored.value, stored.kind or kind)
        except (ValueError, decimal.InvalidOperation):
            raise ConfigurationError(
                f"source.incremental.cursor: the stored mark `{stored.value}` is not a value "
                f"of the {kind} column `{column}`",
                field="source.incremental.cursor",
                hint="set one with `exports cursor set NAME VALUE`, or `exports cursor reset "
                "NAME` to start over",
            ) from None
        low, inclusive, start = floor, False, stored.value
    elif incremental.initial is not None:
        first = low = initial_value(incremental, field)
        inclusive, start = True, cursor_text(low)
    else:
        low, inclusive, start = None, False, None
    lookback = incremental.lookback
    if lookback and low is not None:
        if kind not in _TEMPORAL or not isinstance(low, dt.date):
            raise ConfigurationError(
                f"source.incremental.lookback: the cursor `{column}` is not a date or a "
                "timestamp, so no duration can be taken from it",
                field="source.incremental.lookback",
                hint="remove lookback, or use a date or timestamp cursor",
            )
        low = low - (dt.timedelta(days=lookback.days) if kind == "date" else lookback)
    return CursorRange(column, kind, low, inclusive, high, nulls, start, floor, first)


def initial_value(incremental: IncrementalConfig, field: pa.Field | None) -> Any:
    """`initial` as a value of the cursor's type; refused naming the field if it does not fit."""
    return typed_value("source.incremental.initial", incremental.cursor, incremental.initial, field)


def typed_value(where: str, column: str, value: Any, field: pa.Field | None) -> Any:
    """`value` as the column's Python type; ConfigurationError naming `where` if it is not."""
    condition = FilterCondition(column=column, op=">=", value=value)
    try:
        return typed_filter_value(condition, value, field)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{where}: `{value!r}` does not fit the {kind_of(field) if field else ''} column "
            f"`{column}`".replace("  ", " "),
            field=where,
            hint=exc.hint,
        ) from None


def max_statement(rows: sa.FromClause, column: str) -> sa.Select[Any, int]:
    """The largest cursor of `rows` and how many rows have none, in one statement (typed by
    the column, so SQLite's stored text comes back as the column's Python type)."""
    col = rows.c[column]
    return sa.select(sa.func.max(col), sa.func.count() - sa.func.count(col)).select_from(rows)


def source_max(
    conn: sa.Connection, statement: sa.Select[Any, int], params: dict[str, Any]
) -> tuple[Any, int]:
    """What `max_statement` finds: the largest cursor and the NULL count."""
    found = conn.execute(statement, params).one()
    return found[0], int(found[1] or 0)


def cursor_text(value: Any) -> str:
    """A cursor value as the canonical text the mark is stored as."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_cursor(text: str, kind: str) -> Any:
    """The stored text as a value of `kind` (the inverse of `cursor_text`)."""
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "time":
        return dt.time.fromisoformat(text)
    if kind in ("timestamp", "timestamptz"):
        moment = dt.datetime.fromisoformat(text)
        if kind == "timestamptz" and moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        return moment
    return text


def _below(value: Any, other: Any) -> bool:
    """value < other; False where they do not compare (a query's untyped `initial`)."""
    try:
        return bool(value < other)
    except TypeError:
        return False


def _kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, dt.datetime):
        return "timestamptz" if value.tzinfo else "timestamp"
    if isinstance(value, dt.date):
        return "date"
    return "str"


def new_mark(cursor: CursorRange | None) -> CursorMark | None:
    """The mark a published run leaves (None: no cursor, or still no mark)."""
    if cursor is None or cursor.mark is None:
        return None
    return CursorMark(cursor.column, cursor.mark, cursor.kind)


def cursor_bounds(cursor: CursorRange | None) -> dict[str, str | None] | None:
    """The delivered range as every record of the run gives it: `{column, from, to}`, `from`
    the mark it started above (or `initial`, or None: from the first row) and `to` the mark
    it leaves."""
    if cursor is None:
        return None
    return {"column": cursor.column, "from": cursor.start, "to": cursor.mark}


def describe_cursor(cursor: CursorRange) -> str:
    """The run log's line: the range, the lookback and the NULL cursors left out."""
    low = "the first row" if cursor.low is None else cursor_text(cursor.low)
    above = "from" if cursor.low_inclusive or cursor.low is None else "above"
    high = "nothing (no cursor value)" if cursor.high is None else cursor_text(cursor.high)
    nulls = (
        f"; {cursor.nulls} rows with a NULL {cursor.column} are not delivered"
        if cursor.nulls
        else ""
    )
    return f"cursor {cursor.column}: {above} {low} up to {high}{nulls}"
