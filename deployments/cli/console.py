"""How every `exports` command talks to the terminal (Contract 3): one error handler, the
arguments several commands share, the user who runs it, and plain tables.

Errors: a command raises (a `fail(...)`, an ExportError, a key or usage error) and the one
handler, `ExportsGroup`, prints `error: <message>` on stderr and exits with 1, or 2 for usage
errors. `--debug` (where a command has it) shows the traceback instead.
"""

from __future__ import annotations

import getpass
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from deployments.cli.quiet import quiet_temporary_server
from deployments.gateway.master_secrets import ApiKeyError
from deployments.triggers.project import UsageError
from flows.core.errors import ExportError

_DEBUG = "exports.debug"  # in click's context meta, shared by every nested context


class CommandError(Exception):
    """A command cannot do what was asked; the message says what to change."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> CommandError:
    """The error to raise for `message` (code 2 for usage errors)."""
    return CommandError(message, code)


# What Prefect's client says when its API does not answer at all (before any request).
_UNREACHABLE_API = "Failed to reach API at"


def _unreachable_api(exc: BaseException) -> str | None:
    """The one-line error for a Prefect API that does not answer (not running, a wrong
    PREFECT_API_URL, or down longer than the client's retries): None for other errors."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError) or str(current).startswith(_UNREACHABLE_API):
            from prefect.settings import PREFECT_API_URL

            return (
                f"the Prefect API at {PREFECT_API_URL.value()} did not answer "
                f"({type(current).__name__}: {current}); start it (`prefect server start`, "
                "`make serve`) or point PREFECT_API_URL at a running one, then run the command "
                "again (a run it stopped published nothing)"
            )
        current = current.__cause__ or current.__context__
    return None


def _mute_prefect() -> None:
    """Prefect's log and event workers flush as the process ends, to the API that did not
    answer: each failure would print a traceback or a whole event after the command's one
    line. (They drain from threading's shutdown hooks, before atexit's: muted now.)"""
    import logging

    logging.raiseExceptions = False  # the log worker's "--- Error logging to API ---"
    logging.disable(logging.CRITICAL)
    # Prefect's internal loggers answer isEnabledFor themselves, past logging.disable.
    for name in list(logging.root.manager.loggerDict):
        if name == "prefect" or name.startswith("prefect."):
            logging.getLogger(name).disabled = True


def _exit_code(exc: BaseException) -> int | None:
    """The exit code of an error the handler reports in one line; None for any other."""
    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, UsageError):
        return 2
    if isinstance(exc, ExportError | ApiKeyError):
        return 1
    return None


class ExportsGroup(TyperGroup):
    """The `exports` command group: reports every command's errors the same way."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click)
        quiet_temporary_server()  # `exports audit`, `alerts`, `keys` … start one too
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if ctx.meta.get(_DEBUG):
                raise
            code = _exit_code(exc)
            message = str(exc) if code is not None else _unreachable_api(exc)
            if message is None:
                raise
            typer.echo(f"error: {message}", err=True)
            if code is None:  # the API did not answer; the process ends now
                _mute_prefect()
            raise typer.Exit(code or 1) from None


def _remember_debug(ctx: typer.Context, value: bool) -> bool:
    ctx.meta[_DEBUG] = value
    return value


# The arguments several commands share.
FileOption = Annotated[Path, typer.Option("--file", help="The project file.")]
DeploymentArgument = Annotated[
    str, typer.Argument(help="A deployment of prefect.yaml, or FLOW/DEPLOYMENT on the server.")
]
DeployedFileOption = Annotated[
    Path, typer.Option("--file", help="The project file that names the deployment's flow.")
]
DebugOption = Annotated[bool, typer.Option(help="Show tracebacks.", callback=_remember_debug)]


def cli_user() -> str:
    """Who runs the command (the audit log's `triggered_by` of Run Now runs)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def print_table(rows: Sequence[Sequence[str]], right_aligned: Collection[int] = ()) -> None:
    """Columns padded to their widest cell, two spaces apart; `right_aligned` columns (by
    index) are numbers."""
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width) if index in right_aligned else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        typer.echo("  ".join(cells).rstrip())
