"""What a Failed alert says of the error (Contract 5's `Error`): its kind and a short message
that names no value.

A webhook receiver is outside the database's trust boundary, and an error's own text may
carry what only the run's readers should see (a source's list of tables, a query, a row's
value, a path). The alert says which kind of failure it was and, for a wrong parameter, which
field; the whole error stays in the run's logs and the audit log.
"""

from __future__ import annotations

import re

from flows.core.errors import (
    ERROR_CLASSES,
    CheckFailedError,
    ConfigurationError,
    CursorLockedError,
    DeliveryError,
    EmptyResultError,
    FormatError,
    OutOfMemoryError,
    SchemaChangedError,
    SourceError,
    TransientDeliveryError,
    TransientSourceError,
)

SEE_LOGS = "the run's logs have the details"
# A parameter the alert names: a dotted path of names (`source.table`); a position in a list
# (`source.columns.0.name`, from pydantic's `loc`) is not named, the parameter is just "a
# parameter" as before.
_PARAMETER = re.compile(r"[a-z_]+(?:\.[a-z_]+)*")
# A failed state's message, from another process, has no exception to read attributes from:
# Prefect writes the exception there as `Type: text`, and the text of a ConfigurationError
# with a field begins with it (`source.table: table … not found`; every raise site says so,
# tests/flows/alerts/test_errors_facts.py). That prefix is how its field travels.
_FIELD_IN_TEXT = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*):")
# Prefect's failed and crashed states: "Flow run encountered an exception: Type: text",
# "Execution was interrupted by an unexpected exception: Type: text", "Request to … failed:".
# A failed check's text begins with the check (`unique(order_id): 3 duplicate keys`): the
# alert names the check, never its columns or numbers.
_CHECK_IN_TEXT = re.compile(r"^(min_rows|max_rows|max_change_pct|not_null|unique)\b")
_EXCEPTION_IN_MESSAGE = re.compile(
    r"(?:exception|failed):\s*(?P<kind>[A-Za-z_]\w*): (?P<text>.*)", re.S
)

# Most specific first: a SourceConfigurationError is a ConfigurationError for the alert.
_SUMMARIES: tuple[tuple[type[BaseException], str], ...] = (
    (ConfigurationError, "a parameter is not valid"),
    (OutOfMemoryError, "the run's process ran out of memory (source.chunk_rows)"),
    (TransientSourceError, "the database could not be reached or dropped the connection"),
    (SourceError, "reading the database failed"),
    (FormatError, "the rows could not be written in the export's format"),
    (TransientDeliveryError, "the destination did not answer or answered with an error"),
    (DeliveryError, "the file could not be delivered to its destination"),
    (EmptyResultError, "the source returned no rows and on_empty is fail"),
    (SchemaChangedError, "the columns changed since the last successful run"),
    (CheckFailedError, "a check failed, nothing was published"),
    (CursorLockedError, "another run of the export holds its cursor, nothing was read"),
)


def alert_error(exc: BaseException, details: str = SEE_LOGS) -> str:
    """e.g. `ConfigurationError: source.table is not valid; the run's logs have the details`.

    `details` says where the whole error is: the gateway refuses parameters before any run
    exists, so its answers point at its own log instead."""
    field = exc.field if isinstance(exc, ConfigurationError) else None
    if isinstance(exc, CheckFailedError) and exc.check is not None:
        return _failed_check(type(exc).__name__, exc.check, details)
    return _described(type(exc), type(exc).__name__, field, details)


def state_error(message: str) -> str:
    """The same for a failed state's message, when its exception is not at hand (a run of
    another process, a crash): the exception Prefect wrote into it as `Type: text`, or else
    the message's first line (Prefect's own words, e.g. a process's exit code)."""
    found = _EXCEPTION_IN_MESSAGE.search(message)
    if found is None:
        lines = message.strip().splitlines()
        return lines[0] if lines else "failed"
    kind = found.group("kind")
    error_type = ERROR_CLASSES.get(kind)
    field = None
    if error_type is not None and issubclass(error_type, ConfigurationError):
        named = _FIELD_IN_TEXT.match(found.group("text").strip())
        field = named.group(1) if named else None
    if error_type is not None and issubclass(error_type, CheckFailedError):
        check = _CHECK_IN_TEXT.match(found.group("text").strip())
        if check is not None:
            return _failed_check(kind, check.group(1))
    return _described(error_type, kind, field)


def _failed_check(kind: str, check: str, details: str = SEE_LOGS) -> str:
    """e.g. `CheckFailedError: checks.unique failed, nothing was published; …`."""
    return f"{kind}: checks.{check} failed, nothing was published; {details}"


def _described(
    error_type: type[BaseException] | None,
    kind: str,
    field: str | None,
    details: str = SEE_LOGS,
) -> str:
    if field is not None and _PARAMETER.fullmatch(field):
        return f"{kind}: {field} is not valid; {details}"
    for known, summary in _SUMMARIES:
        if error_type is not None and issubclass(error_type, known):
            return f"{kind}: {summary}; {details}"
    return f"{kind}: the export failed unexpectedly; {details}"
