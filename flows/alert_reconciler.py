"""The `alert-reconciler` flow: Failed alerts for export runs that could not send their own
(docs/crash-alerts.md).

A run killed with its process cannot run `on_crashed`. Two Prefect automations
(flows/alerts/automations.py) close that hole: one marks an `export` run Crashed when its
heartbeats stop, the other runs the `alert-reconciler` deployment for every Crashed `export`
run. The reconciler sends the "Failed" alert unless the run already recorded one, so no run
gets two. It also sweeps for crashed or failed runs without a Failed alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType

from flows.alerts.automations import RECONCILER_FLOW
from flows.alerts.hooks import alert_failed, failed_alert_recorded
from flows.runs.naming import EXPORT_FLOW

FINAL_FAILURES = (StateType.CRASHED, StateType.FAILED)


@flow(name=RECONCILER_FLOW, log_prints=False)
def reconcile_alerts(flow_run_id: str | None = None, since_hours: float = 24.0) -> list[str]:
    """Send the Failed alert of one crashed export run (`flow_run_id`, from the automation),
    or of every crashed or failed export run of the last `since_hours` that has none."""
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        if flow_run_id:
            runs = [client.read_flow_run(UUID(flow_run_id.removeprefix("prefect.flow-run.")))]
        else:
            runs = _failed_export_runs(client, datetime.now(UTC) - timedelta(hours=since_hours))
    alerted = []
    for run in runs:
        if run.state is None or run.state.type not in FINAL_FAILURES:
            continue
        if failed_alert_recorded(run.id):
            continue
        alert_failed(None, run, run.state)
        alerted.append(str(run.id))
    logger.info("sent the Failed alert of %s export run(s): %s", len(alerted), alerted)
    return alerted


def _failed_export_runs(client: Any, since: datetime) -> list[FlowRun]:
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    runs: list[FlowRun] = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[EXPORT_FLOW])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(FINAL_FAILURES))),
            start_time=FlowRunFilterStartTime(after_=since),
        ),
        sort=FlowRunSort.START_TIME_DESC,
        limit=200,
        offset=0,
    )
    return runs
