"""The `export` flow: one streaming pipe from a SQL source to delivered files (Contract 1).

    inspect_source → write_batches (extract → format → temporary files) → deliver_files → record

A split read (`source.partitions`) plans its ranges once, inside the snapshot they all read,
and runs one `write_partition` task per range on Prefect's thread pool or a Dask cluster
(`runner`); the parts are numbered in range order and published together, all or nothing.
An unsplit PostgreSQL read with a stored cursor or checks the database counts reads in a
snapshot the flow holds too, with the cursor's `high` and the counts taken in it.
For an http(s) destination `post_files` takes the place of `deliver_files`: it POSTs each
spooled file to the URL, and is retried on transient failures (flows/destinations/delivery.py
knows the two ways).
With `destination.manifest`, `write_manifest` describes the published set, and with
`destination.done_marker`, `write_done_marker` marks it complete, last.
A run that reads no rows delivers what `on_empty` says: an empty file (`write`), nothing
(`skip`), or a failure (`fail`), decided before anything is published.
With `on_schema_change: fail`, a run whose columns or types differ from those its export's last
successful run wrote fails once the source is inspected, before any row is read.

The stages are subpackages: flows/sources (reading), flows/formats (writing), flows/destinations
(stores and publishing), flows/runs (tags, names, the result) and flows/alerts (state hooks).

Rows are never returned between tasks: `write_batches` streams them from the database into
the writers, so memory follows `chunk_rows`, not the table size.
"""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as runtime_flow_run

from blocks.export_state import ExportState
from flows.alerts.hooks import alert_completed, alert_failed, alert_initiated
from flows.checks import (
    DatabaseCounts,
    check_checked_columns,
    failed_check,
    null_counts,
    passed_checks,
)
from flows.core.columns import kind_of
from flows.core.config import (
    ChecksConfig,
    FormatOptions,
    OnEmpty,
    OnSchemaChange,
    RunnerConfig,
    SourceConfig,
    WindowConfig,
)
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
from flows.sources.check_counts import duplicate_keys, null_values
from flows.sources.cursor import cursor_bounds, describe_cursor, new_mark
from flows.sources.masking import check_hash_keys, protected
from flows.sources.plan import SourcePlan, planned_partitions, read_snapshot
from flows.sources.read import rows_arrive_finished
from flows.sources.window import (
    bind_values,
    describe_window,
    in_zone,
    query_uses,
    resolve_window,
)
from flows.tasks import (
    check_schema,
    holds_cursor_lock,
    inspect_source_task,
    recorded_state,
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
    on_schema_change: OnSchemaChange = "allow",
    checks: ChecksConfig | None = None,
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
            "on_schema_change": on_schema_change,
            "checks": checks,
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
    check_hash_keys(source)  # every hash key block saved, before any row is read
    hashed, masked = protected(source.columns)
    state = recorded_state(name, source, on_schema_change, checks)  # once, under the lock
    plan = inspect_source_task(source, name, format, stored_mark(state))
    if plan.cursor is not None:
        logger.info("%s", describe_cursor(plan.cursor))
    check_checked_columns(checks, plan.column_names)  # before any row is read
    logger.info(
        "exporting %s from %s (%s rows, %s reader) as %s to %s",
        plan.label,
        plan.display_url,
        plan.row_count if plan.row_count is not None else "?",
        plan.reader,
        format,
        display_url(destination.url),
    )
    if on_schema_change == "fail":  # as the last successful run's, before any row is read
        check_schema(name, state, _columns(plan))
    snapshot: str | None = None
    counts: DatabaseCounts | None = None
    if source.partitions > 1:
        written, snapshot, plan, counts = _write_partitions(
            plan, source, format, destination, options, context, runner, on_empty, checks
        )
    else:
        written, snapshot, plan, counts = _write_unsplit(
            plan, source, format, destination, options, context, checks
        )
    if checks is not None:
        _run_checks(checks, plan, name, state, destination, written, counts)
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
            hashed=hashed,
            masked=masked,
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
        hashed=hashed,
        masked=masked,
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
    checks: ChecksConfig | None,
) -> tuple[list[WrittenFile], str | None, SourcePlan, DatabaseCounts | None]:
    """Plan the ranges (logged), write each as a task run of its own, and number the parts in
    range order. If any partition fails after its retries, every partition's temporary files
    are removed and the run fails naming it: no part of an incomplete set is published.
    Also returns the plan read (a stored cursor's range, taken again in the snapshot) and,
    with `checks` and a shared snapshot (PostgreSQL), what they ask of the database, counted
    in that snapshot while it is held (else None, counted later)."""
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
        counts: DatabaseCounts | BaseException | None = None
        if checks is not None and planned.snapshot is not None and not _any_failed(outcomes):
            done = [item for outcome in outcomes if isinstance(outcome, list) for item in outcome]
            counts = _counted(plan, checks, done, planned.snapshot)
    written = [item for outcome in outcomes if isinstance(outcome, list) for item in outcome]
    failures = [
        (partition, outcome)
        for partition, outcome in zip(planned.partitions, outcomes, strict=True)
        if isinstance(outcome, BaseException)
    ]
    if failures or isinstance(counts, BaseException):
        store, fs = destination.store, destination.filesystem()
        for item in written:
            store.remove_temporary(fs, item.temp_path)
        if isinstance(counts, BaseException):
            raise counts
        partition, error = failures[0]
        where = f"partition {partition.number} of {count} ({partition.describe()})"
        if isinstance(error, ExportError):
            raise type(error)(f"{where}: {error}") from error
        raise error
    assert not isinstance(counts, BaseException)
    if not written and on_empty != "write":  # every range was empty: the flow decides
        return [], planned.snapshot, plan, counts
    if not written:  # every range was empty: one empty document, as an unsplit read writes
        empty = write_batches(plan, fmt, destination, options, context)
        return empty, planned.snapshot, plan, counts
    store, fs = destination.store, destination.filesystem()
    numbered = number_parts(
        store, fs, written, destination.url, context, compression=destination.file_codecs
    )
    return numbered, planned.snapshot, plan, counts


def _write_unsplit(
    plan: SourcePlan,
    source: SourceConfig,
    fmt: ExportFormat,
    destination: DestinationConfig,
    options: FormatOptions,
    context: TargetContext,
    checks: ChecksConfig | None,
) -> tuple[list[WrittenFile], str | None, SourcePlan, DatabaseCounts | None]:
    """One reader. On PostgreSQL, with a stored cursor or checks the database counts, the read
    imports a snapshot held meanwhile (read_snapshot): a stored cursor's `high` is taken in it
    and the checks are counted in it before it is released, so the file, its range (and the
    mark) and the checks' numbers are one state of the database. Otherwise, as ever, the read's
    own statement. Returns the files, the snapshot read (or None), the plan read and the
    counts (None: counted later, if asked)."""
    counted = checks is not None and (
        bool(checks.unique) or bool(checks.not_null) and rows_arrive_finished(plan, fmt, options)
    )
    if source.incremental is None and not counted:
        return write_batches(plan, fmt, destination, options, context), None, plan, None
    logger = get_run_logger()
    with read_snapshot(plan) as read:
        if read.snapshot is None:  # not PostgreSQL: no snapshot to share
            return write_batches(plan, fmt, destination, options, context), None, plan, None
        sharing = (("its cursor", read.cursor is not None), ("its checks", counted))
        shared = " and ".join(part for part, shares in sharing if shares)
        logger.info("the read and %s share snapshot %s", shared, read.snapshot)
        if read.cursor is not None:
            logger.info("in the snapshot: %s", describe_cursor(read.cursor))
        written = write_batches(read, fmt, destination, options, context)
        counts: DatabaseCounts | None = None
        if checks is not None:
            try:
                counts = database_counts(read, checks, written, read.snapshot)
            except BaseException:
                discard(destination, written)  # nothing published
                raise
    return written, read.snapshot, replace(read, snapshot=None), counts


def _any_failed(outcomes: list[list[WrittenFile] | BaseException]) -> bool:
    return any(isinstance(outcome, BaseException) for outcome in outcomes)


def _counted(
    plan: SourcePlan, checks: ChecksConfig, written: list[WrittenFile], snapshot: str
) -> DatabaseCounts | BaseException:
    """What the checks ask of the database, in the partitions' snapshot, or the error counting
    failed with (the flow removes the written parts before raising it)."""
    try:
        return database_counts(plan, checks, written, snapshot)
    except BaseException as exc:  # noqa: BLE001 - raised once the parts are removed
        return exc


def database_counts(
    plan: SourcePlan, checks: ChecksConfig, written: list[WrittenFile], snapshot: str | None
) -> DatabaseCounts:
    """The duplicate keys of `checks.unique`, and the NULLs of `checks.not_null` when a part
    could not count them as its rows streamed (finished rows from PostgreSQL's COPY)."""
    duplicates = duplicate_keys(plan, checks.unique, snapshot) if checks.unique else None
    uncounted = checks.not_null and null_counts(written) is None
    nulls = null_values(plan, checks.not_null, snapshot) if uncounted else None
    return DatabaseCounts(duplicates, nulls)


def _run_checks(
    checks: ChecksConfig,
    plan: SourcePlan,
    name: str,
    state: ExportState | None,
    destination: DestinationConfig,
    written: list[WrittenFile],
    counts: DatabaseCounts | None,
) -> None:
    """Run `checks` on what was written, before anything is published: a failed check (or a
    failure asking for the numbers) removes every temporary file and fails the run. `state`:
    the export's last successful run's, which `max_change_pct` compares with."""
    logger = get_run_logger()
    try:
        if counts is None:  # not counted in the partitions' snapshot: now
            counts = database_counts(plan, checks, written, None)
        nulls = counts.nulls if counts.nulls is not None else null_counts(written) or {}
        previous_rows: int | None = None
        if checks.max_change_pct is not None:
            previous_rows = state.rows if state is not None else None
            if previous_rows is None:
                logger.info("max_change_pct: no earlier successful run of %s, not checked", name)
            elif previous_rows == 0:
                logger.info("max_change_pct: the last successful run had 0 rows, not checked")
        rows = sum(item.rows for item in written)
        failed = failed_check(checks, rows, nulls, counts.duplicates, previous_rows)
        if failed is not None:
            raise failed
    except BaseException:
        discard(destination, written)  # nothing published: no file, manifest or marker
        raise
    logger.info("checks passed: %s", ", ".join(passed_checks(checks, previous_rows)) or "none")


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
