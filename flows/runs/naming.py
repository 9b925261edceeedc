"""What an export run is called: the flow, the export's default name, the run's name in the UI,
its artifact keys, and the values of the `{deployment}` and `{date}` tokens.

The run-time values read Prefect's run context (prefect.runtime); outside a run they fall back
to `adhoc` and now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prefect.context import FlowRunContext
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run as runtime_flow_run

from flows.runs.tags import tagged_deployment

EXPORT_FLOW = "export"
DEFAULT_EXPORT_NAME = "export"
ADHOC_DEPLOYMENT = "adhoc"  # `{deployment}` of a run outside any deployment


def export_name(name: str | None, table: str | None) -> str:
    """The export's name (`{export}`, the alerts' "Export Name"): the given name, else the
    table's, else `export`."""
    return name or table or DEFAULT_EXPORT_NAME


def export_name_of(parameters: Mapping[str, Any]) -> str:
    """`export_name` from a run's parameters (plain dicts, or the validated models)."""
    source = parameters.get("source") or {}
    table = source.get("table") if isinstance(source, dict) else getattr(source, "table", None)
    return export_name(parameters.get("name"), table)


def run_name(parameters: Mapping[str, Any]) -> str:
    """The flow run's name in the UI, e.g. `export-orders-csv`, from the run's parameters
    (plain dicts, or the validated models)."""
    return f"export-{export_name_of(parameters)}-{parameters.get('format', 'csv')}"


def current_run_name() -> str:
    """`run_name` of the flow run being started (the flow's `flow_run_name`)."""
    return run_name(runtime_flow_run.parameters)


def artifact_key(name: str) -> str:
    """The key prefix of an export's artifacts, e.g. `export-orders` (lowercase, dashes)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return f"export-{slug or 'unnamed'}"


def result_artifact_key(name: str) -> str:
    """The key of the machine-readable result table, e.g. `export-orders-result`: the audit
    log and the gateway's run status find it by this key among the run's artifacts."""
    return f"{artifact_key(name)}-result"


def alert_artifact_key(name: str, status: str) -> str:
    """The key of the table recording one status alert, e.g. `export-orders-alert-failed`."""
    return f"{artifact_key(name)}-alert-{status.lower()}"


def current_deployment() -> str:
    """The deployment that started the run (`{deployment}`); `exports run` names it in a tag."""
    if _may_have_deployment() and runtime_deployment.name:
        return str(runtime_deployment.name)
    return tagged_deployment(runtime_flow_run.tags) or ADHOC_DEPLOYMENT


def _may_have_deployment() -> bool:
    """False when the run in this process's context has no deployment: prefect.runtime would
    read the run from the API again to learn it (a round trip of every ad-hoc run)."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    return run is None or run.deployment_id is not None


def current_run_date() -> datetime:
    """The run's scheduled time (`{date}`), in UTC; now for ad-hoc runs."""
    scheduled = runtime_flow_run.scheduled_start_time
    if scheduled is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(scheduled.timestamp(), UTC)
