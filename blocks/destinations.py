"""Saved credentials and options for the stores exports deliver to, one block per kind.

A block gives fsspec the keyword arguments of its filesystem; secrets are `SecretStr`, read
only at that moment, and never part of a URL, a log line or an error message.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


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
