"""The body of a status alert (Contract 5): its keys in order, the time as the alerts' time zone
shows it, and the run's frequency in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

from blocks.alerts import StatusAlerts
from flows.alerts.frequency import ONE_TIME, describe_schedules
from flows.destinations.registry import store_name
from flows.runs.naming import export_name
from flows.runs.tags import trigger_type

AlertStatus = Literal["Initiated", "Completed", "Failed"]


def alert_time(moment: datetime, zone: str) -> str:
    """`DD/MM/YYYY h:MM:SS AM/PM` in `zone`, e.g. 25/07/2023 4:50:52 PM."""
    local = moment.astimezone(ZoneInfo(zone))
    hour = local.hour % 12 or 12
    return f"{local:%d/%m/%Y} {hour}:{local:%M:%S} {'AM' if local.hour < 12 else 'PM'}"


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
        "Partner": parameters.get("partner") or store_name(url),
        "Type": parameters.get("type") or "",
        "Status": status,
        "Frequency": frequency,
        "Date and Time": alert_time(moment, settings.timezone),
        "Export Name": export_name(parameters.get("name"), table),
        "Trigger": trigger_type(flow_run),
        **(extras or {}),
    }


def frequency_of(flow_run: FlowRun) -> str:
    """ "One Time" unless the run was created by its deployment's schedule: then the
    deployment's active schedules in words."""
    if not flow_run.auto_scheduled or flow_run.deployment_id is None:
        return ONE_TIME
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(flow_run.deployment_id)
    return describe_schedules([item.schedule for item in deployment.schedules if item.active])
