"""How one value is written in each format (flows/formats/render.py): the exact text a reader
of the file sees, value by value, without a database or a run. The round trips through real
sources and files are tests/flows/formats/test_roundtrip.py (server tier).

Each case is an Arrow column as a source fills it and the text expected, written out by hand
from the rendering contract (README, "How values are written"): floats as Python's repr,
decimals with their exact digits, isoformat() dates and times (timestamptz in UTC with
+00:00, BC dates as PostgreSQL writes them), true/false, base64 bytes, NULL kept apart.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from flows.core.columns import Kind
from flows.formats.render import csv_cells, json_values, text, xml_elements

pytestmark = pytest.mark.unit

UTC = dt.UTC
DAY_MICROS = 86_400 * 1_000_000
FIRST_AD_DAY = -719_162  # 0001-01-01 in days since 1970-01-01


def _bc_micros(days_before_year_1: int, hours: int = 0) -> int:
    return (FIRST_AD_DAY - days_before_year_1) * DAY_MICROS + hours * 3_600 * 1_000_000


# (case id, values, Arrow type, kind, canonical text of each value; None = NULL)
TEXT_CASES: list[tuple[str, list[Any], pa.DataType, Kind, list[str | None]]] = [
    ("int64 extremes", [9223372036854775807, -9223372036854775808, 0, None], pa.int64(), "int",
     ["9223372036854775807", "-9223372036854775808", "0", None]),
    ("int16", [32767, -32768], pa.int16(), "int", ["32767", "-32768"]),
    ("float repr", [0.1 + 0.2, 1.5, -2.25], pa.float64(), "float",
     ["0.30000000000000004", "1.5", "-2.25"]),
    ("float integral gets .0", [100.0, 0.0, -7.0, 2.0**53 + 2], pa.float64(), "float",
     ["100.0", "0.0", "-7.0", "9007199254740994.0"]),
    ("float exponents as repr", [1e-05, 1e16, 5e-324, 1.7976931348623157e308], pa.float64(),
     "float", ["1e-05", "1e+16", "5e-324", "1.7976931348623157e+308"]),
    ("float small fractions", [0.0001, 0.001, 0.00012], pa.float64(), "float",
     ["0.0001", "0.001", "0.00012"]),
    ("float non-finite and negative zero", [float("nan"), float("inf"), float("-inf"), -0.0],
     pa.float64(), "float", ["nan", "inf", "-inf", "-0.0"]),
    ("float32 widened to its double", [1.5, 0.1], pa.float32(), "float",
     ["1.5", "0.10000000149011612"]),
    ("float NULL", [None, 2.5], pa.float64(), "float", [None, "2.5"]),
    ("decimal128 keeps its scale", [Decimal("12.50"), Decimal("-0.01"), Decimal("0.00")],
     pa.decimal128(12, 2), "decimal", ["12.50", "-0.01", "0.00"]),
    ("decimal128 tiny without exponent", [Decimal("0.0000000001"), Decimal("1.5")],
     pa.decimal128(30, 10), "decimal", ["0.0000000001", "1.5000000000"]),
    ("decimal text exact digits", ["1E-10", "0.0000001", "1E+40", "-123.4500"], pa.string(),
     "decimal", ["0.0000000001", "0.0000001", "10000000000000000000000000000000000000000",
                 "-123.4500"]),
    ("decimal text NaN and infinities", ["NaN", "Infinity", "-Infinity", None], pa.string(),
     "decimal", ["NaN", "Infinity", "-Infinity", None]),
    ("bool", [True, False, None], pa.bool_(), "bool", ["true", "false", None]),
    ("str as is", ["a,b", 'say "hi"', "", None, "中文 😀"], pa.string(), "str",
     ["a,b", 'say "hi"', "", None, "中文 😀"]),
    ("uuid text", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"], pa.string(), "uuid",
     ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
    ("json text as stored", ['{"a": 1}', "[]", None], pa.string(), "json",
     ['{"a": 1}', "[]", None]),
    ("bytes base64", [b"", b"\x00\xff", b"plain ascii", None], pa.binary(), "bytes",
     ["", "AP8=", "cGxhaW4gYXNjaWk=", None]),
    ("date isoformat", [dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31), None],
     pa.date32(), "date", ["2024-02-29", "0001-01-01", "9999-12-31", None]),
    ("date BC as PostgreSQL writes it", [FIRST_AD_DAY - 1, FIRST_AD_DAY - 366, FIRST_AD_DAY - 367],
     pa.date32(), "date", ["0001-12-31 BC", "0001-01-01 BC", "0002-12-31 BC"]),
    ("date BC 44", [(dt.date(357, 3, 15) - dt.date(1970, 1, 1)).days - 146_097], pa.date32(),
     "date", ["0044-03-15 BC"]),
    ("time without zero micros", [dt.time(8, 30), dt.time(0, 0), None], pa.time64("us"), "time",
     ["08:30:00", "00:00:00", None]),
    ("time with micros", [dt.time(23, 59, 59, 999999), dt.time(12, 0, 0, 500000)],
     pa.time64("us"), "time", ["23:59:59.999999", "12:00:00.500000"]),
    ("timestamp naive", [dt.datetime(2023, 1, 1), dt.datetime(1900, 1, 1, 12, 34, 56, 789000)],
     pa.timestamp("us"), "timestamp", ["2023-01-01T00:00:00", "1900-01-01T12:34:56.789000"]),
    ("timestamp extremes", [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)],
     pa.timestamp("us"), "timestamp", ["0001-01-01T00:00:00", "9999-12-31T23:59:59.999999"]),
    ("timestamp in ms widened", [dt.datetime(2023, 6, 15, 1, 2, 3, 4000)], pa.timestamp("ms"),
     "timestamp", ["2023-06-15T01:02:03.004000"]),
    ("timestamptz in UTC",
     [dt.datetime(2023, 6, 15, 6, 30, 0, 123456, tzinfo=UTC), dt.datetime(1969, 12, 31, tzinfo=UTC),
      None],
     pa.timestamp("us", tz="UTC"), "timestamptz",
     ["2023-06-15T06:30:00.123456+00:00", "1969-12-31T00:00:00+00:00", None]),
    ("timestamptz BC", [_bc_micros(1, 12)], pa.int64(), "timestamptz",
     ["0001-12-31T12:00:00+00:00 BC"]),
    ("timestamp BC", [_bc_micros(366)], pa.int64(), "timestamp", ["0001-01-01T00:00:00 BC"]),
    ("all NULL column", [None, None], pa.null(), "str", [None, None]),
]  # fmt: skip


def _array(values: list[Any], arrow_type: pa.DataType, kind: Kind) -> pa.Array:
    """The column as a source fills it; BC instants are built from their microseconds (Python's
    datetime stops at year 1)."""
    if pa.types.is_int64(arrow_type) and kind in ("timestamp", "timestamptz"):
        zone = "UTC" if kind == "timestamptz" else None
        return pa.array(values, pa.int64()).cast(pa.timestamp("us", tz=zone))
    if pa.types.is_date32(arrow_type) and isinstance(values[0], int):
        return pa.array(values, pa.int32()).cast(pa.date32())
    return pa.array(values, arrow_type)


@pytest.mark.parametrize(
    ("values", "arrow_type", "kind", "expected"),
    [case[1:] for case in TEXT_CASES],
    ids=[case[0] for case in TEXT_CASES],
)
def test_the_canonical_text_of_each_value(
    values: list[Any], arrow_type: pa.DataType, kind: Kind, expected: list[str | None]
) -> None:
    assert text(_array(values, arrow_type, kind), kind).to_pylist() == expected


@pytest.mark.parametrize(
    ("values", "kind", "delimiter", "expected"),
    [
        (["plain", "a,b", 'say "hi"', "", None], "str", ",",
         ["plain", '"a,b"', '"say ""hi"""', '""', None]),
        (["line\nbreak", "cr\rhere", "crlf\r\nend"], "str", ",",
         ['"line\nbreak"', '"cr\rhere"', '"crlf\r\nend"']),
        (["a;b", "a,b"], "str", ";", ['"a;b"', "a,b"]),
        (["a|b", "a\tb"], "str", "|", ['"a|b"', "a\tb"]),
        (["a\tb", "a b"], "str", "\t", ['"a\tb"', "a b"]),
        (["tab\tin text"], "str", ",", ["tab\tin text"]),
        (['{"a": 1, "b": [2, 3]}'], "json", ",", ['"{""a"": 1, ""b"": [2, 3]}"']),
        ([1, -2, None], "int", ",", ["1", "-2", None]),
        ([1.5, float("nan")], "float", ",", ["1.5", "nan"]),
        ([True, False], "bool", ",", ["true", "false"]),
        ([b"", b"\xfb\xff"], "bytes", ",", ['""', "+/8="]),
        ([1000], "int", "0", ['"1000"']),
        ([True], "bool", "e", ['"true"']),
    ],
    ids=[
        "quoted when needed", "line breaks quoted", "semicolon", "pipe", "tab",
        "tab kept with comma", "json doubled quotes", "int never quoted", "float",
        "bool", "empty bytes quoted", "digit delimiter quotes numbers",
        "letter delimiter quotes booleans",
    ],
)  # fmt: skip
def test_csv_fields_are_quoted_as_rfc_4180_says(
    values: list[Any], kind: Kind, delimiter: str, expected: list[str | None]
) -> None:
    arrow_type = pa.binary() if kind == "bytes" else None
    cells = csv_cells(pa.array(values, arrow_type), kind, delimiter)
    assert cells.to_pylist() == expected


@pytest.mark.parametrize(
    ("values", "arrow_type", "kind", "expected"),
    [
        ([1, None, -5], pa.int64(), "int", ["1", "null", "-5"]),
        ([True, False, None], pa.bool_(), "bool", ["true", "false", "null"]),
        ([0.1 + 0.2, 100.0, 1e16], pa.float64(), "float",
         ["0.30000000000000004", "100.0", "1e+16"]),
        ([float("nan"), float("inf"), float("-inf"), None], pa.float64(), "float",
         ['"NaN"', '"Infinity"', '"-Infinity"', "null"]),
        ([Decimal("12.50"), Decimal("-0.01"), None], pa.decimal128(10, 2), "decimal",
         ["12.50", "-0.01", "null"]),
        (["1E-10", "NaN", "Infinity", "-Infinity", "7"], pa.string(), "decimal",
         ["0.0000000001", '"NaN"', '"Infinity"', '"-Infinity"', "7"]),
        (["plain", 'quote " here', "back\\slash", None], pa.string(), "str",
         ['"plain"', '"quote \\" here"', '"back\\\\slash"', "null"]),
        (["bell\x07", "nul\x00", "line\nbreak", "tab\t"], pa.string(), "str",
         ['"bell\\u0007"', '"nul\\u0000"', '"line\\nbreak"', '"tab\\t"']),
        (["中文 😀", "</x> & 'y'"], pa.string(), "str", ['"中文 😀"', "\"</x> & 'y'\""]),
        (["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None], pa.string(), "uuid",
         ['"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"', "null"]),
        (['{"a": 1}', "[1, 2]", None], pa.string(), "json", ['{"a": 1}', "[1, 2]", "null"]),
        (['{\n  "a": "x\\ny",\r\n  "b": 2\n}'], pa.string(), "json", ['{ "a": "x\\ny", "b": 2 }']),
        ([b"\x00\xff", b""], pa.binary(), "bytes", ['"AP8="', '""']),
        ([dt.date(2024, 2, 29)], pa.date32(), "date", ['"2024-02-29"']),
        ([dt.time(8, 30, 0, 1)], pa.time64("us"), "time", ['"08:30:00.000001"']),
        ([dt.datetime(2023, 6, 15, 6, 30, tzinfo=UTC)], pa.timestamp("us", tz="UTC"),
         "timestamptz", ['"2023-06-15T06:30:00+00:00"']),
        ([dt.datetime(2023, 6, 15, 6, 30)], pa.timestamp("us"), "timestamp",
         ['"2023-06-15T06:30:00"']),
    ],
    ids=[
        "int", "bool", "float repr", "non-finite floats as strings", "decimal exact digits",
        "decimal text", "escaped strings", "control characters", "utf-8 kept", "uuid",
        "json nested", "json on one line", "bytes base64", "date", "time", "timestamptz",
        "timestamp",
    ],
)  # fmt: skip
def test_json_values(
    values: list[Any], arrow_type: pa.DataType, kind: Kind, expected: list[str]
) -> None:
    assert json_values(pa.array(values, arrow_type), kind).to_pylist() == expected


@pytest.mark.parametrize(
    ("values", "arrow_type", "expected"),
    [
        ([Decimal("12.50"), None], pa.decimal128(10, 2), ['"12.50"', "null"]),
        (["1E-10", "NaN", "0.10"], pa.string(), ['"0.0000000001"', '"NaN"', '"0.10"']),
    ],
    ids=["decimal128", "decimal text"],
)
def test_json_decimals_as_strings(
    values: list[Any], arrow_type: pa.DataType, expected: list[str]
) -> None:
    array = pa.array(values, arrow_type)
    assert json_values(array, "decimal", decimals_as_strings=True).to_pylist() == expected


@pytest.mark.parametrize(
    ("values", "arrow_type", "kind", "expected"),
    [
        (["a & b", "<tag>", "it's \"so\""], pa.string(), "str",
         ["<v>a &amp; b</v>", "<v>&lt;tag&gt;</v>", "<v>it&apos;s &quot;so&quot;</v>"]),
        (["&amp;", "]]>"], pa.string(), "str", ["<v>&amp;amp;</v>", "<v>]]&gt;</v>"]),
        (["cr\rlf\n"], pa.string(), "str", ["<v>cr&#13;lf\n</v>"]),
        (["bell\x07 vt\x0b end\ufffe"], pa.string(), "str",
         ["<v>bell\ufffd vt\ufffd end\ufffd</v>"]),
        (["tab\t ok"], pa.string(), "str", ["<v>tab\t ok</v>"]),
        ([None, ""], pa.string(), "str", ["<v/>", "<v></v>"]),
        (['{"a": "<b>"}'], pa.string(), "json", ['<v>{&quot;a&quot;: &quot;&lt;b&gt;&quot;}</v>']),
        (["NaN", "1E-10"], pa.string(), "decimal", ["<v>NaN</v>", "<v>0.0000000001</v>"]),
        ([1, None], pa.int64(), "int", ["<v>1</v>", "<v/>"]),
        ([float("inf"), 0.5], pa.float64(), "float", ["<v>inf</v>", "<v>0.5</v>"]),
        ([False], pa.bool_(), "bool", ["<v>false</v>"]),
        ([b"<&>"], pa.binary(), "bytes", ["<v>PCY+</v>"]),
        ([dt.datetime(2000, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"), "timestamptz",
         ["<v>2000-01-01T00:00:00+00:00</v>"]),
    ],
    ids=[
        "escapes", "escapes are escaped again", "carriage return kept", "forbidden replaced",
        "tab kept", "null element and empty", "json escaped", "decimal", "int", "float",
        "bool", "bytes base64 unescaped", "timestamptz",
    ],
)  # fmt: skip
def test_xml_elements(
    values: list[Any], arrow_type: pa.DataType, kind: Kind, expected: list[str]
) -> None:
    elements = xml_elements(pa.array(values, arrow_type), kind, "<v>", "</v>", "<v/>")
    assert elements.to_pylist() == expected


def test_a_uuid_column_is_its_lowercase_text_in_text_and_json() -> None:
    value = uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")
    array = pa.array([str(value), None])
    assert text(array, "uuid").to_pylist() == ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None]
    assert json_values(array, "uuid").to_pylist() == [
        '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"',
        "null",
    ]


def test_a_sliced_column_renders_only_its_rows() -> None:
    """Writers render a batch's slices (chunks, parts): offsets must be honoured."""
    array = pa.array([0.5, 1e-05, None, 2.0, float("nan")])[1:4]
    assert text(array, "float").to_pylist() == ["1e-05", None, "2.0"]
    stamps = pa.array([_bc_micros(1), 0, _bc_micros(366)], pa.int64()).cast(pa.timestamp("us"))
    assert text(stamps[1:], "timestamp").to_pylist() == [
        "1970-01-01T00:00:00",
        "0001-01-01T00:00:00 BC",
    ]
