"""A local folder: paths and file:// URLs. Publishing renames the temporary file, which is
atomic on one filesystem."""

from __future__ import annotations

from fsspec import AbstractFileSystem

from flows.destinations.store import Store


class LocalFolder(Store):
    name = "Local folder"
    schemes = ("file", "local")
    protocol = "file"
    buffers_uploads = False  # bytes go straight to the temporary file

    def display_url(self, url: str) -> str:
        return url  # a path is shown as written

    def shown(self, fs: AbstractFileSystem, path: str, scheme: str) -> str:  # noqa: ARG002 - the interface of every store
        return path


LOCAL_FOLDER = LocalFolder()
