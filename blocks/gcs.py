"""The credentials block of Google Cloud Storage (flows/destinations/gcs.py).

Secrets are `SecretStr`, read only when a filesystem or a request is made, and never part of
a URL, a log line or an error message.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


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
