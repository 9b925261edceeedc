"""Which fsspec filesystem serves a destination URL, and with which credentials.

With `destination.block` the saved block of the URL's store gives the credentials; without
it each store's own environment applies (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL, AWS_PROFILE, instance roles ...).
"""

from __future__ import annotations

import os
from typing import Any, Protocol, TypeVar, cast

import fsspec
from fsspec import AbstractFileSystem
from prefect.blocks.core import Block

from flows.config import DestinationConfig
from flows.errors import ConfigurationError, DeliveryError, TransientDeliveryError, first_line
from flows.targets import HTTP_SCHEMES, LOCAL_SCHEMES, url_scheme

# URL scheme → (fsspec protocol, store name used in messages and as the default partner)
STORES: dict[str, tuple[str, str]] = {
    "s3": ("s3", "Amazon S3"),
    "gs": ("gcs", "Google Cloud Storage"),
    "gcs": ("gcs", "Google Cloud Storage"),
}
OBJECT_STORE_SCHEMES = frozenset(STORES)
# Upload parts of 8 MiB (s3fs's own default is 50 MiB, held in memory before it is sent).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {  # by fsspec protocol
    "s3": {"default_block_size": 8 * 1024 * 1024},
    "gcs": {"block_size": 8 * 1024 * 1024},
}


class _StoreBlock(Protocol):
    def filesystem_options(self) -> dict[str, Any]: ...


HTTP_STORE = "HTTP"
BlockT = TypeVar("BlockT", bound=Block)


def store_name(scheme: str) -> str:
    if scheme in HTTP_SCHEMES:
        return HTTP_STORE
    return "Local folder" if scheme in LOCAL_SCHEMES else STORES.get(scheme, ("", scheme))[1]


def filesystem_for(destination: DestinationConfig) -> AbstractFileSystem:
    """A fresh filesystem for the destination (not fsspec's cached instance: the
    credentials of another run, or an older environment, must not leak in)."""
    scheme = url_scheme(destination.url)
    if scheme in LOCAL_SCHEMES:
        return fsspec.filesystem("file")
    protocol, _ = STORES[scheme]
    if protocol == "gcs":
        # gcsfs's experimental hierarchical-namespace probe (gRPC) hangs for about a minute
        # per bucket against emulators; plain buckets need none of it. Read at import.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    options = dict(DEFAULT_OPTIONS.get(protocol, {}))
    if destination.block:
        options.update(_block_options(protocol, destination.block))
    return fsspec.filesystem(protocol, skip_instance_cache=True, **options)


def _block_options(protocol: str, name: str) -> dict[str, Any]:
    from blocks.destinations import GcsCredentials, S3Credentials

    block_types: dict[str, type[Block]] = {"s3": S3Credentials, "gcs": GcsCredentials}
    block = load_block(block_types[protocol], name)
    return cast(_StoreBlock, block).filesystem_options()


def load_block(block_type: type[BlockT], name: str) -> BlockT:
    """The saved block `name` of `block_type`, or a message saying how to save one."""
    try:
        return block_type.load(name)  # type: ignore[return-value]
    except ValueError as exc:
        raise ConfigurationError(
            f"destination.block: no saved {block_type.__name__} block named `{name}`; "
            f"save one first, e.g. {block_type.__name__}(...).save({name!r})"
        ) from exc


# Words of a failure that may pass on its own: timeouts, refused or dropped connections,
# throttling and 5xx answers (after the client library's own quick retries).
_TRANSIENT_WORDS = (
    "timed out", "timeout", "connection refused", "could not connect", "connection was closed",
    "connection reset", "connection aborted", "server disconnected", "internalerror",
    "serviceunavailable", "slowdown", "throttl", "requesttimeout", " 500", " 502", " 503",
    " 504",
)  # fmt: skip


def store_of(fs: AbstractFileSystem) -> str:
    """The store a filesystem writes to, by name."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    for protocol, name in STORES.values():
        if protocol in protocols:
            return name
    return "Local folder"


def delivery_failure(exc: BaseException, store: str, target: str) -> DeliveryError:
    """A typed error naming the store and the target: transient ones are retried by the
    task, permanent ones (no such bucket, access denied, bad credentials) fail at once."""
    text = first_line(exc)
    if _is_transient(exc):
        return TransientDeliveryError(
            f"cannot deliver `{target}` to {store}: {text}; the store did not answer or "
            "answered with a server error (retried; check the store is reachable)"
        )
    return DeliveryError(
        f"cannot deliver `{target}` to {store}: {text}; check the bucket or folder exists "
        "and that the credentials may write there"
    )


def _is_transient(exc: BaseException) -> bool:
    """Looks through the chain: s3fs turns botocore's errors into plain OSErrors and keeps
    the original (with its HTTP status) as the cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | ConnectionError):
            return True
        status = getattr(current, "response", None)
        if isinstance(status, dict):
            code = status.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(code, int) and (code >= 500 or code == 429):
                return True
        lowered = f" {first_line(current).lower()}"
        if any(word in lowered for word in _TRANSIENT_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False
