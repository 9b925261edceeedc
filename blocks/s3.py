"""The credentials block of Amazon S3 and S3-compatible stores (flows/destinations/s3.py).

Secrets are `SecretStr`, read only when a filesystem or a request is made, and never part of
a URL, a log line or an error message.
"""

from __future__ import annotations

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
        credentials = S3Credentials.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports S3 Credentials"
    _block_type_slug = "exports-s3-credentials"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/d74b16fe84ce626345adf235a47008fea2869a60-225x225.png"  # type: ignore[assignment]
    _description = (
        "Credentials and options for delivering export files to Amazon S3 (or an "
        "S3-compatible store). Name it in `destination.block` beside an s3:// URL."
    )
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
