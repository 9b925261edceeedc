"""The one switch for status alerts: a block saved under a well-known name and read by every
export run at the moment it changes state, so enabling, disabling or re-pointing alerts
applies to every export, deployed or new, without redeploying anything."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator

from flows.core.signing import signing_key
from flows.core.zones import iana_zone

ALERTS_BLOCK_NAME = "status-alerts"


class StatusAlerts(Block):
    """Where status alerts (Initiated / Completed / Failed) are POSTed, and how.

    Example:
        ```python
        from blocks import StatusAlerts

        StatusAlerts(enabled=True, url="https://ops.example.com/hooks/exports").save(
            "status-alerts", overwrite=True
        )
        # or: exports alerts enable --url https://ops.example.com/hooks/exports
        ```
    """

    _block_type_name = "Exports Status Alerts"
    _block_type_slug = "exports-status-alerts"
    _description = (
        "The webhook every export POSTs its Initiated / Completed / Failed alerts to. Save it "
        "under the name `status-alerts`: exports read that one block, at every state change "
        "(or run `exports alerts enable --url URL`)."
    )
    _documentation_url = "https://github.com/prefect-exports/prefect-exports#status-alerts"  # type: ignore[assignment]

    enabled: bool = Field(default=False, description="Send alerts at all.")
    url: str | None = Field(default=None, description="The webhook (http or https), POSTed to.")
    secret: SecretStr | None = Field(
        default=None,
        description=(
            "Signs each alert as Standard Webhooks do (webhook-id, webhook-timestamp, "
            "webhook-signature), and for one release more with X-Exports-Signature. "
            "`whsec_<base64>` (the standard's form) or any other text."
        ),
    )
    timezone: str = Field(default="UTC", description='Time zone of "Date and Time".')
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Timeout of one attempt.")
    max_attempts: int = Field(
        default=4, ge=1, le=10, description="Attempts per alert (retries on 429, 5xx, network)."
    )
    max_total_s: float = Field(
        default=30.0,
        gt=0,
        le=300,
        description="Time one alert may take in all, so a dead receiver cannot hold a run.",
    )

    @field_validator("url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url `{value}` must be an http:// or https:// URL with a host")
        if "@" in parts.netloc:
            raise ValueError(
                "url must not carry a user or password (it is shown by `exports alerts show`); "
                "use a secret path or --secret to sign the alerts"
            )
        return value

    @field_validator("secret")
    @classmethod
    def _usable_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())  # a `whsec_` secret must be base64
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return iana_zone(value)

    @model_validator(mode="after")
    def _enabled_needs_url(self) -> StatusAlerts:
        if self.enabled and not self.url:
            raise ValueError("enabled alerts need a url to POST to")
        return self

    def shown(self) -> dict[str, Any]:
        """The settings as `exports alerts show` prints them: the secret only as set or not."""
        return {
            "enabled": self.enabled,
            "url": self.url,
            "secret": "set" if self.secret is not None else "not set",
            "timezone": self.timezone,
            "timeout_s": self.timeout_s,
            "max_attempts": self.max_attempts,
            "max_total_s": self.max_total_s,
        }


def load_alert_settings() -> StatusAlerts | None:
    """The saved switch, or None when alerts were never set up."""
    try:
        block = StatusAlerts.load(ALERTS_BLOCK_NAME)
    except ValueError:
        return None
    assert isinstance(block, StatusAlerts)
    return block
