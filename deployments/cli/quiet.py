"""What the terminal shows of Prefect's own logging while an `exports` command runs.

A flow run run by a command logs to two places: the Prefect API (the run's logs in the UI,
complete, tracebacks included) and the terminal. On the terminal a failed export used to
print some 200 lines of tracebacks before the command's own one-line `error:`; a retry printed
its traceback each time. Unless `--debug` is given, the terminal shows warnings and errors
only, each on one line, and each retry of a task in one line, but not the run's final failure
(the command says it); the API keeps everything. A temporary Prefect server that any command
starts (no PREFECT_API_URL) sends no telemetry, so an offline machine prints no `Failed to
send telemetry`, and logs only critical errors of its own (`--debug` too: set
PREFECT_SERVER_LOGGING_LEVEL to see more).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from flows.core.prefect_compat import console_handlers, ensure_logging

# Prefect's records are told apart by where they come from: their logger and the engine
# function that logged them (Prefect 3.9; tests/deployments/cli/test_quiet.py holds each record
# as Prefect emits it, and fails if Prefect's engines no longer have these functions).
_FLOW_RUNS, _TASK_RUNS = "prefect.flow_runs", "prefect.task_runs"
# The run's own end: the command prints its error in one line instead. The flow's exception
# with its traceback ("Encountered exception during execution") and a task's final state
# ("Finished in state Failed(…)", ERROR for any state but Completed).
_RUN_END = frozenset({(_FLOW_RUNS, "run_context"), (_TASK_RUNS, "log_finished_message")})
# A task's retry: at INFO, "… - Retry 1/2 will start …" (shown, one line each); at ERROR, its
# last failure.
_TASK_RETRY = (_TASK_RUNS, "handle_retry")
# The one record known only by its wording: `handle_retry` logs a task's last failure at ERROR
# with the same logger, function and exception whether the task had retries or not, and only
# this suffix says that it had (then the run ends with it and the command says it; a task
# without retries keeps its line).
_RETRIES_EXHAUSTED = " - Retries are exhausted"
# Prefect's own events (`prefect.block.….loaded` as a Failed alert loads its block in the
# background) that its events worker could not send while the process ends ("Error emitting
# event: …"): nothing a user can act on, and the run's state and alert are sent regardless.
_UNSENT_EVENT = ("prefect.events.utilities", "emit_event")
# Settings of the temporary server a command starts when no PREFECT_API_URL is set.
_TEMPORARY_SERVER_SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
}


class OneLineWarnings(logging.Filter):
    """Passes warnings and errors as their first line, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        origin = (record.name, record.funcName)
        if record.levelno < logging.WARNING and origin != _TASK_RETRY:
            return False
        message = record.getMessage()
        if origin in _RUN_END or origin == _UNSENT_EVENT:
            return False
        if origin == _TASK_RETRY and message.endswith(_RETRIES_EXHAUSTED):
            return False
        # The console is the last handler a record reaches (the API's handler sits on the
        # run's own logger, which comes first), so shortening the record here changes
        # nothing the API receives.
        record.msg = message.strip().split("\n", 1)[0]
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def quiet_temporary_server() -> bool:
    """Whether a command would start a temporary server (no PREFECT_API_URL); if so, its
    settings as above, unless the environment sets them. Every command calls it first
    (deployments/cli/console.py): the server starts at the command's first API call."""
    from prefect.settings import PREFECT_API_URL

    temporary = not PREFECT_API_URL.value()
    if temporary:
        for name, value in _TEMPORARY_SERVER_SETTINGS.items():
            os.environ.setdefault(name, value)
    return temporary


@contextmanager
def quiet_prefect(debug: bool) -> Iterator[None]:
    """Prefect's console logging as described above for the duration of a command."""
    if debug:
        yield
        return
    # Prefect 3.9 configures its logging when its flow machinery is first imported; the
    # handlers that get the filter must exist now (`exports demo` imports the engine later).
    ensure_logging()

    temporary = quiet_temporary_server()
    # Prefect's log worker writes "--- Error logging to API ---" and the connection error
    # straight to stderr (no newline, no logger) whenever it cannot send a run's logs, if
    # logging.raiseExceptions is on. The command's own error says when the API did not
    # answer; the run's logs are lost with the API either way. Left off: it flushes at exit.
    logging.raiseExceptions = False
    handlers = console_handlers()
    quiet = OneLineWarnings()
    for handler in handlers:
        handler.addFilter(quiet)
    failed = True
    try:
        yield
        failed = False
    finally:
        # The filter stays for a temporary server's stop at exit, and after a failed command
        # for what Prefect says while the process ends (an alert sent in the background).
        if not temporary and not failed:
            for handler in handlers:
                handler.removeFilter(quiet)
