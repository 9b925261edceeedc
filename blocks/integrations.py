"""The Prefect integrations' blocks a user already keeps, accepted where ours are.

`destination.block` may name a prefect-aws `AwsCredentials`, `MinIOCredentials` or `S3Bucket`,
a prefect-gcp `GcpCredentials` or `GcsBucket`, or a prefect-azure `AzureBlobStorageCredentials`
or `AzureBlobStorageContainer`; `source.block` a prefect-sqlalchemy `SqlAlchemyConnector` or
`AsyncSqlAlchemyConnector` (read with the synchronous driver of its database). Each
is read as the equivalent block of ours (`as_exports_block`, `connector_url`), so a store
builds its filesystem, multipart uploads, atomic publishing and error messages exactly as for
our own blocks, and nothing is saved twice. The integrations are optional extras (`[aws]`,
`[gcp]`, `[azure]`, `[sqlalchemy]`); a type whose package is not installed is not looked up.

A name is looked up among our type first, then the integrations' types of that store, in the
order below; `<block-type-slug>/<name>` (e.g. `aws-credentials/prod`) names one type.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from prefect.blocks.core import Block

from blocks.azure import AzureBlobCredentials
from blocks.gcs import GcsCredentials
from blocks.s3 import S3Credentials
from flows.core.errors import ConfigurationError


@dataclass(frozen=True)
class IntegrationType:
    """A block type of a Prefect integration, imported only when it is looked up."""

    module: str
    class_name: str
    slug: str
    package: str  # what `pip install` needs

    def load_class(self) -> type[Block] | None:
        try:
            return cast(type[Block], getattr(importlib.import_module(self.module), self.class_name))
        except ImportError:
            return None


_AWS = IntegrationType("prefect_aws", "AwsCredentials", "aws-credentials", "prefect-aws")
_MINIO = IntegrationType("prefect_aws", "MinIOCredentials", "minio-credentials", "prefect-aws")
_S3_BUCKET = IntegrationType("prefect_aws.s3", "S3Bucket", "s3-bucket", "prefect-aws")
_GCP = IntegrationType("prefect_gcp", "GcpCredentials", "gcp-credentials", "prefect-gcp")
_GCS_BUCKET = IntegrationType("prefect_gcp.cloud_storage", "GcsBucket", "gcs-bucket", "prefect-gcp")
_AZURE = IntegrationType(
    "prefect_azure",
    "AzureBlobStorageCredentials",
    "azure-blob-storage-credentials",
    "prefect-azure",
)
_AZURE_CONTAINER = IntegrationType(
    "prefect_azure.blob_storage",
    "AzureBlobStorageContainer",
    "azure-blob-storage-container",
    "prefect-azure",
)
_SQLALCHEMY = IntegrationType(
    "prefect_sqlalchemy", "SqlAlchemyConnector", "sqlalchemy-connector", "prefect-sqlalchemy"
)
_ASYNC_SQLALCHEMY = IntegrationType(
    "prefect_sqlalchemy.database",
    "AsyncSqlAlchemyConnector",
    "async-sqlalchemy-connector",
    "prefect-sqlalchemy",
)

# The integrations' types each of our block types stands for.
INTEGRATION_TYPES: dict[str, tuple[IntegrationType, ...]] = {
    S3Credentials.get_block_type_slug(): (_AWS, _S3_BUCKET, _MINIO),
    GcsCredentials.get_block_type_slug(): (_GCP, _GCS_BUCKET),
    AzureBlobCredentials.get_block_type_slug(): (_AZURE, _AZURE_CONTAINER),
    "exports-sql-source": (_SQLALCHEMY, _ASYNC_SQLALCHEMY),
}
# Drivers of asyncio that SQLAlchemy connectors name; exports read with the synchronous ones.
_ASYNC_DRIVERS = frozenset({"asyncpg", "psycopg_async", "aiosqlite", "aiomysql", "asyncmy"})


def load_named_block(field: str, name: str, own: type[Block]) -> Block:
    """The saved block `name` of our type `own` or of an integration type standing for it;
    `slug/name` for one type. A message naming what was looked for when there is none."""
    candidates: list[tuple[str, type[Block] | None, str]] = [
        (own.get_block_type_slug(), own, own.__name__)
    ]
    for integration in INTEGRATION_TYPES.get(own.get_block_type_slug(), ()):
        candidates.append((integration.slug, integration.load_class(), integration.class_name))
    slug, _, plain = name.rpartition("/")
    if slug:
        named = [c for c in candidates if c[0] == slug]
        if not named:
            known = ", ".join(f"{c[0]}/" for c in candidates)
            raise ConfigurationError(
                f"{field}: `{slug}` is not a block type it takes: {known}", field=field
            )
        if named[0][1] is None:
            integrations = INTEGRATION_TYPES[own.get_block_type_slug()]
            package = next(i.package for i in integrations if i.slug == slug)
            raise ConfigurationError(
                f"{field}: `{slug}` blocks need the package {package}",
                field=field,
                hint="install it (README, Blocks: the extras aws, gcp, azure and sqlalchemy)",
            )
        candidates = named
    for _, block_type, _ in candidates:
        if block_type is None:
            continue
        try:
            return cast(Block, block_type.load(plain))
        except ValueError:
            continue
    first, *others = [c[2] for c in candidates if c[1] is not None] or [own.__name__]
    nor = f" (nor {', '.join(others)})" if others else ""
    raise ConfigurationError(
        f"{field}: no saved {first} block named `{plain}`{nor}",
        field=field,
        hint=f"save one first, e.g. {own.__name__}(...).save({plain!r})",
    )


def as_exports_block(block: Block, url: str, field: str = "destination.block") -> Block:
    """Our block equivalent to `block` (itself if it is ours), for the store `url` names."""
    kind = type(block).__name__
    if kind == "S3Bucket":
        _same_container(field, url, block.bucket_name, "bucket")  # type: ignore[attr-defined]
        return as_exports_block(block.credentials, url, field)  # type: ignore[attr-defined]
    if kind == "GcsBucket":
        _same_container(field, url, block.bucket, "bucket")  # type: ignore[attr-defined]
        return as_exports_block(block.gcp_credentials, url, field)  # type: ignore[attr-defined]
    if kind == "AzureBlobStorageContainer":
        _same_container(field, url, block.container_name, "container")  # type: ignore[attr-defined]
        return as_exports_block(block.credentials, url, field)  # type: ignore[attr-defined]
    if kind == "AwsCredentials":
        return _from_aws(block)
    if kind == "MinIOCredentials":
        return S3Credentials(
            aws_access_key_id=block.minio_root_user,  # type: ignore[attr-defined]
            aws_secret_access_key=block.minio_root_password,  # type: ignore[attr-defined]
            region_name=block.region_name,  # type: ignore[attr-defined]
            endpoint_url=block.aws_client_parameters.endpoint_url,  # type: ignore[attr-defined]
        )
    if kind == "GcpCredentials":
        return _from_gcp(block)
    if kind == "AzureBlobStorageCredentials":
        return _from_azure(block, field)
    return block


def connector_url(block: Block) -> str:
    """The database URL of a prefect-sqlalchemy connector, with a synchronous driver
    (exports read with blocking drivers: postgresql+asyncpg reads as postgresql)."""
    from sqlalchemy.engine import make_url

    info: Any = block.connection_info  # type: ignore[attr-defined]
    url = info.create_url() if hasattr(info, "create_url") else make_url(str(info))
    dialect, _, driver = url.drivername.partition("+")
    if driver in _ASYNC_DRIVERS:
        url = url.set(drivername=dialect)
    return str(url.render_as_string(hide_password=False))


def _same_container(field: str, url: str, expected: str, word: str) -> None:
    named = urlsplit(url).netloc
    if named != expected:
        raise ConfigurationError(
            f"{field}: the block is for {word} `{expected}`, but destination.url names `{named}`",
            field=field,
            hint=f"write to {word} `{expected}` or name a credentials block",
        )


def _from_aws(block: Any) -> S3Credentials:
    key, secret, token = (
        block.aws_access_key_id,
        block.aws_secret_access_key,
        block.aws_session_token,
    )
    if block.profile_name or block.assume_role_arn:  # the block's own session resolves them
        credentials = block.get_boto3_session().get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            key, secret, token = frozen.access_key, frozen.secret_key, frozen.token
    return S3Credentials(
        aws_access_key_id=key,
        aws_secret_access_key=secret.get_secret_value()
        if hasattr(secret, "get_secret_value")
        else secret,
        aws_session_token=token,
        region_name=block.region_name,
        endpoint_url=block.aws_client_parameters.endpoint_url,
    )


def _from_gcp(block: Any) -> GcsCredentials:
    info = None
    if block.service_account_info is not None:
        info = json.dumps(block.service_account_info.get_secret_value())
    elif block.service_account_file is not None:
        info = block.service_account_file.expanduser().read_text()
    return GcsCredentials(service_account_info=info, project=block.project)


def _from_azure(block: Any, field: str) -> AzureBlobCredentials:
    if block.client_id or block.tenant_id or block.client_secret:
        raise ConfigurationError(
            f"{field}: an AzureBlobStorageCredentials block with a service principal "
            "(client_id, tenant_id, client_secret) is not supported",
            field=field,
            hint="give it a connection_string, or save an AzureBlobCredentials block",
        )
    if block.connection_string is not None:
        return AzureBlobCredentials(connection_string=block.connection_string)
    account_url = str(block.account_url or "")
    host = urlsplit(account_url).hostname or ""
    account, _, domain = host.partition(".")
    if not account or not domain.startswith("blob."):
        raise ConfigurationError(
            f"{field}: account_url `{account_url}` is not https://<account>.blob.<domain>",
            field=field,
            hint="give the block a connection_string instead",
        )
    return AzureBlobCredentials(account_name=account)
