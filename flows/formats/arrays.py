"""Array columns as JSON arrays and as Parquet lists.

An array column arrives as PostgreSQL's array text (`{1,2,NULL}`, `{"a b",NULL}`,
`{{1,2},{3,4}}`), which CSV and XML write as it is. JSON and Parquet want the elements
themselves: this module reads that text (the grammar PostgreSQL's array output follows: braces,
the element type's delimiter, double quotes with backslash escapes, an unquoted NULL, an
optional `[lower:upper]=` prefix) and types each element from its text, as the COPY reader
types a column's text (flows/sources/postgres.py), so an element renders exactly like a value
of its kind in a column of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Union, cast

import pyarrow as pa
import pyarrow.compute as pc

from flows.core.columns import Kind, default_type, element_kind_of, element_type_of
from flows.core.errors import FormatError
from flows.formats import render

Items = list[Union["Items", str, None]]  # one array level: elements and nested arrays
_SPECIAL = frozenset('{}"\\')
_CAST_KINDS: frozenset[Kind] = frozenset({"int", "float", "date", "timestamp", "timestamptz"})


def parse_array(text: str, delimiter: str = ",") -> Items:
    """The elements of one array's text, nested lists for more than one dimension; an
    unquoted NULL is None (a quoted "NULL" is the text NULL). Lower bounds are dropped."""
    if text.startswith("["):  # [0:2]={1,2,3}: bounds other than 1
        text = text[text.index("=") + 1 :]
    inner = text[1:-1]
    if text[:1] == "{" and text[-1:] == "}" and _SPECIAL.isdisjoint(inner):
        return (
            [None if item == "NULL" else item for item in inner.split(delimiter)] if inner else []
        )
    items, end = _level(text, 0, delimiter)
    if end != len(text):
        raise ValueError(f"unexpected text after the array: {text[end:]!r}")
    return items


def _level(text: str, pos: int, delimiter: str) -> tuple[Items, int]:
    """The array level opening at text[pos] ("{"), and the position after its "}"."""
    if text[pos] != "{":
        raise ValueError(f"expected {{ at {pos} in {text!r}")
    items: Items = []
    pos += 1
    if text[pos] == "}":
        return items, pos + 1
    while True:
        char = text[pos]
        item: Items | str | None
        if char == "{":
            item, pos = _level(text, pos, delimiter)
        elif char == '"':
            chars = []
            pos += 1
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos])
                pos += 1
            item, pos = "".join(chars), pos + 1
        else:
            chars = []
            while text[pos] not in (delimiter, "}"):
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos])
                pos += 1
            word = "".join(chars)
            item = None if word == "NULL" else word
        items.append(item)
        if text[pos] == delimiter:
            pos += 1
        elif text[pos] == "}":
            return items, pos + 1
        else:
            raise ValueError(f"expected {delimiter!r} or }} at {pos} in {text!r}")


def typed_elements(
    texts: Sequence[str | None], kind: Kind, column: str, arrow_type: pa.DataType | None = None
) -> pa.Array:
    """Element texts as an Arrow array of their kind (decimals stay exact text)."""
    strings = pa.array(texts, pa.string())
    try:
        if kind == "bool":
            return pc.equal(strings, "t")
        if kind in _CAST_KINDS:
            return pc.cast(strings, arrow_type or default_type(kind))
        if kind == "time":
            times = [None if t is None else dt.time.fromisoformat(t) for t in texts]
            return pa.array(times, pa.time64("us"))
        if kind == "bytes":  # \x followed by hex
            return pa.array([None if t is None else bytes.fromhex(t[2:]) for t in texts])
    except (pa.ArrowInvalid, ValueError) as exc:
        raise FormatError(
            f"column `{column}`: an array element is not a {kind} this format can hold "
            f"({exc}); CAST the column to text[] in a `query`"
        ) from exc
    return strings  # str, uuid, json, decimal: their text is the value


def json_arrays(column: pa.Array, field: pa.Field, *, decimals_as_strings: bool) -> pa.Array:
    """Each array as a JSON array (nested for more dimensions), its elements written as
    values of their kind are; NULL becomes null."""
    kind, delimiter = element_kind_of(field)
    parsed = [
        None if text is None else _parsed(text, delimiter, field) for text in column.to_pylist()
    ]
    leaves: list[str | None] = []
    for items in parsed:
        if items is not None:
            _collect(items, leaves)
    elements = typed_elements(leaves, kind, field.name)
    rendered = render.json_values(elements, kind, decimals_as_strings=decimals_as_strings)
    values = iter(rendered.to_pylist())
    texts = [None if items is None else _json_text(items, values) for items in parsed]
    return pc.fill_null(pa.array(texts, pa.string()), "null")


def list_type(field: pa.Field) -> pa.DataType:
    """The Arrow list type an array column is stored as (one dimension)."""
    return pa.list_(element_type_of(field))


def list_array(column: pa.Array, field: pa.Field, fmt: str = "Parquet") -> pa.Array:
    """Each array as a list of typed elements; a NULL array stays NULL. Parquet columns
    (and our Avro arrays) have one nesting depth, so an array of more than one dimension is
    refused, naming `fmt`."""
    kind, delimiter = element_kind_of(field)
    offsets = [0]
    leaves: list[str | None] = []
    nulls = []
    for text in column.to_pylist():
        items = [] if text is None else _parsed(text, delimiter, field)
        if any(isinstance(item, list) for item in items):
            raise FormatError(
                f"column `{field.name}` holds a multi-dimensional array ({_short(text)}); "
                f"{fmt} stores one-dimensional arrays as lists: select the column as "
                "`array_to_json(column)::jsonb` (JSON) or `column::text` in a `query`"
            )
        leaves.extend(cast(list[str | None], items))
        offsets.append(len(leaves))
        nulls.append(text is None)
    values = typed_elements(leaves, kind, field.name, element_type_of(field))
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), values, list_type(field), mask=pa.array(nulls)
    )


def _parsed(text: str, delimiter: str, field: pa.Field) -> Items:
    try:
        return parse_array(text, delimiter)
    except (ValueError, IndexError) as exc:
        raise FormatError(
            f"column `{field.name}`: `{_short(text)}` is not array text ({exc})"
        ) from exc


def _collect(items: Items, leaves: list[str | None]) -> None:
    for item in items:
        if isinstance(item, list):
            _collect(item, leaves)
        else:
            leaves.append(item)


def _json_text(items: Items, values: Iterator[str]) -> str:
    parts = (_json_text(item, values) if isinstance(item, list) else next(values) for item in items)
    return "[" + ",".join(parts) + "]"


def _short(text: str | None, limit: int = 60) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
