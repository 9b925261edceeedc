"""Saved credentials and options for the stores exports deliver to, one block per kind.

A block gives fsspec the keyword arguments of its filesystem (or, for an HTTP receiver, the
request's headers); secrets are `SecretStr`, read only at that moment, and never part of a
URL, a log line or an error message.
"""

from __future__ import annotations

import io
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator


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


class SftpCredentials(Block):
    """An SFTP server (through fsspec's paramiko filesystem). The URL names the host and the
    path, `sftp://host[:port]/path/{export}.{ext}`; the block holds how to log in and which
    host key to trust.

    Example:
        ```python
        from blocks import SftpCredentials

        SftpCredentials(
            username="exports",
            private_key=open("id_ed25519").read(),
            known_hosts="sftp.example.com ssh-ed25519 AAAAC3Nza...",
        ).save("partner-sftp")
        # destination: {url: "sftp://sftp.example.com/in/{export}.{ext}", block: partner-sftp}
        credentials = SftpCredentials.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports SFTP Credentials"
    _block_type_slug = "exports-sftp-credentials"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"  # type: ignore[assignment]
    _description = (
        "Login and host key for delivering export files to an SFTP server. Name it in "
        "`destination.block` beside an sftp:// URL."
    )
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#destinations"  # type: ignore[assignment]

    username: str | None = Field(
        default=None,
        description="User to log in as; empty: the user in the URL (sftp://user@host/...).",
    )
    password: SecretStr | None = Field(default=None, description="Password of the user.")
    private_key: SecretStr | None = Field(
        default=None,
        description="Private key text (OpenSSH or PEM: Ed25519, ECDSA or RSA) to log in with.",
    )
    private_key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of an encrypted private key."
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Port when the URL names none (default 22)."
    )
    known_hosts: str | None = Field(
        default=None,
        description=(
            "Trusted host keys as OpenSSH known_hosts lines (`ssh-keyscan -p PORT HOST` "
            "prints them); empty: the known_hosts file of the user running the export."
        ),
    )
    known_hosts_policy: Literal["reject", "warn", "auto-add"] = Field(
        default="reject",
        description=(
            "What to do with a host key that is not in known_hosts: reject fails the "
            "export, warn logs a warning and connects, auto-add connects silently."
        ),
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Seconds to wait for the connection, the login and each server answer.",
    )

    def filesystem_options(self) -> dict[str, Any]:
        """Keyword arguments for `flows.destinations.sftp_filesystem.SftpFileSystem` (fsspec's
        paramiko SFTPFileSystem: paramiko's `SSHClient.connect` arguments, plus the host key
        settings).

        With a password or a key only those are tried: the SSH agent and ~/.ssh keys of
        whoever runs the worker are left out, so the login does not depend on the machine.
        """
        options: dict[str, Any] = {
            "timeout": self.timeout_s,
            "host_key_policy": self.known_hosts_policy,
        }
        if self.username:
            options["username"] = self.username
        if self.port is not None:
            options["port"] = self.port
        if self.known_hosts:
            options["known_hosts"] = self.known_hosts
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
        if self.private_key is not None:
            options["pkey"] = _private_key(self.private_key, self.private_key_passphrase)
        if self.password is not None or self.private_key is not None:
            options["allow_agent"] = False
            options["look_for_keys"] = False
        return options


def _private_key(text: SecretStr, passphrase: SecretStr | None) -> Any:
    """A paramiko key from OpenSSH or PEM text; errors name the field, never the key."""
    import paramiko
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    data = text.get_secret_value().strip().encode() + b"\n"
    password = passphrase.get_secret_value().encode() if passphrase is not None else None
    try:
        try:
            loaded: Any = serialization.load_ssh_private_key(data, password=password)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # a passphrase is missing, or given for a plain key
        raise ValueError(
            "SftpCredentials.private_key: the key is encrypted and private_key_passphrase is "
            "empty, or a passphrase is set for a key that has none"
            if "password" in str(exc).lower()
            else f"SftpCredentials.private_key: cannot read the key ({type(exc).__name__})"
        ) from None
    except ValueError:
        raise ValueError(
            "SftpCredentials.private_key: not a readable private key (OpenSSH or PEM text of "
            "an Ed25519, ECDSA or RSA key), or private_key_passphrase is wrong"
        ) from None
    classes: list[tuple[type[Any], Any]] = [
        (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
        (rsa.RSAPrivateKey, paramiko.RSAKey),
    ]
    for kind, key_class in classes:
        if isinstance(loaded, kind):
            pem = io.StringIO(data.decode())
            return key_class.from_private_key(
                pem, password=passphrase and passphrase.get_secret_value()
            )
    raise ValueError(
        f"SftpCredentials.private_key: {type(loaded).__name__} keys are not supported; "
        "use an Ed25519, ECDSA or RSA key"
    )


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
        # destination: {url: "https://hooks.example.com/ingest/{export}.{ext}", block: crm-hook}
        target = HttpPostTarget.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports HTTP POST Target"
    _block_type_slug = "exports-http-post-target"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/webhook.png"  # type: ignore[assignment]
    _description = (
        "Headers, credentials and options for POSTing export files to a webhook. Name it in "
        "`destination.block` beside an http(s):// URL."
    )
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
