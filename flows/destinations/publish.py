"""Publishing an export's finished files at their final paths, all or nothing.

A run that fails leaves nothing at a final path: temporary files are removed, and parts that
were already published by this run are removed again if a later part fails to publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from fsspec import AbstractFileSystem

from flows.destinations.store import Store, WrittenFile, remove_quietly
from flows.destinations.targets import TargetContext
from flows.errors import DeliveryError


def publish(
    store: Store, fs: AbstractFileSystem, files: Iterable[WrittenFile], scheme: str
) -> list[str]:
    """Move every temporary file to its final path; all or nothing. Delivered files are
    reported with the destination URL's `scheme` (az:// or abfs://, gs:// or gcs://)."""
    pending = list(files)
    published: list[str] = []
    try:
        for item in pending:
            store.place(fs, item.temp_path, item.final_path)
            published.append(item.final_path)
            store.clear_after_place(fs, item.temp_path)
    except Exception as exc:
        for path in published:
            remove_quietly(fs, path)
        for item in pending:
            remove_quietly(fs, item.temp_path)
        if isinstance(exc, DeliveryError):
            raise
        raise store.failure(exc, store.shown(fs, item.final_path, scheme)) from exc
    return [store.shown(fs, path, scheme) for path in published]


def number_parts(
    store: Store,
    fs: AbstractFileSystem,
    files: Sequence[WrittenFile],
    template: str,
    context: TargetContext,
    *,
    gzip: bool,
) -> list[WrittenFile]:
    """The final names of a split read's parts, given in range order: part 1 holds the
    lowest range (their temporary files keep the names they were written under)."""
    return [
        replace(
            item,
            final_path=store.part_paths(fs, template, context, number, split=True, gzip=gzip)[0],
        )
        for number, item in enumerate(files, start=1)
    ]
