"""The `export` flow: one streaming pipe from a SQL source to delivered files (Contract 1).

    inspect_source → write_batches (extract → format → temporary files) → deliver_files → record

For an http(s) destination `post_files` takes the place of `deliver_files`: it POSTs each
spooled file to the URL, and is retried on transient failures (flows/http_post.py).

Rows are never returned between tasks: `write_batches` streams them from the database into
the writers, so memory follows `chunk_rows`, not the table size.
"""

import gc
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run as runtime_flow_run
from pydantic import BeforeValidator

from flows.alerts import alert_completed, alert_failed, alert_initiated
from flows.config import (
    DestinationConfig,
    ExportResult,
    FormatOptions,
    SourceConfig,
    WindowConfig,
    parse_format,
)
from flows.deliver import PartSink, WrittenFile, publish
from flows.errors import ConfigurationError, is_transient
from flows.extract import SourcePlan, inspect_source, read_for_format
from flows.http_post import post_files as post_spooled_files
from flows.http_post import remove_spools
from flows.origin import trigger_type, triggered_by
from flows.stores import filesystem_for, store_name
from flows.targets import HTTP_SCHEMES, TargetContext, display_url, url_scheme
from flows.types import FILE_EXTENSIONS, ExportFormat
from flows.window import (
    bind_values,
    check_window,
    describe_window,
    in_zone,
    query_uses,
    resolve_window,
)

PROGRESS_EVERY_S = 1.0
RESULT_ARTIFACT_DESCRIPTION = "Export result (machine-readable)"
RESULT_COLUMNS = ("export_request_id", "format", "rows", "bytes", "files", "started", "finished")


def _format_value(value: object) -> object:
    """Validate `format` with our message (naming the value and the choices)."""
    if isinstance(value, str):
        try:
            return parse_format(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
    return value


FormatParameter = Annotated[ExportFormat, BeforeValidator(_format_value)]


def _retry_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry only failures that may pass on their own (lost connections, timeouts)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classifying the task's own failure
        return is_transient(exc)
    return False


# Tasks that talk to a database or a store: transient failures get two more attempts, and no
# result is cached (every run reads and writes afresh).
RETRY_TRANSIENT: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": _retry_transient,
    "cache_policy": NO_CACHE,
}


@task(
    name="inspect_source",
    task_run_name="inspect-{label}",
    **RETRY_TRANSIENT,
)
def inspect_source_task(
    source: SourceConfig,
    label: str,  # noqa: ARG001 - names the task run
) -> SourcePlan:
    """Connect, check the table or query and learn its columns, before anything is written."""
    return inspect_source(source)


@task(
    name="write_batches",
    task_run_name="write-{plan.label}-{fmt}",
    **RETRY_TRANSIENT,
)
def write_batches(
    plan: SourcePlan,
    fmt: ExportFormat,
    destination: DestinationConfig,
    options: FormatOptions,
    context: TargetContext,
) -> list[WrittenFile]:
    """Stream rows from the source through the format writer into temporary files."""
    logger = get_run_logger()
    gc.collect()  # an earlier run's upload buffers, if this process ran one (see below)
    progress_id = cast_uuid(
        create_progress_artifact(
            progress=0.0, description=f"{context.export}: rows written of {plan.row_count or '?'}"
        )
    )
    sink: PartSink | None = None
    rows = 0
    last_update = time.monotonic()
    batches = read_for_format(plan, fmt, options)
    try:
        for batch in batches:
            if sink is None:
                sink = PartSink.open(destination, fmt, batch.schema, options, context)
            sink.write(batch)
            rows += batch.num_rows
            logger.debug("wrote chunk of %s rows (%s so far)", batch.num_rows, rows)
            if plan.row_count and time.monotonic() - last_update >= PROGRESS_EVERY_S:
                update_progress_artifact(progress_id, _percent(rows, plan.row_count))
                last_update = time.monotonic()
        assert sink is not None, "the reader yields at least one (possibly empty) batch"
        written = sink.finish()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        batches.close()  # stops the COPY reader thread now, not whenever it is collected
        # The store clients' upload buffers (a part each) sit in reference cycles that the
        # collector's object-count thresholds rarely reach; free them before the next run.
        del sink
        gc.collect()
    update_progress_artifact(progress_id, 100.0)
    return written


@task(name="deliver_files", task_run_name="deliver-{label}", cache_policy=NO_CACHE)
def deliver_files(
    destination: DestinationConfig,
    files: list[WrittenFile],
    label: str,  # noqa: ARG001 - names the task run
) -> list[str]:
    """Publish the temporary files at their final paths, all or nothing."""
    return publish(filesystem_for(destination), files, destination.scheme)


@task(
    name="post_files",
    task_run_name="post-{label}",
    **RETRY_TRANSIENT,
)
def post_files(
    destination: DestinationConfig,
    files: list[WrittenFile],
    context: TargetContext,
    label: str,  # noqa: ARG001 - names the task run
) -> list[str]:
    """POST each spooled file to the http(s) URL, in order; transient failures are retried
    here (as task retries, visible in the UI), without reading the database again."""
    return post_spooled_files(destination, files, context, get_run_logger())


def _run_name() -> str:
    parameters = runtime_flow_run.parameters
    source = parameters.get("source") or {}
    table = source.get("table") if isinstance(source, dict) else getattr(source, "table", None)
    name = parameters.get("name") or table or "query"
    return f"export-{name}-{parameters.get('format', 'csv')}"


@flow(
    name="export",
    flow_run_name=_run_name,
    log_prints=False,
    on_running=[alert_initiated],
    on_completion=[alert_completed],
    on_failure=[alert_failed],
    on_crashed=[alert_failed],
)
def export(
    source: SourceConfig,
    destination: DestinationConfig,
    format: FormatParameter = "csv",
    name: str | None = None,
    partner: str | None = None,
    type: str | None = None,
    format_options: FormatOptions | None = None,
    window: WindowConfig | None = None,
) -> ExportResult:
    """Export a table or query to a file in one of five formats.

    Example:
        ```python
        from flows.export import export

        export(
            source={"url": "sqlite:///demo/demo.sqlite", "table": "orders"},
            destination={"url": "out/{export}-{date:%Y%m%d}.{ext}"},
            format="jsonl",
        )
        ```

    A query using `:since` / `:until` delivers the run's window (flows/window.py), e.g.
    `WHERE created_at >= :since AND created_at < :until` with
    `window={"period": "P1D", "lookback": "PT15M"}`.
    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    export_name = name or source.table or "export"
    options = format_options or FormatOptions()
    check_window(source, window, destination)
    uses = query_uses(source)
    resolved = resolve_window(window, uses)
    since: datetime | None = None
    until: datetime | None = None
    if resolved is not None:
        values = bind_values(resolved, window)
        params = {**source.params, **{key: values[key] for key in uses}}
        source = source.model_copy(update={"params": params})
        since, until = in_zone(resolved, window)
        logger.info("window %s", describe_window(resolved))
    context = TargetContext(
        export=export_name,
        deployment=_deployment_name(),
        run_id=str(runtime_flow_run.id or "local"),
        date=_run_date(),
        ext=FILE_EXTENSIONS[format],
        since=since,
        until=until,
    )
    partner = partner or store_name(url_scheme(destination.url))
    plan = inspect_source_task(source, export_name)
    logger.info(
        "exporting %s from %s (%s rows, %s reader) as %s to %s",
        plan.label,
        plan.display_url,
        plan.row_count if plan.row_count is not None else "?",
        plan.reader,
        format,
        display_url(destination.url),
    )
    written = write_batches(plan, format, destination, options, context)
    if url_scheme(destination.url) in HTTP_SCHEMES:
        try:
            files = post_files(destination, written, context, export_name)
        finally:
            remove_spools(written)  # after the last attempt, whatever its outcome
    else:
        files = deliver_files(destination, written, export_name)
    finished = datetime.now(UTC)
    result = ExportResult(
        export_request_id=context.run_id,
        name=export_name,
        format=format,
        rows=sum(item.rows for item in written),
        bytes=sum(item.bytes for item in written),
        files=files,
        started=started,
        finished=finished,
        window=resolved.bounds() if resolved is not None else None,
    )
    _record(result, partner, type, plan)
    logger.info(
        "exported %s rows (%s bytes) to %s in %.2f s",
        result.rows,
        result.bytes,
        ", ".join(files),
        result.duration_s,
    )
    return result


def _record(result: ExportResult, partner: str, export_type: str | None, plan: SourcePlan) -> None:
    """Leave the run's story in the Prefect UI: a summary table (with who started it, as the
    audit log shows it) and a link to each file."""
    key = _artifact_key(result.name)
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    trigger, user = (trigger_type(run), triggered_by(run)) if run is not None else ("Run Now", "")
    create_table_artifact(
        key=f"{key}-summary",
        table=[
            {
                "export": result.name,
                "format": result.format,
                "rows": result.rows,
                "bytes": result.bytes,
                "files": len(result.files),
                "duration_s": round(result.duration_s, 3),
                "source": plan.display_url,
                "partner": partner,
                "type": export_type or "",
                "trigger": trigger,
                "user": user,
            }
        ],
        description=f"Export `{result.name}`: {result.rows} rows in {len(result.files)} file(s).",
    )
    # The same facts for machines (the gateway's run status, the audit log): one row whose
    # columns are RESULT_COLUMNS, `files` the list of delivered URLs.
    create_table_artifact(
        table=[{column: _json_value(getattr(result, column)) for column in RESULT_COLUMNS}],
        description=RESULT_ARTIFACT_DESCRIPTION,
    )
    for index, path in enumerate(result.files, start=1):
        link = path if "://" in path else f"file://{path}"
        create_link_artifact(
            key=f"{key}-file-{index}",
            link=link,
            link_text=path.rsplit("/", 1)[-1],
            description=f"Delivered file {index} of {len(result.files)}.",
        )


def _json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def cast_uuid(value: Any) -> UUID:
    """Prefect's artifact helpers are sync-compatible; called from sync code they return UUIDs."""
    assert isinstance(value, UUID)
    return value


def _artifact_key(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return f"export-{slug or 'unnamed'}"


def _percent(rows: int, total: int) -> float:
    return min(100.0, round(100.0 * rows / total, 1)) if total else 100.0


def _deployment_name() -> str:
    """The deployment that started the run; `exports run` names it in a tag."""
    if runtime_deployment.name:
        return str(runtime_deployment.name)
    for tag in runtime_flow_run.tags or []:
        if tag.startswith("deployment:"):
            return str(tag).partition(":")[2]
    return "adhoc"


def _run_date() -> datetime:
    """The run's scheduled time (its `{date}`), in UTC; now for ad-hoc runs."""
    scheduled = runtime_flow_run.scheduled_start_time
    if scheduled is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(scheduled.timestamp(), UTC)
