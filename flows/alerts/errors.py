"""What a Failed alert says of the error (Contract 5's `Error`): its kind and a short message
that names no value.

A webhook receiver is outside the database's trust boundary, and an error's own text may
carry what only the run's readers should see (a source's list of tables, a query, a row's
value, a path). The alert says which kind of failure it was and, for a wrong parameter, which
field; the whole error stays in the run's logs and the audit log.
"""

from __future__ import annotations

import re

from flows.core import errors
from flows.core.errors import (
    ConfigurationError,
    DeliveryError,
    FormatError,
    OutOfMemoryError,
    SourceError,
    TransientDeliveryError,
    TransientSourceError,
)

SEE_LOGS = "the run's logs have the details"
_FIELD = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*):")  # e.g. `source.table: table … not found`
# Prefect's failed and crashed states: "Flow run encountered an exception: Type: text",
# "Execution was interrupted by an unexpected exception: Type: text", "Request to … failed:".
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
)


def alert_error(exc: BaseException, details: str = SEE_LOGS) -> str:
    """e.g. `ConfigurationError: source.table is not valid; the run's logs have the details`.

    `details` says where the whole error is: the gateway refuses parameters before any run
    exists, so its answers point at its own log instead."""
    return _described(type(exc), type(exc).__name__, str(exc), details)


def state_error(message: str) -> str:
    """The same for a failed state's message, when its exception is not at hand (a run of
    another process, a crash): the exception Prefect wrote into it as `Type: text`, or else
    the message's first line (Prefect's own words, e.g. a process's exit code)."""
    found = _EXCEPTION_IN_MESSAGE.search(message)
    if found is None:
        lines = message.strip().splitlines()
        return lines[0] if lines else "failed"
    kind = found.group("kind")
    known = getattr(errors, kind, None)
    error_type = known if isinstance(known, type) and issubclass(known, Exception) else None
    return _described(error_type, kind, found.group("text"))


def _described(
    error_type: type[BaseException] | None, kind: str, text: str, details: str = SEE_LOGS
) -> str:
    if error_type is not None and issubclass(error_type, ConfigurationError):
        field = _FIELD.match(text.strip())
        if field:
            return f"{kind}: {field.group(1)} is not valid; {details}"
    for known, summary in _SUMMARIES:
        if error_type is not None and issubclass(error_type, known):
            return f"{kind}: {summary}; {details}"
    return f"{kind}: the export failed unexpectedly; {details}"
