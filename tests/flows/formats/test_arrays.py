"""PostgreSQL's array text read into elements: the grammar array_out writes, each element
typed as its kind, JSON arrays and Arrow lists. The texts here are what PostgreSQL 15 prints
for them (`SELECT ARRAY[...]::text`); tests/flows/formats/test_duckdb_reads.py exports real
arrays from a real server."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from flows.core.columns import array_field
from flows.core.errors import FormatError
from flows.formats.arrays import json_arrays, list_array, parse_array

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("{}", []),
        ("{1,2,3}", ["1", "2", "3"]),
        ("{NULL,1}", [None, "1"]),
        ('{"NULL",null}', ["NULL", "null"]),  # quoted NULL is text; only NULL is NULL
        ('{"a b","",c}', ["a b", "", "c"]),
        ('{"say \\"hi\\"","back\\\\slash"}', ['say "hi"', "back\\slash"]),
        ('{"{braces}","a,b"}', ["{braces}", "a,b"]),
        ('{"line\nbreak"}', ["line\nbreak"]),
        ("{{1,2},{3,NULL}}", [["1", "2"], ["3", None]]),
        ("{{{1}},{{2}}}", [[["1"]], [["2"]]]),
        ("[0:2]={7,8,9}", ["7", "8", "9"]),
        ('{"2024-01-01 10:00:00+00",NULL}', ["2024-01-01 10:00:00+00", None]),
        ('{"{\\"a\\": 1}","[1, 2]"}', ['{"a": 1}', "[1, 2]"]),
    ],
)
def test_parse_array_reads_array_out_text(text: str, items: list[object]) -> None:
    assert parse_array(text) == items


def test_parse_array_uses_the_element_delimiter() -> None:
    assert parse_array("{(1,1),(0,0);(2,2),(1,1)}", ";") == ["(1,1),(0,0)", "(2,2),(1,1)"]


def json_of(texts: list[str | None], kind: str, *, as_strings: bool = False) -> list[object]:
    column = pa.array(texts, pa.string())
    field = array_field("a", kind)  # type: ignore[arg-type]
    rendered = json_arrays(column, field, decimals_as_strings=as_strings).to_pylist()
    return [json.loads(text, parse_float=Decimal) for text in rendered]


def test_json_arrays_write_each_element_as_its_kind() -> None:
    assert json_of(["{1,NULL,-3}", None, "{}"], "int") == [[1, None, -3], None, []]
    assert json_of(["{t,f,NULL}"], "bool") == [[True, False, None]]
    floats = pa.array(["{0.1,NaN,-Infinity,1e+300,3}"])
    assert json_arrays(
        floats, array_field("f", "float"), decimals_as_strings=False
    ).to_pylist() == [
        '[0.1,"NaN","-Infinity",1e+300,3.0]'  # as a float column writes them (repr)
    ]
    assert json_of(["{0.0000000001,12345678901234567890.5}"], "decimal") == [
        [Decimal("0.0000000001"), Decimal("12345678901234567890.5")]
    ]
    assert json_of(["{1.50}"], "decimal", as_strings=True) == [["1.50"]]
    assert json_of(['{"2024-01-01 10:00:00.5+00"}'], "timestamptz") == [
        ["2024-01-01T10:00:00.500000+00:00"]
    ]
    assert json_of(["{2024-02-29}"], "date") == [["2024-02-29"]]
    assert json_of(['{"23:59:59.25"}'], "time") == [["23:59:59.250000"]]
    assert json_of(['{"\\\\x00ff"}'], "bytes") == [["AP8="]]
    assert json_of(['{"tab\there","quote\\""}'], "str") == [["tab\there", 'quote"']]
    assert json_of(['{"{\\"a\\": [1, 2]}"}'], "json") == [[{"a": [1, 2]}]]
    assert json_of(["{{1,2},{3,4}}"], "int") == [[[1, 2], [3, 4]]]


def test_list_array_types_the_elements() -> None:
    field = array_field("moments", "timestamptz")
    column = pa.array(['{"2024-01-01 10:00:00+00",NULL}', None, "{}"])
    lists = list_array(column, field)
    assert lists.type == pa.list_(pa.timestamp("us", tz="UTC"))
    utc = dt.UTC
    assert lists.to_pylist() == [[dt.datetime(2024, 1, 1, 10, tzinfo=utc), None], None, []]


def test_list_array_refuses_more_than_one_dimension_and_says_what_to_do() -> None:
    field = array_field("grid", "int")
    with pytest.raises(
        FormatError,
        match=r"column `grid` holds a multi-dimensional array "
        r"\(\{\{1,2\},\{3,4\}\}\).*array_to_json\(column\)::jsonb",
    ):
        list_array(pa.array(["{1}", "{{1,2},{3,4}}"]), field)


def test_an_element_its_kind_cannot_hold_fails_naming_the_column() -> None:
    with pytest.raises(FormatError, match=r"column `days`: an array element is not a date"):
        list_array(pa.array(["{2024-01-01,infinity}"]), array_field("days", "date"))
