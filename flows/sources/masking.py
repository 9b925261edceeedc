"""Hashed and masked columns (`source.columns`): what a partner must not see leaves the source
already hidden.

Masks are SQL, in the projection every reader runs (flows/sources/shape.py), so a masked value
never reaches this process: `last4` keeps the last 4 characters and writes every other one as
`*` (the length is kept: `************1111`; a value of 4 characters or fewer is written as it
is), `null` writes NULL of the column's own type. PostgreSQL, MySQL/MariaDB and SQLite each get
their own string functions; other databases are refused before the run.

`hmac_sha256` is the hex HMAC-SHA256 of the value's UTF-8 text, computed here, per batch, on
the column's values (one comprehension over the column: Python's `hmac`, never hand-made
cryptography in SQL). The key is loaded from its HashKey block when the read starts and is
never sent to the database, so no server log, statement statistic or error can hold it.
NULL stays NULL under both.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from flows.core.columns import kind_of
from flows.core.config import MASK_NULL, ColumnSpec, SourceConfig
from flows.core.errors import ConfigurationError

MASK_CHARACTER = "*"
KEPT = 4  # last4
# Kinds whose values are text a hash or last4 applies to (a uuid as its canonical text).
TEXT_KINDS = ("str", "uuid")

# last4 in each database's own string functions: `{value}` is the column as text, every
# character but the last KEPT written as MASK_CHARACTER, the length kept; NULL stays NULL.
_MYSQL_LAST4 = (
    "CONCAT(REPEAT('{mask}', GREATEST(CHAR_LENGTH({value}) - {kept}, 0)), RIGHT({value}, {kept}))"
)
_LAST4_SQL = {
    "postgresql": (
        "(repeat('{mask}', greatest(char_length({value}) - {kept}, 0)) || right({value}, {kept}))"
    ),
    "mysql": _MYSQL_LAST4,
    "mariadb": _MYSQL_LAST4,
    # SQLite has no repeat(): n zero bytes in hex are 2n zeros, each pair one `*`.
    "sqlite": (
        "(replace(hex(zeroblob(max(length({value}) - {kept}, 0))), '00', '{mask}') "
        "|| substr({value}, -{kept}))"
    ),
}
# The databases masks are written for; others are refused before the run.
MASKING_DIALECTS = tuple(_LAST4_SQL)


@dataclass(frozen=True)
class HashedColumn:
    """A column of the output hashed with the key of a saved block; `field` names the entry."""

    output: str
    key_block: str
    field: str  # source.columns[2]


def protected(columns: Sequence[ColumnSpec] | None) -> tuple[list[str], list[str]]:
    """The output names of the hashed columns and of the masked ones (what the manifest and
    the summary say: names only)."""
    chosen = columns or []
    return (
        [column.output for column in chosen if column.hash is not None],
        [column.output for column in chosen if column.mask is not None],
    )


def hashed_columns(columns: Sequence[ColumnSpec] | None) -> tuple[HashedColumn, ...]:
    return tuple(
        HashedColumn(column.output, str(column.key), f"source.columns[{index}]")
        for index, column in enumerate(columns or [])
        if column.hash is not None
    )


def check_hash_keys(source: SourceConfig) -> None:
    """Every hash key block exists, before any row is read (the key itself is dropped)."""
    for column in hashed_columns(source.columns):
        _load_key(column)


def _load_key(column: HashedColumn) -> bytes:
    from blocks.hash_key import HashKey
    from blocks.integrations import load_named_block

    block = load_named_block(f"{column.field}.key", column.key_block, HashKey)
    assert isinstance(block, HashKey)
    return block.key.get_secret_value().encode()


# -- checked with the source's columns ---------------------------------------------------------


def check_protectable(index: int, column: ColumnSpec, field: pa.Field | None, dialect: str) -> None:
    """A hash or last4 needs text; a mask needs a database we write its SQL for. A column
    whose type is not known before rows are read (a SQLite query) is taken as its text."""
    where = f"source.columns[{index}]"
    if column.mask is not None and dialect not in MASKING_DIALECTS:
        raise ConfigurationError(
            f"{where}.mask: masks are written in the database's SQL, and `{dialect}` is not "
            "one this export writes them for",
            field=f"{where}.mask",
            hint="mask it in the query, or read from PostgreSQL, MySQL/MariaDB or SQLite",
        )
    what = "hash" if column.hash is not None else "mask" if column.mask == "last4" else None
    if what is None or field is None or kind_of(field) in TEXT_KINDS:
        return
    raise ConfigurationError(
        f"{where}.{what}: `{column.name}` is a {kind_of(field)} column; {column.hash or 'last4'} "
        "applies to text",
        field=f"{where}.{what}",
        hint=f"export it as text from a query, e.g. CAST({column.name} AS VARCHAR(64))",
    )


def protected_expression(column: ColumnSpec, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The column's value as the projection selects it: masked, as text for a hash, or as is."""
    if column.mask == MASK_NULL:
        return sa.case((sa.false(), value))  # NULL of the column's own type
    if column.mask is not None:
        return _Last4(sa.cast(value, sa.Text()))
    if column.hash is not None:
        return sa.cast(value, sa.Text())
    return value


class _Last4(FunctionElement[str]):
    """All but the last 4 characters as `*`, the length kept; NULL stays NULL."""

    type = sa.Text()
    name = "last4"
    inherit_cache = True


@compiles(_Last4)
def _last4(element: _Last4, compiler: SQLCompiler, **kw: Any) -> str:
    """last4 in the compiling database's SQL (PostgreSQL's for one without its own: such a
    database is refused before the run, check_protectable)."""
    template = _LAST4_SQL.get(compiler.dialect.name, _LAST4_SQL["postgresql"])
    value = compiler.process(element.clauses, **kw)
    return template.format(value=value, mask=MASK_CHARACTER, kept=KEPT)


# -- hashing the batches -----------------------------------------------------------------------


def hash_batches(
    batches: Generator[pa.RecordBatch, None, None], columns: Sequence[HashedColumn]
) -> Iterator[pa.RecordBatch]:
    """The batches with each hashed column replaced by its HMAC-SHA256 hex digests; closing
    this closes the reader (its COPY thread stops)."""
    try:
        keys = [(column, _load_key(column)) for column in columns]
        for batch in batches:
            arrays = list(batch.columns)
            for column, key in keys:
                index = batch.schema.get_field_index(column.output)
                arrays[index] = hmac_sha256(arrays[index], key, column)
            yield pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
    finally:
        batches.close()


def hmac_sha256(values: pa.Array, key: bytes, column: HashedColumn) -> pa.Array:
    """Each value's hex HMAC-SHA256 (of its UTF-8 text); NULL stays NULL. One comprehension
    over the column's values: the hash itself is C (hashlib), a batch at a time."""
    if pa.types.is_null(values.type):  # only NULLs so far: nothing to hash
        return values
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise ConfigurationError(
            f"{column.field}.hash: `{column.output}` holds {values.type} values; "
            "hmac_sha256 applies to text",
            field=f"{column.field}.hash",
            hint="export it as text from the query, e.g. CAST(column AS TEXT)",
        )
    digests = [
        None if value is None else hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
        for value in values.to_pylist()
    ]
    return pa.array(digests, type=values.type)
