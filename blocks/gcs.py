"""The credentials block of Google Cloud Storage (flows/destinations/gcs.py).

Secrets are `SecretStr`, read only when a filesystem or a request is made, and never part of
a URL, a log line or an error message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

# A Cloud KMS key's resource name (a key, not one of its versions): GCS takes no other form.
KMS_KEY_NAME = re.compile(
    r"projects/[a-z0-9][a-z0-9.:-]*/locations/[a-z0-9-]+"
    r"/keyRings/[A-Za-z0-9_-]{1,63}/cryptoKeys/[A-Za-z0-9_-]{1,63}"
)


class GcsCredentials(Block):
    """Google Cloud Storage (through gcsfs).

    Example:
        ```python
        from blocks import GcsCredentials

        GcsCredentials(service_account_info=open("sa.json").read()).save("prod-gcs")
        # destination: {url: "gs://bucket/exports/{export}.{ext}", block: prod-gcs}
        credentials = GcsCredentials.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports GCS Credentials"
    _block_type_slug = "exports-gcs-credentials"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/10424e311932e31c477ac2b9ef3d53cefbaad708-250x250.png"  # type: ignore[assignment]
    _description = (
        "Credentials and options for delivering export files to Google Cloud Storage. Name "
        "it in `destination.block` beside a gs:// URL."
    )
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
    kms_key_name: str | None = Field(
        default=None,
        description="A Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) that "
        "encrypts every object written (customer-managed encryption); empty: the bucket's "
        "default key.",
    )

    @field_validator("kms_key_name")
    @classmethod
    def _a_key_resource_name(cls, value: str | None) -> str | None:
        if value is not None and not KMS_KEY_NAME.fullmatch(value):
            raise ValueError(
                f"kms_key_name `{value}` is not a Cloud KMS key's resource name; give "
                "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY (the key, "
                "not one of its cryptoKeyVersions)"
            )
        return value

    def filesystem_options(self) -> dict[str, Any]:
        """Keyword arguments for `gcsfs.GCSFileSystem` (`kms_key_name`: for
        flows/destinations/gcs_filesystem.py)."""
        options: dict[str, Any] = {"block_size": self.part_size_mb * 1024 * 1024}
        if self.service_account_info is not None:
            options["token"] = json.loads(self.service_account_info.get_secret_value())
        elif self.anonymous:
            options["token"] = "anon"
        if self.project:
            options["project"] = self.project
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.kms_key_name:
            options["kms_key_name"] = self.kms_key_name
        return options
