"""Opening a store's filesystem by URL, for a stage that reads a file from a store without
delivering to it (an XSLT stylesheet on S3 or SFTP, flows/formats/stylesheets.py).

The stores are the delivery package's (flows/destinations/registry.py); the formats must not
import it, so the registry registers its opener here when it is imported, and the modules that
run an export (flows/request.py, flows/sink.py) import the registry before any file is read.
"""

from __future__ import annotations

from collections.abc import Callable

from fsspec import AbstractFileSystem

# (url, name of a saved credentials block or None) -> a fresh filesystem with its credentials
FilesystemOpener = Callable[[str, str | None], AbstractFileSystem]

_openers: list[FilesystemOpener] = []


def register_opener(opener: FilesystemOpener) -> None:
    """Make `opener` the one open_filesystem calls (the store registry's, once)."""
    _openers[:] = [opener]


def open_filesystem(url: str, block: str | None) -> AbstractFileSystem:
    """The filesystem of the store `url` names, with the block's credentials or else the
    environment's."""
    if not _openers:
        raise RuntimeError(
            "no store registry is loaded: import flows.destinations.registry before reading "
            "a file from a store"
        )
    return _openers[0](url, block)
