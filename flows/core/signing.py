"""How a status alert is signed (Contract 5): the Standard Webhooks scheme, so that a receiver
verifies it with the `standardwebhooks` or `svix` libraries and refuses a replayed or stale
message; and, for one release more, the old `X-Exports-Signature` header.

The secret's forms: `whsec_<base64>` (the specification's) keys the HMAC with its decoded
bytes; any other text (a secret saved before the standard signature) keeps working, keyed with
its UTF-8 bytes, which a receiver hands to `Webhook(secret.encode())`. The old header is keyed
with the secret's text as saved, as it always was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from uuid import UUID, uuid4, uuid5

SECRET_PREFIX = "whsec_"
LEGACY_HEADER = "X-Exports-Signature"  # deprecated: sent until the next release only
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def signing_key(secret: str) -> bytes:
    """The HMAC key of `secret`: a `whsec_` secret's base64-decoded bytes, else its UTF-8
    bytes. Raises ValueError for a `whsec_` secret that is not base64 or is empty."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(SECRET_PREFIX) :].rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        key = b""
    if not key:
        raise ValueError(
            "a secret starting with `whsec_` must be base64 after the prefix, e.g. "
            "`whsec_` + base64 of 32 random bytes; a secret without the prefix is used as text"
        )
    return key


def message_id(
    flow_run_id: UUID | None = None, status: str = "", state_id: UUID | None = None
) -> str:
    """The `webhook-id` of one alert: the same for every attempt and every sending of the
    alert of one state change of one run (so a receiver drops a repeat), random when there
    is no run (a test alert)."""
    if flow_run_id is None or state_id is None:
        return f"msg_{uuid4().hex}"
    return f"msg_{uuid5(flow_run_id, f'{status}:{state_id}').hex}"


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def legacy_signature(body: bytes, secret: str) -> str:
    """The deprecated `sha256=<hex HMAC-SHA256 of the body, keyed with the secret's text>`:
    no id, no time, so a captured alert verifies forever."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(msg_id: str, timestamp: int, body: bytes, secret: str | None) -> dict[str, str]:
    """The headers of one attempt: id and send time always, the signatures with a secret."""
    headers = {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp)}
    if secret is not None:
        signature = standard_signature(signing_key(secret), msg_id, timestamp, body)
        headers[SIGNATURE_HEADER] = signature
        headers[LEGACY_HEADER] = legacy_signature(body, secret)
    return headers
