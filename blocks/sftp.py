"""The credentials block of an SFTP server (flows/destinations/sftp.py).

Secrets are `SecretStr`, read only when a filesystem or a request is made, and never part of
a URL, a log line or an error message.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


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
