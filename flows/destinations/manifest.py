"""The manifest of an export's files (`destination.manifest`): one JSON document written next to
them after every one is published, so its presence means the set is complete. It names each
file with its rows, bytes and sha256 (of the bytes as stored), the columns with their source
types, and the snapshot or window the rows come from; like Redshift's UNLOAD manifest or
Spark's `_SUCCESS`, but saying what is there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fsspec import AbstractFileSystem

from flows.core.targets import TargetContext, manifest_name
from flows.destinations.store import Store, WrittenFile, temporary_path

MEDIA_TYPE = "application/json"


def manifest_path(
    store: Store,
    fs: AbstractFileSystem,
    template: str,
    context: TargetContext,
    *,
    compression: str,
) -> str:
    """Next to the files: the file name an unsplit export would have, its extension (and
    the codec's) replaced by `.manifest.json`, e.g. out/orders-20260301.manifest.json."""
    final, _ = store.part_paths(fs, template, context, 1, split=False, compression=compression)
    return manifest_name(final, context.ext, compression)


def manifest_document(
    *,
    export_request_id: str,
    export: str,
    fmt: str,
    compression: str,
    columns: Sequence[tuple[str, str]],
    files: Sequence[WrittenFile],
    urls: Sequence[str],
    snapshot: str | None,
    window: dict[str, str] | None,
    started: datetime,
    finished: datetime,
    encrypted_to: Sequence[str] = (),
    hashed: Sequence[str] = (),
    masked: Sequence[str] = (),
    cursor: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """The manifest's content; `urls` are the published files' URLs, in part order. With a
    stored cursor, `cursor` is the range delivered ({column, from, to}); without, no key."""
    document = {
        "export_request_id": export_request_id,
        "export": export,
        "format": fmt,
        "compression": compression,
        "encrypted_to": list(encrypted_to),
        "hashed": list(hashed),  # the columns written as HMAC-SHA256 (their names only)
        "masked": list(masked),  # the columns masked (last4, or NULL)
        "columns": [{"name": name, "type": source_type} for name, source_type in columns],
        "rows": sum(item.rows for item in files),
        "bytes": sum(item.bytes for item in files),
        "files": [
            {
                "url": url,
                "rows": item.rows,
                "bytes": item.bytes,
                "sha256": item.sha256,
                "writer": item.writer,
            }
            for url, item in zip(urls, files, strict=True)
        ],
        "snapshot": snapshot,
        "window": window,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
    }
    if cursor is not None:
        document["cursor"] = cursor
    return document


def write_manifest(
    store: Store,
    fs: AbstractFileSystem,
    path: str,
    document: dict[str, Any],
    run_id: str,
    scheme: str,
) -> str:
    """Write the manifest under a temporary name, then publish it; its URL."""
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    return publish_bytes(store, fs, path, data, run_id, scheme)


def publish_bytes(
    store: Store, fs: AbstractFileSystem, path: str, data: bytes, run_id: str, scheme: str
) -> str:
    """Write a small file of the run's (the manifest, the completion marker) under a
    temporary name, then publish it, as every file is; its URL."""
    temp = temporary_path(path, run_id)
    try:
        with fs.open(temp, "wb") as file:
            file.write(data)
        store.place(fs, temp, path)
        store.clear_after_place(fs, temp)
    except Exception as exc:
        store.remove_temporary(fs, temp)
        raise store.failure(exc, store.shown(fs, path, scheme)) from exc
    return store.shown(fs, path, scheme)
