"""Where a stylesheet's bytes come from: a file of the project, or a URL (`format_options.xslt`).

A URL names a store the exports already write to (s3://, gs://, az://, sftp://), read through
fsspec with the environment's credentials or those of a saved block (`xslt_block`), or a web
server (http://, https://, a plain GET). Every file a stylesheet includes or reads must sit in
its own folder (flows/formats/xslt.py asks `StylesheetFolder.read`), so a stylesheet reads
nothing else, local or remote.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fsspec import AbstractFileSystem

from flows.core.errors import ConfigurationError, first_line
from flows.core.filesystems import open_filesystem
from flows.core.urls import url_scheme, without_secrets

MAX_STYLESHEET_BYTES = 16 * 1024 * 1024  # a stylesheet, not a data file
_WEB_SCHEMES = ("http", "https")
_TIMEOUT_S = 30.0


def is_url(location: str) -> bool:
    """Whether `location` is a URL (a scheme other than file://) rather than a path."""
    scheme = url_scheme(location)
    return scheme not in ("", "file") and len(scheme) > 1  # C:\\… is a path


@dataclass(frozen=True)
class StylesheetFolder:
    """The folder a stylesheet is read from, and the only place it may read from."""

    folder: str  # an absolute path, or a URL ending in /
    block: str | None = None

    @classmethod
    def of(cls, location: str, block: str | None = None) -> StylesheetFolder:
        if is_url(location):
            return cls(location.rsplit("/", 1)[0] + "/", block)
        return cls(str(Path(location).resolve().parent), None)

    @property
    def shown(self) -> str:
        return without_secrets(self.folder)

    @cached_property
    def _filesystem(self) -> AbstractFileSystem:
        """The store's filesystem, with the block's credentials: built (and the block loaded)
        once for the stylesheet and all it includes."""
        return open_filesystem(self.folder, self.block)

    def holds(self, location: str) -> bool:
        """Whether `location` (absolute, as libxml2 joined it) is inside the folder."""
        if not is_url(self.folder):
            path = Path(location.removeprefix("file://")).resolve()
            return path.is_relative_to(self.folder)
        if not location.startswith(self.folder):
            return False
        parts = urlsplit(location)
        return posixpath.normpath(parts.path).startswith(urlsplit(self.folder).path)

    def read(self, location: str) -> bytes | None:
        """The bytes of a file in the folder; None when it is not there."""
        if not is_url(self.folder):
            path = Path(location.removeprefix("file://"))
            return path.read_bytes() if path.is_file() else None
        if url_scheme(location) in _WEB_SCHEMES:
            return _download(location)
        fs = self._filesystem
        path = fs._strip_protocol(location)
        try:
            size = fs.size(path)
        except FileNotFoundError:
            return None
        if size is not None and size > MAX_STYLESHEET_BYTES:
            raise ValueError(f"{size} bytes is too large for a stylesheet")
        data: bytes = fs.cat_file(path)
        return data


def read_stylesheet(location: str, folder: StylesheetFolder) -> bytes:
    """The stylesheet's bytes (in `folder`), before any run; a clear message when they cannot
    be read."""
    shown = without_secrets(location)
    try:
        data = folder.read(location)
    except ConfigurationError as exc:  # a block that does not exist or does not fit the store
        message = str(exc).removeprefix("destination.block: ")
        raise ConfigurationError(
            f"format_options.xslt_block: {message}", field="format_options.xslt_block"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure to read is the user's to fix
        raise ConfigurationError(
            f"format_options.xslt: cannot read `{shown}` ({first_line(exc)})",
            field="format_options.xslt",
            hint="check the URL "
            "and the credentials (the environment's, or a saved block named in xslt_block)",
        ) from None
    if data is None:
        raise ConfigurationError(
            f"format_options.xslt: no stylesheet at `{shown}`", field="format_options.xslt"
        )
    return data


def _download(url: str) -> bytes | None:
    with httpx.stream("GET", url, timeout=_TIMEOUT_S, follow_redirects=False) as response:
        if response.status_code == 404:
            return None
        response.raise_for_status()
        chunks, held = [], 0
        for chunk in response.iter_bytes():
            held += len(chunk)
            if held > MAX_STYLESHEET_BYTES:
                raise ValueError(f"more than {MAX_STYLESHEET_BYTES} bytes: not a stylesheet")
            chunks.append(chunk)
        return b"".join(chunks)
