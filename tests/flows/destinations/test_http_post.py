"""Delivery by HTTP POST, against a real HTTP receiver on loopback (tests/servers/receiver.py).

What a user checks: the receiver gets every cell as one complete body with the promised
headers, a failed export sends nothing, transient answers are retried and permanent ones are
not, messages never show the Authorization value or the URL's query string, and no spool file
is left in the temp folder.
"""

from __future__ import annotations

import gzip
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from blocks import HttpPostTarget
from flows.core.errors import DeliveryError, TransientDeliveryError
from flows.core.formats import ExportFormat, file_extension, media_type
from flows.destinations.http_post import SPOOL_PREFIX
from flows.export import export
from flows.request import DestinationConfig
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import (
    failed_error,
    failed_message,
    failing_source,
    measure_large_exports,
)
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.leaks import REGISTRY
from tests.servers.ports import free_port
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "json", "xml", "parquet", "xlsx")
TOKEN = "Bearer test-token-5f2c9a"
QUERY_SECRET = "qs-secret-81d4"
REGISTRY.remember("the HTTP POST block's token", TOKEN)


@pytest.fixture
def http_block() -> str:
    HttpPostTarget(
        authorization=TOKEN,
        accept="application/json",
        user_agent="exports-tests/1.0",
        headers={"X-Tenant": "acme"},
        timeout_s=30,
    ).save("test-http", overwrite=True)
    return "test-http"


@pytest.fixture
def no_spool_left() -> Iterator[None]:
    """Fails the test if it leaves a spool file (or a `.sent` marker) in the temp folder."""
    before = spool_files()
    yield
    assert spool_files() - before == set(), "a spool file was left in the temp folder"


def spool_files() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*")}


def demo_source(demo_db: Path) -> dict[str, Any]:
    return {"url": f"sqlite:///{demo_db}", "table": "orders"}


@pytest.mark.usefixtures("no_spool_left")
class TestRoundTrip:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_every_cell_and_header_arrives(
        self, demo_db: Path, receiver: WebhookReceiver, http_block: str, tmp_path: Path,
        fmt: ExportFormat,
    ) -> None:  # fmt: skip
        ext = file_extension(fmt)
        result = export(
            source=demo_source(demo_db),
            destination={
                "url": f"{receiver.url}/ingest/{{export}}.{{ext}}?token={QUERY_SECRET}",
                "block": http_block,
            },
            format=fmt,
        )
        assert result.files == [f"{receiver.url}/ingest/orders.{ext}"]
        [request] = receiver.requests
        assert request.path == f"/ingest/orders.{ext}?token={QUERY_SECRET}"
        assert request.header("Authorization") == TOKEN
        assert request.header("Accept") == "application/json"
        assert request.header("User-Agent") == "exports-tests/1.0"
        assert request.header("X-Tenant") == "acme"
        assert request.header("Content-Type") == media_type(fmt)
        assert request.header("Content-Length") == str(len(request.body)) == str(result.bytes)
        assert request.header("Transfer-Encoding") is None
        assert request.header("X-Export-Filename") == f"orders.{ext}"
        assert (request.header("X-Export-Part"), request.header("X-Export-Parts")) == ("1", "1")
        assert request.header("X-Export-Request-Id") == result.export_request_id
        path = tmp_path / f"received.{ext}"
        path.write_bytes(request.body)
        assert_round_trip(fmt, path, demo_dataset("orders"))

    def test_plain_post_without_a_block(self, demo_db: Path, receiver: WebhookReceiver) -> None:
        result = export(source=demo_source(demo_db), destination={"url": f"{receiver.url}/"})
        assert result.files == [f"{receiver.url}/"]
        [request] = receiver.requests
        assert request.header("Authorization") is None
        assert (request.header("User-Agent") or "").startswith("prefect-exports/")
        assert request.header("X-Export-Filename") == "orders.csv"  # no file name in the URL
        assert request.header("Content-Type") == "text/csv; charset=utf-8"
        assert len(request.body) == result.bytes and request.body.startswith(b"order_id,")

    def test_the_content_type_names_the_encoding_and_the_stylesheets_type(
        self, demo_db: Path, receiver: WebhookReceiver
    ) -> None:
        export(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/latin"},
            format_options={"encoding": "latin-1", "on_unencodable": "replace"},
        )
        stylesheet = Path(__file__).parents[3] / "definitions" / "fixed_width.xsl"
        export(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/text"},
            format="xml",
            format_options={"xslt": str(stylesheet)},
        )
        latin, text = receiver.requests
        assert latin.header("Content-Type") == "text/csv; charset=iso-8859-1"
        assert text.header("Content-Type") == "text/plain; charset=utf-8"
        assert text.header("X-Export-Filename") == "orders.txt"
        assert text.body.startswith(b"1  ")

    def test_gzip_parts_are_posted_in_order(
        self, demo_db: Path, receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        local = export(
            source=demo_source(demo_db),
            destination={"url": f"{tmp_path}/local/{{export}}.{{ext}}"},
            format="jsonl",
        )
        remote = export(
            source={**demo_source(demo_db), "chunk_rows": 100},
            destination={"url": f"{receiver.url}/hook", "max_file_mb": 0.02, "compression": "gzip"},
            format="jsonl",
        )
        parts = len(receiver.requests)
        assert parts > 1
        assert remote.files == [f"{receiver.url}/hook"] * parts
        for number, request in enumerate(receiver.requests, start=1):
            assert request.path == "/hook"
            assert request.header("Content-Type") == "application/gzip"
            assert request.header("X-Export-Filename") == f"orders-{number:04d}.jsonl.gz"
            assert request.header("X-Export-Part") == str(number)
            assert request.header("X-Export-Parts") == str(parts)
        whole = b"".join(gzip.decompress(request.body) for request in receiver.requests)
        assert whole == Path(local.files[0]).read_bytes()

    @pytest.mark.parametrize(
        ("codec", "media_type", "tool"),
        [
            ("zstd", "application/zstd", "/usr/bin/zstd"),
            ("bz2", "application/x-bzip2", "/usr/bin/bzip2"),
            ("xz", "application/x-xz", "/usr/bin/xz"),
        ],
    )
    def test_a_compressed_file_is_posted_with_its_codecs_type(
        self,
        demo_db: Path,
        receiver: WebhookReceiver,
        tmp_path: Path,
        codec: str,
        media_type: str,
        tool: str,
    ) -> None:
        local = export(
            source=demo_source(demo_db), destination={"url": f"{tmp_path}/{{export}}.{{ext}}"}
        )
        export(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook", "compression": codec},
        )
        [request] = receiver.requests
        suffix = {"zstd": ".zst", "bz2": ".bz2", "xz": ".xz"}[codec]
        assert request.header("Content-Type") == media_type
        assert request.header("X-Export-Filename") == f"orders.csv{suffix}"
        body = tmp_path / f"body{suffix}"
        body.write_bytes(request.body)
        plain = subprocess.run([tool, "-d", "-c", str(body)], check=True, capture_output=True)
        assert plain.stdout == Path(local.files[0]).read_bytes()


@pytest.mark.usefixtures("no_spool_left", "no_retry_waits")  # attempts count, not waits
class TestFaults:
    def test_503_then_ok_is_retried(
        self, demo_db: Path, receiver: WebhookReceiver, http_block: str
    ) -> None:
        receiver.answer(503, 200)
        result = export(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook", "block": http_block},
        )
        assert [r.status for r in receiver.requests] == [503, 200]
        first, second = receiver.requests
        assert first.body == second.body and len(second.body) == result.bytes

    def test_a_retry_does_not_resend_accepted_parts(
        self, demo_db: Path, receiver: WebhookReceiver
    ) -> None:
        receiver.answer(200, 503)
        result = export(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook", "max_file_mb": 0.05},
            format="jsonl",
        )
        parts = [request.header("X-Export-Part") for request in receiver.requests]
        assert len(result.files) > 2
        assert parts == ["1", "2"] + [str(n) for n in range(2, len(result.files) + 1)]
        assert [r.status for r in receiver.requests][:3] == [200, 503, 200]

    def test_500_forever_fails_after_the_retries(
        self, demo_db: Path, receiver: WebhookReceiver, http_block: str
    ) -> None:
        receiver.default_status = 500
        message = failed_message(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook?token={QUERY_SECRET}", "block": http_block},
        )
        assert f"cannot deliver `{receiver.url}/hook` to HTTP" in message
        assert "answered 500 Internal Server Error" in message and "retried" in message
        assert QUERY_SECRET not in message
        assert len(receiver.requests) == 3  # the post task and its two retries

    @pytest.mark.parametrize(
        ("status", "hint"),
        [
            (401, "check the Authorization header in the HttpPostTarget block"),
            (404, "check destination.url"),
            (413, "set destination.max_file_mb"),
        ],
    )
    def test_refusal_fails_at_once_without_the_secret(
        self, demo_db: Path, receiver: WebhookReceiver, http_block: str, status: int, hint: str
    ) -> None:
        receiver.default_status = status
        receiver.echo_authorization = True  # the body quotes the token back
        error = failed_error(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook?token={QUERY_SECRET}", "block": http_block},
        )
        message = str(error)
        assert len(receiver.requests) == 1, "a permanent refusal was retried"
        assert type(error) is DeliveryError  # its facts: the store and the URL as shown
        assert (error.store, error.target) == ("HTTP", f"{receiver.url}/hook")
        assert f"cannot deliver `{receiver.url}/hook` to HTTP" in message
        assert f"answered {status} " in message and hint in message
        assert "bad credentials ***" in message  # the receiver's explanation, redacted
        assert TOKEN.split()[1] not in message and QUERY_SECRET not in message

    def test_connection_refused_is_transient(self, demo_db: Path) -> None:
        url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        error = failed_error(source=demo_source(demo_db), destination={"url": url})
        message = str(error)
        assert isinstance(error, TransientDeliveryError)
        assert (error.store, error.target) == ("HTTP", url)
        assert f"cannot deliver `{url}` to HTTP: ConnectError" in message
        assert "did not answer or dropped the connection (retried" in message

    def test_later_part_refused_names_the_parts_already_accepted(
        self, demo_db: Path, receiver: WebhookReceiver
    ) -> None:
        receiver.answer(200, 400)
        message = failed_message(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook", "max_file_mb": 0.05},
            format="jsonl",
        )
        assert [r.status for r in receiver.requests] == [200, 400]
        assert "the 1 part(s) before it were accepted by the receiver" in message

    def test_error_mid_export_sends_nothing(
        self, receiver: WebhookReceiver, http_block: str, tmp_path: Path
    ) -> None:
        message = failed_message(
            source=failing_source(tmp_path, text="x", fail_at=10_000),
            destination={"url": f"{receiver.url}/hook", "block": http_block},
        )
        assert "cannot deliver" not in message  # the source failed, not the delivery
        assert receiver.requests == [], "a failed export sent a request"


class TestConfiguration:
    def test_credentials_in_the_url_are_refused(self, demo_db: Path) -> None:
        message = failed_message(
            source=demo_source(demo_db),
            destination={"url": "https://user:hunter2@hooks.example.com/in"},
        )
        assert "destination.url: `https://hooks.example.com/in` carries a user name" in message
        assert "HttpPostTarget block" in message and "hunter2" not in message

    @pytest.mark.parametrize("url", ["https:///no-host", "http://{export}@host/x"])
    def test_bad_urls_fail_before_the_run(self, url: str) -> None:
        with pytest.raises(ValidationError, match="destination.url: "):
            DestinationConfig(url=url)

    def test_missing_block_is_named(self, receiver: WebhookReceiver, demo_db: Path) -> None:
        message = failed_message(
            source=demo_source(demo_db),
            destination={"url": f"{receiver.url}/hook", "block": "no-such-http-block"},
        )
        assert "no saved HttpPostTarget block named `no-such-http-block`" in message
        assert receiver.requests == []


class TestLargeBody:
    def test_24_and_48_mb_bodies_are_streamed_with_flat_memory(
        self, receiver: WebhookReceiver, tmp_path: Path
    ) -> None:
        report = measure_large_exports(
            {"url": f"{receiver.url}/large"}, tmp_path, (50_000, 100_000)
        )
        print(f"\nHTTP POST bodies: {report.line()}")  # noqa: T201
        sizes, growth = report.sizes_mib, report.growth_mb
        assert sizes[0] > 20 and sizes[1] > 40
        bodies = [request.body for request in receiver.requests[1:]]
        assert [len(body) for body in bodies] == report.bytes
        assert bodies[1].endswith(f"{100_000:010d}".encode() * 50 + b"\n")
        # Flat: doubling the body adds almost nothing. (The ~14 MB of growth is the CSV
        # writer's working set: a local export of the same rows grows as much.)
        assert growth[1] - growth[0] < 8, report
        assert growth[1] < sizes[1] / 2, report
