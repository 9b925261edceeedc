"""The OpenPGP key blocks of `destination.pgp` (flows/destinations/pgp.py): a recipient's
public key, and the secret key files are signed with.

A public key is not a secret (it is plain text, shown in the UI); the secret key and its
passphrase are `SecretStr`, read only when a run signs, and never part of a log line or an
error message.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

_LOGO = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"
_DOCS = "https://github.com/prefect-exports/prefect-exports#openpgp-encryption"


class OpenPgpPublicKey(Block):
    """A partner's OpenPGP public key, which every file is encrypted to.

    Example:
        ```python
        from blocks import OpenPgpPublicKey

        OpenPgpPublicKey(public_key=open("bank.asc").read()).save("bank-key")
        # destination: {url: "...", pgp: {recipients: [bank-key]}}
        key = OpenPgpPublicKey.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports OpenPGP Public Key"
    _block_type_slug = "exports-openpgp-public-key"
    _logo_url = _LOGO  # type: ignore[assignment]
    _description = (
        "A recipient's armored OpenPGP public key. Name it in `destination.pgp.recipients` "
        "to encrypt every export file to it."
    )
    _documentation_url = _DOCS  # type: ignore[assignment]

    public_key: str = Field(
        description=(
            "The armored public key, as `gpg --armor --export FINGERPRINT` prints it "
            "(-----BEGIN PGP PUBLIC KEY BLOCK-----)."
        ),
    )


class OpenPgpSigningKey(Block):
    """Our OpenPGP secret key and its passphrase, which every file is signed with.

    Example:
        ```python
        from blocks import OpenPgpSigningKey

        OpenPgpSigningKey(
            secret_key=open("exports-secret.asc").read(), passphrase="..."
        ).save("exports-signing")
        # destination: {url: "...", pgp: {recipients: [bank-key], sign_with: exports-signing}}
        key = OpenPgpSigningKey.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports OpenPGP Signing Key"
    _block_type_slug = "exports-openpgp-signing-key"
    _logo_url = _LOGO  # type: ignore[assignment]
    _description = (
        "Our armored OpenPGP secret key and its passphrase. Name it in "
        "`destination.pgp.sign_with` to sign every export file as it is encrypted."
    )
    _documentation_url = _DOCS  # type: ignore[assignment]

    secret_key: SecretStr = Field(
        description=(
            "The armored secret key, as `gpg --armor --export-secret-keys FINGERPRINT` prints "
            "it (-----BEGIN PGP PRIVATE KEY BLOCK-----)."
        ),
    )
    passphrase: SecretStr | None = Field(
        default=None, description="The secret key's passphrase; empty for a key without one."
    )
