"""Amazon S3 and S3-compatible stores, through s3fs: multipart uploads of `part_size_mb` parts,
published by a server-side copy and a delete. Without a block, the AWS environment applies
(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_PROFILE, instance roles ...)."""

from __future__ import annotations

import functools
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from prefect.blocks.core import Block

from blocks.s3 import S3Credentials
from flows.destinations.store import MIB, Leftover, ObjectStore

# S3's error codes for a request worth sending again (their HTTP statuses say the same).
_TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
)


class S3(ObjectStore):
    name = "Amazon S3"
    schemes = ("s3",)
    protocol = "s3"
    block_types = (S3Credentials,)
    # Parts of 8 MiB (s3fs's own default is 50 MiB, held in memory before it is sent).
    default_options = {"default_block_size": 8 * MIB}

    def connect(self, url: str, options: dict[str, Any], block: Block | None) -> AbstractFileSystem:  # noqa: ARG002 - the interface of every store
        return fsspec.filesystem("s3", skip_instance_cache=True, session=_session(), **options)

    def container_exists(self, fs: AbstractFileSystem, bucket: str) -> bool:
        """HEAD the bucket: only S3's 404 means it is missing. s3fs's `exists` answers False
        to any failure, so a store answering 500 was reported as a missing bucket ("create
        it"), a permanent error that stopped the retries (issue 17); now it raises, and the
        500 is retried as the store's failure."""
        try:
            fs.call_s3("head_bucket", Bucket=bucket)
        except FileNotFoundError:  # s3fs's translation of 404 / NoSuchBucket
            return False
        return True

    def list_leftovers(self, fs: AbstractFileSystem, prefix: str) -> list[Leftover]:
        """The open multipart uploads and the temporary objects under `prefix`: an upload whose
        abort failed (S3 failing for good mid-upload) keeps its parts, billed, until it is
        aborted or a lifecycle rule removes it; it is no object, so only this listing finds
        it."""
        bucket, _, key_prefix = prefix.partition("/")
        where = {"Bucket": bucket, "Prefix": key_prefix}
        uploads = _pages(fs, "list_multipart_uploads", "Uploads", **where)
        objects = _pages(fs, "list_objects_v2", "Contents", **where)
        return [Leftover(f"{bucket}/{item['Key']}", item["UploadId"]) for item in uploads] + [
            Leftover(f"{bucket}/{item['Key']}") for item in objects
        ]

    def drop_leftover(self, fs: AbstractFileSystem, leftover: Leftover) -> None:
        """Abort an open multipart upload (its parts are deleted), or delete an object."""
        bucket, _, key = leftover.path.partition("/")
        if leftover.upload_id:
            fs.call_s3(
                "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=leftover.upload_id
            )
        else:
            fs.call_s3("delete_object", Bucket=bucket, Key=key)
            fs.invalidate_cache(leftover.path)

    def sdk_transient(self, exc: BaseException) -> bool:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        if isinstance(exc, ClientError):
            return exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
        lost = (
            EndpointConnectionError,
            ConnectionClosedError,
            ConnectTimeoutError,
            ReadTimeoutError,
        )
        return isinstance(exc, lost)


def _pages(fs: Any, method: str, field: str, **request: Any) -> list[dict[str, Any]]:
    """Every entry of a paginated S3 listing (`field` of each page)."""
    entries: list[dict[str, Any]] = []
    markers: dict[str, Any] = {}
    while True:
        page = fs.call_s3(method, **request, **markers)
        entries.extend(page.get(field, []))
        if not page.get("IsTruncated"):
            return entries
        if method == "list_objects_v2":
            markers = {"ContinuationToken": page["NextContinuationToken"]}
        else:
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }


def _session() -> Any:
    """A new botocore session (credentials and settings resolved afresh from the block or the
    environment) that shares one model loader: each session would otherwise parse the S3
    service model again, which is about 20 MB held during a run's upload."""
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component("data_loader", _model_loader())
    return session


@functools.cache
def _model_loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()


S3_STORE = S3()
