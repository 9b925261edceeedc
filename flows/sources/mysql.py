"""MySQL and MariaDB (through PyMySQL): each column's type as the server reports it for the
query, so a table and a query over it export the same types, and values read back exactly.

What the server's column metadata settles that SQLAlchemy's row values or reflection do not:
- `BIGINT UNSIGNED` is Arrow's uint64 (up to 18446744073709551615), not int64;
- `DECIMAL(p,s)` is decimal128(p, s) from a query too, not text;
- `TIME` is a duration (-838:59:59 to 838:59:59), written as MySQL writes it, never folded
  into a time of day;
- a JSON column (MariaDB: LONGTEXT with a `json_valid` check) is JSON, written nested;
- `TIMESTAMP` is read in UTC (the session's time zone is set to UTC), `DATETIME` as written;
- binary strings and BLOBs are bytes, `BIT` an integer, `YEAR` an integer.

Each column's type name (the manifest's and the schema contract's) keeps what changes the
values written: an integer's size and sign (`tinyint(1)`, MySQL's BOOL, apart), a DECIMAL's
precision and scale, a DATETIME's, TIMESTAMP's or TIME's fractional digits (`datetime(6)`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect

from flows.core.columns import MAX_DECIMAL128_PRECISION, decimal_field, make_field
from flows.sources.values import DURATION_DIGITS_KEY

SESSION_SETTINGS = ("SET time_zone = '+00:00'",)
_BINARY_CHARSET = 63
_UNSIGNED_FLAG = 32
# Field type codes of the MySQL protocol (PyMySQL's FIELD_TYPE).
_INTEGERS = frozenset({1, 2, 3, 8, 9})  # TINY, SHORT, LONG, LONGLONG, INT24
_INTEGER_NAMES = {1: "tinyint", 2: "smallint", 3: "int", 8: "bigint", 9: "mediumint"}
_TINY = 1
_LONGLONG = 8
_DECIMALS = frozenset({0, 246})  # DECIMAL, NEWDECIMAL
_FLOATS = frozenset({4, 5})  # FLOAT, DOUBLE
_DATES = frozenset({10, 14})  # DATE, NEWDATE
_TIMESTAMP, _DATETIME, _TIME, _YEAR, _BIT, _JSON = 7, 12, 11, 13, 16, 245
_STRINGS = frozenset({15, 249, 250, 251, 252, 253, 254})  # VARCHAR ... BLOB, STRING
_GEOMETRY = 255
_JSON_CHECK = re.compile(r"json_valid\(`([^`]+)`\)", re.IGNORECASE)


class Described(NamedTuple):
    """A query's columns as MySQL or MariaDB reports them."""

    fields: list[pa.Field]
    type_names: tuple[str, ...]


def prepare_connection(conn: sa.Connection) -> None:
    """The session settings every reading connection uses (TIMESTAMP values in UTC)."""
    for setting in SESSION_SETTINGS:
        conn.exec_driver_sql(setting)


def describe(conn: sa.Connection, sql: str, params: dict[str, Any]) -> Described:
    """Fields for the query's columns, from the column metadata of the query itself run with
    `sql_select_limit = 0` (no rows, and unlike a `LIMIT 0` subquery it keeps each column's
    base table and column, which tells a JSON column from text)."""
    raw = conn.connection.driver_connection
    statement, values = _pymysql_statement(sql, params)
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        for setting in SESSION_SETTINGS:
            cursor.execute(setting)
        cursor.execute("SET SESSION sql_select_limit = 0")
        try:
            cursor.execute(statement, values)
            columns = list(cursor._result.fields)  # PyMySQL's FieldDescriptor: type, flags
        finally:
            cursor.execute("SET SESSION sql_select_limit = DEFAULT")
        json_columns = _json_columns(cursor, columns)
    fields, names = [], []
    for column in columns:
        is_json = (_text(column.db), column.org_table, column.org_name) in json_columns
        field, type_name = _field(column, is_json)
        fields.append(field)
        names.append(type_name)
    return Described(fields, tuple(names))


def _field(column: Any, is_json: bool) -> tuple[pa.Field, str]:
    code, name = column.type_code, column.name
    unsigned = bool(column.flags & _UNSIGNED_FLAG)
    binary = column.charsetnr == _BINARY_CHARSET
    if code in _INTEGERS:
        type_name = _INTEGER_NAMES[code] + ("(1)" if code == _TINY and column.length == 1 else "")
        if code == _LONGLONG and unsigned:
            return make_field(name, "int", pa.uint64()), "bigint unsigned"
        return make_field(name, "int"), f"{type_name} unsigned" if unsigned else type_name
    if code in _DECIMALS:
        scale = column.scale or 0
        precision = column.length - (1 if scale else 0) - (0 if unsigned else 1)
        field = decimal_field(name, min(precision, MAX_DECIMAL128_PRECISION + 1), scale)
        return field, f"decimal({precision},{scale})"
    if code in _FLOATS:
        return make_field(name, "float"), "double" if code == 5 else "float"
    if code in _DATES:
        return make_field(name, "date"), "date"
    if code == _DATETIME:
        return make_field(name, "timestamp"), _with_digits("datetime", column)
    if code == _TIMESTAMP:
        return make_field(name, "timestamptz"), _with_digits("timestamp", column)
    if code == _TIME:  # a duration: MySQL's own text, e.g. 838:59:59 or -00:00:01.500000
        field = make_field(name, "str")
        digits = str(column.scale or 0).encode()
        field = field.with_metadata({**field.metadata, DURATION_DIGITS_KEY: digits})
        return field, _with_digits("time", column)
    if code in (_YEAR, _BIT):
        return make_field(name, "int"), "year" if code == _YEAR else "bit"
    if code == _JSON or (is_json and code in _STRINGS):
        return make_field(name, "json"), "json"
    if code == _GEOMETRY or (code in _STRINGS and binary):
        return make_field(name, "bytes"), "blob" if code in (249, 250, 251, 252) else "binary"
    return make_field(name, "str"), "text" if code in (249, 250, 251, 252) else "varchar"


def _with_digits(type_name: str, column: Any) -> str:
    """`datetime(6)`: a temporal type with its fractional digits (1 to 6), as MySQL writes it."""
    digits = column.scale or 0
    return f"{type_name}({digits})" if 0 < digits <= 6 else type_name


def _json_columns(cursor: Any, columns: Sequence[Any]) -> set[tuple[str, str, str]]:
    """(database, table, column) of the base columns that hold JSON: MariaDB's JSON type is
    LONGTEXT with a `json_valid(column)` check, and the protocol reports it as text."""
    tables = sorted(
        {(_text(c.db), c.org_table) for c in columns if c.org_table and c.type_code in _STRINGS}
    )
    found: set[tuple[str, str, str]] = set()
    for database, table in tables:
        cursor.execute(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        for (clause,) in cursor.fetchall():
            found.update((database, table, match) for match in _JSON_CHECK.findall(clause))
    return found


def _pymysql_statement(sql: str, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """`:name` bind parameters in PyMySQL's positional %s form (and bare % escaped)."""
    compiled = sa.text(sql).compile(dialect=mysql_dialect.pymysql.dialect())
    names = compiled.positiontup or []
    return compiled.string, tuple(params[name] for name in names)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
