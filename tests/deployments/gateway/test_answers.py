"""What the gateway's answers may say (Contract 4), as pure rules: the files' download names,
the public URL its links start with, errors as the Failed alert renders them."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from deployments.gateway.app import IN_GATEWAY_LOG, base_url, set_public_url
from deployments.gateway.run_status import download_names
from flows.alerts.errors import alert_error
from flows.core.errors import ConfigurationError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("paths", "names"),
    [
        ([], []),
        (["/srv/exports/tenant-a/orders.csv"], ["orders.csv"]),
        (["s3://bucket/out/orders-1.csv", "s3://bucket/out/orders-2.csv"],
         ["orders-1.csv", "orders-2.csv"]),
        (["/srv/out/region=eu/x.parquet", "/srv/out/region=us/x.parquet"],
         ["region=eu/x.parquet", "region=us/x.parquet"]),
    ],
)  # fmt: skip
def test_files_are_named_below_the_folder_they_share(paths: list[str], names: list[str]) -> None:
    assert download_names(paths) == names


@pytest.mark.parametrize(
    "url", ["exports.example.com", "ftp://exports.example.com", "https://", "http://h/?a=1",
            "http://h/#top"],
)  # fmt: skip
def test_a_public_url_is_an_http_url_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="is not an http"):
        set_public_url(url)


def _request(server: tuple[str, int] | None) -> Request:
    return Request({"type": "http", "server": server, "headers": [(b"host", b"evil.example")]})


def test_links_start_with_the_public_url_or_the_address_reached() -> None:
    """Never with the Host header a caller sent."""
    assert base_url(_request(("127.0.0.1", 8787))) == "http://127.0.0.1:8787"
    assert base_url(_request(("::1", 8787))) == "http://[::1]:8787"
    assert base_url(_request(None)) == ""  # a unix socket: the links are paths
    set_public_url("https://exports.example.com/api/")
    try:
        assert base_url(_request(("127.0.0.1", 8787))) == "https://exports.example.com/api"
    finally:
        set_public_url(None)


def test_a_refused_window_names_its_field_only() -> None:
    """The gateway's 422 is the Failed alert's rendering, pointing at the gateway's log."""
    error = ConfigurationError(
        "window: source is the table `orders`, which a window cannot filter; use source.query, "
        "e.g. SELECT * FROM orders WHERE ts >= :since AND ts < :until, or remove `window`",
        field="window",
    )
    assert alert_error(error, IN_GATEWAY_LOG) == (
        "ConfigurationError: window is not valid; the gateway's log has the details"
    )
