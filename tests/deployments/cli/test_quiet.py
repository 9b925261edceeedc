"""The quiet console's filter (deployments/cli/quiet.py) over Prefect's records as Prefect 3.9
emits them: their logger, the engine function that logged them, level, message, arguments and
exception, as captured from real flow and task runs. The terminal a user sees is checked end
to end in tests/deployments/cli/test_runs.py (TestTerminal)."""

from __future__ import annotations

import inspect
import logging
import sys
from types import TracebackType
from typing import Any

import pytest
from prefect import flow_engine, task_engine
from prefect.events import utilities as events_utilities

from deployments.cli.quiet import OneLineWarnings

pytestmark = pytest.mark.unit

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
TASK_EXTRA = {"task_run_name": "inspect-orders-0", "task_name": "inspect_source"}
FLOW_EXTRA = {"flow_run_name": "export-orders-csv", "flow_name": "export"}


def raised(exc: BaseException) -> ExcInfo:
    try:
        raise exc
    except BaseException:  # noqa: BLE001 - to hold the traceback, as logger.exception does
        info = sys.exc_info()
    assert info[0] is not None and info[1] is not None
    return info[0], info[1], info[2]


def prefect_record(
    logger: str,
    function: str,
    level: int,
    msg: str,
    args: tuple[Any, ...] = (),
    exc_info: ExcInfo | None = None,
    extra: dict[str, Any] | None = None,
) -> logging.LogRecord:
    """A record made the way Prefect's logger makes it (Logger.makeRecord), from the
    engine module and function that log it."""
    module = {
        "prefect.flow_runs": flow_engine,
        "prefect.task_runs": task_engine,
        "prefect.events.utilities": events_utilities,
    }[logger]
    assert module.__file__ is not None
    return logging.getLogger(logger).makeRecord(
        logger, level, module.__file__, 1, msg, args, exc_info, func=function, extra=extra
    )


DOWN = ConnectionError("[Errno 111] Connection refused")
RETRY = prefect_record(
    "prefect.task_runs",
    "handle_retry",
    logging.INFO,
    "Task run failed with %s: %r - Retry %s/%s will start %s",
    ("exception", DOWN, 1, 2, "2 second(s) from now"),
    extra=TASK_EXTRA,
)
RETRIES_EXHAUSTED = prefect_record(
    "prefect.task_runs",
    "handle_retry",
    logging.ERROR,
    f"Task run failed with exception: {DOWN!r} - Retries are exhausted",
    exc_info=raised(DOWN),
    extra=TASK_EXTRA,
)
NO_RETRIES = prefect_record(
    "prefect.task_runs",
    "handle_retry",
    logging.ERROR,
    "Task run failed with exception: ValueError('bad value')",
    exc_info=raised(ValueError("bad value")),
    extra=TASK_EXTRA,
)
TASK_FINISHED = prefect_record(
    "prefect.task_runs",
    "log_finished_message",
    logging.ERROR,
    "Finished in state Failed('Task run encountered an exception ConnectionError: refused')",
    extra=TASK_EXTRA,
)
FLOW_EXCEPTION = prefect_record(
    "prefect.flow_runs",
    "run_context",
    logging.ERROR,
    "Encountered exception during execution: %r",
    (DOWN,),
    exc_info=raised(DOWN),
    extra=FLOW_EXTRA,
)
FLOW_FINISHED = prefect_record(
    "prefect.flow_runs",
    "initialize_run",
    logging.INFO,
    "Finished in state Failed('Flow run encountered an exception: ConnectionError')",
    extra=FLOW_EXTRA,
)
UNSENT_EVENT = prefect_record(
    "prefect.events.utilities",
    "emit_event",
    logging.ERROR,
    "Error emitting event: prefect.block.status-alerts.loaded",
    exc_info=raised(RuntimeError("Event loop is closed")),
)
BEGINNING = prefect_record(
    "prefect.flow_runs",
    "setup_run_context",
    logging.INFO,
    "Beginning flow run 'export-orders-csv' for flow 'export'",
    extra=FLOW_EXTRA,
)
HOOK_FAILED = prefect_record(
    "prefect.flow_runs",
    "call_hooks",
    logging.ERROR,
    "An error was encountered while running hook 'alert_failed'",
    exc_info=raised(OSError("no space left\non device")),
    extra=FLOW_EXTRA,
)
OUR_WARNING = prefect_record(
    "prefect.flow_runs",
    "_alert",
    logging.WARNING,
    "status alert %s NOT delivered after %s attempt(s): %s",
    ("Failed", 4, "HTTP 503\nretry later"),
    extra=FLOW_EXTRA,
)


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        (RETRY, f"Task run failed with exception: {DOWN!r} - Retry 1/2 will start "
                "2 second(s) from now"),
        (NO_RETRIES, "Task run failed with exception: ValueError('bad value')"),
        (HOOK_FAILED, "An error was encountered while running hook 'alert_failed'"),
        (OUR_WARNING, "status alert Failed NOT delivered after 4 attempt(s): HTTP 503"),
        (RETRIES_EXHAUSTED, None),  # the run ends with it: the command's error says it
        (TASK_FINISHED, None),
        (FLOW_EXCEPTION, None),
        (FLOW_FINISHED, None),
        (UNSENT_EVENT, None),
        (BEGINNING, None),
    ],
    ids=lambda value: value.funcName if isinstance(value, logging.LogRecord) else "",
)  # fmt: skip
def test_the_console_shows_what_is_not_the_runs_end_in_one_line(
    record: logging.LogRecord, shown: str | None
) -> None:
    record = logging.makeLogRecord(record.__dict__)  # the filter shortens the one it passes
    passed = OneLineWarnings().filter(record)
    assert (record.getMessage() if passed else None) == shown
    if passed:
        assert (record.exc_info, record.exc_text, record.stack_info) == (None, None, None)


def test_a_retry_logged_by_another_function_is_not_taken_for_prefects() -> None:
    """The origin decides, not the words: our own INFO line that reads like a retry is
    below the console's level like any other."""
    lookalike = logging.makeLogRecord({**RETRY.__dict__, "funcName": "read_chunk"})
    assert OneLineWarnings().filter(lookalike) is False


@pytest.mark.parametrize(
    ("function", "logs"),
    [
        (task_engine.SyncTaskRunEngine.handle_retry, "Retry %s/%s will start"),
        (task_engine.AsyncTaskRunEngine.handle_retry, "Retry %s/%s will start"),
        (task_engine.SyncTaskRunEngine.handle_retry, "Retries are exhausted"),  # words
        (task_engine.AsyncTaskRunEngine.handle_retry, "Retries are exhausted"),
        (task_engine.BaseTaskRunEngine.log_finished_message, "Finished in state"),
        (flow_engine.FlowRunEngine.run_context, "Encountered exception during execution"),
        (flow_engine.AsyncFlowRunEngine.run_context, "Encountered exception during execution"),
        (events_utilities.emit_event, "Error emitting event"),
    ],
    ids=lambda value: value if isinstance(value, str) else value.__qualname__,
)
def test_prefect_still_logs_each_record_from_the_function_the_filter_names(
    function: Any, logs: str
) -> None:
    """A Prefect upgrade that moves one of them fails here, not on a user's terminal."""
    assert logs in inspect.getsource(function)
