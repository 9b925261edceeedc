"""Which failures of a store may pass on their own (retried by the task) and which will not.

The stores' SDKs are asked first: the exception's type (timeouts, refused and dropped
connections; each store adds its SDK's own types) and the HTTP status it carries (botocore's
`response`, azure-core's `status_code`, gcsfs's `code`). s3fs and adlfs turn the SDK's errors into
plain OSErrors or RuntimeErrors and keep the original as the cause, so the whole chain is looked
at. The words of the message decide only when no type or status says anything.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator

from flows.core.errors import first_line, is_transient_status

# Words of a failure that may pass on its own, for errors that carry no type or status to go
# by: timeouts, refused or dropped connections, throttling (the last resort).
_TRANSIENT_WORDS = (
    "timed out", "timeout", "connection refused", "could not connect", "connection was closed",
    "connection reset", "connection aborted", "server disconnected", "connection dropped",
    "socket is closed", "cannot connect to host", "slowdown", "throttl",
)  # fmt: skip


def is_transient_failure(
    exc: BaseException, sdk_transient: Callable[[BaseException], bool] | None = None
) -> bool:
    """True when sending again may succeed. `sdk_transient` recognises the store's own SDK
    exceptions for a lost or refused connection."""
    chain = list(_chain(exc))
    for current in chain:
        if isinstance(current, TimeoutError | ConnectionError | EOFError):
            return True
        if _is_aiohttp_connection_error(current):
            return True
        if sdk_transient is not None and sdk_transient(current):
            return True
        if is_transient_status(http_status(current)):
            return True
    return any(
        word in f" {first_line(current).lower()}" for current in chain for word in _TRANSIENT_WORDS
    )


# How a full disk or an exhausted quota is worded where no errno comes with it: OpenSSH's
# sftp-server and asyncssh send the OS's text (SFTP v3 has no status for it).
_FULL_DISK_WORDS = ("no space left", "no space on", "disk full", "disk is full", "quota exceeded")


def full_disk(exc: BaseException) -> str | None:
    """The words of a full disk or an exhausted quota in the error's chain, else None. Such a
    failure does not pass between attempts, and "check the folder exists" sends users the
    wrong way: the stores say the disk is full instead."""
    for current in _chain(exc):
        strerror = current.strerror if isinstance(current, OSError) else None
        text = strerror or first_line(current)
        if getattr(current, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or any(
            word in text.lower() for word in _FULL_DISK_WORDS
        ):
            return text
    return None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a store's SDK error carries: botocore's `response` dict, azure-core's
    `status_code`, gcsfs's `code`."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code if isinstance(code, int) else None
    for name in ("status_code", "code"):
        code = getattr(exc, name, None)
        if isinstance(code, int) and 100 <= code <= 599:
            return code
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_aiohttp_connection_error(exc: BaseException) -> bool:
    """aiohttp (under s3fs, gcsfs and adlfs) failing to connect or losing the connection;
    looked up only if aiohttp is loaded, since otherwise none of its errors can exist."""
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(
        exc, aiohttp.ClientConnectionError | aiohttp.ServerTimeoutError
    )
