"""Vectorised rendering of Arrow columns into the text every format writes.

Each function turns one column of a record batch into one Arrow string array with Arrow
compute kernels, so the cost per row stays in C++ and the text is the same whichever
source the rows came from. The canonical text of a value is Python's: `repr` for floats,
`isoformat()` for dates, times and timestamps, exact digits for decimals, `true`/`false`,
base64 for bytes — the forms dicttoxml and json.dumps produce.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.core.columns import Kind
from flows.formats.xml_names import XML_REPLACEMENT

# Kinds whose text can hold anything: quoted in CSV, escaped in XML. An array is its database's
# array text here; JSON writes its elements (flows/formats/arrays.py).
_TEXT_KINDS: frozenset[Kind] = frozenset({"str", "json", "array"})
# Arrow's shortest float text equals repr() when it has a fraction and no exponent
# (and is not below 1e-4, where repr switches to an exponent) ...
_REPR_SAFE_FLOAT = r"^-?(?:[1-9][0-9]*\.[0-9]+|0\.(?:[1-9]|0[1-9]|00[1-9]|000[1-9])[0-9]*)$"
# ... and, with ".0" appended, when it is an integer of up to 16 digits.
_INTEGRAL_FLOAT = r"^-?[0-9]{1,16}$"
_JSON_CONTROL = r"[\x00-\x1f]"
_JSON_KERNEL_ESCAPES = (("\\", "\\\\"), ('"', '\\"'))
_JSON_NUMBER = r"^-?[0-9]+(?:\.[0-9]+)?(?:E[-+]?[0-9]+)?$"
# Plain decimal text that str(Decimal) writes differently: six or more zeros after the point
# (an adjusted exponent below -6 switches to E notation, e.g. 0.0000001 → 1E-7).
_DECIMAL_EXPONENT = r"[0-9]E[-+]?[0-9]"
_XML_ESCAPES = (("&", "&amp;"), ('"', "&quot;"), ("'", "&apos;"), ("<", "&lt;"), (">", "&gt;"))
# Characters XML 1.0 forbids; each is written as U+FFFD (see README, "How values are written").
_XML_FORBIDDEN_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]"
XML_TYPE_NAMES: dict[Kind, str] = {
    "int": "int",
    "float": "float",
    "decimal": "number",
    "bool": "bool",
}
_NON_FINITE_JSON = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}


def text(array: pa.Array, kind: Kind) -> pa.Array:
    """The canonical text of every value; NULL stays NULL."""
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.string())
    if kind == "decimal":
        return _decimal_text(array)
    if kind in _TEXT_KINDS or kind == "uuid":
        return _as_string(array)
    if kind == "float":
        return _float_text(array)
    if kind == "bytes":
        return pa.array(
            [None if v is None else base64.b64encode(v).decode("ascii") for v in array.to_pylist()],
            pa.string(),
        )
    if kind == "time":
        return pc.replace_substring(pc.cast(array, pa.string()), ".000000", "")
    if kind in ("timestamp", "timestamptz"):
        return _timestamp_text(array, with_offset=kind == "timestamptz")
    if kind == "date" and pa.types.is_date32(array.type):
        return _with_era(pc.cast(array, pa.string()), array.view(pa.int32()), _date_text)
    return pc.cast(array, pa.string())


def csv_cells(array: pa.Array, kind: Kind, delimiter: str) -> pa.Array:
    """CSV fields: quoted (RFC 4180) when they hold the delimiter, a quote or a line break,
    and when they are the empty string, so an empty string never reads back as NULL."""
    values = text(array, kind)
    if kind not in _TEXT_KINDS and kind != "bytes" and delimiter not in _NON_TEXT_CHARS:
        return values  # numbers, booleans and dates cannot hold a quote or the delimiter
    needs_quotes = pc.or_(
        pc.match_substring_regex(values, "[" + re.escape(delimiter) + '"\r\n]'),
        pc.equal(values, ""),
    )
    if not pc.any(needs_quotes).as_py():
        return values
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, values)


# Characters that the text of a non-text kind can contain.
_NON_TEXT_CHARS = frozenset("0123456789abcdef-+.:ETtrulsnij")


def json_values(array: pa.Array, kind: Kind, *, decimals_as_strings: bool = False) -> pa.Array:
    """JSON values (as json.dumps writes them, UTF-8 kept); NULL becomes null. Decimals are
    numbers with their exact digits, or strings with `decimals_as_strings`."""
    if kind == "json":
        values = _json_documents(_as_string(array))
    elif kind == "uuid":  # hex digits and dashes: nothing to escape
        values = pc.binary_join_element_wise('"', _as_string(array), '"', "")
    elif kind in ("int", "bool"):
        values = text(array, kind)
    elif kind == "float":
        values = _float_text(array)
        if not pc.all(pc.fill_null(pc.is_finite(array), True)).as_py():
            for raw, rendered in _NON_FINITE_JSON.items():
                values = pc.if_else(pc.equal(values, raw), rendered, values)
    elif kind == "decimal" and decimals_as_strings:
        values = pc.binary_join_element_wise('"', text(array, kind), '"', "")
    elif kind == "decimal":
        values = text(array, kind)
        # Exact text may hold NaN / Infinity; a literal scan rules them out cheaply.
        if pa.types.is_string(array.type) and (_has(values, "N") or _has(values, "I")):
            numeric = pc.match_substring_regex(values, _JSON_NUMBER)
            values = pc.if_else(pc.fill_null(numeric, True), values, _json_strings(values))
    else:
        values = _json_strings(text(array, kind))
    return pc.fill_null(values, "null")


def _json_documents(values: pa.Array) -> pa.Array:
    """JSON column values as stored, on one line: a `json` column keeps its writer's
    whitespace, line breaks included, which would split a JSON Lines record. Outside strings
    (where JSON escapes them) a line break is insignificant whitespace, so it becomes a space:
    numbers and strings keep their exact text."""
    if not _contains(values, "[\r\n]"):
        return values
    return pc.replace_substring_regex(values, "[\r\n]+[ \t]*", " ")


def _json_strings(values: pa.Array) -> pa.Array:
    """JSON string literals. Kernels escape quotes and backslashes; the rare values holding
    control characters (one scan finds them) are written by json.dumps itself."""
    controls = pc.fill_null(pc.match_substring_regex(values, _JSON_CONTROL), False)
    with_controls = pc.filter(values, controls).to_pylist() if pc.any(controls).as_py() else []
    for raw, escaped in _JSON_KERNEL_ESCAPES:
        if _contains(values, re.escape(raw)):
            values = pc.replace_substring(values, raw, escaped)
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    if not with_controls:
        return quoted
    dumped = pa.array([json.dumps(value, ensure_ascii=False) for value in with_controls])
    return pc.replace_with_mask(quoted, controls, dumped)


def xml_elements(
    array: pa.Array, kind: Kind, open_tag: str, close_tag: str, null_element: str
) -> pa.Array:
    """One XML element per value, escaped as dicttoxml escapes; NULL becomes `null_element`."""
    values = text(array, kind)
    if kind in _TEXT_KINDS or kind == "decimal":
        values = xml_escape(values)
    return pc.fill_null(pc.binary_join_element_wise(open_tag, values, close_tag, ""), null_element)


def xml_escape(values: pa.Array) -> pa.Array:
    """Escape & " ' < > like dicttoxml, write a carriage return as `&#13;` (a parser turns a
    raw CR into LF), and replace characters XML 1.0 forbids."""
    if pc.any(pc.match_substring_regex(values, _XML_FORBIDDEN_RE2)).as_py():
        values = pc.replace_substring_regex(values, _XML_FORBIDDEN_RE2, XML_REPLACEMENT)
    if _contains(values, "[&<>\"']"):
        for raw, escaped in _XML_ESCAPES:  # "&" first
            if _contains(values, "[" + raw + "]"):
                values = pc.replace_substring(values, raw, escaped)
    if _contains(values, "\r"):
        values = pc.replace_substring(values, "\r", "&#13;")
    return values


def _contains(values: pa.Array, pattern: str) -> bool:
    """Whether any value matches: a scan costs a fraction of a replace, which copies."""
    return bool(pc.any(pc.match_substring_regex(values, pattern)).as_py())


def _has(values: pa.Array, literal: str) -> bool:
    """Whether any value holds `literal`: a plain scan, several times cheaper than a regex."""
    return bool(pc.any(pc.match_substring(values, literal)).as_py())


def concat(parts: list[pa.Array | str]) -> pa.Array:
    """Concatenate columns and literal strings element-wise (NULLs as empty)."""
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")


def string_bytes(array: pa.Array, start: int = 0, stop: int | None = None) -> memoryview:
    """The UTF-8 bytes of rows [start, stop) of a NULL-free string array, without copying."""
    stop = len(array) if stop is None else stop
    if stop <= start:
        return memoryview(b"")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)
    first = int(offsets[array.offset + start])
    last = int(offsets[array.offset + stop])
    return memoryview(array.buffers()[2])[first:last]


def row_ends(array: pa.Array) -> np.ndarray:
    """Cumulative byte length of each row of a string array (for exact size-based splits)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)
    window = offsets[array.offset : array.offset + len(array) + 1].astype(np.int64)
    ends: np.ndarray = window[1:] - window[0]
    return ends


def _as_string(array: pa.Array) -> pa.Array:
    return array if array.type == pa.string() else pc.cast(array, pa.string())


def _decimal_text(array: pa.Array) -> pa.Array:
    """Exact decimal text with plain digits and the value's scale, format(Decimal, "f"):
    `0.0000000001` where Arrow's and str(Decimal)'s text is `1E-10`."""
    values = _as_string(array)
    if not _has(values, "E"):
        return values
    odd = pc.fill_null(pc.match_substring_regex(values, _DECIMAL_EXPONENT), False)
    if pc.any(odd).as_py():
        picked = pc.filter(values, odd).to_pylist()
        values = pc.replace_with_mask(
            values, odd, pa.array([format(decimal.Decimal(v), "f") for v in picked], pa.string())
        )
    return values


def _float_text(array: pa.Array) -> pa.Array:
    doubles = pc.cast(array, pa.float64())
    values = pc.cast(doubles, pa.string())
    safe = pc.fill_null(pc.match_substring_regex(values, _REPR_SAFE_FLOAT), True)
    integral = pc.fill_null(pc.match_substring_regex(values, _INTEGRAL_FLOAT), False)
    values = pc.if_else(integral, pc.binary_join_element_wise(values, ".0", ""), values)
    other = pc.invert(pc.or_(safe, integral))
    if pc.any(other).as_py():  # exponents, nan, inf: let Python write them
        picked = pc.filter(doubles, other).to_pylist()
        values = pc.replace_with_mask(values, other, pa.array([repr(v) for v in picked]))
    return values


def _timestamp_text(array: pa.Array, *, with_offset: bool) -> pa.Array:
    micros = array.type.unit == "us"
    naive = pa.timestamp(array.type.unit)
    # Timestamps are stored as UTC instants; dropping the zone keeps the UTC wall time and
    # avoids Arrow's per-value time-zone lookup.
    plain = pa.Array.from_buffers(
        naive, len(array), array.buffers(), array.null_count, array.offset
    )
    if not micros:
        plain = pc.cast(plain, pa.timestamp("us"), safe=False)
    values = pc.replace_substring(pc.cast(plain, pa.string()), " ", "T", max_replacements=1)
    values = pc.replace_substring(values, ".000000", "")
    if with_offset:
        values = pc.binary_join_element_wise(values, "+00:00", "")
    offset = "+00:00" if with_offset else ""
    return _with_era(values, plain.view(pa.int64()), lambda micros: _micros_text(micros, offset))


# Dates and timestamps before 0001-01-01 are written as PostgreSQL writes them, the year of
# the era with ` BC` after the ISO text: 0044-03-15 BC, 0044-03-15T12:00:00+00:00 BC.
_FIRST_AD_DAY = -719_162  # 0001-01-01, in days since 1970-01-01
_FIRST_AD_MICROS = _FIRST_AD_DAY * 86_400 * 1_000_000
_CYCLE_DAYS = 146_097  # the Gregorian calendar repeats every 400 years
_EPOCH = dt.datetime(1970, 1, 1)


def _with_era(values: pa.Array, counts: pa.Array, write: Callable[[int], str]) -> pa.Array:
    """`values` with the BC ones (days or microseconds since 1970 in `counts`) rewritten by
    `write`; one reduction when there are none."""
    first = _FIRST_AD_DAY if pa.types.is_int32(counts.type) else _FIRST_AD_MICROS
    earliest = pc.min(counts).as_py()
    if earliest is None or earliest >= first:
        return values
    era = pc.fill_null(pc.less(counts, first), False)
    written = [write(count) for count in pc.filter(counts, era).to_pylist()]
    return pc.replace_with_mask(values, era, pa.array(written, pa.string()))


def _date_text(days: int) -> str:
    """A BC date: read 400-year cycles later (where Python has it), the cycles taken off the
    year."""
    cycles = (_FIRST_AD_DAY - days) // _CYCLE_DAYS + 1
    later = _EPOCH.date() + dt.timedelta(days=days + cycles * _CYCLE_DAYS)
    return _bc_year(later.isoformat(), later.year - 400 * cycles)


def _micros_text(micros: int, offset: str) -> str:
    per_cycle = _CYCLE_DAYS * 86_400 * 1_000_000
    cycles = (_FIRST_AD_MICROS - micros) // per_cycle + 1
    later = _EPOCH + dt.timedelta(microseconds=micros + cycles * per_cycle)
    return _bc_year(later.isoformat() + offset, later.year - 400 * cycles)


def _bc_year(iso: str, astronomical_year: int) -> str:
    """ISO text of a year ≤ 0 (1 BC is the year 0) as the year of the era and ` BC`."""
    return f"{1 - astronomical_year:04d}{iso[4:]} BC"
