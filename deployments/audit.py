"""The audit log (Contract 6): one record per run of the `export` flow, read from Prefect's
run history alone.

What a record holds and where it comes from:
- trigger_type, triggered_by: the run's tags or `auto_scheduled` (flows/runs/tags.py).
- deployment: the run's deployment, or the `deployment:<name>` tag `exports run` sets.
- rows, bytes, files: the result table artifact the flow records when it completes (key
  `export-<name>-result`).
- alerts: the table artifacts the alert hooks record (keys `export-<name>-alert-<status>`).
- status, started, finished, error: the run and its state, so a run that crashed before it
  recorded anything is still listed with what Prefect knows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from pydantic import BaseModel, Field

from flows.alerts.hooks import recorded_alert
from flows.core.config import OnEmpty
from flows.core.errors import EmptyResultError
from flows.runs.artifacts import TableArtifact, table_artifacts_of_runs
from flows.runs.naming import EXPORT_FLOW, export_name_of, result_artifact_key
from flows.runs.result import RESULT_ARTIFACT_DESCRIPTION
from flows.runs.tags import TriggerType, tagged_deployment, trigger_type, triggered_by

PAGE = 200  # the Prefect API's largest page


class AlertRecord(BaseModel):
    status: str = Field(description="Initiated, Completed or Failed.")
    http_status: int | None = Field(description="The webhook's answer; None if none came.")
    attempts: int


class AuditRecord(BaseModel):
    """One run of one export (Contract 6), in this order."""

    export_request_id: str
    deployment: str = Field(description="The trigger's name; empty for ad hoc runs.")
    trigger_type: TriggerType
    triggered_by: str = Field(
        description=(
            "The key's or CLI user, `schedule`, the creator Prefect recorded "
            "(`automation:<name>`, a Prefect Cloud user), else `prefect`."
        )
    )
    status: str = Field(description="Prefect's state: Completed, Failed, Crashed, Late …")
    rows: int | None = None
    bytes: int | None = None
    files: list[str] = Field(default_factory=list)
    started: datetime | None = None
    finished: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    alerts: list[AlertRecord] = Field(default_factory=list)
    manifest: str | None = Field(
        default=None, description="The manifest's URL, for exports that wrote one."
    )
    empty: OnEmpty | None = Field(
        default=None,
        description=(
            "What a run that read no rows did (on_empty): `write` (an empty file delivered), "
            "`skip` (nothing published) or `fail`; None when it read rows, or is not final."
        ),
    )
    encrypted_to: list[str] = Field(
        default_factory=list,
        description="The fingerprints of the OpenPGP keys the files were encrypted to.",
    )
    cursor: dict[str, str | None] | None = Field(
        default=None,
        description="source.incremental: the range delivered, {column, from, to}.",
    )


@dataclass(frozen=True)
class AuditQuery:
    """What `exports audit` asks for; None means any."""

    deployment: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    trigger_type: TriggerType | None = None
    user: str | None = None
    limit: int = 50
    include_scheduled: bool = False  # runs due later than now, which have not started


def read_audit(query: AuditQuery) -> list[AuditRecord]:
    """The runs that match, newest first (by their expected start), at most `query.limit`."""
    records: list[AuditRecord] = []
    with get_client(sync_client=True) as client:
        names = _DeploymentNames(client)
        for page in _pages(client, query):
            # Filter on what the run itself says first: only the kept runs' artifacts are read.
            kept = [
                (run, deployment)
                for run in page
                if _matches(run, deployment := names.of(run), query)
            ][: query.limit - len(records)]
            artifacts = table_artifacts_of_runs([run.id for run, _ in kept])
            records += [audit_record(run, name, artifacts.get(run.id, [])) for run, name in kept]
            if len(records) >= query.limit:
                return records
    return records


def audit_record(run: FlowRun, deployment: str, artifacts: list[TableArtifact]) -> AuditRecord:
    """The record of one run, from the run and its table artifacts."""
    state = run.state
    status = (state.name if state is not None else None) or "Unknown"
    final = state is not None and state.is_final()
    record = AuditRecord(
        export_request_id=str(run.id),
        deployment=deployment,
        trigger_type=trigger_type(run),
        triggered_by=triggered_by(run),
        status=status,
        started=run.start_time,
        finished=run.end_time if final else None,
    )
    if record.started is not None and record.finished is not None:
        record.duration_s = round((record.finished - record.started).total_seconds(), 3)
    export = export_name_of(run.parameters)
    for table in artifacts:
        if _is_result(table, export) and table.rows and final:
            result = table.rows[0]
            record.rows = int(result["rows"])
            record.bytes = int(result["bytes"])
            record.files = [str(item) for item in result.get("files") or []]
            record.manifest = result.get("manifest") or None
            record.encrypted_to = [str(key) for key in result.get("encrypted_to") or []]
            record.cursor = result.get("cursor") or None
            if record.rows == 0:
                record.empty = "skip" if result.get("skipped") else "write"
        elif (alert := recorded_alert(table, export)) is not None and table.rows:
            row = table.rows[0]
            http_status = row.get("http_status")
            record.alerts.append(
                AlertRecord(
                    status=str(row.get("status") or alert),
                    http_status=int(http_status) if http_status is not None else None,
                    attempts=int(row.get("attempts") or 0),
                )
            )
    record.alerts.sort(key=lambda alert: _ALERT_ORDER.get(alert.status, 9))
    if final and state is not None and not state.is_completed():
        record.error = (state.message or "").strip() or status  # whole: the table shortens it
        if f"{EmptyResultError.__name__}: " in record.error:
            record.empty = "fail"
    return record


_ALERT_ORDER = {"Initiated": 0, "Completed": 1, "Failed": 2}


def _is_result(table: TableArtifact, export: str) -> bool:
    """Whether the table is the export's result, found by its key. A table without a key was
    recorded before the result had one: only then does its description say what it is."""
    if table.key is None:
        return table.description == RESULT_ARTIFACT_DESCRIPTION
    return table.key == result_artifact_key(export)


def _matches(run: FlowRun, deployment: str, query: AuditQuery) -> bool:
    if query.deployment is not None and deployment != query.deployment:
        return False
    if query.trigger_type is not None and trigger_type(run) != query.trigger_type:
        return False
    return query.user is None or triggered_by(run) == query.user


def _pages(client: SyncPrefectClient, query: AuditQuery) -> Iterator[list[FlowRun]]:
    """Runs of the export flow, newest first, a page at a time; time and status are filtered
    by the server, the rest (derived from tags and deployments) by `_matches`."""
    # the server's before_ includes its bound; --until does not
    until = query.until - timedelta(microseconds=1) if query.until is not None else None
    if not query.include_scheduled:  # the scheduler's runs ahead have not started: not yet history
        now = datetime.now(UTC)
        until = now if until is None else min(until, now)
    expected = FlowRunFilterExpectedStartTime(after_=query.since, before_=until)
    state = (
        FlowRunFilterState(name=FlowRunFilterStateName(any_=[query.status]))
        if query.status is not None
        else None
    )
    run_filter = FlowRunFilter(expected_start_time=expected, state=state)
    offset = 0
    while True:
        page = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[EXPORT_FLOW])),
            flow_run_filter=run_filter,
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=PAGE,
            offset=offset,
        )
        if page:
            yield page
        if len(page) < PAGE:
            return
        offset += PAGE


class _DeploymentNames:
    """Deployment id → name, read once per deployment."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self._client = client
        self._names: dict[UUID, str] = {}

    def of(self, run: FlowRun) -> str:
        deployment_id = run.deployment_id
        if deployment_id is None:  # `exports run` names it in a tag
            return tagged_deployment(run.tags) or ""
        if deployment_id not in self._names:
            try:
                self._names[deployment_id] = self._client.read_deployment(deployment_id).name
            except Exception:  # noqa: BLE001 - a deleted deployment keeps its runs
                self._names[deployment_id] = ""
        return self._names[deployment_id]
