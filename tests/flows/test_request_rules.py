"""The export's parameters, refused before any run: one line per problem, naming the field
and what it may hold (flows/parameters.py `validate_export_parameters`, which `exports run`,
`exports check` and the gateway call, and the flow's own models).

Table-driven: each case is a real bad input as a user writes it (prefect.yaml, `--set`, the
gateway's JSON body), the field the message must start with, and the words that say what is
allowed. No database is opened and no Prefect API is asked; the flow's own refusals of the same
inputs are the server tier's (tests/flows/test_bad_input.py, sources/test_window.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows.core.config import ColumnSpec, FormatOptions, SourceConfig, WindowConfig
from flows.core.errors import ConfigurationError
from flows.parameters import validate_export_parameters
from flows.request import DestinationConfig

pytestmark = pytest.mark.unit

SQLITE = "sqlite:///demo/demo.sqlite"
PG = "postgresql://reader@db.internal/shop"
OUT = "/data/out/{export}.{ext}"
WINDOWED = "SELECT id, ts FROM readings WHERE ts >= :since AND ts < :until"


def table(**fields: Any) -> dict[str, Any]:
    return {"url": SQLITE, "table": "orders", **fields}


def query(sql: str = WINDOWED, **fields: Any) -> dict[str, Any]:
    return {"url": SQLITE, "query": sql, **fields}


def parameters(**overrides: Any) -> dict[str, Any]:
    return {"source": table(), "destination": {"url": OUT}, **overrides}


def refusal(**overrides: Any) -> str:
    """The one-line message the parameters are refused with."""
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(parameters(**overrides))
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# (case id, parameters that differ from a good export, field, words saying what is allowed)
Case = tuple[str, dict[str, Any], str, str]

SOURCE_CASES: list[Case] = [
    ("no url nor block", {"source": {"table": "orders"}}, "source",
     "give exactly one of `url` (a SQLAlchemy URL) or `block`"),
    ("url and block", {"source": table(block="shop")}, "source",
     "give exactly one of `url` (a SQLAlchemy URL) or `block`"),
    ("no table nor query", {"source": {"url": SQLITE}}, "source",
     "give exactly one of `table` or `query`"),
    ("table and query", {"source": table(query="SELECT 1")}, "source",
     "give exactly one of `table` or `query`"),
    ("unknown key", {"source": table(tables="orders")}, "source.tables",
     "Extra inputs are not permitted"),
    ("table with sql", {"source": table(table="orders; DROP TABLE x")}, "source.table",
     "`orders; DROP TABLE x` is not a table name; use name or schema.name, or export it with "
     "`query`"),
    ("table with three parts", {"source": table(table="db.public.orders")}, "source.table",
     "is not a table name; use name or schema.name"),
    ("chunk_rows zero", {"source": table(chunk_rows=0)}, "source.chunk_rows",
     "greater than or equal to 1"),
    ("chunk_rows too large", {"source": table(chunk_rows=5_000_001)}, "source.chunk_rows",
     "less than or equal to 5000000"),
    ("chunk_rows text", {"source": table(chunk_rows="many")}, "source.chunk_rows",
     "`many` Input should be a valid integer"),
    ("unknown reader", {"source": table(reader="copy")}, "source.reader",
     "'auto', 'postgres_copy' or 'sqlalchemy'"),
    ("count_rows not a boolean", {"source": table(count_rows="perhaps")}, "source.count_rows",
     "valid boolean"),
    ("params without a query", {"source": table(params={"lo": 1})}, "source.params",
     "bind parameters need a `query`"),
    ("no columns", {"source": table(columns=[])}, "source.columns",
     "an empty list exports nothing; name the columns"),
    ("two columns written alike", {"source": table(columns=["id", {"name": "total", "as": "id"}])},
     "source.columns",
     "two columns are written as `id` (`id` and `total`); give each its own `as`"),
    ("renamed to nothing", {"source": table(columns=[{"name": "id", "as": "  "}])},
     "source.columns", "`id` is renamed to an empty name"),
    ("unknown key of a column", {"source": table(columns=[{"name": "id", "rename": "x"}])},
     "source.columns.0.rename", "Extra inputs are not permitted"),
    ("columns XML writes as one", {"source": table(columns=[{"name": "a", "as": "a b"},
                                                            {"name": "b", "as": "a_b"}]),
                                   "format": "xml"},
     "source.columns", "`a b` and `a_b` are both written as the XML element <a_b>; rename one of "
     "them with `as` or in the query"),
    ("65 partitions", {"source": table(url=PG, partitions=65)}, "source.partitions",
     "less than or equal to 64"),
    ("bounds without partition_by", {"source": table(bounds=[1, 9])}, "source.bounds",
     "bounds are values of source.partition_by; set it"),
    ("partition_by not a column", {"source": table(partition_by="a-b", partitions=2)},
     "source.partition_by", "`a-b` is not a column name; use the name of an integer, numeric, "
     "date or timestamp column"),
    ("sqlite table split without a key", {"source": table(partitions=2)}, "source.partitions",
     "only a PostgreSQL table is split without a key; set source.partition_by"),
    ("query split without a key", {"source": query("SELECT 1 AS id", partitions=3)},
     "source.partitions", "3 partitions of a query need source.partition_by"),
    ("window bound in params", {"source": query(params={"since": "2026-03-01"}),
                                "window": {"period": "P1D"}},
     "source.params", "`since` is the run's window bound; remove it from source.params and set "
     "window.since / window.until instead"),
]  # fmt: skip

FILTER_CASES: list[Case] = [
    ("is_null with a value", {"op": "is_null", "value": 1}, "source.filter",
     "`status is_null` takes no value; remove `value`"),
    ("not_null with a value", {"op": "not_null", "value": "x"}, "source.filter",
     "`status not_null` takes no value"),
    ("in an empty list", {"op": "in", "value": []}, "source.filter",
     "`status in` needs a non-empty list of values, e.g. [1, 2]"),
    ("not_in one value", {"op": "not_in", "value": "open"}, "source.filter",
     "`status not_in` needs a non-empty list of values"),
    ("in nested lists", {"op": "in", "value": [[1]]}, "source.filter",
     "`status in`: each value is a number, a string or a boolean"),
    ("in with a NULL", {"op": "in", "value": ["open", None]}, "source.filter",
     "each value is a number, a string or a boolean"),
    ("between one value", {"op": "between", "value": [1]}, "source.filter",
     "`status between` needs [low, high], e.g. [10, 20]"),
    ("between three values", {"op": "between", "value": [1, 2, 3]}, "source.filter",
     "needs [low, high]"),
    ("between with a NULL", {"op": "between", "value": [None, 1]}, "source.filter",
     "`status between`: low and high are numbers, strings or dates"),
    ("equals NULL", {"op": "=", "value": None}, "source.filter",
     "`status =` needs one value (a number, a string or a boolean); for NULL use op is_null"),
    ("less than a list", {"op": "<", "value": [1]}, "source.filter",
     "`status <` needs one value (a number, a string or a boolean)"),
    ("greater than an object", {"op": ">", "value": {"a": 1}}, "source.filter",
     "`status >` needs one value"),
    ("like a number", {"op": "like", "value": 5}, "source.filter",
     "`status like` needs a text pattern, e.g. 'ACME%'"),
    ("unknown operator", {"op": "~", "value": 1}, "source.filter.0.op",
     "'=', '!=', '<', '<=', '>', '>=', 'in', 'not_in', 'between', 'is_null', 'not_null' or 'like'"),
    ("unknown key", {"op": "=", "value": 1, "values": 2}, "source.filter.0.values",
     "Extra inputs are not permitted"),
]  # fmt: skip

DESTINATION_CASES: list[Case] = [
    ("no url", {"destination": {"block": "shop"}}, "destination.url", "Field required"),
    ("unknown scheme", {"destination": {"url": "ftp://host/x.csv"}}, "destination.url",
     "scheme `ftp://` is not supported; use a local path or one of file://, local://, s3://, "
     "gs://, gcs://, az://, abfs://, sftp://, http://, https://"),
    ("unknown token", {"destination": {"url": "out/{table}.csv"}}, "destination.url",
     "unknown token `{table}` in `out/{table}.csv`; use one of {export}, {deployment}, "
     "{run_id}, {date}, {ext}, {part}, {since}, {until}"),
    ("malformed template", {"destination": {"url": "out/{export.csv"}}, "destination.url",
     "template `out/{export.csv` is malformed (expected '}' before end of string); tokens look "
     "like {export} or {date:%Y-%m-%d}, and a literal brace is written {{ or }}"),
    ("format spec of another token", {"destination": {"url": "out/{part:%Y}.csv"}},
     "destination.url", "template `out/{part:%Y}.csv` cannot be rendered (Invalid format "
     "specifier '%Y' for object of type 'int'); check the format spec after the colon"),
    ("a folder", {"destination": {"url": "out/"}}, "destination.url",
     "`out/` names a folder; end it with a file name, e.g. out/{export}-{date:%Y%m%d}.{ext}"),
    ("a folder of s3", {"destination": {"url": "s3://bucket/daily/"}}, "destination.url",
     "names a folder; end it with a file name"),
    ("a window token without a window", {"destination": {"url": "out/{export}-{since}.csv"}},
     "destination.url", "`{since}` in `out/{export}-{since}.csv` needs a window; use :since / "
     ":until in source.query (or set `window`), or remove the token"),
    ("a .. segment", {"destination": {"url": "out/../{export}.csv"}}, "destination.url",
     "renders `out/../export.csv`, with a `..` segment, which leaves the template's folder"),
    ("unknown compression", {"destination": {"url": OUT, "compression": "zip"}},
     "destination.compression", "`zip` Input should be 'none', 'gzip', 'zstd', 'bz2' or 'xz'"),
    ("a codec's extension for its name", {"destination": {"url": OUT, "compression": "zst"}},
     "destination.compression", "`zst` Input should be 'none', 'gzip', 'zstd', 'bz2' or 'xz'"),
    ("max_file_mb zero", {"destination": {"url": OUT, "max_file_mb": 0}},
     "destination.max_file_mb", "greater than 0"),
    ("max_file_mb negative", {"destination": {"url": OUT, "max_file_mb": -5}},
     "destination.max_file_mb", "greater than 0"),
    ("unknown key", {"destination": {"url": OUT, "gzip": True}}, "destination.gzip",
     "Extra inputs are not permitted"),
    ("a manifest for a receiver", {"destination": {"url": "https://hooks.example.com/in",
                                                   "manifest": True}},
     "destination.manifest", "an HTTP receiver gets each file as a POST, with X-Export-Part / "
     "X-Export-Parts; a manifest is written next to files in a folder or a bucket"),
    ("a receiver without a host", {"destination": {"url": "https:///in"}}, "destination.url",
     "`https:///in` has no host; write it as https://host[:port]/path"),
]  # fmt: skip

FORMAT_CASES: list[Case] = [
    ("unknown format", {"format": "xls"}, "format",
     "`xls` is not supported; use one of csv, json, jsonl, xml, parquet, avro, xlsx"),
    ("empty format", {"format": ""}, "format", "is not supported; use one of csv, json"),
    ("format with a dot", {"format": ".csv"}, "format", "`.csv` is not supported"),
    ("two-character delimiter", {"format_options": {"delimiter": ";;"}},
     "format_options.delimiter", "`;;` must be one character other than a quote or a line "
     "break, e.g. `,`, `;`, `|` or a tab"),
    ("quote as delimiter", {"format_options": {"delimiter": '"'}}, "format_options.delimiter",
     "must be one character other than a quote or a line break"),
    ("line break as delimiter", {"format_options": {"delimiter": "\r"}},
     "format_options.delimiter", "must be one character other than a quote or a line break"),
    ("unknown line terminator", {"format_options": {"line_terminator": "cr"}},
     "format_options.line_terminator", "`cr` Input should be 'lf' or 'crlf'"),
    ("header not a boolean", {"format_options": {"header": "maybe"}}, "format_options.header",
     "valid boolean"),
    ("xml_root starting with a digit", {"format_options": {"xml_root": "1rows"}},
     "format_options.xml_root",
     "`1rows` is not a valid XML element name; use letters, digits, _ . - and start with a letter "
     "or _"),
    ("xml_item starting with xml", {"format_options": {"xml_item": "xmlrow"}},
     "format_options.xml_item", "`xmlrow` is not a valid XML element name"),
    ("xml_item with a space", {"format_options": {"xml_item": "a row"}},
     "format_options.xml_item", "`a row` is not a valid XML element name"),
    ("unknown parquet codec", {"format_options": {"parquet_compression": "lz4"}},
     "format_options.parquet_compression", "'snappy', 'zstd', 'gzip' or 'none'"),
    ("unknown encoding", {"format_options": {"encoding": "cp1252"}}, "format_options.encoding",
     "'utf-8', 'utf-8-sig', 'ascii', 'latin-1' or 'utf-16'"),
    ("unknown on_unencodable", {"format_options": {"on_unencodable": "skip"}},
     "format_options.on_unencodable", "'error', 'replace' or 'escape'"),
    ("unknown decimals", {"format_options": {"decimals": "float"}}, "format_options.decimals",
     "'number' or 'string'"),
    ("unknown xslt_scope", {"format_options": {"xslt_scope": "row"}},
     "format_options.xslt_scope", "'item' or 'document'"),
    ("xslt_max_mb zero", {"format_options": {"xslt_max_mb": 0}}, "format_options.xslt_max_mb",
     "greater than 0"),
    ("unknown option", {"format_options": {"quote": "'"}}, "format_options.quote",
     "Extra inputs are not permitted"),
    ("a stylesheet for csv", {"format": "csv", "format_options": {"xslt": "report.xsl"}},
     "format_options.xslt", "a stylesheet transforms the XML export; set format: xml (not csv)"),
    ("ext for json", {"format": "json", "format_options": {"ext": "txt"}}, "format_options.ext",
     "a stylesheet transforms the XML export; set format: xml (not json)"),
    ("ext without a stylesheet", {"format": "xml", "format_options": {"ext": "txt"}},
     "format_options.ext", "names a stylesheet's files; set xslt"),
    ("ext that is not one", {"format": "xml", "format_options": {"ext": "t/x"}},
     "format_options.ext", "`t/x` is not a file extension; use letters and digits, e.g. txt"),
    ("xslt_block without xslt", {"format": "xml", "format_options": {"xslt_block": "s3"}},
     "format_options.xslt_block", "names credentials for an xslt URL; set xslt"),
    ("latin-1 parquet", {"format": "parquet", "format_options": {"encoding": "latin-1"}},
     "format_options.encoding", "Parquet stores text as UTF-8, not latin-1; remove encoding or "
     "export CSV, JSON or XML"),
    ("unknown avro codec", {"format": "avro", "format_options": {"avro_codec": "lz4"}},
     "format_options.avro_codec", "'null', 'deflate', 'zstandard' or 'snappy'"),
    ("an avro codec for csv", {"format": "csv", "format_options": {"avro_codec": "null"}},
     "format_options.avro_codec", "compresses the blocks of an Avro file; set format: avro "
     "(not csv), or remove avro_codec"),
    ("gzip around avro", {"format": "avro", "destination": {"url": OUT, "compression": "gzip"}},
     "destination.compression", "an Avro file compresses its blocks itself, not with gzip; "
     "remove compression and set format_options.avro_codec (deflate, zstandard, snappy)"),
    ("latin-1 avro", {"format": "avro", "format_options": {"encoding": "latin-1"}},
     "format_options.encoding", "Avro stores text as UTF-8, not latin-1"),
    ("gzip around xlsx", {"format": "xlsx", "destination": {"url": OUT, "compression": "gzip"}},
     "destination.compression", "xlsx is already a zip, not compressed again with gzip; "
     "remove compression (none is the only choice for xlsx)"),
    ("zstd around xlsx", {"format": "xlsx", "destination": {"url": OUT, "compression": "zstd"}},
     "destination.compression", "xlsx is already a zip, not compressed again with zstd"),
    ("xlsx cut by size", {"format": "xlsx", "destination": {"url": OUT, "max_file_mb": 10}},
     "destination.max_file_mb", "an xlsx workbook is a zip whose size is known only when it is "
     "finished, so it cannot be cut by size; remove max_file_mb and set "
     "destination.max_file_rows (at most 1048575 rows a file, Excel's limit)"),
    ("latin-1 xlsx", {"format": "xlsx", "format_options": {"encoding": "latin-1"}},
     "format_options.encoding", "Excel (xlsx) stores text as UTF-8, not latin-1"),
    ("xlsx without its header", {"format": "xlsx", "format_options": {"header": False}},
     "format_options.header", "an xlsx sheet always starts with its header row (the column "
     "names); remove header (it is for CSV)"),
    ("a trailer in xlsx", {"format": "xlsx", "format_options": {"trailer": "TRL|{rows}"}},
     "format_options.trailer", "format xlsx has no lines to add a trailer line to"),
    ("a preamble in xlsx", {"format": "xlsx", "format_options": {"preamble": "HDR"}},
     "format_options.preamble", "format xlsx has no lines to add a preamble line to"),
    ("an avro codec for xlsx", {"format": "xlsx", "format_options": {"avro_codec": "null"}},
     "format_options.avro_codec", "set format: avro (not xlsx), or remove avro_codec"),
    ("escape in csv", {"format": "csv", "format_options": {"encoding": "ascii",
                                                          "on_unencodable": "escape"}},
     "format_options.on_unencodable", "CSV has no escape for a character; use error or "
     "replace, or an encoding that holds every character (utf-8)"),
]  # fmt: skip

WINDOW_CASES: list[Case] = [
    ("unknown zone", {"window": {"timezone": "Mars/Base"}}, "window.timezone",
     "`Mars/Base` is not an IANA time zone; use a name such as Europe/Berlin, America/New_York "
     "or UTC"),
    ("unknown bind_as", {"window": {"bind_as": "date"}}, "window.bind_as",
     "'timestamp', 'timestamptz', 'text' or 'epoch'"),
    ("unknown key", {"window": {"start": "2026-03-01"}}, "window.start",
     "Extra inputs are not permitted"),
    ("since in words", {"window": {"since": "yesterday"}}, "window.since", "valid datetime"),
    ("lookback in words", {"window": {"lookback": "15 minutes"}}, "window.lookback",
     "valid timedelta"),
    ("negative lookback", {"window": {"lookback": -60}}, "window.lookback",
     "`-60` seconds is negative; use zero or a duration such as PT15M"),
    ("empty period", {"window": {"period": "PT0S"}}, "window.period",
     "`0` seconds is not a positive duration; use e.g. P1D or PT4H"),
    ("since after until", {"window": {"since": "2026-03-02T00:00:00Z",
                                      "until": "2026-03-01T00:00:00Z"}},
     "window.since", "`2026-03-02T00:00:00+00:00` is not before window.until "
     "`2026-03-01T00:00:00+00:00`; the window is since <= ts < until"),
    ("since equal to until", {"window": {"since": "2026-03-01T00:00:00Z",
                                         "until": "2026-03-01T00:00:00Z"}},
     "window.since", "is not before window.until"),
    ("lookback of a million years", {"window": {"lookback": "P400000000D"}}, "window.lookback",
     "is longer than 365,250 days (1,000 years); use a shorter duration"),
    ("a window for a table", {"source": table(), "window": {"period": "P1D"}}, "window",
     "source is the table `orders`, which a window cannot filter; use source.query, e.g. SELECT "
     "* FROM orders WHERE ts >= :since AND ts < :until, or remove `window`"),
    ("a window for a query without binds", {"source": query("SELECT id FROM readings"),
                                            "window": {"period": "P1D"}},
     "window", ":since"),
]  # fmt: skip

RUNNER_CASES: list[Case] = [
    ("scheduler without a scheme", {"runner": {"dask": "scheduler:8786"}}, "runner.dask",
     "`scheduler:8786` is not a scheduler address; write tcp://HOST:8786, or `local` for worker "
     "processes on this machine"),
    ("scheduler with a path", {"runner": {"dask": "tcp://scheduler:8786/x"}}, "runner.dask",
     "is not a scheduler address"),
    ("no scheduler", {"runner": {}}, "runner.dask", "Field required"),
    ("unknown key", {"runner": {"dask": "local", "workers": 2}}, "runner.workers",
     "Extra inputs are not permitted"),
    ("a relative folder", {"runner": {"dask": "local"},
                           "destination": {"url": "out/{export}.{ext}"}},
     "runner.dask", "destination.url `out/{export}.{ext}` is a relative local path, which each "
     "Dask worker would resolve in its own folder; use an absolute path on a filesystem every "
     "worker mounts, or an object store"),
    ("an http receiver", {"runner": {"dask": "local"},
                          "destination": {"url": "https://hooks.example.com/in"}},
     "runner.dask", "an HTTP destination is POSTed from the flow's process, which cannot read "
     "the parts Dask workers spool on their machines; remove `runner` or deliver to a store"),
]  # fmt: skip

NAME_CASES: list[Case] = [
    ("a folder", {"name": "tenant/orders"}, "name",
     "`tenant/orders` has a `/`; it is one file name, and the folders are destination.url's "
     "(e.g. out/tenant-a/{export}.{ext}); use letters, digits, spaces, `-`, `_` and `.`"),
    ("a backslash", {"name": "a\\b"}, "name", "has a `\\`; it is one file name"),
    ("a hidden name", {"name": ".orders"}, "name",
     "`.orders` starts with `.`; hidden names are the exports' temporary files, and `..` leaves "
     "the folder"),
    ("a tab", {"name": "a\tb"}, "name",
     "`a\\tb` has a control character (\\t), which no file name should hold"),
    ("a line separator", {"name": "a\u2028b"}, "name", "has a control character (\\u2028)"),
    ("a number", {"name": 5}, "name", "`5` is not text; give the export's name as text"),
    ("300 bytes", {"name": "x" * 300}, "name",
     "…` is 300 bytes of UTF-8; a file name holds at most 255"),
    ("an unknown parameter", {"sources": {}}, "parameters",
     "unknown parameter `sources`; the export flow takes source, destination, format, name, "
     "partner, type, format_options, window, runner"),
    ("source is null", {"source": None}, "source",
     "Input should be a valid dictionary or instance of SourceConfig"),
    ("destination is null", {"destination": None}, "destination",
     "Input should be a valid dictionary or instance of DestinationConfig"),
]  # fmt: skip

ALL_CASES = [
    *SOURCE_CASES,
    *[(f"filter: {case}", {"source": table(filter=[{"column": "status", **condition}])}, field,
       says) for case, condition, field, says in FILTER_CASES],
    *DESTINATION_CASES,
    *FORMAT_CASES,
    *WINDOW_CASES,
    *RUNNER_CASES,
    *NAME_CASES,
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [case[1:] for case in ALL_CASES],
    ids=[case[0] for case in ALL_CASES],
)
def test_a_bad_parameter_is_refused_naming_its_field_and_what_is_allowed(
    overrides: dict[str, Any], field: str, says: str
) -> None:
    message = refusal(**overrides)
    assert message.startswith(f"{field}:"), message
    assert says in message, message


@pytest.mark.parametrize("missing", ["source", "destination"])
def test_a_missing_source_or_destination_is_named(missing: str) -> None:
    given = {key: value for key, value in parameters().items() if key != missing}
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(given)
    assert str(caught.value) == f"{missing}: missing; the export flow needs `{missing}`"


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        pytest.param("https://user:hunter2@hooks.example.com/in", "hunter2", id="receiver"),
        pytest.param("ftp://admin:s3cr3t@files.example.com/x.csv", "s3cr3t", id="unknown scheme"),
        pytest.param("sftp://u:hunter2@host/out/", "hunter2", id="sftp folder"),
        pytest.param("sftp://u:hunter2@host/{export", "hunter2", id="sftp malformed"),
        pytest.param("https://u:hunter2@hooks.example.com/{nope}", "hunter2",
                     id="receiver unknown token"),
        pytest.param("s3://u:hunter2@bucket/{export", "hunter2", id="s3 malformed"),
        pytest.param("s3://u:hunter2@bucket/out/", "hunter2", id="s3 folder"),
    ],
)  # fmt: skip
def test_a_refused_url_never_repeats_its_password(url: str, secret: str) -> None:
    message = refusal(destination={"url": url})
    assert message.startswith("destination.url:"), message
    assert secret not in message, message


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        ({"format": " JSONL "}, lambda v: v["format"] == "jsonl"),
        ({"format": "Parquet"}, lambda v: v["format"] == "parquet"),
        ({"source": table(columns=["id", {"name": "total", "as": "amount"}])},
         lambda v: v["source"].columns == [ColumnSpec(name="id"),
                                           ColumnSpec(name="total", as_="amount")]),
        ({"source": query(), "window": {"lookback": 900, "since": "2026-03-01T00:00:00"}},
         lambda v: v["window"] == WindowConfig(since=datetime(2026, 3, 1, tzinfo=UTC),
                                               lookback=timedelta(minutes=15))),
        ({"format_options": {"delimiter": "\t", "line_terminator": "crlf"}},
         lambda v: v["format_options"].newline == "\r\n"),
        ({"destination": {"url": "s3://bucket/{date:%Y/%m}/{export}.{ext}", "max_file_mb": 0.5,
                          "compression": "gzip"}},
         lambda v: v["destination"] == DestinationConfig(
             url="s3://bucket/{date:%Y/%m}/{export}.{ext}", max_file_mb=0.5, compression="gzip")),
        ({"destination": {"url": "out/{export}.{ext}", "compression": "zstd"}, "format": "parquet"},
         lambda v: v["destination"].compression == "zstd" and v["format"] == "parquet"),
        ({"destination": {"url": "sftp://h/out/{export}.{ext}", "compression": "xz"},
          "format": "xml", "format_options": {"xml_root": "orders"}},
         lambda v: v["destination"].compression == "xz"),
        ({"source": table(url=PG, partitions=64)},
         lambda v: v["source"] == SourceConfig(url=PG, table="orders", partitions=64)),
        ({"source": table(filter=[{"column": "status", "op": "in", "value": ["a", 1, True]}])},
         lambda v: v["source"].filter[0].value == ["a", 1, True]),
        ({"name": "orders 2026-03.v2"}, lambda v: v["name"] == "orders 2026-03.v2"),
        ({"format": "xml", "format_options": {"xml_root": "orders", "xml_item": "order.row"}},
         lambda v: v["format_options"] == FormatOptions(xml_root="orders", xml_item="order.row")),
    ],
    ids=[
        "format in any case", "format capitalised", "column names and renames",
        "naive since is UTC and lookback in seconds", "tab and crlf",
        "object store with parts and gzip", "parquet in a zstd file", "xml in xz",
        "64 partitions of a PostgreSQL table",
        "in with mixed values", "a name with spaces and dots", "xml names",
    ],
)  # fmt: skip
def test_good_parameters_are_kept_as_their_models(overrides: dict[str, Any], check: Any) -> None:
    assert check(validate_export_parameters(parameters(**overrides)))


@pytest.mark.parametrize("option", ["xml_root", "xml_item"])
def test_an_xml_name_refusal_names_its_option(option: str) -> None:
    message = refusal(format="xml", format_options={option: "1rows"})
    assert message.startswith(f"format_options.{option}: `1rows`"), message
