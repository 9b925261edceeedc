"""A local folder: paths and file:// URLs. Publishing renames the temporary file, which is
atomic on one filesystem."""

from __future__ import annotations

from fsspec import AbstractFileSystem

from flows.core.errors import ConfigurationError
from flows.destinations.store import Store


class LocalFolder(Store):
    name = "Local folder"
    schemes = ("file", "local")
    protocol = "file"
    buffers_uploads = False  # bytes go straight to the temporary file

    def display_url(self, url: str) -> str:
        return url  # a path is shown as written

    def check_remote_workers(self, url: str) -> None:
        path = url.partition("://")[2] if "://" in url else url
        if not path.startswith("/"):
            raise ConfigurationError(
                f"runner.dask: destination.url `{url}` is a relative local path, which each "
                "Dask worker would resolve in its own folder",
                field="runner.dask",
                hint="use an absolute path on a filesystem every worker mounts, or an object store",
            )

    def shown(self, fs: AbstractFileSystem, path: str, scheme: str) -> str:  # noqa: ARG002 - the interface of every store
        return path


LOCAL_FOLDER = LocalFolder()
