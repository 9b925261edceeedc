"""Header and trailer records (`format_options.preamble` / `trailer`, flows/core/records.py)
and parts by rows (`destination.max_file_rows`): what is refused before a run, naming the
field, and how a record's tokens render."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.core.errors import ConfigurationError
from flows.core.records import FileRecords, render_record
from flows.core.targets import TargetContext
from flows.parameters import validate_export_parameters

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[3]
FIXED_WIDTH = str(ROOT / "definitions" / "fixed_width.xsl")  # xsl:output method="text"
GROUP_BY_STATUS = str(ROOT / "definitions" / "group_by_status.xsl")  # an XML result
SQLITE = "sqlite:///demo/demo.sqlite"
OUT = "/data/out/{export}.{ext}"
CONTEXT = replace(TargetContext.sample(), export="orders", date=datetime(2026, 3, 7, tzinfo=UTC))


def refusal(**overrides: Any) -> ConfigurationError:
    parameters = {"source": {"url": SQLITE, "table": "orders"}, "destination": {"url": OUT}}
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters({**parameters, **overrides})
    return caught.value


def trailer(template: str, fmt: str = "csv", **destination: Any) -> dict[str, Any]:
    return {
        "format": fmt,
        "format_options": {"trailer": template},
        "destination": {"url": OUT, **destination},
    }


CASES = [
    ("max_file_rows zero", {"destination": {"url": OUT, "max_file_rows": 0}},
     "destination.max_file_rows", "`0` is not a number of rows; give a whole number of 1 or "
     "more, e.g. 100000"),
    ("max_file_rows negative", {"destination": {"url": OUT, "max_file_rows": -3}},
     "destination.max_file_rows", "`-3` is not a number of rows"),
    ("max_file_rows a fraction", {"destination": {"url": OUT, "max_file_rows": 2.5}},
     "destination.max_file_rows", "`2.5` is not a number of rows"),
    ("max_file_rows text", {"destination": {"url": OUT, "max_file_rows": "many"}},
     "destination.max_file_rows", "`many` is not a number of rows"),
    ("max_file_rows a boolean", {"destination": {"url": OUT, "max_file_rows": True}},
     "destination.max_file_rows", "`True` is not a number of rows"),
    ("unknown trailer token", trailer("TRL|{count}"), "format_options.trailer",
     "unknown token `{count}` in `TRL|{count}`; use {rows}, {total_rows}, {part}, {export}, "
     "{date}"),
    ("unknown preamble token", {"format_options": {"preamble": "HDR|{run_id}"}},
     "format_options.preamble", "unknown token `{run_id}`"),
    ("a count in the preamble", {"format_options": {"preamble": "HDR|{rows}"}},
     "format_options.preamble", "`{rows}` is not known before the rows are written; put the "
     "count in format_options.trailer"),
    ("malformed trailer", trailer("TRL|{rows"), "format_options.trailer",
     "`TRL|{rows` is malformed"),
    ("a spec that cannot render", trailer("TRL|{rows:%Y}"), "format_options.trailer",
     "`TRL|{rows:%Y}` cannot be rendered"),
    ("a line break in the trailer", trailer("TRL\n{rows}"), "format_options.trailer",
     "a record is one line"),
    ("a trailer for parquet", trailer("TRL|{rows}", "parquet"), "format_options.trailer",
     "format parquet has no lines to add a trailer line to; export csv or jsonl, or xml with "
     "an xslt whose xsl:output method is text"),
    ("a trailer for a json array", trailer("TRL|{rows}", "json"), "format_options.trailer",
     "format json has no lines"),
    ("a trailer for xml", trailer("TRL|{rows}", "xml"), "format_options.trailer",
     "format xml has no lines"),
    ("a preamble for parquet", {"format": "parquet", "format_options": {"preamble": "HDR"}},
     "format_options.preamble", "format parquet has no lines to add a preamble line to"),
    ("a trailer for a stylesheet's XML", {"format": "xml", "format_options": {
        "xslt": GROUP_BY_STATUS, "xslt_scope": "document", "trailer": "TRL|{rows}"}},
     "format_options.trailer", "a stylesheet's XML or HTML has no lines"),
    ("a character the encoding cannot write",
     {"format_options": {"trailer": "Ende é {rows}", "encoding": "ascii"}},
     "format_options.trailer", "holds 'é' (U+00E9), which ascii cannot write; change the "
     "trailer or the encoding"),
    ("total_rows with parts by size", trailer("TRL|{total_rows}", max_file_mb=1),
     "format_options.trailer", "`{total_rows}` is the export's rows, unknown when each file is "
     "closed with the parts; use {rows} (each file's rows), or write one file"),
    ("total_rows with parts by rows", trailer("TRL|{total_rows}", max_file_rows=10),
     "format_options.trailer", "`{total_rows}` is the export's rows, unknown when each file is "
     "closed with the parts"),
    ("total_rows with partitions",
     {**trailer("TRL|{total_rows}"), "source": {"url": SQLITE, "table": "orders",
                                                 "partitions": 2, "partition_by": "order_id"}},
     "format_options.trailer", "unknown when each file is closed with source.partitions"),
    ("part with partitions",
     {**trailer("TRL|{part}|{rows}"), "source": {"url": SQLITE, "table": "orders",
                                                 "partitions": 2, "partition_by": "order_id"}},
     "format_options.trailer", "`{part}` is numbered once every partition is written"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "field", "says"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_refused_before_the_run_naming_the_field(
    overrides: dict[str, Any], field: str, says: str
) -> None:
    error = refusal(**overrides)
    message = str(error)
    assert "\n" not in message, message
    assert message.startswith(f"{field}:"), message
    assert says in message, message
    assert error.field == field


@pytest.mark.parametrize(
    "overrides",
    [
        {"destination": {"url": OUT, "max_file_rows": 3000}},
        {"destination": {"url": OUT, "max_file_rows": 3000, "max_file_mb": 5}},
        trailer("TRL|{rows}|{total_rows}|{part}|{export}|{date:%Y%m%d}"),
        trailer("TRL|{rows}|{part}", "jsonl", max_file_rows=10),
        {"format_options": {"preamble": "HDR|{export}|{part:03d}|{date}"}},
        {"format": "xml", "format_options": {"xslt": FIXED_WIDTH, "trailer": "{rows} rows"}},
        {"format": "xml", "format_options": {"xslt": FIXED_WIDTH, "xslt_scope": "document",
                                             "preamble": "{export}", "trailer": "{rows}"}},
        {**trailer("TRL|{rows}"), "source": {"url": SQLITE, "table": "orders",
                                             "partitions": 2, "partition_by": "order_id"}},
    ],
)  # fmt: skip
def test_accepted(overrides: dict[str, Any]) -> None:
    parameters = {"source": {"url": SQLITE, "table": "orders"}, "destination": {"url": OUT}}
    validated = validate_export_parameters({**parameters, **overrides})
    assert set(validated) == set(parameters) | set(overrides)


def test_every_token_renders() -> None:
    template = "TRL|{rows}|{total_rows}|{part:03d}|{export}|{date}|{date:%Y%m%d}|{{x}}"
    assert render_record(template, CONTEXT, rows=1234, part=2) == (
        "TRL|1234|1234|002|orders|2026-03-07|20260307|{x}"
    )


def test_a_file_records_lines_end_as_its_rows() -> None:
    records = FileRecords("HDR|{export}|{part}", "TRL|{rows:08d}", CONTEXT, 3, "\r\n")
    assert records.first() == "HDR|orders|3\r\n"
    assert records.last(42) == "TRL|00000042\r\n"
    assert len(records.longest_last()) >= len(records.last(10**15))
    assert FileRecords(None, None, CONTEXT, 1, "\n").first() == ""
    assert FileRecords(None, None, CONTEXT, 1, "\n").last(5) == ""
