"""The credentials block of an HTTP receiver (flows/destinations/http_post.py).

Secrets are `SecretStr`, read only when a filesystem or a request is made, and never part of
a URL, a log line or an error message.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator


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
