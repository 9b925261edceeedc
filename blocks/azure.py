"""The credentials block of Azure Blob Storage (flows/destinations/azure.py).

Secrets are `SecretStr`, read only when a filesystem or a request is made, and never part of
a URL, a log line or an error message.
"""

from __future__ import annotations

import re
from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator

# An encryption scope's name as Azure makes them: 3 to 63 lower-case letters, digits and
# hyphens, each hyphen between a letter or digit and another.
ENCRYPTION_SCOPE = re.compile(r"(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*")


class AzureBlobCredentials(Block):
    """Azure Blob Storage (through adlfs): a connection string, or an account name with an
    account key, a SAS token, or neither (then Azure's default identity chain applies).

    Example:
        ```python
        from blocks import AzureBlobCredentials

        AzureBlobCredentials(account_name="acme", sas_token="sv=2024-...").save("prod-azure")
        # destination: {url: "az://container/exports/{export}.{ext}", block: prod-azure}
        credentials = AzureBlobCredentials.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports Azure Blob Credentials"
    _block_type_slug = "exports-azure-blob-credentials"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/54e3fa7e00197a4fbd1d82ed62494cb58d08c96a-250x250.png"  # type: ignore[assignment]
    _description = (
        "Credentials and options for delivering export files to Azure Blob Storage. Name it "
        "in `destination.block` beside an az:// URL."
    )
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#destinations"  # type: ignore[assignment]

    connection_string: SecretStr | None = Field(
        default=None, description="A storage connection string (holds the key or a SAS)."
    )
    account_name: str | None = Field(default=None, description="Storage account name.")
    account_key: SecretStr | None = Field(default=None, description="Storage account key.")
    sas_token: SecretStr | None = Field(
        default=None, description="A SAS token that may create, write and delete blobs."
    )
    blob_endpoint: str | None = Field(
        default=None,
        description="Blob service URL when it is not https://{account}.blob.core.windows.net "
        "(Azurite: http://127.0.0.1:10000/devstoreaccount1; private endpoints).",
    )
    part_size_mb: int = Field(
        default=8, ge=1, le=4000, description="Block size in MiB (1 to 4000); memory holds one."
    )
    retries: int = Field(
        default=3, ge=0, le=10, description="Retries of one failed request (the SDK's default)."
    )
    retry_backoff_s: float = Field(
        default=15,
        ge=0,
        le=300,
        description="Wait before the first retry, in seconds; later ones wait a little longer "
        "(15: the SDK's default, about 15, 18 and 24 s).",
    )
    encryption_scope: str | None = Field(
        default=None,
        description="An encryption scope of the account that encrypts every blob written "
        "(its own key, e.g. a customer-managed one in Key Vault); empty: the container's or "
        "account's default. Each file is then published by a synchronous copy, at most 256 "
        "MiB (set destination.max_file_mb).",
    )

    @field_validator("encryption_scope")
    @classmethod
    def _a_scope_name(cls, value: str | None) -> str | None:
        if value is not None and not ENCRYPTION_SCOPE.fullmatch(value):
            raise ValueError(
                f"encryption_scope `{value}` is not an encryption scope's name; give the name "
                "of one of the storage account's scopes (3 to 63 lower-case letters, digits "
                "and hyphens, a hyphen between two of the others)"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> AzureBlobCredentials:
        given = [
            name
            for name in ("connection_string", "account_key", "sas_token")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                "give one of connection_string, account_key or sas_token, "
                f"not {' and '.join(given)}"
            )
        if self.connection_string is None and not self.account_name:
            raise ValueError(
                "account_name is required unless a connection_string is given "
                "(with account_key, sas_token, or neither for Azure's default identity)"
            )
        if self.connection_string is not None and (self.account_name or self.blob_endpoint):
            raise ValueError(
                "a connection_string names its account and endpoint itself; "
                "leave account_name and blob_endpoint empty"
            )
        if self.blob_endpoint and not self.blob_endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"blob_endpoint `{self.blob_endpoint}` must be a URL starting with https:// "
                "(or http:// for Azurite)"
            )
        if (self.blob_endpoint or "").startswith("http://") and not (
            self.account_key or self.sas_token
        ):
            raise ValueError(
                "an http:// blob_endpoint needs account_key or sas_token "
                "(Azure's default identity signs in over https only)"
            )
        return self

    def filesystem_options(self) -> dict[str, Any]:
        """Keyword arguments for `adlfs.AzureBlobFileSystem`."""
        options: dict[str, Any] = {"blocksize": self.part_size_mb * 1024 * 1024}
        if self.connection_string is not None:
            options["connection_string"] = self.connection_string.get_secret_value()
            return options
        sas = self.sas_token.get_secret_value().lstrip("?") if self.sas_token else None
        key = self.account_key.get_secret_value() if self.account_key else None
        if self.blob_endpoint and (key or sas):
            # A connection string is the one form that takes an endpoint with plain http.
            endpoint = self.blob_endpoint.rstrip("/")
            parts = [f"BlobEndpoint={endpoint}"]
            if key:
                protocol = endpoint.partition("://")[0]
                parts = [
                    f"DefaultEndpointsProtocol={protocol}",
                    f"AccountName={self.account_name}",
                    f"AccountKey={key}",
                    *parts,
                ]
            else:
                parts.append(f"SharedAccessSignature={sas}")
            options["connection_string"] = ";".join(parts) + ";"
            return options
        options["account_name"] = self.account_name
        if key:
            options["account_key"] = key
        if sas:
            options["sas_token"] = f"?{sas}"
        if self.blob_endpoint:
            options["account_host"] = self.blob_endpoint.partition("://")[2].rstrip("/")
        return options

    def retry_options(self) -> dict[str, Any]:
        """How the storage SDK retries one request (`flows.destinations.azure.set_retry_policy`)."""
        return {"retries": self.retries, "backoff_s": self.retry_backoff_s}
