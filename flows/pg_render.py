"""PostgreSQL → CSV without parsing: the server writes each value's canonical text itself.

For a CSV export from PostgreSQL, COPY's own CSV is nearly the file we want: its quoting
and NULL/empty-string rules are ours (RFC 4180). Only the text of some types differs from
the canonical forms every other path writes (Python's `repr` for floats, `isoformat()`,
`true`/`false`, base64, `str(Decimal)`), so the query is wrapped in a projection that renders
those columns server-side, and the client only moves bytes. `tests/flows/test_pg_render.py`
checks each expression against Python over many values, and the round-trip tests check that
this path and the Arrow path write the very same file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from flows.columns import kind_of
from flows.config import FormatOptions
from flows.types import Kind

_FLOAT4_OID = 700


def canonical_select(
    sql: str, fields: Sequence[pa.Field | None], type_oids: Sequence[int], options: FormatOptions
) -> str | None:
    """The query wrapped so that COPY's CSV equals our CSV, or None where it cannot.

    None when the options differ from COPY's CSV (CRLF, a non-ASCII delimiter), when a
    single column could meet COPY's `\\.` quoting rule, or for a column kind we do not
    render server-side: the caller then takes the Arrow path.
    """
    if options.line_terminator != "lf" or not options.delimiter.isascii():
        return None
    if len(fields) < 2 or len(type_oids) != len(fields):
        return None
    columns = [f"c{index}" for index in range(len(fields))]
    expressions = []
    for column, field, oid in zip(columns, fields, type_oids, strict=True):
        if field is None:
            return None
        kind = kind_of(field)
        render = _RENDERERS.get(kind)
        if render is None:
            return None
        source = f"{column}::text::float8" if oid == _FLOAT4_OID else column
        expressions.append(f"{render(source)} AS {column}")
    return f"SELECT {', '.join(expressions)} FROM ({sql}) AS _export_rows({', '.join(columns)})"


def copy_options(options: FormatOptions) -> str:
    """COPY's options for the CSV that `canonical_select` makes exact (no header: ours)."""
    delimiter = options.delimiter.replace("'", "''")
    return f"FORMAT csv, DELIMITER '{delimiter}'"


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
    # Infinite timestamps have no isoformat(): their text is written as it is.
    return f"CASE WHEN isfinite({column}) THEN {iso} ELSE {column}::text END"


def _decimal(column: str) -> str:
    """str(Decimal): E notation once the adjusted exponent is below -6 (0.0000001 → 1E-7)."""
    text = f"{column}::text"
    fraction = f"split_part({text}, '.', 2)"
    digits = f"ltrim({fraction}, '0')"
    sign = f"(CASE WHEN {column} < 0 THEN '-' ELSE '' END)"
    mantissa = (
        f"left({digits}, 1) || CASE WHEN length({digits}) > 1 "
        f"THEN '.' || substr({digits}, 2) ELSE '' END"
    )
    exponent = f"(length({fraction}) - length({digits}) + 1)::text"
    scientific = (
        f"CASE WHEN {digits} = '' THEN '0E-' || length({fraction})::text "
        f"ELSE {sign} || {mantissa} || 'E-' || {exponent} END"
    )
    return (
        f"CASE WHEN abs({column}) < 0.000001 AND scale({column}) > 6 "
        f"THEN {scientific} ELSE {text} END"
    )


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
    "date": _raw,
    "bool": _bool,
    "bytes": _bytes,
    "time": _time,
    "timestamp": lambda column: _timestamp(column, utc=False),
    "timestamptz": lambda column: _timestamp(column, utc=True),
    "decimal": _decimal,
    "float": _float,
}
