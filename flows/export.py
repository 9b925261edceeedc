"""The `export` flow: one streaming pipe from a SQL source to delivered files (Contract 1).

    inspect_source → write_batches (extract → format → temporary files) → deliver_files → record

A split read (`source.partitions`) plans its ranges once, inside the snapshot they all read,
and runs one `write_partition` task per range on Prefect's thread pool or a Dask cluster
(`runner`); the parts are numbered in range order and published together, all or nothing.
For an http(s) destination `post_files` takes the place of `deliver_files`: it POSTs each
spooled file to the URL, and is retried on transient failures (flows/destinations/delivery.py
knows the two ways).
With `destination.manifest`, `write_manifest` describes the published set, and with
`destination.done_marker`, `write_done_marker` marks it complete, last.
A run that reads no rows delivers what `on_empty` says: an empty file (`write`), nothing
(`skip`), or a failure (`fail`), decided before anything is published.

The stages are subpackages: flows/sources (reading), flows/formats (writing), flows/destinations
(stores and publishing), flows/runs (tags, names, the result) and flows/alerts (state hooks).

Rows are never returned between tasks: `write_batches` streams them from the database into
the writers, so memory follows `chunk_rows`, not the table size.
"""

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as runtime_flow_run

from flows.alerts.hooks import alert_completed, alert_failed, alert_initiated
from flows.core.columns import kind_of
from flows.core.config import FormatOptions, OnEmpty, RunnerConfig, SourceConfig, WindowConfig
from flows.core.errors import EmptyResultError, ExportError
from flows.core.formats import ExportFormat
from flows.core.targets import TargetContext
from flows.destinations.delivery import deliver, discard
from flows.destinations.manifest import manifest_document
from flows.destinations.pgp import check_keys
from flows.destinations.publish import number_parts
from flows.destinations.registry import display_url
from flows.destinations.store import WrittenFile
from flows.formats.options import export_extension, export_media_type
from flows.request import (
    DestinationConfig,
    ExportRequest,
    FormatParameter,
    NameParameter,
    check_destination_names,
)
from flows.runners import partition_runner
from flows.runs.naming import (
    EXPORT_FLOW,
    current_deployment,
    current_run_date,
    current_run_name,
    export_name,
)
from flows.runs.result import ExportResult, record_result
from flows.sources.cursor import cursor_bounds, describe_cursor, new_mark
from flows.sources.plan import SourcePlan, planned_partitions
from flows.sources.window import (
    bind_values,
    describe_window,
    in_zone,
    query_uses,
    resolve_window,
)
from flows.tasks import (
    holds_cursor_lock,
    inspect_source_task,
    save_state,
    stored_mark,
    write_batches,
    write_done_marker,
    write_manifest,
    write_partition,
)


@flow(
    name=EXPORT_FLOW,
    flow_run_name=current_run_name,
    log_prints=False,
    on_running=[alert_initiated],
    on_completion=[alert_completed],
    on_failure=[alert_failed],
    on_crashed=[alert_failed],
)
@holds_cursor_lock
def export(
    source: SourceConfig,
    destination: DestinationConfig,
    format: FormatParameter = "csv",
    name: NameParameter = None,
    partner: str | None = None,
    type: str | None = None,
    format_options: FormatOptions | None = None,
    window: WindowConfig | None = None,
    runner: RunnerConfig | None = None,
    on_empty: OnEmpty = "write",
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
    ExportRequest.of(
        {
            "source": source,
            "destination": destination,
            "format": format,
            "name": name,
            "partner": partner,
            "type": type,
            "format_options": format_options,
            "window": window,
            "runner": runner,
            "on_empty": on_empty,
        }
    )
    name = export_name(name, source.table)
    options = format_options or FormatOptions()
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
        ext=export_extension(format, options),
        since=since,
        until=until,
    )
    check_destination_names(destination, name, context.ext, context)
    encrypted_to = check_keys(destination.pgp)  # every key usable, before any row is read
    destination.store.check_block(
        destination.url, destination.block, max_file_mb=destination.max_file_mb
    )
    partner = partner or destination.store.name
    mark = stored_mark(name) if source.incremental is not None else None
    plan = inspect_source_task(source, name, format, mark)
    if plan.cursor is not None:
        logger.info("%s", describe_cursor(plan.cursor))
    logger.info(
        "exporting %s from %s (%s rows, %s reader) as %s to %s",
        plan.label,
        plan.display_url,
        plan.row_count if plan.row_count is not None else "?",
        plan.reader,
        format,
        display_url(destination.url),
    )
    snapshot: str | None = None
    if source.partitions > 1:
        written, snapshot, plan = _write_partitions(
            plan, source, format, destination, options, context, runner, on_empty
        )
    else:
        written = write_batches(plan, format, destination, options, context)
    skipped = False
    if on_empty != "write" and sum(item.rows for item in written) == 0:
        discard(destination, written)  # nothing published: no file, manifest or marker
        if on_empty == "fail":
            of = f" for the window {describe_window(resolved)}" if resolved is not None else ""
            raise EmptyResultError(
                f"on_empty: the source returned no rows{of} and on_empty is `fail`, so nothing "
                "was published; set on_empty to `write` to deliver an empty file, or `skip` to "
                "complete without one"
            )
        logger.info("the source returned no rows: nothing published (on_empty: skip)")
        written, skipped = [], True
    content_type = export_media_type(format, destination.file_codecs, options)
    files = [] if skipped else deliver(destination, written, context, format, name, content_type)
    finished = datetime.now(UTC)
    manifest = None
    if destination.manifest and not skipped:
        document = manifest_document(
            export_request_id=context.run_id,
            export=name,
            fmt=format,
            compression=destination.compression,
            columns=_columns(plan),
            files=written,
            urls=files,
            snapshot=snapshot,
            window=resolved.bounds().model_dump(mode="json") if resolved is not None else None,
            started=started,
            finished=finished,
            encrypted_to=encrypted_to,
            cursor=cursor_bounds(plan.cursor),
        )
        manifest = write_manifest(destination, document, context, name)
    done_marker = None
    if destination.done_marker is not None and not skipped:
        done_marker = write_done_marker(destination, context, name)
    rows = sum(item.rows for item in written)
    if not skipped:  # after everything the run wrote is published, and only then
        save_state(name, context.run_id, finished, rows, _columns(plan), new_mark(plan.cursor))
    result = ExportResult(
        export_request_id=context.run_id,
        name=name,
        format=format,
        rows=rows,
        bytes=sum(item.bytes for item in written),
        files=files,
        started=started,
        finished=finished,
        window=resolved.bounds() if resolved is not None else None,
        manifest=manifest,
        done_marker=done_marker,
        skipped=skipped,
        encrypted_to=encrypted_to,
        cursor=cursor_bounds(plan.cursor),
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


def _write_partitions(
    plan: SourcePlan,
    source: SourceConfig,
    fmt: ExportFormat,
    destination: DestinationConfig,
    options: FormatOptions,
    context: TargetContext,
    runner: RunnerConfig | None,
    on_empty: OnEmpty,
) -> tuple[list[WrittenFile], str | None, SourcePlan]:
    """Plan the ranges (logged), write each as a task run of its own, and number the parts in
    range order. If any partition fails after its retries, every partition's temporary files
    are removed and the run fails naming it: no part of an incomplete set is published.
    Also returns the plan read (a stored cursor's range, taken again in the snapshot)."""
    logger = get_run_logger()
    with planned_partitions(plan, source) as planned:
        plan = planned.plan
        if plan.cursor is not None and planned.snapshot is not None:
            logger.info("in the snapshot: %s", describe_cursor(plan.cursor))
        count = len(planned.partitions)
        for partition in planned.partitions:
            logger.info("partition %s of %s: %s", partition.number, count, partition.describe())
        if planned.snapshot is not None:
            logger.info("every partition reads snapshot %s", planned.snapshot)
        with partition_runner(runner, count) as task_runner:
            futures = [
                task_runner.submit(
                    write_partition,
                    {
                        "plan": plan.for_partition(partition, planned.snapshot),
                        "fmt": fmt,
                        "destination": destination,
                        "options": options,
                        "context": context,
                    },
                )
                for partition in planned.partitions
            ]
            outcomes = [_outcome(future) for future in futures]
    written = [item for outcome in outcomes if isinstance(outcome, list) for item in outcome]
    failures = [
        (partition, outcome)
        for partition, outcome in zip(planned.partitions, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    ]
    if failures:
        store, fs = destination.store, destination.filesystem()
        for item in written:
            store.remove_temporary(fs, item.temp_path)
        partition, error = failures[0]
        where = f"partition {partition.number} of {count} ({partition.describe()})"
        if isinstance(error, ExportError):
            raise type(error)(f"{where}: {error}") from error
        raise error
    if not written and on_empty != "write":  # every range was empty: the flow decides
        return [], planned.snapshot, plan
    if not written:  # every range was empty: one empty document, as an unsplit read writes
        return write_batches(plan, fmt, destination, options, context), planned.snapshot, plan
    store, fs = destination.store, destination.filesystem()
    numbered = number_parts(
        store, fs, written, destination.url, context, compression=destination.file_codecs
    )
    return numbered, planned.snapshot, plan


def _outcome(future: Any) -> list[WrittenFile] | BaseException:
    """The partition's files, or the error it failed with after its retries."""
    try:
        files: list[WrittenFile] = future.result()
    except BaseException as exc:  # noqa: BLE001 - every partition is waited for first
        return exc
    return files


def _columns(plan: SourcePlan) -> list[tuple[str, str]]:
    """Each column and its type as the source names it (its kind where the source says none)."""
    types = plan.source_types or ("",) * len(plan.column_names)
    return [
        (name, source_type or (kind_of(field) if field is not None else ""))
        for name, source_type, field in zip(plan.column_names, types, plan.declared, strict=True)
    ]
