"""Status alerts (Contract 5): the export flow's state hooks POST Initiated, Completed and Failed
to the webhook of the `status-alerts` block, read when the alert is sent. The hooks only queue
the alert: one thread per process sends them in order, so the run never waits on a webhook.

An alert never changes the export's state: delivery is retried within a bounded time
(flows/alerts/webhook.py), and its outcome (HTTP status, attempts, last error) is logged on the
run and kept as an artifact, which the audit log and the alert reconciler read back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from datetime import UTC, datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.context import AsyncClientContext, FlowRunContext, SyncClientContext, TaskRunContext
from prefect.exceptions import CancelledRun, CrashedRun, FailedRun
from prefect.logging.loggers import flow_run_logger

from blocks.alerts import load_alert_settings
from flows.alerts.errors import alert_error, state_error
from flows.alerts.payload import AlertStatus, alert_payload, frequency_of
from flows.alerts.webhook import AlertOutcome, send_alert
from flows.core.errors import first_line
from flows.core.signing import message_id
from flows.runs.artifacts import TableArtifact, table_artifacts
from flows.runs.naming import alert_artifact_key, export_name_of

ALERT_ARTIFACT_PREFIX = "Status alert `"
# A Failed alert that a webhook outage kept from its receiver is sent again by the alert
# reconciler's sweeps (every 10 minutes), up to this many tries in all: about 4 hours.
MAX_FAILED_ALERT_TRIES = 24
ALERT_STATUSES: tuple[AlertStatus, ...] = ("Initiated", "Completed", "Failed")
_STAND_INS = (FailedRun, CrashedRun, CancelledRun)
_SENDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-alerts")


def alert_artifact_description(status: str) -> str:
    """The description of the table artifact that records one alert, e.g. Status alert `Failed`."""
    return f"{ALERT_ARTIFACT_PREFIX}{status}`"


def recorded_alert(table: TableArtifact, export: str) -> AlertStatus | None:
    """The status whose alert this table of an export's run records, found by its key
    (`alert_artifact_key`); None for any other table.

    A table without a key was recorded before alert artifacts had one: only then does the
    description say which alert it is, so older runs keep their alerts in the audit log.
    """
    for status in ALERT_STATUSES:
        if table.key == alert_artifact_key(export, status) or (
            table.key is None and table.description == alert_artifact_description(status)
        ):
            return status
    return None


def _alert(
    flow: Any,
    flow_run: FlowRun,
    state: State,
    status: AlertStatus,
    *,
    once: bool = False,
    extras: dict[str, Any] | None = None,
) -> AlertOutcome | None:
    """Send one alert for a state change and record what became of it; None when alerts
    are off, it was sent before (`once`) or it could not be sent. Never raises (a hook that
    raised would only add noise to the run, and must not change its state)."""
    logger = flow_run_logger(flow_run, flow)
    try:
        settings = load_alert_settings()
        if settings is None or not settings.enabled:
            return None
        if once and _times_running(flow_run) > 1:
            return None
        extras = _extras(state, status) if extras is None else extras
        moment = state.timestamp if state.timestamp else datetime.now(UTC)
        payload = alert_payload(
            flow_run,
            status,
            settings,
            moment=moment,
            frequency=frequency_of(flow_run),
            extras=extras,
        )
        # One id per state change: a Failed alert the reconciler sends again has the id of the
        # hook's, so a receiver that got both keeps one.
        outcome = send_alert(settings, payload, message_id(flow_run.id, status, state.id))
        _record(flow_run, outcome)
    except Exception as exc:  # noqa: BLE001 - an alert must never fail the export
        logger.warning("status alert %s not sent: %s", status, first_line(exc))
        return None
    if outcome.delivered:
        logger.info(
            "status alert %s delivered (HTTP %s, %s attempt(s))",
            status,
            outcome.http_status,
            outcome.attempts,
        )
    else:
        logger.warning(
            "status alert %s NOT delivered after %s attempt(s): %s",
            status,
            outcome.attempts,
            outcome.error,
        )
    return outcome


def _extras(state: State, status: AlertStatus) -> dict[str, Any]:
    """Rows and Files of a completed export (and Empty, what a run without rows did); the
    one-line Error of a failed one."""
    if status == "Completed":
        result = state.result(raise_on_failure=False)
        rows = getattr(result, "rows", None)
        files = getattr(result, "files", None)
        if rows is None:
            return {}
        # source.incremental: the range delivered, {column, from, to} (no key without one)
        cursor = getattr(result, "cursor", None)
        ranged = {"Cursor": cursor} if cursor is not None else {}
        if rows == 0:
            empty = "skip" if getattr(result, "skipped", False) else "write"
            return {"Rows": rows, "Files": files, "Empty": empty, **ranged}
        return {"Rows": rows, "Files": files, **ranged}
    if status == "Failed":
        result = None
        try:
            result = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - a crashed run may have no result at all
            pass
        # Prefect's stand-ins for an exception it does not have (another process's run, a
        # crash) carry only the state's message: read it as one.
        if isinstance(result, BaseException) and not isinstance(result, _STAND_INS):
            return {"Error": alert_error(result)}
        return {"Error": state_error(state.message or state.name or "failed")}
    return {}


def _record(flow_run: FlowRun, outcome: AlertOutcome) -> None:
    """Keep the outcome on the run (Prefect UI, and the audit log reads it back by its key)."""
    row = {
        "status": outcome.status,
        "http_status": outcome.http_status,
        "attempts": outcome.attempts,
        "error": outcome.error or "",
    }
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=alert_artifact_key(export_name_of(flow_run.parameters), outcome.status),
                type="table",
                data=[row],
                description=alert_artifact_description(outcome.status),
                flow_run_id=flow_run.id,
            )
        )


def failed_alert_settled(flow_run: FlowRun) -> bool:
    """Whether the run's Failed alert needs no more sending: delivered once, or tried
    MAX_FAILED_ALERT_TRIES times (each try is an outcome artifact, delivered or not)."""
    export = export_name_of(flow_run.parameters)
    tables = table_artifacts(flow_run.id)
    tries = [table for table in tables if recorded_alert(table, export) == "Failed"]
    delivered = any(_was_delivered(row) for table in tries for row in table.rows)
    return delivered or len(tries) >= MAX_FAILED_ALERT_TRIES


def _was_delivered(row: dict[str, Any]) -> bool:
    status = row.get("http_status")
    return isinstance(status, int) and 200 <= status < 300


def alert_initiated(flow: Any, flow_run: FlowRun, state: State) -> None:
    """on_running: once per flow run, not again when the flow is retried (the run's state
    history, not the `run_count` of the hook's copy of the run, which may lag behind; read
    only when alerts are on)."""
    _in_background(flow, flow_run, state, "Initiated", once=True)


def _in_background(
    flow: Any, flow_run: FlowRun, state: State, status: AlertStatus, *, once: bool = False
) -> None:
    """Queue the alert on the process's one sender thread and return: a webhook that hangs
    holds neither the run nor its final state (issue 17: 4 x 5 s timeouts made a 1 s export
    take 32 s). One thread keeps a run's alerts in the order of its states; the interpreter
    waits for what is queued before it exits (each alert within the block's max_total_s)."""
    extras = _extras(state, status)  # now, while the run's result is at hand
    context = copy_context()  # the hook's Prefect settings (API URL, profile)
    _SENDER.submit(
        context.run, _without_the_runs_contexts, flow, flow_run, state, status, once, extras
    )


def _without_the_runs_contexts(
    flow: Any,
    flow_run: FlowRun,
    state: State,
    status: AlertStatus,
    once: bool,
    extras: dict[str, Any],
) -> None:
    """The alert, sent without the run's context and API clients: the run has closed them
    by now, and the alert talks to the API with clients of its own."""
    for context in (SyncClientContext, AsyncClientContext, FlowRunContext, TaskRunContext):
        context.__var__.set(None)  # type: ignore[arg-type]
    _alert(flow, flow_run, state, status, once=once, extras=extras)


def deliver_pending_alerts(timeout_s: float | None = None) -> None:
    """Wait until the alerts queued so far went out (or gave up), e.g. before reading what a
    receiver got."""
    _SENDER.submit(lambda: None).result(timeout=timeout_s)


def _times_running(flow_run: FlowRun) -> int:
    try:
        with get_client(sync_client=True) as client:
            states = client.read_flow_run_states(flow_run.id)
    except Exception:  # noqa: BLE001 - when in doubt, send the alert
        return 1
    return sum(1 for item in states if item.type == StateType.RUNNING)


def alert_completed(flow: Any, flow_run: FlowRun, state: State) -> None:
    """on_completion."""
    _in_background(flow, flow_run, state, "Completed")


def alert_failed(flow: Any, flow_run: FlowRun, state: State) -> None:
    """on_failure and on_crashed."""
    _in_background(flow, flow_run, state, "Failed")


def send_failed_alert(flow_run: FlowRun, state: State) -> AlertOutcome | None:
    """The Failed alert of a run that could not send its own (the alert reconciler): what
    became of it, or None when alerts are off or it could not be sent."""
    return _alert(None, flow_run, state, "Failed")
