"""PostgreSQL → CSV, JSON Lines and JSON without parsing: the server writes the rows itself.

COPY's own CSV is nearly our CSV file: its quoting and NULL/empty-string rules are ours
(RFC 4180). Only the text of some types differs from the canonical forms every other path
writes (Python's `repr` for floats, `isoformat()`, `true`/`false`, base64, `str(Decimal)`),
so the query is wrapped in a projection that renders those columns server-side and the
client only moves bytes. For JSON the projection builds each row's whole object; COPY then
runs with control characters as quote and delimiter, which JSON text never holds raw, so
every row arrives exactly as built. `tests/flows/sources/test_pg_render.py` checks each expression
against Python over many values, and the round-trip tests check that these files equal the
Arrow path's byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from flows.core.columns import Kind, kind_of
from flows.core.config import FormatOptions
from flows.core.formats import ExportFormat

_FLOAT4_OID = 700
_JSON_OID = 114  # json keeps its text as written, line breaks included: not a JSON line
# COPY options under which a built JSON row passes unquoted: JSON escapes these characters.
_JSON_COPY_OPTIONS = "FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01'"


@dataclass(frozen=True)
class RenderedQuery:
    """A COPY whose rows are finished rows of `rows_format` (with their line break)."""

    select: str
    copy_options: str
    rows_format: ExportFormat  # "csv", or "jsonl" (also what a JSON array is made of)


def server_rendered(
    sql: str,
    fields: Sequence[pa.Field | None],
    type_oids: Sequence[int],
    fmt: ExportFormat,
    options: FormatOptions,
    order: Sequence[int] = (),
) -> RenderedQuery | None:
    """The query wrapped so that COPY writes our rows of `fmt`, or None where it cannot.

    None for XML and Parquet, for options COPY cannot write (CRLF, a non-ASCII delimiter),
    for a one-column CSV (COPY quotes a lone `\\.` there), for `json` (not jsonb) and array
    columns in JSON, and for columns of unknown type: the caller then takes the Arrow path.
    `order`: the positions of the columns `sql` sorts by, which the rendered rows keep.
    """
    if not fields or len(type_oids) != len(fields) or any(f is None for f in fields):
        return None
    columns = [f"c{index}" for index in range(len(fields))]
    typed = [
        (column, kind_of(field), oid)
        for column, field, oid in zip(columns, fields, type_oids, strict=True)
        if field is not None
    ]
    rows_from = f"FROM ({sql}) AS _export_rows({', '.join(columns)})"
    if order:  # `sql` sorts already; said again so the rendering keeps it (no second sort)
        rows_from += " ORDER BY " + ", ".join(f"_export_rows.c{index}" for index in order)
    if fmt == "csv":
        if options.line_terminator != "lf" or not options.delimiter.isascii():
            return None
        if len(fields) < 2:
            return None
        cells = [_csv_text(column, kind, oid) for column, kind, oid in typed]
        if any(cell is None for cell in cells):
            return None
        aliased = [f"{cell} AS {c}" for cell, c in zip(cells, columns, strict=True)]
        select = f"SELECT {', '.join(aliased)} "
        delimiter = options.delimiter.replace("'", "''")
        return RenderedQuery(select + rows_from, f"FORMAT csv, DELIMITER '{delimiter}'", "csv")
    if fmt in ("jsonl", "json"):
        names = [field.name for field in fields if field is not None]
        members = []
        for index, ((column, kind, oid), name) in enumerate(zip(typed, names, strict=True)):
            value = _json_value(column, kind, oid, options.decimals == "string")
            if value is None:
                return None
            key = json.dumps(name, ensure_ascii=False)
            opener = "{" if index == 0 else ","
            members.append(f"{_literal(opener + key + ':')} || coalesce({value}, 'null')")
        row = " || ".join(members) + " || '}'"
        return RenderedQuery(f"SELECT {row} {rows_from}", _JSON_COPY_OPTIONS, "jsonl")
    return None


def _csv_text(column: str, kind: Kind, oid: int) -> str | None:
    render = _RENDERERS.get(kind)
    return None if render is None else render(_source(column, oid))


def _json_value(column: str, kind: Kind, oid: int, decimals_as_strings: bool) -> str | None:
    """The JSON text of a value as json.dumps writes it (UTF-8 kept); NULL stays NULL."""
    source = _source(column, oid)
    if kind == "int":
        return f"{source}::text"
    if kind == "bool":
        return _bool(source)
    if kind == "float":
        return (
            f"CASE WHEN {source} = 'NaN'::float8 THEN '\"NaN\"' "
            f"WHEN {source} = 'Infinity'::float8 THEN '\"Infinity\"' "
            f"WHEN {source} = '-Infinity'::float8 THEN '\"-Infinity\"' "
            f"ELSE {_float(source)} END"
        )
    if kind == "decimal" and decimals_as_strings:
        return f"'\"' || {_decimal(source)} || '\"'"
    if kind == "decimal":
        return (
            f"CASE WHEN {source} = 'NaN'::numeric OR abs({source}) = 'Infinity'::numeric "
            f"THEN '\"' || {source}::text || '\"' ELSE {_decimal(source)} END"
        )
    if kind == "json":
        return None if oid == _JSON_OID else f"{source}::text"
    if kind == "array":  # its elements are typed and written by the Arrow path
        return None
    if kind == "str":
        return f"to_json({source}::text)::text"
    render = _RENDERERS.get(kind)
    if render is None:
        return None
    return f"'\"' || {render(source)} || '\"'"  # uuid, dates, times, base64: nothing to escape


def _source(column: str, oid: int) -> str:
    # A real is read from its shortest text (0.1, not 0.100000001490116), as COPY reads it.
    return f"{column}::text::float8" if oid == _FLOAT4_OID else column


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _raw(column: str) -> str:
    return column


def _bool(column: str) -> str:
    return f"CASE WHEN {column} THEN 'true' WHEN NOT {column} THEN 'false' END"


def _bytes(column: str) -> str:
    # PostgreSQL's base64 breaks lines every 76 characters; Python's b64encode does not.
    return f"translate(encode({column}, 'base64'), chr(10), '')"


def _time(column: str) -> str:
    # isoformat(): six fraction digits when there is a fraction, none otherwise.
    text = f"{column}::text"
    return f"CASE WHEN length({text}) > 8 THEN rpad({text}, 15, '0') ELSE {text} END"


def _timestamp(column: str, *, utc: bool) -> str:
    local = f"({column} AT TIME ZONE 'UTC')" if utc else column
    iso = f"""replace(to_char({local}, 'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '')"""
    if utc:
        iso = f"{iso} || '+00:00'"
    # to_char's YYYY is the year of the era: a BC year keeps its era as BC dates do.
    era = f"CASE WHEN {local} < '0001-01-01' THEN ' BC' ELSE '' END"
    # Infinite timestamps have no isoformat(): their text is written as it is.
    return f"CASE WHEN isfinite({column}) THEN {iso} || {era} ELSE {column}::text END"


def _decimal(column: str) -> str:
    """Plain digits with the value's scale (0.0000000001, never 1E-10): numeric's own text,
    which is also format(Decimal, "f")."""
    return f"{column}::text"


def _float(column: str) -> str:
    """Python's repr() of a double, from PostgreSQL's shortest text (extra_float_digits=1).

    They differ in three places: an integral value needs ".0"; Python writes the decade
    1e15 ≤ |x| < 1e16 in positional notation where PostgreSQL uses an exponent; and for
    integral values of 1e16 and more PostgreSQL prints every digit (6.3089580386908096e+16
    where repr has 6.30895803869081e+16), so those take the shortest of 15 or 16 digits
    that reads back as the same double. The common case (a fraction, a plain magnitude)
    is the first branch and costs one comparison more than the bare text.
    """
    text = f"{column}::text"
    e15 = f"ltrim(to_char({column}, '9.99999999999999EEEE'))"
    e16 = f"ltrim(to_char({column}, '9.999999999999999EEEE'))"
    shortest = (
        f"(CASE WHEN position('e' in {text}) = 0 OR {column} <> trunc({column}) "
        f"OR abs({column}) >= 1e308 THEN {text} "
        f"WHEN {e15}::float8 = {column} THEN regexp_replace({e15}, '\\.?0+e', 'e') "
        f"WHEN {e16}::float8 = {column} THEN {e16} ELSE {text} END)"
    )
    digits = f"replace(ltrim(split_part({shortest}, 'e', 1), '-'), '.', '')"
    sign = f"(CASE WHEN {column} < 0 THEN '-' ELSE '' END)"
    python = (
        f"CASE WHEN position('e' in {shortest}) = 0 THEN "
        f"(CASE WHEN position('.' in {shortest}) = 0 THEN {shortest} || '.0' ELSE {shortest} END) "
        f"WHEN {shortest} NOT LIKE '%e+15' THEN {shortest} "
        f"WHEN length({digits}) <= 16 THEN {sign} || rpad({digits}, 16, '0') || '.0' "
        f"ELSE {sign} || left({digits}, 16) || '.' || substr({digits}, 17) END"
    )
    return (
        f"CASE WHEN {column} <> trunc({column}) AND abs({column}) >= 1e-4 "
        f"AND abs({column}) < 1e15 THEN {text} "
        f"WHEN {column} = 'NaN'::float8 THEN 'nan' "
        f"WHEN {column} = 'Infinity'::float8 THEN 'inf' "
        f"WHEN {column} = '-Infinity'::float8 THEN '-inf' ELSE {python} END"
    )


_RENDERERS: dict[Kind, Callable[[str], str]] = {
    "int": _raw,
    "str": _raw,
    "uuid": _raw,
    "json": _raw,
    "array": _raw,  # PostgreSQL's array text, as CSV writes it on every path
    "date": _raw,
    "bool": _bool,
    "bytes": _bytes,
    "time": _time,
    "timestamp": lambda column: _timestamp(column, utc=False),
    "timestamptz": lambda column: _timestamp(column, utc=True),
    "decimal": _decimal,
    "float": _float,
}
