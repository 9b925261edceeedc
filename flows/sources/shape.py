"""The export's shape pushed into its SQL: `source.columns` becomes the projection (selected,
ordered, renamed) and `source.filter` the WHERE clause, with every value a bound parameter.

Both are compiled by SQLAlchemy for the database's own dialect, over the reflected table (so a
PostgreSQL block range can still filter the table's `ctid`) or over the query as a subquery
(never edited as text). Values are checked against the column's type before any row is read.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine.interfaces import BindTyping

from flows.core.columns import kind_of
from flows.core.config import ColumnSpec, FilterCondition
from flows.core.errors import ConfigurationError
from flows.sources.masking import check_protectable, protected_expression

FILTER_PARAM = "_export_filter"  # bound parameters are _export_filter_<n>[_<m>]
_MAX_LISTED = 30


@dataclass(frozen=True)
class Shape:
    """The columns (source name → output name, in order) and the filter of an export."""

    columns: tuple[tuple[str, str], ...]
    conditions: tuple[FilterCondition, ...]
    values: tuple[Any, ...]  # per condition: the value(s) converted to the column's type
    specs: tuple[ColumnSpec, ...] = ()  # per column, as given (hashed or masked); () for all

    def selected(self, columns: Any) -> list[sa.ColumnElement[Any]]:
        """The projection over `columns` (a table's or a subquery's): each column as it is
        written (masked in SQL, as text for a hash), under its output name."""
        specs = self.specs or tuple(ColumnSpec(name=name) for name, _ in self.columns)
        return [
            protected_expression(spec, columns[name]).label(output)
            for spec, (name, output) in zip(specs, self.columns, strict=True)
        ]

    @property
    def output_names(self) -> list[str]:
        return [output for _, output in self.columns]

    def source_of(self, output: str) -> str:
        return {out: name for name, out in self.columns}[output]


def plan_shape(
    columns: list[ColumnSpec] | None,
    conditions: list[FilterCondition],
    names: Sequence[str],
    fields: Sequence[pa.Field | None],
    shown: str,
    fold_case: bool = False,
    dialect: str = "",
) -> Shape | None:
    """The shape of `columns` and `conditions` over a source with these columns, or None
    when the export takes every column as it is. `fold_case`: the database takes `a` and `A`
    for one column name (SQLite).

    Raises ConfigurationError naming the field: a column that does not exist (listing those
    that do) or that two columns of the query share, or a filter value that does not fit its
    column's type.
    """
    if columns is None and not conditions:
        return None
    known = list(names)
    chosen = [(c.name, c.output) for c in columns] if columns else [(n, n) for n in known]
    for source_name, _ in chosen:
        _check_exists("source.columns", source_name, known, shown)
        _check_one("source.columns", source_name, known, fold_case)
    for index, column in enumerate(columns or []):
        check_protectable(index, column, fields[known.index(column.name)], dialect)
    values = []
    for condition in conditions:
        _check_exists("source.filter", condition.column, known, shown)
        _check_one("source.filter", condition.column, known, fold_case)
        field = fields[known.index(condition.column)]
        values.append(_typed_value(condition, field))
    return Shape(tuple(chosen), tuple(conditions), tuple(values), tuple(columns or ()))


def _check_exists(where: str, name: str, known: list[str], shown: str) -> None:
    if name in known:
        return
    listed = ", ".join(known[:_MAX_LISTED]) + (", …" if len(known) > _MAX_LISTED else "")
    raise ConfigurationError(
        f"{where}: no column `{name}` in the source (`{shown}`); its columns are: {listed}",
        field=where,
    )


def _check_one(where: str, name: str, known: list[str], fold_case: bool) -> None:
    """A name the query gives two columns cannot pick one of them (the database would take
    either, or refuse the SQL as ambiguous)."""
    key = name.casefold() if fold_case else name
    same = [i for i, other in enumerate(known) if (other.casefold() if fold_case else other) == key]
    if len(same) > 1:
        first, second = same[:2]
        named = (
            f"the query names two columns `{name}`"
            if known[first] == known[second]
            else f"`{known[first]}` and `{known[second]}` are one name to SQLite (it ignores case)"
        )
        raise ConfigurationError(
            f"{where}: {named} (columns {first + 1} and {second + 1})",
            field=where,
            hint="give one of them another name in the query",
        )


def shaped_table_select(table: sa.Table, shape: Shape) -> sa.Select[Any]:
    """The table's shaped rows, as a SQLAlchemy select (its columns keep their types)."""
    select = sa.select(*shape.selected(table.c))
    return select.where(*_clauses(shape, table.c))


def shaped_query_sql(
    sql: str, names: Sequence[str], shape: Shape, dialect: sa.Dialect
) -> tuple[str, dict[str, Any]]:
    """The query wrapped in the shape's projection and WHERE: SQL with `:name` binds (the
    query's own, and the filter's) and the filter's values."""
    rows = sa.text(sql).columns(*(sa.column(name) for name in names)).subquery("_export_src")
    select = sa.select(*shape.selected(rows.c))
    return compile_named(select.where(*_clauses(shape, rows.c)), dialect)


def compile_named(statement: sa.Select[Any], dialect: sa.Dialect) -> tuple[str, dict[str, Any]]:
    """SQL text for `dialect` with `:name` bind parameters, and their values (the form every
    reader takes: sa.text, and COPY after psycopg's own conversion)."""
    named = type(dialect)(paramstyle="named")  # type: ignore[call-arg]
    named.bind_typing = BindTyping.NONE  # no `:x::TYPE` casts: sa.text would not see `:x`
    compiled = statement.compile(dialect=named)
    values = {}
    for key, bind in compiled.binds.items():
        if key.startswith(FILTER_PARAM):  # as the column's type stores it (SQLite: text)
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            values[key] = process(bind.value) if process is not None else bind.value
    return compiled.string, values


def _clauses(shape: Shape, columns: Any) -> list[sa.ColumnElement[bool]]:
    return [
        _clause(condition, columns[condition.column], value, index)
        for index, (condition, value) in enumerate(zip(shape.conditions, shape.values, strict=True))
    ]


def _clause(
    condition: FilterCondition, column: sa.ColumnElement[Any], value: Any, index: int
) -> sa.ColumnElement[bool]:
    name = f"{FILTER_PARAM}_{index}"

    def bind(item: Any, suffix: str = "") -> sa.BindParameter[Any]:
        return sa.bindparam(name + suffix, item, type_=column.type, unique=False)

    op = condition.op
    if op == "is_null":
        return column.is_(None)
    if op == "not_null":
        return column.is_not(None)
    if op in ("in", "not_in"):
        binds = [bind(item, f"_{n}") for n, item in enumerate(value)]
        return column.in_(binds) if op == "in" else column.not_in(binds)
    if op == "between":
        return column.between(bind(value[0], "_0"), bind(value[1], "_1"))
    if op == "like":
        return column.like(bind(value))
    comparisons = {
        "=": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        "<=": column.__le__,
        ">": column.__gt__,
        ">=": column.__ge__,
    }
    return comparisons[op](bind(value))


# -- values: checked and converted to the column's type ------------------------------------


def _typed_value(condition: FilterCondition, field: pa.Field | None) -> Any:
    if condition.op in ("is_null", "not_null"):
        return None
    if condition.op in ("in", "not_in", "between"):
        return [_typed(condition, item, field) for item in condition.value]
    return _typed(condition, condition.value, field)


def typed_filter_value(condition: FilterCondition, value: Any, field: pa.Field | None) -> Any:
    """`value` as `condition`'s column type (the stored cursor's bounds are checked so too)."""
    return _typed(condition, value, field)


def _typed(condition: FilterCondition, value: Any, field: pa.Field | None) -> Any:
    """`value` as the column's Python type; as given where the type is not known yet (a
    query on a database that declares no types)."""
    if field is None:
        return value
    kind = kind_of(field)
    if condition.op == "like":
        if kind not in ("str", "json", "uuid"):
            raise _mismatch(condition, value, kind, "a text column (like matches text)")
        return value
    try:
        if kind == "int" and not isinstance(value, bool):
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                return int(value.strip())
        elif kind in ("float", "decimal") and not isinstance(value, bool):
            if isinstance(value, int | float):
                return decimal.Decimal(str(value)) if kind == "decimal" else value
            if isinstance(value, str):
                number = decimal.Decimal(value.strip())
                if not number.is_finite() and kind == "decimal":
                    raise ValueError(value)
                return number if kind == "decimal" else float(number)
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "date" and isinstance(value, str):
            return dt.date.fromisoformat(value)
        elif kind == "time" and isinstance(value, str):
            return dt.time.fromisoformat(value)
        elif kind == "timestamptz" and isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        elif kind == "timestamp" and isinstance(value, str):
            moment = dt.datetime.fromisoformat(value)
            if moment.tzinfo is None:
                return moment
        elif kind in ("str", "json", "uuid") and isinstance(value, str):
            return value
        elif kind == "str" and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    except (ValueError, decimal.InvalidOperation):
        pass
    raise _mismatch(condition, value, kind, _EXPECTED.get(kind, "a value of its type"))


_EXPECTED = {
    "int": "an integer, e.g. 42",
    "float": "a number, e.g. 2.5",
    "decimal": "a number, e.g. 12.50 (or the text '12.50')",
    "bool": "true or false",
    "date": "a date, e.g. '2026-03-01'",
    "time": "a time of day, e.g. '06:30:00'",
    "timestamptz": "a timestamp, e.g. '2026-03-01T06:00:00+01:00' (no offset: UTC)",
    "timestamp": "a timestamp without offset, e.g. '2026-03-01T06:00:00'",
    "str": "a text value",
    "json": "a text value",
    "uuid": "a UUID, e.g. '0b4e7f5c-…'",
    "bytes": "no value: bytes columns cannot be filtered on",
    "array": "no value: array columns take only is_null and not_null",
}


def _mismatch(condition: FilterCondition, value: Any, kind: str, expected: str) -> Exception:
    return ConfigurationError(
        f"source.filter: `{condition.column} {condition.op}` compares a {kind} column with "
        f"`{value!r}`",
        field="source.filter",
        hint=f"give {expected}",
    )
