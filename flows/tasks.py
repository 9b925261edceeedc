"""The `export` flow's tasks: each talks to a database or a store, is retried on transient
failures, and hands on paths and counts, never rows (rows stream from the database through the
writer into the file inside `write_batches` or `write_partition`)."""

import functools
import gc
import inspect
import os
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from prefect import get_run_logger, task
from prefect.runtime import flow_run as runtime_flow_run

from blocks.export_state import (
    ExportState,
    StateColumn,
    StateCursor,
    export_lock,
    load_export_state,
    save_export_state,
)
from flows.core.config import ChecksConfig, FormatOptions, OnSchemaChange, SourceConfig
from flows.core.errors import OutOfMemoryError, SchemaChangedError, memory_error
from flows.core.formats import ExportFormat
from flows.core.schema import schema_changes
from flows.core.targets import TargetContext
from flows.destinations.manifest import manifest_path
from flows.destinations.manifest import write_manifest as store_manifest
from flows.destinations.marker import marker_path
from flows.destinations.marker import write_marker as store_marker
from flows.destinations.store import WrittenFile
from flows.formats.output_names import check_output_names
from flows.request import DestinationConfig
from flows.runs.naming import export_name_of
from flows.runs.progress import WriteProgress
from flows.runs.retries import RETRY_TRANSIENT
from flows.sink import PartSink
from flows.sources.cursor import CursorMark
from flows.sources.plan import SourcePlan, inspect_source
from flows.sources.read import read_for_format

_P = ParamSpec("_P")
_R = TypeVar("_R")


def holds_cursor_lock(run: Callable[_P, _R]) -> Callable[_P, _R]:
    """An export with `source.incremental` runs holding its lock (blocks/export_state.py)
    from reading the stored mark to saving the new one: two runs at once never move one
    mark; the second waits for the first, at most `source.incremental.lock_timeout`, then
    fails with CursorLockedError naming it. Exports without a cursor take no lock."""

    signature = inspect.signature(run)

    @functools.wraps(run)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        parameters = signature.bind(*args, **kwargs).arguments
        incremental = getattr(parameters.get("source"), "incremental", None)
        if incremental is None:
            return run(*args, **kwargs)
        run_id = runtime_flow_run.id
        with export_lock(
            export_name_of(parameters),
            incremental.lock_timeout,
            UUID(run_id) if run_id else None,
            runtime_flow_run.name,
        ):
            return run(*args, **kwargs)

    return locked


def needs_state(
    source: SourceConfig, on_schema_change: OnSchemaChange, checks: ChecksConfig | None
) -> bool:
    """Whether the run compares itself with its export's last successful one: the stored
    cursor's mark, `on_schema_change: fail`'s columns, `checks.max_change_pct`'s rows."""
    return (
        source.incremental is not None
        or on_schema_change == "fail"
        or (checks is not None and checks.max_change_pct is not None)
    )


def recorded_state(
    export: str,
    source: SourceConfig,
    on_schema_change: OnSchemaChange,
    checks: ChecksConfig | None,
) -> ExportState | None:
    """`export`'s saved state, read once a run (after `holds_cursor_lock` took the lock) and
    only when the run needs it; None before its first successful run or when not needed."""
    if not needs_state(source, on_schema_change, checks):
        return None
    return load_export_state(export)


def stored_mark(state: ExportState | None) -> CursorMark | None:
    """The stored cursor's mark in `state`, or None before the export's first successful run."""
    if state is None or state.cursor is None:
        return None
    return CursorMark(state.cursor.column, state.cursor.value, state.cursor.kind)


@task(
    name="inspect_source",
    task_run_name="inspect-{label}",
    **RETRY_TRANSIENT,
)
def inspect_source_task(
    source: SourceConfig,
    label: str,  # noqa: ARG001 - names the task run
    fmt: ExportFormat,
    mark: CursorMark | None = None,
) -> SourcePlan:
    """Connect, check the table or query and learn its columns, before anything is written:
    columns the format would write as one (`select 1 as a, 2 as a`) fail the run here.
    `mark`: the stored cursor's, for `source.incremental`."""
    plan = inspect_source(source, mark)
    check_output_names(plan.column_names, fmt)
    return plan


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
    return _write_files(plan, fmt, destination, options, context)


@task(
    name="write_partition",
    task_run_name="write-{plan.label}-{fmt}-part-{plan.partition.number}",
    **RETRY_TRANSIENT,
)
def write_partition(
    plan: SourcePlan,
    fmt: ExportFormat,
    destination: DestinationConfig,
    options: FormatOptions,
    context: TargetContext,
) -> list[WrittenFile]:
    """One range of a split read into its own temporary files, wherever the task runs (a
    thread of the flow's process, or a Dask worker): rows never pass through the flow."""
    assert plan.partition is not None
    get_run_logger().info(
        "partition %s: %s, written by %s",
        plan.partition.number,
        plan.partition.describe(),
        writer(),
    )
    return _write_files(plan, fmt, destination, options, context)


def _write_files(
    plan: SourcePlan,
    fmt: ExportFormat,
    destination: DestinationConfig,
    options: FormatOptions,
    context: TargetContext,
) -> list[WrittenFile]:
    logger = get_run_logger()
    buffers_uploads = destination.store.buffers_uploads
    if buffers_uploads:
        gc.collect()  # an earlier run's upload buffers, if this process ran one (see below)
    partition = plan.partition.number if plan.partition is not None else None
    of = f" (partition {partition})" if partition is not None else ""
    described = f"{context.export}{of}: rows written of {plan.row_count or '?'}"
    progress = WriteProgress(described, plan.row_count)
    sink: PartSink | None = None
    rows = 0
    out_of_memory: str | None = None
    batches = read_for_format(plan, fmt, options)
    try:
        for batch in batches:
            if sink is None:
                sink = PartSink.open(
                    destination,
                    fmt,
                    batch.schema,
                    options,
                    context,
                    partition,
                    keys_checked=True,  # by the flow's check_keys, before any row was read
                )
            sink.write(batch)
            rows += batch.num_rows
            logger.debug("wrote chunk of %s rows (%s so far)", batch.num_rows, rows)
            progress.rows_written(rows)
        assert sink is not None, "the reader yields at least one (possibly empty) batch"
        written = sink.finish()
    except BaseException as exc:
        if sink is not None:
            sink.abort()
        memory = memory_error(exc)
        if memory is None:
            raise
        out_of_memory = f"{type(memory).__name__}: {str(memory).strip() or 'no more memory'}"
    finally:
        batches.close()  # stops the COPY reader thread now, not whenever it is collected
        del sink
        if buffers_uploads:
            gc.collect()  # free the store client's upload buffers before the next run
    if out_of_memory is not None:
        # Raised here, outside the handler: the MemoryError's traceback would keep the chunk
        # that did not fit alive for as long as the run's failed state holds the error.
        raise OutOfMemoryError(
            f"source.chunk_rows: the export ran out of memory after {rows} rows, reading "
            f"{plan.chunk_rows} rows at a time ({out_of_memory.splitlines()[0]}); lower "
            "source.chunk_rows or give the process more memory"
        )
    progress.finished()
    return [replace(item, writer=writer()) for item in written]


def writer() -> str:
    """Who writes the files (logged, and named in the manifest): host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@task(name="write_manifest", task_run_name="manifest-{label}", **RETRY_TRANSIENT)
def write_manifest(
    destination: DestinationConfig,
    document: dict[str, Any],
    context: TargetContext,
    label: str,  # noqa: ARG001 - names the task run
) -> str:
    """Write the manifest next to the published files, last; its URL."""
    store, fs = destination.store, destination.filesystem()
    path = manifest_path(store, fs, destination.url, context, compression=destination.file_codecs)
    return store_manifest(store, fs, path, document, context.run_id, destination.scheme)


def check_schema(export: str, state: ExportState | None, columns: list[tuple[str, str]]) -> None:
    """`on_schema_change: fail`: the run's columns and types must be those the export's last
    successful run wrote (`state`, blocks/export_state.py). None recorded yet (a first run, or
    a state without columns): nothing to compare, and this run, once published, records its own.

    Raises:
        SchemaChangedError: listing what was added, removed, retyped or moved.
    """
    if state is None or not state.columns:
        get_run_logger().info("no columns recorded for %s yet: this run records its own", export)
        return
    changes = schema_changes([(column.name, column.type) for column in state.columns], columns)
    if not changes:
        return
    finished = state.finished.isoformat(timespec="seconds") if state.finished else "?"
    raise SchemaChangedError(
        f"on_schema_change: the columns differ from those of the last successful run "
        f"({state.run_id or '?'}, finished {finished}): {changes.describe()}; nothing was written "
        "or published; if the change is expected, run once with on_schema_change `allow` to "
        "deliver and record the new columns",
        changes=changes.parts(),
    )


@task(name="save_export_state", task_run_name="state-{export}", **RETRY_TRANSIENT)
def save_state(
    export: str,
    run_id: str,
    finished: datetime,
    rows: int,
    columns: list[tuple[str, str]],
    cursor: CursorMark | None = None,
) -> None:
    """Leave for the export's next run what this one did (blocks/export_state.py), once
    everything it wrote is published: with `cursor`, the stored cursor's new mark."""
    save_export_state(
        ExportState(
            export=export,
            run_id=run_id,
            finished=finished,
            rows=rows,
            columns=[StateColumn(name=name, type=kind) for name, kind in columns],
            cursor=None
            if cursor is None
            else StateCursor(column=cursor.column, value=cursor.value, kind=cursor.kind),
        )
    )


@task(name="write_done_marker", task_run_name="done-marker-{label}", **RETRY_TRANSIENT)
def write_done_marker(
    destination: DestinationConfig,
    context: TargetContext,
    label: str,  # noqa: ARG001 - names the task run
) -> str:
    """Write the completion marker in the folder of the files, after every file and the
    manifest are published; its URL."""
    store, fs = destination.store, destination.filesystem()
    path = marker_path(store, fs, destination, context)
    return store_marker(store, fs, path, context.run_id, destination.scheme)
