"""How a status alert is signed (flows/core/signing.py), checked by the receiver's side: the
`standardwebhooks` library, as a receiver verifies, never a signature written out here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from uuid import uuid4

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from blocks.alerts import StatusAlerts
from deployments.cli.app import app
from flows.core.signing import LEGACY_HEADER, message_id, signed_headers
from tests.leaks import REGISTRY

pytestmark = pytest.mark.unit

KEY = secrets.token_bytes(32)
STANDARD_SECRET = "whsec_" + base64.b64encode(KEY).decode()
PLAIN_SECRET = "plain-secret-saved-before-the-standard"
REGISTRY.remember("a webhook secret", STANDARD_SECRET)
REGISTRY.remember("a webhook secret", PLAIN_SECRET)
BODY = '{"Export Request Id": "9f0c", "Status": "Completed", "Partner": "Zürich"}'.encode()


def test_a_standard_library_verifies_the_signature_and_refuses_a_stale_or_altered_one() -> None:
    """Issue 24: alerts were signed `X-Exports-Signature: sha256=<HMAC of the body>`, without id
    or time, so a captured alert verified forever and no standard library could check it. Now
    the `standardwebhooks` library verifies them, and refuses one sent 10 minutes ago (its
    signature genuine), one whose time was changed, and one whose body was."""
    msg_id = message_id()
    now = int(time.time())
    receiver = Webhook(STANDARD_SECRET)
    headers = signed_headers(msg_id, now, BODY, STANDARD_SECRET)
    assert headers["webhook-id"] == msg_id and headers["webhook-timestamp"] == str(now)
    assert receiver.verify(BODY, headers)["Status"] == "Completed"
    assert Webhook(KEY).verify(BODY, headers)  # the key itself, as bytes: the same
    stale = signed_headers(msg_id, now - 600, BODY, STANDARD_SECRET)
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiver.verify(BODY, stale)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver.verify(BODY, {**headers, "webhook-timestamp": str(now - 60)})
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver.verify(BODY, {**headers, "webhook-id": message_id()})
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver.verify(BODY.replace(b"Completed", b"Failed\x20\x20\x20"), headers)
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(other).verify(BODY, headers)


def test_a_plain_secret_signs_both_headers() -> None:
    """Issue 24: a secret saved before (any text, no `whsec_`) keeps working: the old header
    as it was (HMAC of the body keyed with the text) and the standard one keyed with the
    text's UTF-8 bytes, which a receiver gives the library as bytes."""
    headers = signed_headers(message_id(), int(time.time()), BODY, PLAIN_SECRET)
    assert Webhook(PLAIN_SECRET.encode()).verify(BODY, headers)
    expected = hmac.new(PLAIN_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[LEGACY_HEADER], f"sha256={expected}")


def test_without_a_secret_an_alert_has_an_id_and_a_time_but_no_signature() -> None:
    """Issue 24: a receiver without a secret still gets the id to drop repeats by."""
    headers = signed_headers("msg_1", 1_700_000_000, BODY, None)
    assert headers == {"webhook-id": "msg_1", "webhook-timestamp": "1700000000"}


def test_one_state_change_is_one_message_id() -> None:
    """Issue 24: the id is the same for each sending of one state change's alert (the hook's,
    the reconciler's again), and differs between state changes and runs; a test alert's is
    new each time."""
    run, state = uuid4(), uuid4()
    assert message_id(run, "Failed", state) == message_id(run, "Failed", state)
    ids = {
        message_id(run, "Failed", state),
        message_id(run, "Failed", uuid4()),
        message_id(run, "Completed", state),
        message_id(uuid4(), "Failed", state),
        message_id(),
        message_id(),
    }
    assert len(ids) == 6 and all(item.startswith("msg_") for item in ids)


def test_a_whsec_secret_that_is_not_base64_is_refused() -> None:
    """Issue 24: a `whsec_` secret's key is its base64 bytes: one that is not base64 is refused
    when the settings are made (block and CLI), not at the first alert, and not echoed."""
    bad = "whsec_not base64!"
    with pytest.raises(ValidationError, match="must be base64 after the prefix"):
        StatusAlerts(enabled=True, url="https://ops.example.com/hook", secret=bad)
    with pytest.raises(ValidationError, match="must be base64 after the prefix"):
        StatusAlerts(secret="whsec_")
    done = CliRunner().invoke(
        app, ["alerts", "enable", "--url", "https://ops.example.com/hook", "--secret", bad]
    )
    assert done.exit_code == 2
    assert "--secret: a secret starting with `whsec_` must be base64" in done.output
    assert bad not in done.output
    unpadded = STANDARD_SECRET.rstrip("=")
    assert StatusAlerts(secret=unpadded).secret is not None  # the library accepts it too
