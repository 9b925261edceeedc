"""`checks`: what the written rows must pass before anything is published (Contract 1).

The columns named are checked once the source is inspected, before any row is read. After
every part is written the flow asks `failed_check` with what it knows: the rows, the NULL
counts (counted as the rows streamed, flows/sink.py, or by the database where the rows came
finished from PostgreSQL's COPY), the duplicate keys the database counted
(flows/sources/check_counts.py) and the rows of the export's last successful run
(blocks/export_state.py). A failure is a CheckFailedError whose message gives the check
and its numbers; the flow then removes every temporary file and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flows.core.config import ChecksConfig
from flows.core.errors import CheckFailedError, ConfigurationError
from flows.destinations.store import WrittenFile


def check_checked_columns(checks: ChecksConfig | None, exported: Sequence[str]) -> None:
    """Every column a check names is one the export writes (by its output name).

    Raises:
        ConfigurationError: naming the check's field (`checks.unique[0]`) and the columns.
    """
    if checks is None:
        return
    for field, column in checks.columns:
        if column not in exported:
            raise ConfigurationError(
                f"{field}: `{column}` is not an exported column",
                field=field,
                hint=f"name one of {', '.join(exported)}",
            )


@dataclass(frozen=True)
class DatabaseCounts:
    """What the database counted for the checks: duplicate keys of `unique`, and the NULLs of
    `not_null` where the parts could not count them (None: not asked)."""

    duplicates: int | None = None
    nulls: dict[str, int] | None = None


def null_counts(written: Sequence[WrittenFile]) -> dict[str, int] | None:
    """The NULLs of every part, per column; None when a part could not count them (its rows
    came finished from PostgreSQL's COPY)."""
    totals: dict[str, int] = {}
    for item in written:
        if item.nulls is None:
            return None
        for column, count in item.nulls:
            totals[column] = totals.get(column, 0) + count
    return totals


def change_pct(rows: int, previous: int) -> float | None:
    """How far `rows` is from `previous`, in percent of it; None when `previous` is 0 (no
    percentage of nothing)."""
    if previous == 0:
        return None
    return abs(rows - previous) * 100 / previous


def failed_check(
    checks: ChecksConfig,
    rows: int,
    nulls: dict[str, int],
    duplicates: int | None,
    previous_rows: int | None,
) -> CheckFailedError | None:
    """The first check the written rows fail, in the order of `checks`' fields, or None."""
    if checks.min_rows is not None and rows < checks.min_rows:
        return CheckFailedError(
            f"min_rows: {rows} rows written, fewer than {checks.min_rows}; nothing was published",
            check="min_rows",
        )
    if checks.max_rows is not None and rows > checks.max_rows:
        return CheckFailedError(
            f"max_rows: {rows} rows written, more than {checks.max_rows}; nothing was published",
            check="max_rows",
        )
    if checks.max_change_pct is not None and previous_rows is not None:
        change = change_pct(rows, previous_rows)
        if change is not None and change > checks.max_change_pct:
            return CheckFailedError(
                f"max_change_pct: {rows} rows written against {previous_rows} by the last "
                f"successful run, a change of {change:.1f}%, more than "
                f"{checks.max_change_pct:g}%; nothing was published",
                check="max_change_pct",
            )
    for column in checks.not_null:
        if nulls.get(column, 0):
            count = nulls[column]
            return CheckFailedError(
                f"not_null({column}): {count} null value{'s' if count != 1 else ''}; "
                "nothing was published",
                check="not_null",
            )
    if checks.unique and duplicates:
        keys = ", ".join(checks.unique)
        return CheckFailedError(
            f"unique({keys}): {duplicates} duplicate key{'s' if duplicates != 1 else ''}; "
            "nothing was published",
            check="unique",
        )
    return None


def passed_checks(checks: ChecksConfig, previous_rows: int | None) -> list[str]:
    """The checks a run that passed them all ran, for its log (e.g. `unique(order_id)`)."""
    names = [
        name
        for name, value in (("min_rows", checks.min_rows), ("max_rows", checks.max_rows))
        if value is not None
    ]
    if checks.max_change_pct is not None and previous_rows is not None:
        names.append("max_change_pct")
    names += [f"not_null({column})" for column in checks.not_null]
    if checks.unique:
        names.append(f"unique({', '.join(checks.unique)})")
    return names
