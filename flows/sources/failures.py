"""Database failures as the export's typed errors: what the user must fix in source.url (never
retried), what may pass on its own (retried), and the rest.

Classified by the driver's own codes where it gives them: PostgreSQL's SQLSTATE (psycopg),
SQLite's result codes, MySQL's error numbers. The words of the message decide only where the
driver gives no code, e.g. psycopg's failures to connect, which carry no SQLSTATE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import sqlalchemy as sa

from flows.core.errors import (
    ConfigurationError,
    SourceConfigurationError,
    SourceError,
    TransientSourceError,
    first_line,
)

Failure = Literal["file", "login", "transient", "other"]

# PostgreSQL SQLSTATEs: class 28 is a refused login, 3D000 a database that does not exist;
# class 08 is a lost or refused connection, 57P01-57P03 a server shutting down or starting.
_PG_LOGIN_CLASS = "28"
_PG_NO_DATABASE = "3D000"
_PG_CONNECTION_CLASS = "08"
_PG_SHUTDOWN = frozenset({"57P01", "57P02", "57P03"})
# SQLite result codes: SQLITE_CANTOPEN, SQLITE_NOTADB.
_SQLITE_NOT_A_DATABASE = frozenset({14, 26})
# MySQL / MariaDB error numbers: access denied (to the server, to the database), unknown
# database; cannot connect, server gone away, lost connection, server shutting down.
_MYSQL_LOGIN = frozenset({1044, 1045, 1049})
_MYSQL_TRANSIENT = frozenset({1053, 2002, 2003, 2006, 2013, 2055})

# The words of a failure, for drivers that give no code.
_NOT_A_DATABASE_WORDS = ("not a database", "unable to open database")
_LOGIN_WORDS = (
    'database "',  # database "x" does not exist
    'role "',
    "authentication failed",
    "no password supplied",
    "password authentication",
)
_LOGIN_CONFIRMING_WORDS = ("does not exist", "database", "password", "authentication")
_TRANSIENT_WORDS = (
    "connection refused",
    "could not connect",
    "connection timed out",
    "timeout expired",
    "terminating connection",
    # A restart or shutdown ends the parallel workers too; psycopg may report the worker's
    # error without a SQLSTATE: `terminating background worker "parallel worker" due to
    # administrator command` (issue 17: such runs failed without a retry).
    "due to administrator command",
    "server closed the connection",
    "connection is lost",
    "connection was lost",
    "consuming input failed",
    "the database system is starting up",
    "the database system is shutting down",
    "connection to server",
)


@contextmanager
def source_errors(shown: str, table: str | None = None) -> Iterator[None]:
    """Driver and SQLAlchemy errors met while talking to the source, as typed errors (ours
    pass through unchanged); `table`, the table read (None for a query), is theirs."""
    try:
        yield
    except (ConfigurationError, SourceError):
        raise
    except sa.exc.DBAPIError as exc:
        raise source_failure(exc, shown, table) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"source `{shown}`: {first_line(exc)}", table=table) from exc


def source_failure(exc: BaseException, shown: str, table: str | None = None) -> SourceError:
    """The error the user should see for a database failure; `shown` is the source's URL with
    its password hidden, `table` the table read (None for a query). SQLAlchemy's errors are
    classified by the driver's error inside."""
    error = getattr(exc, "orig", None) or exc
    message = first_line(error)
    kind = _by_code(error) or _by_words(message)
    if kind == "file":
        return SourceConfigurationError(
            f"source.url: `{shown}` is not a readable database ({message})",
            field="source.url",
            hint="check the path points at a SQLite database file",
            table=table,
        )
    if kind == "login":
        return SourceConfigurationError(
            f"source.url: cannot use `{shown}` ({message})",
            field="source.url",
            hint="check the database name, user and password",
            table=table,
        )
    if kind == "transient":
        return TransientSourceError(
            f"source `{shown}`: could not connect, or lost the connection ({message}); "
            "check the database is running and reachable",
            table=table,
        )
    return SourceError(f"source `{shown}`: {message}", table=table)


def _by_code(error: BaseException) -> Failure | None:
    """The kind of failure by the driver's code, or None when the driver gave none."""
    sqlstate = getattr(error, "sqlstate", None)  # psycopg
    if isinstance(sqlstate, str) and sqlstate:
        if sqlstate.startswith(_PG_LOGIN_CLASS) or sqlstate == _PG_NO_DATABASE:
            return "login"
        if sqlstate.startswith(_PG_CONNECTION_CLASS) or sqlstate in _PG_SHUTDOWN:
            return "transient"
        return "other"
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return "file" if sqlite_code in _SQLITE_NOT_A_DATABASE else "other"
    if type(error).__module__.startswith(("pymysql", "MySQLdb")) and error.args:
        number = error.args[0]
        if isinstance(number, int):
            if number in _MYSQL_LOGIN:
                return "login"
            return "transient" if number in _MYSQL_TRANSIENT else "other"
    return None


def _by_words(message: str) -> Failure:
    lowered = message.lower()
    if any(word in lowered for word in _NOT_A_DATABASE_WORDS):
        return "file"
    if any(word in lowered for word in _LOGIN_WORDS) and any(
        word in lowered for word in _LOGIN_CONFIRMING_WORDS
    ):
        return "login"
    if any(word in lowered for word in _TRANSIENT_WORDS):
        return "transient"
    return "other"
