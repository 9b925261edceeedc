"""The master secrets of the API keys: a MultiFernet whose first key encrypts new keys and
whose every key decrypts (deployments/gateway/keys.py).

They come from `EXPORTS_KEY_SECRETS` (comma-separated Fernet keys, the current first), else
from the Prefect `Secret` block `exports-key-secrets` holding the same text, which a process
reads again after SECRETS_TTL_S. `init_secret` saves the block; with `rotate` it prepends a
new secret, and the old ones verify until they are removed from the block.
"""

from __future__ import annotations

import binascii
import os
import threading
import time
from typing import Any

import httpx
from cryptography.fernet import Fernet, MultiFernet
from prefect.logging import get_logger

SECRETS_ENV = "EXPORTS_KEY_SECRETS"
SECRETS_BLOCK = "exports-key-secrets"
SECRETS_TTL_S = 30.0  # how long a process keeps the Secret block's value before reading it again


class ApiKeyError(Exception):
    """An operator's request about keys cannot be done (no secret, unknown deployment or key)."""


logger = get_logger("exports.keys")
_secrets_lock = threading.Lock()
_secrets_cache: tuple[float, MultiFernet] | None = None


def _parse_secrets(text: str, origin: str) -> list[Fernet]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise ApiKeyError(f"{origin} is empty; run `exports keys init-secret`")
    fernets = []
    for index, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, binascii.Error):
            raise ApiKeyError(
                f"{origin}: secret {index} is not a Fernet key (32 url-safe base64 bytes); "
                "make one with `exports keys init-secret`"
            ) from None
    return fernets


def _read_block_secrets() -> str | None:
    from prefect.blocks.system import Secret

    try:
        block: Any = Secret.load(SECRETS_BLOCK)
    except ValueError:  # no such block
        return None
    return str(block.get())


def master_secrets() -> MultiFernet:
    """The MultiFernet of the configured master secrets (the first one encrypts).

    Raises:
        ApiKeyError: no secret is configured, or one is not a Fernet key.
    """
    global _secrets_cache
    from_env = os.environ.get(SECRETS_ENV)
    if from_env:
        return MultiFernet(_parse_secrets(from_env, SECRETS_ENV))
    with _secrets_lock:
        if _secrets_cache is not None and time.monotonic() - _secrets_cache[0] < SECRETS_TTL_S:
            return _secrets_cache[1]
        try:
            text = _read_block_secrets()
        except httpx.HTTPError as exc:
            if _secrets_cache is None:
                raise
            # The Prefect API is down: keep verifying with the secrets read last (a key they
            # do not open is refused, 401, instead of every request answering 503), and read
            # the block again on the next request.
            logger.warning("master secrets not read again (%s): using the last ones", exc)
            return _secrets_cache[1]
        if text is None:
            raise ApiKeyError(
                f"no master secret for API keys: set {SECRETS_ENV} (comma-separated Fernet "
                f"keys, the current first) or run `exports keys init-secret` to save the "
                f"Secret block `{SECRETS_BLOCK}`"
            )
        fernet = MultiFernet(_parse_secrets(text, f"Secret block `{SECRETS_BLOCK}`"))
        _secrets_cache = (time.monotonic(), fernet)
        return fernet


def forget_secrets() -> None:
    """Read the master secrets afresh next time (after init-secret, and in tests)."""
    global _secrets_cache
    with _secrets_lock:
        _secrets_cache = None


def init_secret(rotate: bool = False) -> int:
    """Save a new master secret in the Secret block; with `rotate`, before the existing ones.

    Returns:
        How many secrets the block holds now.

    Raises:
        ApiKeyError: the block exists and `rotate` is not set.
    """
    from prefect.blocks.system import Secret

    current = _read_block_secrets()
    if current is not None and not rotate:
        raise ApiKeyError(
            f"the Secret block `{SECRETS_BLOCK}` already exists; use --rotate to put a new "
            "secret before it (keys made under the old one keep working)"
        )
    if rotate and current is None:
        raise ApiKeyError(f"no Secret block `{SECRETS_BLOCK}` to rotate; run without --rotate")
    old = _parse_secrets(current, f"Secret block `{SECRETS_BLOCK}`") if current else []
    kept = [part.strip() for part in (current or "").split(",") if part.strip()]
    assert len(old) == len(kept)
    value = ",".join([Fernet.generate_key().decode(), *kept])
    Secret(value=value).save(SECRETS_BLOCK, overwrite=True)
    forget_secrets()
    return len(kept) + 1
