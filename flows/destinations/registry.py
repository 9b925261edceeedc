"""The stores exports deliver to, registered once: what each URL scheme means.

Every stage asks here: the parameters' check of a destination URL, the sink that writes parts,
publishing, the alerts' default Partner and the gateway's downloads. Adding a store is one
module with a `Store` subclass (flows/destinations/store.py) and one entry in STORES.
"""

from __future__ import annotations

from fsspec import AbstractFileSystem

from flows.core.errors import ConfigurationError
from flows.core.filesystems import register_opener
from flows.core.urls import url_scheme, without_secrets
from flows.destinations.azure import AZURE_BLOB
from flows.destinations.gcs import GCS_STORE
from flows.destinations.http_post import HTTP_POST
from flows.destinations.local import LOCAL_FOLDER
from flows.destinations.s3 import S3_STORE
from flows.destinations.sftp import SFTP
from flows.destinations.store import Store

STORES: tuple[Store, ...] = (LOCAL_FOLDER, S3_STORE, GCS_STORE, AZURE_BLOB, SFTP, HTTP_POST)
_BY_SCHEME: dict[str, Store] = {scheme: store for store in STORES for scheme in store.schemes}
SUPPORTED_SCHEMES: tuple[str, ...] = tuple(_BY_SCHEME)


def store_for(url: str) -> Store:
    """The store a destination URL (or template) delivers to."""
    scheme = url_scheme(url)
    store = _BY_SCHEME.get(scheme)
    if store is None:
        raise ConfigurationError(
            f"destination.url: scheme `{scheme}://` is not supported",
            field="destination.url",
            hint=f"use a local path or one of {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}",
        )
    return store


def store_name(url: str) -> str:
    """The store's name (the alerts' default Partner); the scheme itself if none serves it."""
    store = _BY_SCHEME.get(url_scheme(url))
    return store.name if store is not None else url_scheme(url)


def check_destination_url(template: str, *, split: bool) -> None:
    """Fail before the run starts if the template cannot render a usable URL of a store we
    deliver to: the scheme, the store's own rules, the tokens, and a file name at the end
    (an HTTP endpoint excepted)."""
    store = store_for(template)
    store.check_url(template)
    store.check_template(template, split=split)


def display_url(url: str) -> str:
    """The form of a destination URL that may be logged: a path as written, a server's URL
    without user, password, query string or fragment."""
    store = _BY_SCHEME.get(url_scheme(url))
    return store.display_url(url) if store is not None else without_secrets(url)


def open_store_filesystem(url: str, block: str | None) -> AbstractFileSystem:
    """A fresh filesystem of the store `url` names (flows/core/filesystems.py)."""
    return store_for(url).filesystem(url, block)


register_opener(open_store_filesystem)
