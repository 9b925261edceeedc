"""Amazon S3 and S3-compatible stores, through s3fs: multipart uploads of `part_size_mb` parts,
published by a server-side copy and a delete. Without a block, the AWS environment applies
(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_PROFILE, instance roles ...)."""

from __future__ import annotations

import functools
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from prefect.blocks.core import Block

from blocks.destinations import S3Credentials
from flows.destinations.store import MIB, ObjectStore

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
