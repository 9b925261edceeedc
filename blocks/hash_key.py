"""The secret key of hashed columns (`source.columns: [{name: email, hash: hmac_sha256, key:
BLOCK}]`, flows/sources/masking.py).

A keyed hash, because an unkeyed one of an e-mail address or a card number is reversed by
hashing every likely value. The key is a `SecretStr`: read only while a run hashes, never sent
to the database, and never part of a log line, a parameter or an error message.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr

MIN_KEY_CHARACTERS = 16


class HashKey(Block):
    """The secret key hashed columns are HMAC-SHA256'd with (its text as UTF-8 bytes).

    Example:
        ```python
        import secrets

        from blocks import HashKey

        HashKey(key=secrets.token_hex(32)).save("partner-hash-key")
        # source: {columns: [{name: email, hash: hmac_sha256, key: partner-hash-key}]}
        key = HashKey.load("BLOCK_NAME")
        ```
    """

    model_config = ConfigDict(hide_input_in_errors=True)  # a refused key is never repeated

    _block_type_name = "Exports Hash Key"
    _block_type_slug = "exports-hash-key"
    _logo_url = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"  # type: ignore[assignment]
    _description = (
        "A secret key for hashed columns. Name it in an export's `source.columns` entry "
        "{name: COLUMN, hash: hmac_sha256, key: BLOCK} to write the column's HMAC-SHA256."
    )
    _documentation_url = (
        "https://github.com/prefect-exports/prefect-exports#hashed-and-masked-columns"  # type: ignore[assignment]
    )

    key: SecretStr = Field(
        min_length=MIN_KEY_CHARACTERS,
        description=(
            "The secret key, at least 16 characters (e.g. secrets.token_hex(32)); the same key "
            "gives the same hashes, so a partner can join exports without seeing the values."
        ),
    )
