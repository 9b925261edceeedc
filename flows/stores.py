"""Which fsspec filesystem serves a destination URL, and with which credentials.

With `destination.block` the saved block of the URL's store gives the credentials; without
it each store's own environment applies (S3: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_PROFILE,
instance roles ...; GCS: GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST; Azure:
AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_NAME with a key, SAS token or identity;
SFTP: the user in the URL, the SSH agent, ~/.ssh keys and known_hosts).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import unquote, urlsplit

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
    "az": ("az", "Azure Blob Storage"),
    "abfs": ("az", "Azure Blob Storage"),
    "sftp": ("sftp", "SFTP"),
}
# Stores without folders: nothing to create before writing (makedirs would create a bucket),
# and publishing is a server-side copy. The others publish by renaming.
OBJECT_STORE_SCHEMES = frozenset({"s3", "gs", "gcs", "az", "abfs"})
# What each store calls the top level of a path, in messages (by fsspec protocol).
CONTAINER_WORDS = {"s3": "bucket", "gcs": "bucket", "az": "container"}
# Upload parts of 8 MiB (s3fs's and adlfs's own defaults are 50 MiB, held in memory before
# they are sent).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {  # by fsspec protocol
    "s3": {"default_block_size": 8 * 1024 * 1024},
    "gcs": {"block_size": 8 * 1024 * 1024},
    "az": {"blocksize": 8 * 1024 * 1024},
}


class _StoreBlock(Protocol):
    def filesystem_options(self) -> dict[str, Any]: ...


HTTP_STORE = "HTTP"
BlockT = TypeVar("BlockT", bound=Block)


def store_name(scheme: str) -> str:
    if scheme in HTTP_SCHEMES:
        return HTTP_STORE
    return "Local folder" if scheme in LOCAL_SCHEMES else STORES.get(scheme, ("", scheme))[1]


def container_word(scheme: str) -> str:
    """`bucket` or `container`, as the store's own documentation says."""
    return CONTAINER_WORDS.get(STORES.get(scheme, (scheme, ""))[0], "bucket")


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
    if protocol == "s3":
        options["session"] = _aws_session()
    block = _load_block(protocol, destination.block) if destination.block else None
    if block is not None:
        options.update(_block_filesystem_options(block, destination.block or ""))
    if protocol == "sftp":
        return _sftp_filesystem(destination.url, options)
    fs = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    if protocol == "az" and block is not None:
        from blocks.destinations import AzureBlobCredentials
        from flows.azure_blob import set_retry_policy

        assert isinstance(block, AzureBlobCredentials)
        set_retry_policy(fs, **block.retry_options())
    return fs


def _sftp_filesystem(url: str, options: dict[str, Any]) -> AbstractFileSystem:
    """Connect to the URL's host; the URL's user and port come before the block's."""
    from flows.sftp import SftpFileSystem

    parts = urlsplit(url)
    if parts.username:
        user = unquote(parts.username)
        if options.get("username") not in (None, user):
            raise ConfigurationError(
                f"destination: the URL logs in as `{user}` and the block's username is "
                f"`{options['username']}`; keep one of them"
            )
        options["username"] = user
    if parts.port:
        options["port"] = parts.port
    assert parts.hostname, "validate_template checks that sftp:// URLs name a host"
    return cast(
        AbstractFileSystem, SftpFileSystem(parts.hostname, skip_instance_cache=True, **options)
    )


def _aws_session() -> Any:
    """A new botocore session (credentials and settings resolved afresh from the block or the
    environment) that shares one model loader: each session would otherwise parse the S3
    service model again, which is about 20 MB held during a run's upload."""
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component("data_loader", _aws_model_loader())
    return session


@functools.cache
def _aws_model_loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()


def _load_block(protocol: str, name: str) -> _StoreBlock:
    from blocks.destinations import (
        AzureBlobCredentials,
        GcsCredentials,
        S3Credentials,
        SftpCredentials,
    )

    block_types: dict[str, type[Block]] = {
        "s3": S3Credentials,
        "gcs": GcsCredentials,
        "az": AzureBlobCredentials,
        "sftp": SftpCredentials,
    }
    return cast(_StoreBlock, load_block(block_types[protocol], name))


def load_block(block_type: type[BlockT], name: str) -> BlockT:
    """The saved block `name` of `block_type`, or a message saying how to save one."""
    try:
        return block_type.load(name)  # type: ignore[return-value]
    except ValueError as exc:
        raise ConfigurationError(
            f"destination.block: no saved {block_type.__name__} block named `{name}`; "
            f"save one first, e.g. {block_type.__name__}(...).save({name!r})"
        ) from exc


def _block_filesystem_options(block: _StoreBlock, name: str) -> dict[str, Any]:
    try:
        return block.filesystem_options()
    except ValueError as exc:  # e.g. a private key that cannot be read
        raise ConfigurationError(f"destination.block `{name}`: {exc}") from exc


# Words of a failure that may pass on its own: timeouts, refused or dropped connections,
# throttling and 5xx answers (after the client library's own quick retries).
_TRANSIENT_WORDS = (
    "timed out", "timeout", "connection refused", "could not connect", "connection was closed",
    "connection reset", "connection aborted", "server disconnected", "connection dropped",
    "socket is closed", "internalerror", "serviceunavailable", "slowdown", "throttl",
    "requesttimeout", "cannot connect to host", "operationtimedout", "serverbusy", " 500",
    " 502", " 503", " 504",
)  # fmt: skip
# azure-core's errors for a request that got no (complete) answer: connection-level failures.
_TRANSIENT_TYPES = frozenset({"ServiceRequestError", "ServiceResponseError"})


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
        why = _RETRIED.get(store, _RETRIED[""])
        return TransientDeliveryError(f"cannot deliver `{target}` to {store}: {text}; {why}")
    return DeliveryError(
        f"cannot deliver `{target}` to {store}: {text}; {_CHECK.get(store, _CHECK[''])}"
    )


# What happened after a transient failure, by store.
_RETRIED = {
    "": "the store did not answer or answered with a server error (retried; check the store "
    "is reachable)",
    "SFTP": "the connection to the server was lost or timed out (retried; check the server "
    "is running and reachable)",
}
# What to check after a permanent failure, by store.
_CHECK = {
    "": "check the bucket or folder exists and that the credentials may write there",
    "SFTP": "check the folder exists or may be created, and that the user may write there",
    "Azure Blob Storage": "check the container exists and that the key, SAS token or identity "
    "may write there",
}


def _is_transient(exc: BaseException) -> bool:
    """Looks through the chain: s3fs and adlfs turn the SDK's errors into plain OSErrors or
    RuntimeErrors and keep the original (with its HTTP status) as the cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | ConnectionError | EOFError):
            return True
        if type(current).__name__ in _TRANSIENT_TYPES:
            return True
        if _is_transient_status(_http_status(current)):
            return True
        lowered = f" {first_line(current).lower()}"
        if any(word in lowered for word in _TRANSIENT_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status a store's SDK error carries: botocore's `response` dict, or azure-core's
    `status_code`."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code if isinstance(code, int) else None
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _is_transient_status(code: int | None) -> bool:
    return code is not None and (code >= 500 or code in (408, 429))
