"""Header and trailer records (`format_options.preamble` and `format_options.trailer`): a line
before the first row of each file and one after its last, from a template whose tokens are
the file's facts. Rendered with destination.url's date token (flows/core/targets.py).

`{total_rows}` is the export's rows, which a file can only say when it is the export's only
file: parts are written and closed before the last row is read, and the partitions of a
split read run at once. So it is refused with `max_file_mb`, `max_file_rows` and
`source.partitions` (`check_record_rules`), and then equals `{rows}`. A partition's part
numbers are given once every partition is done, so `{part}` is refused with partitions too.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from flows.core.errors import ConfigurationError
from flows.core.targets import TargetContext, _DateToken

RECORD_TOKENS = ("rows", "total_rows", "part", "export", "date")
# The tokens only a trailer can say: the preamble is written before the first row.
COUNT_TOKENS = ("rows", "total_rows")
# The largest count a trailer is rendered with to learn how many bytes to keep for it.
_MOST_ROWS = 10**18 - 1


def record_tokens(field: str, template: str) -> list[str]:
    """The tokens of a record template, in order of first use.

    Raises:
        ConfigurationError: naming `field`: a malformed template, an unknown token, a line
            break (a record is one line), a count in the preamble, a spec that cannot render.
    """
    where = f"format_options.{field}"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(
            f"{where}: `{template}` is malformed ({exc})",
            field=where,
            hint="tokens look like {rows} or {date:%Y%m%d}; a literal brace is written {{ or }}",
        ) from None
    names: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name not in RECORD_TOKENS:
            raise ConfigurationError(
                f"{where}: unknown token `{{{name}}}` in `{template}`",
                field=where,
                hint=f"use {', '.join('{' + token + '}' for token in RECORD_TOKENS)}",
            )
        names.append(name)
    if "\n" in template or "\r" in template:
        raise ConfigurationError(
            f"{where}: a record is one line; `{template!r}` holds a line break",
            field=where,
            hint="remove it: the line ends as the file's rows do",
        )
    if field == "preamble" and (counts := [n for n in names if n in COUNT_TOKENS]):
        raise ConfigurationError(
            f"{where}: `{{{counts[0]}}}` is not known before the rows are written",
            field=where,
            hint="put the count in format_options.trailer",
        )
    try:
        render_record(template, TargetContext.sample(), rows=1, part=1)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"{where}: `{template}` cannot be rendered ({exc})",
            field=where,
            hint="check the format spec after the colon, e.g. {rows:010d} or {date:%Y%m%d}",
        ) from None
    return list(dict.fromkeys(names))


def check_record_rules(field: str, template: str, *, split: bool, partitions: int) -> None:
    """What a record can say of this export's files: `{total_rows}` only of an export written
    as one file, `{part}` not of a split read (its parts are numbered after they are written).

    Raises:
        ConfigurationError: naming `field` and what to change.
    """
    where = f"format_options.{field}"
    tokens = record_tokens(field, template)
    if "total_rows" in tokens and (split or partitions > 1):
        cause = "source.partitions" if partitions > 1 else "the parts"
        raise ConfigurationError(
            f"{where}: `{{total_rows}}` is the export's rows, unknown when each file is closed "
            f"with {cause}",
            field=where,
            hint="use {rows} (each file's rows), or write one file (no max_file_mb, "
            "max_file_rows or source.partitions)",
        )
    if "part" in tokens and partitions > 1:
        raise ConfigurationError(
            f"{where}: `{{part}}` is numbered once every partition is written, after the files "
            "are closed",
            field=where,
            hint="remove {part}, or set source.partitions to 1",
        )


def render_record(template: str, context: TargetContext, *, rows: int, part: int) -> str:
    """One record: `{rows}` and `{total_rows}` are the file's rows (the export's only file,
    where `{total_rows}` is allowed)."""
    values: dict[str, Any] = {
        "rows": rows,
        "total_rows": rows,
        "part": part,
        "export": context.export,
        "date": _DateToken(context.date),
    }
    return template.format_map(values)


@dataclass(frozen=True)
class FileRecords:
    """The preamble and trailer of one file, as its writer writes them."""

    preamble: str | None
    trailer: str | None
    context: TargetContext
    part: int
    newline: str  # what ends each line of the file

    def first(self) -> str:
        """The preamble line, or nothing."""
        if self.preamble is None:
            return ""
        return render_record(self.preamble, self.context, rows=0, part=self.part) + self.newline

    def last(self, rows: int) -> str:
        """The trailer line of a file of `rows` rows, or nothing."""
        if self.trailer is None:
            return ""
        return render_record(self.trailer, self.context, rows=rows, part=self.part) + self.newline

    def longest_last(self) -> str:
        """The trailer with the largest counts: its size is kept free in a part's size."""
        return self.last(_MOST_ROWS)
