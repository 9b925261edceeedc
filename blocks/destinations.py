"""Saved credentials and options for the stores exports deliver to, one block per kind.

A block gives fsspec the keyword arguments of its filesystem (or, for an HTTP receiver, the
request's headers); secrets are `SecretStr`, read only at that moment, and never part of a
URL, a log line or an error message.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator


class S3Credentials(Block):
    """Amazon S3 or an S3-compatible store (through s3fs).

    Example:
        ```python
        from blocks import S3Credentials

        S3Credentials(
            aws_access_key_id="AKIA...", aws_secret_access_key="...", region_name="eu-west-1"
        ).save("prod-s3")
        # destination: {url: "s3://bucket/exports/{export}.{ext}", block: prod-s3}
        ```
    """

    _block_type_name = "Exports S3 Credentials"
    _block_type_slug = "exports-s3-credentials"
    _description = "Credentials and options for delivering export files to Amazon S3."
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#destinations"  # type: ignore[assignment]

    aws_access_key_id: str | None = Field(
        default=None, description="Access key id; empty: the AWS default chain applies."
    )
    aws_secret_access_key: SecretStr | None = Field(default=None, description="Secret key.")
    aws_session_token: SecretStr | None = Field(
        default=None, description="Session token of temporary credentials."
    )
    region_name: str | None = Field(default=None, description="AWS region, e.g. eu-west-1.")
    endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, Ceph, R2, ...)."
    )
    server_side_encryption: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="Server-side encryption for written objects."
    )
    sse_kms_key_id: str | None = Field(
        default=None, description="KMS key id when server_side_encryption is aws:kms."
    )
    part_size_mb: int = Field(
        default=8,
        ge=5,
        le=5120,
        description="Multipart part size in MiB (5 to 5120); memory holds one part.",
    )

    def filesystem_options(self) -> dict[str, Any]:
        """Keyword arguments for `s3fs.S3FileSystem`."""
        options: dict[str, Any] = {"default_block_size": self.part_size_mb * 1024 * 1024}
        if self.aws_access_key_id:
            options["key"] = self.aws_access_key_id
        if self.aws_secret_access_key is not None:
            options["secret"] = self.aws_secret_access_key.get_secret_value()
        if self.aws_session_token is not None:
            options["token"] = self.aws_session_token.get_secret_value()
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region_name:
            options["client_kwargs"] = {"region_name": self.region_name}
        extra: dict[str, str] = {}
        if self.server_side_encryption:
            extra["ServerSideEncryption"] = self.server_side_encryption
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        if extra:
            options["s3_additional_kwargs"] = extra
        return options


class GcsCredentials(Block):
    """Google Cloud Storage (through gcsfs).

    Example:
        ```python
        from blocks import GcsCredentials

        GcsCredentials(service_account_info=open("sa.json").read()).save("prod-gcs")
        # destination: {url: "gs://bucket/exports/{export}.{ext}", block: prod-gcs}
        ```
    """

    _block_type_name = "Exports GCS Credentials"
    _block_type_slug = "exports-gcs-credentials"
    _description = "Credentials and options for delivering export files to Google Cloud Storage."
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#destinations"  # type: ignore[assignment]

    service_account_info: SecretStr | None = Field(
        default=None,
        description="A service account's JSON key; empty: Application Default Credentials.",
    )
    anonymous: bool = Field(
        default=False, description="No credentials at all (public buckets, emulators)."
    )
    project: str | None = Field(default=None, description="Google Cloud project id.")
    endpoint_url: str | None = Field(
        default=None, description="Endpoint of a GCS emulator, e.g. http://127.0.0.1:9023."
    )
    part_size_mb: int = Field(
        default=8, ge=1, le=1024, description="Resumable upload chunk in MiB; memory holds one."
    )

    def filesystem_options(self) -> dict[str, Any]:
        """Keyword arguments for `gcsfs.GCSFileSystem`."""
        options: dict[str, Any] = {"block_size": self.part_size_mb * 1024 * 1024}
        if self.service_account_info is not None:
            options["token"] = json.loads(self.service_account_info.get_secret_value())
        elif self.anonymous:
            options["token"] = "anon"
        if self.project:
            options["project"] = self.project
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        return options


def default_user_agent() -> str:
    """`prefect-exports/<installed version>`: receivers can tell our requests apart."""
    try:
        return f"prefect-exports/{version('prefect-exports')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "prefect-exports"


# Headers the client computes per request (or that must stay secret): not settable in `headers`.
_RESERVED_HEADERS = frozenset(
    {"authorization", "content-length", "transfer-encoding", "host", "connection"}
)


class HttpPostTarget(Block):
    """An HTTP(S) receiver (webhook) that each finished export file is POSTed to.

    Example:
        ```python
        from blocks import HttpPostTarget

        HttpPostTarget(authorization="Bearer eyJ...", accept="application/json").save("crm-hook")
        HttpPostTarget.load("crm-hook")
        # destination: {url: "https://hooks.example.com/ingest/{export}.{ext}", block: crm-hook}
        ```
    """

    _block_type_name = "Exports HTTP POST Target"
    _block_type_slug = "exports-http-post-target"
    _description = "Headers, credentials and options for POSTing export files to a webhook."
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#destinations"  # type: ignore[assignment]

    authorization: SecretStr | None = Field(
        default=None,
        description=(
            'The whole Authorization header value, e.g. "Bearer <token>" or "Basic <base64>".'
        ),
    )
    accept: str | None = Field(
        default=None, description="The Accept header, e.g. application/json; empty: */*."
    )
    user_agent: str = Field(
        default_factory=default_user_agent,
        description="The User-Agent header; by default prefect-exports/<version>.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Other headers to send, not secret (they are shown in the UI), e.g. "
            '{"X-Tenant": "acme"}; Content-Type may be overridden here.'
        ),
    )
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds to wait to connect, and for each read or write on the socket.",
    )
    verify_tls: bool = Field(
        default=True, description="Check the server's TLS certificate; turn off only for tests."
    )

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in value if name.lower() in _RESERVED_HEADERS)
        if reserved:
            raise ValueError(
                f"headers: `{', '.join(reserved)}` cannot be set here; the Authorization "
                "value goes in `authorization` (kept secret), and the client sets "
                "Content-Length, Transfer-Encoding, Host and Connection itself"
            )
        return value

    def request_headers(self) -> dict[str, str]:
        """The headers of every POST, the Authorization secret included: call it only to
        build the request, never to log."""
        headers = {"User-Agent": self.user_agent, **self.headers}
        if self.accept:
            headers["Accept"] = self.accept
        if self.authorization is not None:
            headers["Authorization"] = self.authorization.get_secret_value()
        return headers
