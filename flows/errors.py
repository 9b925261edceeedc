"""Typed export errors: each says what failed, the offending value and what to change."""

from __future__ import annotations


class ExportError(Exception):
    """Base class for every error an export raises on purpose."""


class ConfigurationError(ExportError, ValueError):
    """The export is configured wrongly; nothing was written. Never retried."""


class SourceError(ExportError):
    """Reading from the source database failed."""


class FormatError(ExportError):
    """Rows could not be written in the requested format."""


class DeliveryError(ExportError):
    """The file could not be written to, or published at, its destination."""


class TransientExportError(ExportError):
    """Mixin for failures worth retrying: timeouts, refused connections, 5xx."""


class TransientSourceError(SourceError, TransientExportError):
    """The source database could not be reached or dropped the connection."""


class TransientDeliveryError(DeliveryError, TransientExportError):
    """The destination timed out or answered with a retryable error."""


# Failures the user must fix in source.url (wrong database, role, password, file).
_PERMANENT_CONNECTION_WORDS = (
    'database "',  # database "x" does not exist
    'role "',
    "authentication failed",
    "no password supplied",
    "password authentication",
)
_TRANSIENT_WORDS = (
    "connection refused",
    "could not connect",
    "connection timed out",
    "timeout expired",
    "terminating connection",
    "server closed the connection",
    "connection is lost",
    "connection was lost",
    "consuming input failed",
    "the database system is starting up",
    "the database system is shutting down",
    "connection to server",
)


def classify_source_failure(message: str, shown: str) -> SourceError:
    """Turn a database error's first line into the error the user should see."""
    lowered = message.lower()
    if "not a database" in lowered or "unable to open database" in lowered:
        return SourceConfigurationError(
            f"source.url: `{shown}` is not a readable database ({message}); check the path "
            "points at a SQLite database file"
        )
    if any(word in lowered for word in _PERMANENT_CONNECTION_WORDS) and (
        "does not exist" in lowered
        or "database" in lowered
        or "password" in lowered
        or "authentication" in lowered
    ):
        return SourceConfigurationError(
            f"source.url: cannot use `{shown}` ({message}); check the database name, user "
            "and password"
        )
    if any(word in lowered for word in _TRANSIENT_WORDS):
        return TransientSourceError(
            f"source `{shown}`: could not connect, or lost the connection ({message}); "
            "check the database is running and reachable"
        )
    return SourceError(f"source `{shown}`: {message}")


class SourceConfigurationError(ConfigurationError, SourceError):
    """The source's URL names a database, user or file that cannot be used."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's text: drivers add hints and SQL on later lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """True when a task that raised `exc` may succeed if run again."""
    return isinstance(exc, TransientExportError)
