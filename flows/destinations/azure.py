"""Azure Blob Storage, through adlfs: blocks of `part_size_mb` staged to the temporary blob and
committed at its end, published by Copy Blob and a delete. Without a block,
AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with a key, SAS token or identity.

What adlfs leaves to us: a server-side copy that is waited for, dropping the blocks of an upload
that failed, and the storage SDK's retry policy. adlfs's `copy` only starts the copy (Copy Blob
may finish later on the service), and deleting the temporary blob before it has finished would
abort it. Publishing must know it is done. And an encryption scope (the block's
`encryption_scope`): adlfs sends none, and Copy Blob takes none (its copy would be encrypted
with the container's default), so the scope goes on every request that writes data, and a
file is published by a synchronous copy (Copy Blob From URL), the one copy that takes a scope.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fsspec
from fsspec import AbstractFileSystem
from fsspec.asyn import sync
from prefect.blocks.core import Block

from blocks.azure import AzureBlobCredentials
from blocks.integrations import as_exports_block
from flows.core.errors import ConfigurationError, DeliveryError
from flows.destinations.store import MIB, Leftover, ObjectStore, quietly

COPY_POLL_S = 0.5
COPY_TIMEOUT_S = 15 * 60
# Copy Blob From URL copies at most 256 MiB; the one copy that encrypts with a scope.
SCOPED_COPY_MAX = 256 * MIB
# The largest max_file_mb a scoped block allows: a compressed or encrypted part may pass the
# limit by what its codec still held when it was cut (bzip2's block, about 0.5 MiB).
SCOPED_MAX_FILE_MB = 255
SCOPE_HEADER = "x-ms-encryption-scope"


class AzureBlob(ObjectStore):
    name = "Azure Blob Storage"
    schemes = ("az", "abfs")
    protocol = "az"
    container = "container"
    block_types = (AzureBlobCredentials,)
    # Blocks of 8 MiB (adlfs's own default is 50 MiB, held in memory before it is sent).
    default_options = {"blocksize": 8 * MIB}
    check_hint = (
        "check the container exists and that the key, SAS token or identity may write there"
    )

    def connect(self, url: str, options: dict[str, Any], block: Block | None) -> AbstractFileSystem:  # noqa: ARG002 - the interface of every store
        fs = fsspec.filesystem("az", skip_instance_cache=True, **options)
        if isinstance(block, AzureBlobCredentials):
            set_retry_policy(fs, **block.retry_options())
            if block.encryption_scope:
                set_encryption_scope(fs, block.encryption_scope)
        return fs

    def check_block(self, url: str, block_name: str | None, *, max_file_mb: float | None) -> None:
        """A block with an encryption scope publishes each file by a copy of at most 256 MiB:
        parts cut larger than that could never be published. (An unsplit file's size is not
        known before the run; one past the copy's limit fails at publishing, naming the
        field to set, and nothing is published.)"""
        if block_name is None or max_file_mb is None or max_file_mb <= SCOPED_MAX_FILE_MB:
            return
        block = as_exports_block(self.load_block(block_name), url)
        if isinstance(block, AzureBlobCredentials) and block.encryption_scope:
            raise ConfigurationError(
                f"destination.max_file_mb: {max_file_mb:g} is too large for the block "
                f"`{block_name}`, which encrypts with the scope `{block.encryption_scope}`: "
                f"Azure encrypts the copy that publishes a file with a scope only up to "
                f"{SCOPED_COPY_MAX // MIB} MiB",
                field="destination.max_file_mb",
                hint=f"use at most {SCOPED_MAX_FILE_MB}",
            )

    def copy(self, fs: AbstractFileSystem, source: str, target: str) -> None:
        copy_blob(fs, source, target)

    def remove_temporary(self, fs: AbstractFileSystem, path: str) -> None:
        quietly(discard_staged_blocks, fs, path)  # also drops blocks never committed

    def list_leftovers(self, fs: AbstractFileSystem, prefix: str) -> list[Leftover]:
        """The temporary blobs under `prefix`, uncommitted ones too: the blocks an upload
        staged stay (billed, for a week) when the write and its clean-up both failed."""
        return [Leftover(path) for path in sync(fs.loop, _blobs_under, fs, prefix)]

    def drop_leftover(self, fs: AbstractFileSystem, leftover: Leftover) -> None:
        discard_staged_blocks(fs, leftover.path)

    def sdk_transient(self, exc: BaseException) -> bool:
        """azure-core's errors for a request that got no (complete) answer."""
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        return isinstance(exc, ServiceRequestError | ServiceResponseError)


class CopyFailedError(OSError):
    """The service ended a copy in another state than `success`."""


def copy_blob(fs: AbstractFileSystem, source: str, target: str) -> None:
    """Copy `source` to `target` within the account and return when the copy has succeeded."""
    sync(fs.loop, _copy_and_wait, fs, source, target)


async def _copy_and_wait(fs: Any, source: str, target: str) -> None:
    source_container, source_blob, _ = fs.split_path(source)
    target_container, target_blob, _ = fs.split_path(target)
    service = fs.service_client
    async with (
        service.get_blob_client(source_container, source_blob) as source_client,
        service.get_blob_client(target_container, target_blob) as target_client,
    ):
        if getattr(fs, "encryption_scope", None):
            started = await _scoped_copy(fs, source, source_client, target_client, target)
        else:
            started = await target_client.start_copy_from_url(source_client.url)
        status = started.get("copy_status")
        waited = 0.0
        while status == "pending" and waited < COPY_TIMEOUT_S:
            await asyncio.sleep(COPY_POLL_S)
            waited += COPY_POLL_S
            status = (await target_client.get_blob_properties()).copy.status
    if status != "success":
        raise CopyFailedError(f"Copy Blob to `{target}` ended as `{status}`")
    fs.invalidate_cache(target_container)


async def _scoped_copy(
    fs: Any, source: str, source_client: Any, target_client: Any, target: str
) -> Any:
    """Copy Blob From URL with the scope (the request carries it: `set_encryption_scope`).
    Unlike Copy Blob, it reads the source with the source URL's own authorization: a SAS
    made with the account key (for an hour), the SAS the block gave, or the identity's
    token."""
    size = (await source_client.get_blob_properties()).size
    if size > SCOPED_COPY_MAX:
        raise DeliveryError(
            f"cannot deliver `az://{target}` to Azure Blob Storage: the file is "
            f"{size / MIB:.1f} MiB, and Azure encrypts a server-side copy with an encryption "
            f"scope only up to {SCOPED_COPY_MAX / MIB:g} MiB; set destination.max_file_mb to "
            f"{SCOPED_COPY_MAX / MIB:g} or less",
            store="Azure Blob Storage",
            target=f"az://{target}",
        )
    credential = fs.service_client.credential
    url, options = source_client.url, {}
    if getattr(credential, "account_key", None):  # a shared key: adlfs makes a read SAS
        url = await fs._url(source, expires=3600)
    elif hasattr(credential, "get_token"):  # Azure's default identity
        token = await credential.get_token("https://storage.azure.com/.default")
        options["source_authorization"] = f"Bearer {token.token}"
    return await target_client.start_copy_from_url(url, requires_sync=True, **options)


def set_encryption_scope(fs: AbstractFileSystem, scope: str) -> None:
    """Send `scope` on every request that writes a blob's data: Put Blob, Put Block, Put
    Block List and the copies that publish (adlfs takes no scope). It goes on the client's
    headers policy, which every container and blob client adlfs derives shares, and before
    the request is signed. Reads, listings and deletes go without it."""
    fs.encryption_scope = scope  # read by copy_blob
    policy = fs.service_client._config.headers_policy
    add_headers = policy.on_request

    def on_request(request: Any) -> None:
        add_headers(request)
        if writes_data(request.http_request.method, request.http_request.url):
            request.http_request.headers[SCOPE_HEADER] = scope

    policy.on_request = on_request


def writes_data(method: str, url: str) -> bool:
    """Whether a Blob service request writes a blob's content: a PUT of a blob (Put Blob, a
    copy) or of a block or block list; not a container's or a blob's properties."""
    query = parse_qs(urlsplit(url).query)
    return (
        method == "PUT"
        and "restype" not in query
        and query.get("comp", [""])[0]
        in (
            "",
            "block",
            "blocklist",
        )
    )


async def _blobs_under(fs: Any, prefix: str) -> list[str]:
    """container/name of every blob whose path starts with `prefix`, uncommitted included."""
    container, start, _ = fs.split_path(prefix)
    names: list[str] = []
    async with fs.service_client.get_container_client(container) as client:
        async for blob in client.list_blobs(name_starts_with=start, include=["uncommittedblobs"]):
            names.append(f"{container}/{blob.name}")
    return names


def discard_staged_blocks(fs: AbstractFileSystem, path: str) -> None:
    """Drop the blocks an unfinished upload staged. Azure keeps uncommitted blocks for a week
    (billed, and listed as an uncommitted blob); committing an empty block list discards them,
    and deleting the empty blob that makes leaves nothing."""
    sync(fs.loop, _commit_nothing_and_delete, fs, path)


async def _commit_nothing_and_delete(fs: Any, path: str) -> None:
    container, blob, _ = fs.split_path(path)
    async with fs.service_client.get_blob_client(container, blob) as client:
        await client.commit_block_list([])
        await client.delete_blob()
    fs.invalidate_cache(container)


def set_retry_policy(fs: AbstractFileSystem, *, retries: int, backoff_s: float) -> None:
    """Set how often, and after how long, the SDK retries one failed request (timeouts,
    408, 429, 5xx). adlfs builds its client without retry options; every container and blob
    client it derives shares this one policy object.

    The SDK waits `initial_backoff + increment_base ** n` (± jitter) before retry n: with
    15 s (its default) that is about 15, 18 and 24 s; shorter first waits scale it down."""
    policy = fs.service_client._config.retry_policy
    policy.total_retries = policy.connect_retries = retries
    policy.read_retries = policy.status_retries = retries
    policy.initial_backoff = backoff_s
    policy.increment_base = policy.random_jitter_range = min(3.0, backoff_s / 5)


AZURE_BLOB = AzureBlob()
