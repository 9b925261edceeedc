"""Status alerts (Contract 5): the export flow's state hooks POST Initiated, Completed and Failed
to the webhook of the `status-alerts` block, read when the state changes.

An alert never changes the export's state: delivery is retried within a bounded time, and its
outcome (HTTP status, attempts, last error) is logged on the run and kept as an artifact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.logging.loggers import flow_run_logger

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from flows.artifacts import table_artifacts
from flows.errors import first_line
from flows.origin import trigger_type
from flows.stores import store_name
from flows.targets import url_scheme

AlertStatus = Literal["Initiated", "Completed", "Failed"]
SIGNATURE_HEADER = "X-Exports-Signature"
BACKOFF_S = 0.5  # before the second attempt; doubled for each later one, with jitter
TRANSIENT_STATUSES = frozenset({408, 429})  # and every 5xx


@dataclass(frozen=True)
class AlertOutcome:
    """What became of one alert: recorded on the run for the audit log."""

    status: str
    http_status: int | None
    attempts: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def load_alert_settings() -> StatusAlerts | None:
    """The saved switch, or None when alerts were never set up."""
    try:
        block = StatusAlerts.load(ALERTS_BLOCK_NAME)
    except ValueError:
        return None
    assert isinstance(block, StatusAlerts)
    return block


def alert_time(moment: datetime, zone: str) -> str:
    """`DD/MM/YYYY h:MM:SS AM/PM` in `zone`, e.g. 25/07/2023 4:50:52 PM."""
    local = moment.astimezone(ZoneInfo(zone))
    hour = local.hour % 12 or 12
    return f"{local:%d/%m/%Y} {hour}:{local:%M:%S} {'AM' if local.hour < 12 else 'PM'}"


def signature(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the exact body bytes>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_payload(
    flow_run: FlowRun,
    status: AlertStatus,
    settings: StatusAlerts,
    *,
    moment: datetime,
    frequency: str,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Contract 5's keys in order, then extras (Export Name, Trigger, Rows, Files, Error)."""
    parameters = flow_run.parameters or {}
    destination = parameters.get("destination") or {}
    url = destination.get("url", "") if isinstance(destination, dict) else ""
    source = parameters.get("source") or {}
    table = source.get("table") if isinstance(source, dict) else None
    return {
        "Export Request Id": str(flow_run.id),
        "Partner": parameters.get("partner") or store_name(url_scheme(url)),
        "Type": parameters.get("type") or "",
        "Status": status,
        "Frequency": frequency,
        "Date and Time": alert_time(moment, settings.timezone),
        "Export Name": parameters.get("name") or table or "export",
        "Trigger": trigger_type(flow_run),
        **(extras or {}),
    }


def frequency_of(flow_run: FlowRun) -> str:
    """ "One Time" unless the run was created by its deployment's schedule: then the
    deployment's active schedules in words."""
    from flows.frequency import ONE_TIME, describe_schedules

    if not flow_run.auto_scheduled or flow_run.deployment_id is None:
        return ONE_TIME
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(flow_run.deployment_id)
    return describe_schedules([item.schedule for item in deployment.schedules if item.active])


def send_alert(settings: StatusAlerts, payload: dict[str, Any]) -> AlertOutcome:
    """POST the payload; retry timeouts, network errors, 408/429 and 5xx with exponential
    backoff and jitter, within `max_attempts` and `max_total_s`. Never raises."""
    assert settings.url is not None
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if settings.secret is not None:
        headers[SIGNATURE_HEADER] = signature(body, settings.secret.get_secret_value())
    deadline = time.monotonic() + settings.max_total_s
    status: int | None = None
    error: str | None = None
    attempts = 0
    with httpx.Client(follow_redirects=False) as client:
        while attempts < settings.max_attempts:
            attempts += 1
            remaining = deadline - time.monotonic()
            try:
                answer = client.post(
                    settings.url,
                    content=body,
                    headers=headers,
                    timeout=max(min(settings.timeout_s, remaining), 0.1),
                )
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {first_line(exc)}"
            else:
                status = answer.status_code
                if answer.is_success:
                    return AlertOutcome(str(payload["Status"]), status, attempts, None)
                error = f"the webhook answered {status} {answer.reason_phrase}"
                if status not in TRANSIENT_STATUSES and status < 500:
                    break  # 4xx: sending it again will not help
            pause = BACKOFF_S * 2 ** (attempts - 1) * (1 + random.random() / 2)  # noqa: S311
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
    return AlertOutcome(str(payload["Status"]), status, attempts, error)


def _alert(flow: Any, flow_run: FlowRun, state: State, status: AlertStatus) -> None:
    """Send one alert for a state change and record what became of it; never raises (a
    hook that raised would only add noise to the run, and must not change its state)."""
    logger = flow_run_logger(flow_run, flow)
    try:
        settings = load_alert_settings()
        if settings is None or not settings.enabled:
            return
        extras = _extras(state, status)
        moment = state.timestamp if state.timestamp else datetime.now(UTC)
        payload = alert_payload(
            flow_run,
            status,
            settings,
            moment=moment,
            frequency=frequency_of(flow_run),
            extras=extras,
        )
        outcome = send_alert(settings, payload)
        _record(flow_run, outcome)
    except Exception as exc:  # noqa: BLE001 - an alert must never fail the export
        logger.warning("status alert %s not sent: %s", status, first_line(exc))
        return
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


def _extras(state: State, status: AlertStatus) -> dict[str, Any]:
    """Rows and Files of a completed export; the one-line Error of a failed one."""
    if status == "Completed":
        result = state.result(raise_on_failure=False)
        rows = getattr(result, "rows", None)
        files = getattr(result, "files", None)
        return {"Rows": rows, "Files": files} if rows is not None else {}
    if status == "Failed":
        result = None
        try:
            result = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - a crashed run may have no result at all
            pass
        if isinstance(result, BaseException):
            return {"Error": first_line(result)}
        return {"Error": (state.message or state.name or "failed").splitlines()[0]}
    return {}


def _record(flow_run: FlowRun, outcome: AlertOutcome) -> None:
    """Keep the outcome on the run (Prefect UI, and the audit log reads it back)."""
    row = {
        "status": outcome.status,
        "http_status": outcome.http_status,
        "attempts": outcome.attempts,
        "error": outcome.error or "",
    }
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                type="table",
                data=[row],
                description=f"Status alert `{outcome.status}`",
                flow_run_id=flow_run.id,
            )
        )


def failed_alert_recorded(flow_run_id: UUID) -> bool:
    """Whether the run already has its Failed alert's outcome artifact (sent or not)."""
    return any(t.description == "Status alert `Failed`" for t in table_artifacts(flow_run_id))


def alert_initiated(flow: Any, flow_run: FlowRun, state: State) -> None:
    """on_running: once per flow run, not again when the flow is retried (the run's state
    history, not the `run_count` of the hook's copy of the run, which may lag behind)."""
    if _times_running(flow_run) > 1:
        return
    _alert(flow, flow_run, state, "Initiated")


def _times_running(flow_run: FlowRun) -> int:
    try:
        with get_client(sync_client=True) as client:
            states = client.read_flow_run_states(flow_run.id)
    except Exception:  # noqa: BLE001 - when in doubt, send the alert
        return 1
    return sum(1 for item in states if item.type == StateType.RUNNING)


def alert_completed(flow: Any, flow_run: FlowRun, state: State) -> None:
    """on_completion."""
    _alert(flow, flow_run, state, "Completed")


def alert_failed(flow: Any, flow_run: FlowRun, state: State) -> None:
    """on_failure and on_crashed."""
    _alert(flow, flow_run, state, "Failed")
