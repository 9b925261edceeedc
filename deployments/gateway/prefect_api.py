"""The gateway's Prefect API clients, without the cost Prefect puts on each new one.

Prefect's `get_client()` builds a new `ssl.SSLContext` for every client it makes, loading the
whole CA bundle (about 20 ms of CPU here, holding the GIL), even for an http:// API. The
gateway makes a client per request (and the key check another): under a burst of 150
triggers that was seconds of CPU, and the event loop starved (issue 17: /healthz took 5 s to
answer). One context per TLS setting, made once, serves every client of the process.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import certifi
from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY


@functools.cache
def _tls_context(cert_file: str, verify: bool) -> ssl.SSLContext:
    """What Prefect's client would build for these settings (certificates checked against
    PREFECT_API_SSL_CERT_FILE or certifi's bundle, unless PREFECT_API_TLS_INSECURE_SKIP_VERIFY)."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cert_file)


def _settings() -> dict[str, Any]:
    verify = not PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()
    cert_file = (PREFECT_API_SSL_CERT_FILE.value() or certifi.where()) if verify else ""
    return {"verify": _tls_context(cert_file, verify)}


def prefect_client() -> PrefectClient:
    """`get_client()`, sharing this process's TLS context (use as `async with`)."""
    return get_client(httpx_settings=_settings())


def sync_prefect_client() -> SyncPrefectClient:
    """`get_client(sync_client=True)`, sharing this process's TLS context (use as `with`)."""
    return get_client(httpx_settings=_settings(), sync_client=True)
