"""Saved database connections, so a URL with a password never sits in a flow's parameters."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class SqlSource(Block):
    """A database the exports read from, stored as a secret SQLAlchemy URL.

    Example:
        ```python
        from blocks import SqlSource

        SqlSource(url="postgresql://reader:secret@db/shop").save("shop")
        source = SqlSource.load("BLOCK_NAME")
        ```
    """

    _block_type_name = "Exports SQL Source"
    _block_type_slug = "exports-sql-source"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/3c7dff04f70aaf4528e184a3b028f9e40b98d68c-250x250.png"  # type: ignore[assignment]
    _description = (
        "A SQLAlchemy database URL that exports read rows from, kept secret. Name it in an "
        "export's `source.block` instead of giving `source.url`."
    )
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#sources"  # type: ignore[assignment]

    url: SecretStr = Field(
        description="SQLAlchemy URL of the database, e.g. postgresql://user:pass@host/db."
    )
