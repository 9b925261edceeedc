"""API keys of the gateway (Contract 4): make, verify, list and revoke them.

A key is `pex_` + a Fernet token (AES-128-CBC + HMAC-SHA256, from `cryptography`) of compact
JSON claims: key id, deployment (`flow/name`), user, creation time, optional expiry. It is
encrypted under a MultiFernet of master secrets (deployments/gateway/master_secrets.py):
rotation puts a new secret first and keeps the old ones after it, so keys made under an old
secret work until it is removed.

The registry is one Prefect Variable per key, `exports-key-<key id>` tagged `exports-key`,
whose JSON value holds deployment, user, created, expires, revoked_at and last_used (never
the key itself). Variables live on the Prefect server: they survive restarts and every gateway
process sees the same revocations, with no database of our own. A revoked key also carries the
tag `exports-key-revoked`, which is authoritative: the gateway writes `last_used` by updating
the value only, so it can never undo a revocation it did not see.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from pydantic import BaseModel, ConfigDict

from deployments.gateway.master_secrets import ApiKeyError as ApiKeyError
from deployments.gateway.master_secrets import master_secrets
from deployments.gateway.prefect_api import sync_prefect_client

KEY_PREFIX = "pex_"
VARIABLE_PREFIX = "exports-key-"
REGISTRY_TAG = "exports-key"
REVOKED_TAG = "exports-key-revoked"
LAST_USED_EVERY_S = 60.0  # `last_used` is written at most this often per key and process
# A key created later than this ahead of the gateway's clock is refused: Fernet's own limit on
# a token's time ahead (cryptography.fernet's _MAX_CLOCK_SKEW).
MAX_CLOCK_SKEW = timedelta(seconds=60)
MAX_TOKEN_CHARS = 2048
MAX_USER_CHARS = 100
MAX_DEPLOYMENT_CHARS = 300  # the registry value stays far below Prefect's 5000-character limit
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_USER = re.compile(r"^[A-Za-z0-9._@+-]{1,100}$")
_TOKEN = re.compile(r"^pex_[A-Za-z0-9_-]+={0,2}$")
_PAGE = 200  # the Prefect API's largest page

logger = get_logger("exports.keys")


class InvalidKey(Exception):
    """A presented key is not valid. The reason is for the server log only: callers always get
    the same answer, and the reason never contains the key."""


class KeyClaims(BaseModel):
    """What a key says about itself, readable only with a master secret."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    deployment: str  # flow/name, e.g. export/orders-api
    user: str
    created: datetime  # aware, UTC
    expires: datetime | None = None


class KeyRecord(KeyClaims):
    """A key's registry entry: its claims plus what happened to it since."""

    revoked_at: datetime | None = None
    last_used: datetime | None = None

    @property
    def state(self) -> str:
        now = datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        if self.created > now + MAX_CLOCK_SKEW:
            return "not-yet-valid"
        return "active"


# -- tokens -----------------------------------------------------------------------------------


def _encode_claims(claims: KeyClaims) -> bytes:
    compact = {
        "v": 1,
        "k": claims.key_id,
        "d": claims.deployment,
        "u": claims.user,
        "c": int(claims.created.timestamp()),
        "e": int(claims.expires.timestamp()) if claims.expires is not None else None,
    }
    return json.dumps(compact, separators=(",", ":")).encode()


def _decode_claims(data: bytes) -> KeyClaims:
    try:
        compact = json.loads(data)
        if compact.get("v") != 1:
            raise InvalidKey("unknown claims version")
        expires = compact["e"]
        return KeyClaims(
            key_id=str(compact["k"]),
            deployment=str(compact["d"]),
            user=str(compact["u"]),
            created=datetime.fromtimestamp(int(compact["c"]), UTC),
            expires=datetime.fromtimestamp(int(expires), UTC) if expires is not None else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidKey("the claims are malformed") from None


def _token_body(token: str) -> bytes:
    """The Fernet token of a key; refuses anything but the one canonical spelling (base64
    decoding would skip stray characters, so `pex_…!` would otherwise pass)."""
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN.match(token):
        raise InvalidKey("malformed: wrong prefix, characters or length")
    body = token[len(KEY_PREFIX) :].encode()
    try:
        raw = base64.urlsafe_b64decode(body)
    except (binascii.Error, ValueError):
        raise InvalidKey("not base64") from None
    if not secrets.compare_digest(base64.urlsafe_b64encode(raw), body):
        raise InvalidKey("not canonical base64")
    return body


# -- registry ---------------------------------------------------------------------------------


def _variable_name(key_id: str) -> str:
    return f"{VARIABLE_PREFIX}{key_id}"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _registry_value(record: KeyRecord) -> dict[str, Any]:
    return {
        "deployment": record.deployment,
        "user": record.user,
        "created": _iso(record.created),
        "expires": _iso(record.expires),
        "revoked_at": _iso(record.revoked_at),
        "last_used": _iso(record.last_used),
    }


def _record_from(name: str, value: Any, tags: list[str]) -> KeyRecord | None:
    if not isinstance(value, dict) or not name.startswith(VARIABLE_PREFIX):
        return None
    try:
        record = KeyRecord(key_id=name.removeprefix(VARIABLE_PREFIX), **value)
    except (ValueError, TypeError):
        return None
    if REVOKED_TAG in tags and record.revoked_at is None:
        # the tag is authoritative; the value lost its time to a concurrent last_used write
        record = record.model_copy(update={"revoked_at": record.created})
    return record


def _read_record(key_id: str) -> KeyRecord | None:
    with sync_prefect_client() as client:
        variable = client.read_variable_by_name(_variable_name(key_id))
    if variable is None:
        return None
    return _record_from(variable.name, variable.value, list(variable.tags or []))


def _resolve_deployment(deployment: str) -> str:
    if deployment.count("/") != 1 or len(deployment) > MAX_DEPLOYMENT_CHARS:
        raise ApiKeyError(f"deployment `{deployment}` is not FLOW/NAME, e.g. export/orders-api")
    with sync_prefect_client() as client:
        try:
            client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise ApiKeyError(
                f"deployment `{deployment}` is not deployed on {client.api_url}; deploy it "
                "first (`prefect deploy`, `make serve` or `exports serve`)"
            ) from None
    return deployment


def create_key(
    deployment: str, user: str, expires_in_days: float | None = None
) -> tuple[str, KeyRecord]:
    """Make a key for one deployment and register it.

    Args:
        deployment: `flow/name` of a deployment on the Prefect server.
        user: who the key is for (letters, digits, `._@+-`); runs are tagged `user:<user>`.
        expires_in_days: the key stops working this long after now; None: never.

    Returns:
        The key (shown once; only its id is kept) and its registry entry.

    Raises:
        ApiKeyError: no master secret, a bad user, or the deployment is not deployed.
    """
    if not _USER.match(user):
        raise ApiKeyError(
            f"user `{user}` must be 1-{MAX_USER_CHARS} letters, digits or ._@+- characters"
        )
    fernet = master_secrets()
    _resolve_deployment(deployment)
    created = datetime.now(UTC).replace(microsecond=0)
    expires = (
        (created + timedelta(days=expires_in_days)).replace(microsecond=0)
        if expires_in_days is not None
        else None
    )
    record = KeyRecord(
        key_id=secrets.token_hex(8),
        deployment=deployment,
        user=user,
        created=created,
        expires=expires,
    )
    token = KEY_PREFIX + fernet.encrypt(_encode_claims(record)).decode()
    with sync_prefect_client() as client:
        client.create_variable(
            VariableCreate(
                name=_variable_name(record.key_id),
                value=_registry_value(record),
                tags=[REGISTRY_TAG],
            )
        )
    logger.info("API key %s made for %s (user %s)", record.key_id, deployment, user)
    return token, record


_used_lock = threading.Lock()
_used_written: dict[str, float] = {}


def verify_key(token: str) -> KeyClaims:
    """The claims of a valid key.

    Raises:
        InvalidKey: malformed, altered, made under an unknown secret, created more than 60 s
            ahead of now, unknown to the registry, revoked, expired, or its registry entry
            names another deployment or user.
    """
    body = _token_body(token)
    try:
        data = master_secrets().decrypt(body)  # HMAC checked in constant time
    except InvalidToken:
        raise InvalidKey("altered, or made under a master secret that is not configured") from None
    claims = _decode_claims(data)
    if not _KEY_ID.match(claims.key_id):
        raise InvalidKey("the claims are malformed")
    now = datetime.now(UTC)
    if claims.expires is not None and claims.expires <= now:
        raise InvalidKey(f"key {claims.key_id} expired at {claims.expires.isoformat()}")
    if claims.created > now + MAX_CLOCK_SKEW:
        # a clock that ran ahead when it was made, or a key minted with a stolen secret
        raise InvalidKey(
            f"key {claims.key_id} was created at {claims.created.isoformat()}, more than "
            f"{MAX_CLOCK_SKEW.seconds} s ahead of this gateway's clock"
        )
    record = _read_record(claims.key_id)
    if record is None:
        raise InvalidKey(f"key {claims.key_id} is not in the registry")
    if record.revoked_at is not None:
        raise InvalidKey(f"key {claims.key_id} was revoked at {record.revoked_at.isoformat()}")
    if record.deployment != claims.deployment or record.user != claims.user:
        raise InvalidKey(f"key {claims.key_id}: the registry names another deployment or user")
    if record.expires is not None and record.expires <= now:
        raise InvalidKey(f"key {claims.key_id} expired at {record.expires.isoformat()}")
    _note_use(record, now)
    return claims


def _note_use(record: KeyRecord, now: datetime) -> None:
    """Write `last_used` at most once a minute per key (and process); never fails a request."""
    if record.last_used is not None and (now - record.last_used).total_seconds() < (
        LAST_USED_EVERY_S
    ):
        return
    with _used_lock:
        last = _used_written.get(record.key_id)
        if last is not None and time.monotonic() - last < LAST_USED_EVERY_S:
            return
        _used_written[record.key_id] = time.monotonic()
    used = record.model_copy(update={"last_used": now.replace(microsecond=0)})
    try:
        with sync_prefect_client() as client:
            # the value only: tags (the revocation mark) are left as they are
            client.update_variable(
                VariableUpdate(name=_variable_name(record.key_id), value=_registry_value(used))
            )
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not refuse a valid key
        logger.warning("last_used of key %s not written: %s", record.key_id, exc)


def list_keys() -> list[KeyRecord]:
    """Every registered key (never the key itself), oldest first."""
    records: list[KeyRecord] = []
    offset = 0
    with sync_prefect_client() as client:
        while True:
            body = {
                "variables": {"tags": {"all_": [REGISTRY_TAG]}},
                "sort": "NAME_ASC",
                "limit": _PAGE,
                "offset": offset,
            }
            page = client.request("POST", "/variables/filter", json=body).json()
            for item in page:
                record = _record_from(item["name"], item.get("value"), item.get("tags") or [])
                if record is not None:
                    records.append(record)
            if len(page) < _PAGE:
                break
            offset += _PAGE
    return sorted(records, key=lambda record: (record.created, record.key_id))


def revoke_key(key_id: str) -> KeyRecord:
    """Revoke a key by id, at once for every gateway; revoking twice keeps the first time.

    Raises:
        ApiKeyError: no key has that id.
    """
    record = _read_record(key_id) if _KEY_ID.match(key_id) else None
    if record is None:
        raise ApiKeyError(f"no API key `{key_id}`; `exports keys list` shows the key ids")
    if record.revoked_at is None:
        record = record.model_copy(update={"revoked_at": datetime.now(UTC).replace(microsecond=0)})
    with sync_prefect_client() as client:
        client.update_variable(
            VariableUpdate(
                name=_variable_name(key_id),
                value=_registry_value(record),
                tags=[REGISTRY_TAG, REVOKED_TAG],
            )
        )
    logger.info("API key %s revoked", key_id)
    return record
