"""The completion marker (`destination.done_marker`): an empty file written in the folder of
the files after every file and the manifest are published, and only then, like Spark's
`_SUCCESS` or a `.done` file. A reader that waits for it never sees a partial set; a failed or
skipped run writes none.

It is empty, as Spark's and Hadoop's `_SUCCESS` are: readers test that it exists, and what
the set holds is the manifest's to say.
"""

from __future__ import annotations

import posixpath

from fsspec import AbstractFileSystem

from flows.core.config import Destination
from flows.core.targets import TargetContext, marker_name
from flows.destinations.manifest import publish_bytes
from flows.destinations.store import Store


def marker_path(
    store: Store, fs: AbstractFileSystem, destination: Destination, context: TargetContext
) -> str:
    """The folder of an unsplit export's file (where the manifest goes too), and
    `destination.done_marker` rendered with the run's values, e.g. out/2026/03/01/_SUCCESS:
    where the run withdraws an earlier run's marker and writes its own."""
    assert destination.done_marker is not None
    final, _ = store.part_paths(
        fs, destination.url, context, 1, split=False, compression=destination.file_codecs
    )
    folder = posixpath.dirname(final)
    name = marker_name(destination.done_marker, context)
    return f"{folder}/{name}" if folder else name


def write_marker(store: Store, fs: AbstractFileSystem, path: str, run_id: str, scheme: str) -> str:
    """Publish the empty marker (a temporary name, then its own); its URL."""
    return publish_bytes(store, fs, path, b"", run_id, scheme)


def withdraw_marker(store: Store, fs: AbstractFileSystem, path: str, scheme: str) -> None:
    """Remove an earlier run's marker before this run publishes over its files: while they
    are replaced, the folder is not a complete set. A store that cannot remove it fails the
    run before any file is published."""
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception as exc:
        raise store.failure(exc, store.shown(fs, path, scheme)) from exc
