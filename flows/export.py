"""The `export` flow: one streaming pipe from a SQL source to delivered files (Contract 1).

    inspect_source → write_batches (extract → format → temporary files) → deliver_files → record

For an http(s) destination `post_files` takes the place of `deliver_files`: it POSTs each
spooled file to the URL, and is retried on transient failures (flows/destinations/http_post.py).

The stages are subpackages: flows/sources (reading), flows/formats (writing), flows/destinations
(stores and publishing), flows/runs (tags, names, the result) and flows/alerts (state hooks).

Rows are never returned between tasks: `write_batches` streams them from the database into
the writers, so memory follows `chunk_rows`, not the table size.
"""

import gc
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as runtime_flow_run
from pydantic import BeforeValidator

from flows.alerts.hooks import alert_completed, alert_failed, alert_initiated
from flows.config import (
    DestinationConfig,
    FormatOptions,
    SourceConfig,
    WindowConfig,
    parse_format,
)
from flows.destinations.http_post import post_files as post_spooled_files
from flows.destinations.http_post import remove_spools
from flows.destinations.publish import publish
from flows.destinations.registry import display_url
from flows.destinations.sink import PartSink
from flows.destinations.store import WrittenFile
from flows.destinations.targets import TargetContext
from flows.errors import ConfigurationError, is_transient
from flows.formats.registry import ExportFormat, file_extension
from flows.runs.naming import (
    EXPORT_FLOW,
    current_deployment,
    current_run_date,
    current_run_name,
    export_name,
)
from flows.runs.result import ExportResult, record_result
from flows.sources.plan import SourcePlan, inspect_source
from flows.sources.read import read_for_format
from flows.sources.window import (
    bind_values,
    check_window,
    describe_window,
    in_zone,
    query_uses,
    resolve_window,
)

PROGRESS_EVERY_S = 1.0


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
    return publish(destination.store, destination.filesystem(), files, destination.scheme)


@task(
    name="post_files",
    task_run_name="post-{label}",
    **RETRY_TRANSIENT,
)
def post_files(
    destination: DestinationConfig,
    files: list[WrittenFile],
    context: TargetContext,
    fmt: ExportFormat,
    label: str,  # noqa: ARG001 - names the task run
) -> list[str]:
    """POST each spooled file to the http(s) URL, in order; transient failures are retried
    here (as task retries, visible in the UI), without reading the database again."""
    return post_spooled_files(destination, files, context, fmt, get_run_logger())


@flow(
    name=EXPORT_FLOW,
    flow_run_name=current_run_name,
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

    A query using `:since` / `:until` delivers the run's window (flows/sources/window.py),
    e.g. `WHERE created_at >= :since AND created_at < :until` with
    `window={"period": "P1D", "lookback": "PT15M"}`.
    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    name = export_name(name, source.table)
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
        export=name,
        deployment=current_deployment(),
        run_id=str(runtime_flow_run.id or "local"),
        date=current_run_date(),
        ext=file_extension(format),
        since=since,
        until=until,
    )
    partner = partner or destination.store.name
    plan = inspect_source_task(source, name)
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
    if destination.store.posts:
        try:
            files = post_files(destination, written, context, format, name)
        finally:
            remove_spools(written)  # after the last attempt, whatever its outcome
    else:
        files = deliver_files(destination, written, name)
    finished = datetime.now(UTC)
    result = ExportResult(
        export_request_id=context.run_id,
        name=name,
        format=format,
        rows=sum(item.rows for item in written),
        bytes=sum(item.bytes for item in written),
        files=files,
        started=started,
        finished=finished,
        window=resolved.bounds() if resolved is not None else None,
    )
    record_result(result, partner, type, plan.display_url)
    logger.info(
        "exported %s rows (%s bytes) to %s in %.2f s",
        result.rows,
        result.bytes,
        ", ".join(files),
        result.duration_s,
    )
    return result


def cast_uuid(value: Any) -> UUID:
    """Prefect's artifact helpers are sync-compatible; called from sync code they return UUIDs."""
    assert isinstance(value, UUID)
    return value


def _percent(rows: int, total: int) -> float:
    return min(100.0, round(100.0 * rows / total, 1)) if total else 100.0
