"""Which output column names a format cannot write apart: a repeated name makes a JSON object
with a repeated key, a CSV header that readers keyed by name read as one column, a Parquet
file readers refuse; XML also writes `a b` and `a_b` as one element (flows/formats/xml_names.py),
Avro `a b` and `a_b` as one field (flows/formats/avro_names.py), and Parquet's usual readers
(DuckDB, Spark, Athena) do not tell `a` from `A`. No pyarrow here: parameter checks use it
before a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flows.core.config import SourceConfig
from flows.core.errors import ConfigurationError
from flows.core.formats import ExportFormat
from flows.formats.avro_names import avro_name
from flows.formats.xml_names import element_name


@dataclass(frozen=True)
class NameClash:
    """Two columns (0-based positions) a format would write as one, and why."""

    first: int
    second: int
    reason: str  # completes "`a b` and `a_b` ...", e.g. "are both written as `a`"


def name_clash(fmt: str, names: Sequence[str]) -> NameClash | None:
    """The first two of `names` that `fmt` would write as one column, if any."""
    key, describe = _RULES.get(fmt, _SAME)
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        written = key(name)
        if written in seen:
            first = seen[written]
            same = names[first] == name
            reason = f"are both written as `{name}`" if same else describe(name)
            return NameClash(first, position, reason)
        seen[written] = position
    return None


def _xml_key(name: str) -> str:
    element, attributes = element_name(name)
    return repr((element, sorted(attributes.items())))


_Rule = tuple[Callable[[str], str], Callable[[str], str]]
_SAME: _Rule = (str, lambda name: f"are both written as `{name}`")
_RULES: dict[str, _Rule] = {
    "xml": (
        _xml_key,
        lambda name: f"are both written as the XML element <{element_name(name)[0]}>",
    ),
    "parquet": (
        str.casefold,
        lambda _: "differ only in case, which Parquet readers (DuckDB, Spark, Athena) ignore",
    ),
    "avro": (
        avro_name,
        lambda name: f"are both written as the Avro field `{avro_name(name)}`",
    ),
}


def check_columns(source: SourceConfig, fmt: ExportFormat) -> None:
    """source.columns' output names that the format would write as one column (XML writes
    `a b` and `a_b` both as `<a_b>`), before the run; check_output_names checks the source's
    own names once the run has inspected it.

    Raises:
        ConfigurationError: naming both columns.
    """
    if source.columns is not None:
        check_output_names([column.output for column in source.columns], fmt)


def check_output_names(names: Sequence[str], fmt: ExportFormat) -> None:
    """Refuse output column names that `fmt` would write as one (flows/formats/output_names.py):
    a JSON object with a repeated key, a CSV header readers keyed by name read as one column,
    a Parquet file its readers refuse, one XML element for two columns.

    Raises:
        ConfigurationError: naming both columns and how the format would write them.
    """
    clash = name_clash(fmt, names)
    if clash is None:
        return
    first, second = names[clash.first], names[clash.second]
    if first == second:  # only a query names two columns alike (source.columns cannot)
        raise ConfigurationError(
            f"source.columns: two columns are written as `{first}` (columns {clash.first + 1} "
            f"and {clash.second + 1} of the query)",
            field="source.columns",
            hint="give one of them another name in the query",
        )
    raise ConfigurationError(
        f"source.columns: `{first}` and `{second}` {clash.reason}",
        field="source.columns",
        hint="rename one of them with `as` or in the query",
    )
