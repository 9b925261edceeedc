"""Which Blob service requests carry the block's encryption scope: those that write a blob's
data, never a read, a listing, a delete or a container's request."""

from __future__ import annotations

import pytest

from flows.destinations.azure import writes_data

pytestmark = pytest.mark.unit

BLOB = "https://acme.blob.core.windows.net/exports/daily/orders.csv"


@pytest.mark.parametrize(
    ("method", "url", "writes"),
    [
        ("PUT", BLOB, True),  # Put Blob, Copy Blob From URL
        ("PUT", f"{BLOB}?comp=block&blockid=QUFB", True),
        ("PUT", f"{BLOB}?comp=blocklist", True),
        ("PUT", f"{BLOB}?comp=metadata", False),
        ("PUT", "https://acme.blob.core.windows.net/exports?restype=container", False),
        ("GET", BLOB, False),
        ("HEAD", BLOB, False),
        ("DELETE", BLOB, False),
        ("GET", "https://acme.blob.core.windows.net/exports?restype=container&comp=list", False),
    ],
)  # fmt: skip
def test_only_requests_that_write_data_carry_the_scope(method: str, url: str, writes: bool) -> None:
    assert writes_data(method, url) is writes
