"""The `alert-reconciler` flow: Failed alerts for export runs that could not send their own
(docs/crash-alerts.md).

A run killed with its process cannot run `on_crashed`. Two Prefect automations
(flows/alerts/automations.py) close that hole: one marks an `export` run Crashed when its
heartbeats stop, the other runs the `alert-reconciler` deployment for every Crashed `export`
run. The reconciler sends the "Failed" alert unless the run's own was delivered, so no run
gets two delivered. It also sweeps for crashed or failed runs whose Failed alert was never
sent, or not delivered (a webhook outage), and sends it again, up to MAX_FAILED_ALERT_TRIES.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType

from blocks.alerts import load_alert_settings
from flows.alerts.automations import RECONCILER_FLOW
from flows.alerts.hooks import failed_alert_settled, send_failed_alert
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
    missing = [
        run
        for run in runs
        if run.state is not None
        and run.state.type in FINAL_FAILURES
        and not failed_alert_settled(run)
    ]
    settings = load_alert_settings()
    if settings is None or not settings.enabled:
        logger.info(
            "status alerts are disabled: no Failed alert sent (%s export run(s) without a "
            "delivered one)",
            len(missing),
        )
        return []
    delivered: list[str] = []
    undelivered: list[str] = []
    for run in missing:
        assert run.state is not None
        outcome = send_failed_alert(run, run.state)
        (delivered if outcome is not None and outcome.delivered else undelivered).append(
            str(run.id)
        )
    logger.info("Failed alert delivered for %s export run(s): %s", len(delivered), delivered)
    if undelivered:
        logger.warning(
            "Failed alert NOT delivered for %s export run(s): %s", len(undelivered), undelivered
        )
    return delivered


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
