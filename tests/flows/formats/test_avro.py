"""The Avro writer read back by fastavro's reader and by Apache Avro's own Python reader (the
specification's reference implementation; DuckDB's avro extension is downloaded on first use,
which these tests may not do, and its PyPI repackaging exists only for DuckDB 1.5): the schema
each column kind gets, every codec, the values formats get wrong (unicode, NaN, 38-digit
decimals, instants in other zones, years 1 and 9999), blocks that keep a part under its size,
and what the writer refuses."""

from __future__ import annotations

import io
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import avro.datafile
import avro.io
import fastavro
import pyarrow as pa
import pytest

from flows.core.columns import array_field, decimal_field, make_field, undetermined_field
from flows.core.config import FormatOptions
from flows.core.errors import FormatError
from flows.formats.avro_names import avro_name
from flows.formats.avro_writer import AvroWriter, avro_schema
from flows.formats.writers import open_writer
from flows.request import ExportRequest

pytestmark = pytest.mark.unit

CODECS = ("null", "deflate", "zstandard", "snappy")
KOLKATA = timezone(timedelta(hours=5, minutes=30))
SCHEMA = pa.schema(
    [
        make_field("id", "int", pa.int32()),
        make_field("big", "int"),
        make_field("label", "str"),
        make_field("ratio", "float"),
        make_field("ratio4", "float", pa.float32()),
        decimal_field("wide", 38, 10),
        decimal_field("exact", None, None),
        make_field("flag", "bool"),
        make_field("uid", "uuid"),
        make_field("doc", "json"),
        make_field("blob", "bytes"),
        make_field("day", "date"),
        make_field("at_time", "time"),
        make_field("local_at", "timestamp"),
        make_field("happened_at", "timestamptz", pa.timestamp("us", tz="Asia/Kolkata")),
        array_field("scores", "int", element_type=pa.int32()),
        array_field("tags", "str"),
        make_field("order id", "int"),
    ]
)
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "big": 2**63 - 1,
        "label": 'emoji 😀 👩‍💻 🇯🇵, 中文, "quoted", line\r\nbreak, \x00 nul',
        "ratio": 0.1 + 0.2,
        "ratio4": 1.5,
        "wide": Decimal("1234567890123456789012345678.0123456789"),
        "exact": "NaN",
        "flag": True,
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "doc": '{"a": [1, 2.50, "ü"]}',
        "blob": b"\x00\xff",
        "day": date(1, 1, 1),
        "at_time": time(23, 59, 59, 999999),
        "local_at": datetime(9999, 12, 31, 23, 59, 59, 999999),
        "happened_at": datetime(2023, 6, 15, 12, 0, 0, 123456, tzinfo=KOLKATA),
        "scores": "{1,NULL,-3}",
        "tags": '{"a b",NULL,"NULL","c,d"}',
        "order id": 7,
    },
    dict.fromkeys(SCHEMA.names),
    {
        "id": -(2**31),
        "big": -(2**63),
        "label": "",
        "ratio": -math.inf,
        "ratio4": None,
        "wide": Decimal("-0.0000000001"),
        "exact": "12345678901234567890.000000000000000000001",
        "flag": False,
        "uid": "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "doc": "null",
        "blob": b"",
        "day": date(9999, 12, 31),
        "at_time": time(0, 0),
        "local_at": datetime(1, 1, 1),
        "happened_at": datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        "scores": "{}",
        "tags": "{}",
        "order id": 0,
    },
]


def batch_of(rows: list[dict[str, Any]], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def written(batches: list[pa.RecordBatch], schema: pa.Schema = SCHEMA, **options: Any) -> bytes:
    file = io.BytesIO()
    writer = open_writer("avro", file, schema, FormatOptions(**options))
    for batch in batches:
        writer.write(batch)
    writer.close()
    return file.getvalue()


def read(data: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """(the file's reader, for its schema and codec; its records)."""
    reader = fastavro.reader(io.BytesIO(data))
    return reader, [cast(dict[str, Any], record) for record in reader]


def test_each_kind_has_its_avro_type_and_every_field_is_nullable() -> None:
    fields = {field["name"]: field for field in avro_schema(SCHEMA)["fields"]}
    types = {name: field["type"] for name, field in fields.items()}
    assert all(kind[0] == "null" for kind in types.values())
    assert {name: kind[1] for name, kind in types.items()} == {
        "id": "int",
        "big": "long",
        "label": "string",
        "ratio": "double",
        "ratio4": "float",
        "wide": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10},
        "exact": "string",  # a numeric with no scale: its exact text (NaN included)
        "flag": "boolean",
        "uid": {"type": "string", "logicalType": "uuid"},
        "doc": "string",
        "blob": "bytes",
        "day": {"type": "int", "logicalType": "date"},
        "at_time": {"type": "long", "logicalType": "time-micros"},
        "local_at": {"type": "long", "logicalType": "local-timestamp-micros"},
        "happened_at": {"type": "long", "logicalType": "timestamp-micros"},
        "scores": {"type": "array", "items": ["null", "int"]},
        "tags": {"type": "array", "items": ["null", "string"]},
        "order_id": "long",
    }
    assert fields["order_id"]["doc"] == "order id"  # the column's own name
    assert "doc" not in fields["id"]


@pytest.mark.parametrize(
    ("column", "name"),
    [("id", "id"), ("order id", "order_id"), ("1st", "_1st"), ("Größe", "Gr__e"), ("", "_")],
)
def test_column_names_become_avro_names(column: str, name: str) -> None:
    assert avro_name(column) == name


@pytest.mark.parametrize("codec", CODECS)
def test_every_value_reads_back_exactly_with_every_codec(codec: str) -> None:
    reader, records = read(written([batch_of(ROWS)], avro_codec=codec))
    assert reader.codec == codec
    first, empty, last = records
    assert empty == {avro_name(name): None for name in SCHEMA.names}
    assert first["label"] == ROWS[0]["label"]
    assert repr(first["ratio"]) == repr(0.1 + 0.2) and last["ratio"] == -math.inf
    assert first["wide"].as_tuple() == ROWS[0]["wide"].as_tuple()
    assert last["wide"].as_tuple() == Decimal("-0.0000000001").as_tuple()
    assert (first["exact"], last["exact"]) == ("NaN", ROWS[2]["exact"])
    assert first["uid"] == uuid.UUID(ROWS[0]["uid"])
    assert (first["doc"], first["blob"], last["blob"]) == (ROWS[0]["doc"], b"\x00\xff", b"")
    assert (first["day"], last["day"]) == (date(1, 1, 1), date(9999, 12, 31))
    assert (first["at_time"], last["at_time"]) == (time(23, 59, 59, 999999), time(0, 0))
    # Without a zone: the wall-clock reading, naive; with one: the instant, in UTC.
    assert first["local_at"] == datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert last["local_at"] == datetime(1, 1, 1) and last["local_at"].tzinfo is None
    assert first["happened_at"] == datetime(2023, 6, 15, 6, 30, 0, 123456, tzinfo=UTC)
    assert first["happened_at"].utcoffset() == timedelta(0)
    assert last["happened_at"] == datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    assert (first["scores"], last["scores"]) == ([1, None, -3], [])
    assert first["tags"] == ["a b", None, "NULL", "c,d"]
    assert (first["id"], first["big"]) == (1, 2**63 - 1)
    assert (last["id"], last["big"]) == (-(2**31), -(2**63))
    assert (first["flag"], last["flag"], first["order_id"]) == (True, False, 7)


EPOCH = datetime(1970, 1, 1)


@pytest.mark.parametrize("codec", ["null", "deflate", "zstandard"])  # snappy: python-snappy
def test_apache_avros_reader_reads_the_same_values_as_fastavro(codec: str) -> None:
    """A second, independent reader agrees cell for cell. It returns a uuid as its text, and
    a local-timestamp-micros as its number (microseconds of the wall-clock reading since
    1970-01-01, which it does not decode): both compared as such."""
    data = written([batch_of(ROWS)], avro_codec=codec)
    with pytest.warns(avro.errors.IgnoredLogicalType, match="local-timestamp-micros"):
        reader = avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader())
        apache = list(reader)
    assert reader.get_meta("avro.codec") == codec.encode()
    _, records = read(data)
    assert len(apache) == len(records) == len(ROWS)
    for theirs, ours in zip(apache, records, strict=True):
        expected = dict(ours)
        if ours["uid"] is not None:
            expected["uid"] = str(ours["uid"])
        if ours["local_at"] is not None:
            expected["local_at"] = (ours["local_at"] - EPOCH) // timedelta(microseconds=1)
        assert theirs == expected
    assert apache[0]["local_at"] == 253402300799999999  # 9999-12-31 23:59:59.999999
    assert apache[0]["wide"].as_tuple() == ROWS[0]["wide"].as_tuple()
    assert apache[0]["happened_at"] == datetime(2023, 6, 15, 6, 30, 0, 123456, tzinfo=UTC)


def test_the_same_rows_give_the_same_bytes() -> None:
    """The sync marker comes from the schema, not from chance: a rerun's file is identical."""
    assert written([batch_of(ROWS)]) == written([batch_of(ROWS)])


def test_no_rows_is_a_file_with_the_schema() -> None:
    reader, records = read(written([]))
    assert records == []
    assert [field["name"] for field in reader.writer_schema["fields"]][:3] == [
        "id",
        "big",
        "label",
    ]


def test_a_budget_keeps_the_blocks_that_fit() -> None:
    """A size-limited part takes whole blocks while they fit, then a smaller one, and reads
    back as a valid file with exactly the rows the writer says it wrote."""
    schema = pa.schema([make_field("id", "int"), make_field("text", "str")])
    rows = [{"id": i, "text": f"row {i} " + "x" * (i % 50)} for i in range(20_000)]
    batch = batch_of(rows, schema)
    file = io.BytesIO()
    writer = AvroWriter(file, schema, FormatOptions(avro_codec="null"))
    header = writer.bytes
    count = writer.write(batch, budget=100_000)
    writer.close()
    assert 0 < count < len(rows)
    assert header < len(file.getvalue()) == writer.bytes <= header + 100_000
    assert writer.bytes > header + 90_000  # the last block was made to fit, not dropped
    _, records = read(file.getvalue())
    assert records == [{"id": r["id"], "text": r["text"]} for r in rows[:count]]


def test_an_unsigned_bigint_is_an_exact_decimal() -> None:
    """MySQL's BIGINT UNSIGNED passes a long: it is a decimal(20, 0), every digit kept."""
    schema = pa.schema([make_field("n", "int", pa.uint64())])
    reader, records = read(written([batch_of([{"n": 2**64 - 1}, {"n": None}], schema)], schema))
    assert reader.writer_schema["fields"][0]["type"][1] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 20,
        "scale": 0,
    }
    assert records == [{"n": Decimal(2**64 - 1)}, {"n": None}]


def test_a_column_of_nulls_when_the_file_opens_is_text_afterwards() -> None:
    first = pa.schema([make_field("id", "int"), undetermined_field("v")])
    later = pa.schema([make_field("id", "int"), make_field("v", "date")])
    file = io.BytesIO()
    writer = AvroWriter(file, first, FormatOptions())
    writer.write(batch_of([{"id": 1, "v": None}], first))
    writer.write(batch_of([{"id": 2, "v": date(2024, 2, 29)}], later))
    reader, records = read(file.getvalue())
    assert reader.writer_schema["fields"][1]["type"] == ["null", "string"]
    assert records == [{"id": 1, "v": None}, {"id": 2, "v": "2024-02-29"}]


def test_a_column_that_changes_type_is_refused_naming_it() -> None:
    first = pa.schema([make_field("amount", "int")])
    later = pa.schema([make_field("amount", "str")])
    writer = AvroWriter(io.BytesIO(), first, FormatOptions())
    writer.write(batch_of([{"amount": 1}], first))
    with pytest.raises(FormatError, match=r"column `amount` changed type from int64 to string"):
        writer.write(batch_of([{"amount": "x"}], later))


def test_a_multidimensional_array_is_refused_naming_avro() -> None:
    schema = pa.schema([array_field("grid", "int")])
    with pytest.raises(FormatError) as raised:
        written([batch_of([{"grid": "{{1,2},{3,4}}"}], schema)], schema)
    assert str(raised.value).startswith(
        "column `grid` holds a multi-dimensional array ({{1,2},{3,4}}); Avro stores "
        "one-dimensional arrays as lists"
    )


def test_deflate_is_the_codec_unless_one_is_named() -> None:
    reader, _ = read(written([batch_of(ROWS)]))
    assert reader.codec == "deflate"


def test_options_saved_in_full_by_another_format_are_not_an_avro_codec() -> None:
    """Prefect stores a run's parameters with every field: a CSV run's format_options, run
    again from them, hold avro_codec: null, which asks for nothing."""
    saved = FormatOptions().model_dump(mode="json")
    source = {"url": "sqlite:///demo.sqlite", "table": "orders"}
    request = ExportRequest.of(
        {"source": source, "destination": {"url": "/out/{export}.{ext}"}, "format_options": saved}
    )
    assert request.format == "csv" and saved["avro_codec"] is None
