"""Delivering the written files, the one place that knows there are two ways:

- a file store (a local folder, S3, GCS, Azure Blob, SFTP) publishes the temporary files at
  their final names, all or nothing (`deliver_files`, flows/destinations/publish.py);
- an HTTP receiver gets one POST per spooled file, with its own retries (`post_files`,
  flows/destinations/http_post.py), and the spool files are removed after the last attempt.

The flow calls `deliver`; the gateway asks `stored_filesystem` where a delivered file can be
read back.
"""

from __future__ import annotations

from fsspec import AbstractFileSystem
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.core.config import Destination
from flows.core.formats import ExportFormat
from flows.core.targets import TargetContext
from flows.destinations.http_post import HttpPost, remove_spools
from flows.destinations.http_post import post_files as post_spooled_files
from flows.destinations.marker import marker_path, withdraw_marker
from flows.destinations.publish import PartNames, publish
from flows.destinations.registry import store_for
from flows.destinations.store import WrittenFile
from flows.runs.retries import RETRY_TRANSIENT


def deliver(
    destination: Destination,
    files: list[WrittenFile],
    context: TargetContext,
    fmt: ExportFormat,
    label: str,
    content_type: str,
) -> list[str]:
    """The URLs of the delivered files, in order: published, or POSTed (`content_type` is the
    POST's Content-Type)."""
    if not isinstance(store_for(destination.url), HttpPost):
        return deliver_files(destination, files, label, context)
    try:
        return post_files(destination, files, context, fmt, label, content_type)
    finally:
        remove_spools(files)  # after the last attempt, whatever its outcome


def discard(destination: Destination, files: list[WrittenFile]) -> None:
    """Throw the written files away unpublished (a run that delivers nothing, `on_empty`):
    a store's temporary files, or an HTTP receiver's spool files."""
    store = store_for(destination.url)
    if isinstance(store, HttpPost):
        remove_spools(files)
        return
    fs = store.filesystem(destination.url, destination.block)
    for item in files:
        store.remove_temporary(fs, item.temp_path)


def stored_filesystem(destination: Destination) -> AbstractFileSystem | None:
    """Where the delivered files can be read back, with the destination's credentials; None
    for an HTTP receiver, which keeps no file of ours."""
    store = store_for(destination.url)
    if isinstance(store, HttpPost):
        return None
    return store.filesystem(destination.url, destination.block)


@task(name="deliver_files", task_run_name="deliver-{label}", cache_policy=NO_CACHE)
def deliver_files(
    destination: Destination,
    files: list[WrittenFile],
    label: str,  # noqa: ARG001 - names the task run
    context: TargetContext,
) -> list[str]:
    """Publish the temporary files at their final paths, all or nothing; a split set also
    removes the parts above its last that earlier runs of the template left. An earlier
    run's completion marker goes first: the folder is not a complete set until this run's is
    written."""
    parts = PartNames(destination.url, context, compression=destination.file_codecs)
    store = store_for(destination.url)
    fs = store.filesystem(destination.url, destination.block)
    if destination.done_marker is not None:
        path = marker_path(store, fs, destination, context)
        try:
            withdraw_marker(store, fs, path, destination.scheme)
        except Exception:
            for item in files:  # nothing is published: the temporary files go too
                store.remove_temporary(fs, item.temp_path)
            raise
    return publish(store, fs, files, destination.scheme, parts)


@task(
    name="post_files",
    task_run_name="post-{label}",
    **RETRY_TRANSIENT,
)
def post_files(
    destination: Destination,
    files: list[WrittenFile],
    context: TargetContext,
    fmt: ExportFormat,
    label: str,  # noqa: ARG001 - names the task run
    content_type: str | None = None,
) -> list[str]:
    """POST each spooled file to the http(s) URL, in order; transient failures are retried
    here (as task retries, visible in the UI), without reading the database again."""
    return post_spooled_files(destination, files, context, fmt, get_run_logger(), content_type)
