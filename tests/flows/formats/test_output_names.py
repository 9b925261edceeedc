"""Output column names a format would write as one column are refused, naming both columns:
the rule (flows/formats/output_names.py) and the flow's message (flows.core.config), as pure
functions of a list of names and a format."""

from __future__ import annotations

import pytest

from flows.core.errors import ConfigurationError
from flows.core.formats import EXPORT_FORMATS, ExportFormat
from flows.formats.output_names import check_output_names

pytestmark = pytest.mark.unit

TEXT_KEYED: tuple[ExportFormat, ...] = ("csv", "json", "jsonl")


@pytest.mark.parametrize(
    ("fmt", "names", "message"),
    [
        *(
            (fmt, ["id", "a", "a"], "two columns are written as `a` (columns 2 and 3 of the query)")
            for fmt in EXPORT_FORMATS
        ),
        ("xml", ["a b", "a_b"], "`a b` and `a_b` are both written as the XML element <a_b>"),
        ("xml", ["id", "1st", "1st"], "two columns are written as `1st` (columns 2 and 3"),
        ("parquet", ["Total", "id", "total"], "`Total` and `total` differ only in case"),
        ("avro", ["a b", "a-b"], "`a b` and `a-b` are both written as the Avro field `a_b`"),
        ("avro", ["_1st", "1st"], "`_1st` and `1st` are both written as the Avro field `_1st`"),
    ],
)
def test_names_a_format_writes_as_one_are_refused(
    fmt: ExportFormat, names: list[str], message: str
) -> None:
    """Issue 24: output names the format would write as one column (a JSON object with a
    repeated key, a CSV header read as one column, a Parquet file readers refuse, one XML
    element for two columns) are refused with a one-line ConfigurationError naming both."""
    with pytest.raises(ConfigurationError) as raised:
        check_output_names(names, fmt)
    text = str(raised.value)
    assert text.startswith("source.columns: "), text
    assert message in text, text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("fmt", "names"),
    [
        *((fmt, ["a", "A", "a b", "a_b", "a-b"]) for fmt in TEXT_KEYED),
        ("xml", ["a", "A", "a-b"]),
        ("parquet", ["a b", "a_b", "a-b", "ä", "Ä "]),
        ("avro", ["a", "A", "a b", "1st", "Größe"]),
    ],
)
def test_names_a_format_writes_apart_are_kept(fmt: ExportFormat, names: list[str]) -> None:
    """What each format tells apart stays allowed: case in CSV, JSON and XML (their names are
    case-sensitive), `a b` and `a_b` outside XML."""
    check_output_names(names, fmt)
