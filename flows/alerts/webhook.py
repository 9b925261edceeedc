"""Delivering one status alert to the webhook: signed (flows/core/signing.py), retried within
a bounded time, never raising. What became of it is returned as an AlertOutcome for the run's
record."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from blocks.alerts import StatusAlerts
from flows.core.errors import first_line, is_transient_status
from flows.core.signing import message_id, signed_headers

BACKOFF_S = 0.5  # before the second attempt; doubled for each later one, with jitter


@dataclass(frozen=True)
class AlertOutcome:
    """What became of one alert: recorded on the run for the audit log."""

    status: str
    http_status: int | None
    attempts: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def send_alert(
    settings: StatusAlerts, payload: dict[str, Any], msg_id: str | None = None
) -> AlertOutcome:
    """POST the payload; retry timeouts, network errors, 408/429 and 5xx with exponential
    backoff and jitter, within `max_attempts` and `max_total_s`. Never raises. Every attempt
    carries `msg_id` (a new one when not given) and is signed at the time it is sent."""
    assert settings.url is not None
    body = json.dumps(payload, ensure_ascii=False).encode()
    msg_id = msg_id or message_id()
    secret = settings.secret.get_secret_value() if settings.secret is not None else None
    deadline = time.monotonic() + settings.max_total_s
    status: int | None = None
    error: str | None = None
    attempts = 0
    with httpx.Client(follow_redirects=False) as client:
        while attempts < settings.max_attempts:
            attempts += 1
            remaining = deadline - time.monotonic()
            headers = {
                "Content-Type": "application/json",
                **signed_headers(msg_id, int(time.time()), body, secret),
            }
            try:
                answer = client.post(
                    settings.url,
                    content=body,
                    headers=headers,
                    timeout=max(min(settings.timeout_s, remaining), 0.1),
                )
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {first_line(exc)}"
            else:
                status = answer.status_code
                if answer.is_success:
                    return AlertOutcome(str(payload["Status"]), status, attempts, None)
                error = f"the webhook answered {status} {answer.reason_phrase}"
                if not is_transient_status(status):
                    break  # 4xx: sending it again will not help
            pause = BACKOFF_S * 2 ** (attempts - 1) * (1 + random.random() / 2)  # noqa: S311
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
    return AlertOutcome(str(payload["Status"]), status, attempts, error)
