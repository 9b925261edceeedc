"""The HTTP POST delivery's own logic (flows/destinations/http_post.py `post_files`), against a
receiver made with `httpx.MockTransport`: the headers of each part (X-Export-Part / Parts,
the file's name, its exact length), what is retried (408, 429, 5xx, lost connections: a
TransientDeliveryError the task retries, without re-sending accepted parts) and what is not
(other 4xx, redirects: a DeliveryError with a hint), secrets kept out of every message, and the
spool files removed. The same requests to a real HTTP server, through the flow, are
test_http_post.py's (server tier)."""

from __future__ import annotations

import functools
import gzip
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from blocks.http_post import HttpPostTarget, default_user_agent
from flows.core.errors import ConfigurationError, DeliveryError, TransientDeliveryError
from flows.core.formats import ExportFormat
from flows.core.targets import TargetContext
from flows.destinations import http_post
from flows.destinations.http_post import (
    HTTP_POST,
    SENT_SUFFIX,
    SPOOL_PREFIX,
    SPOOL_SUFFIX,
    file_name,
    post_files,
    remove_spools,
    spool_path,
)
from flows.destinations.store import WrittenFile

# Every test spools to a temp folder of its own (`spool`).
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("spool")]

RUN = "0b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"
SECRET = "Bearer s3cr3t-t0ken-value"
CONTEXT = TargetContext("orders", "nightly", RUN, datetime(2026, 3, 7, tzinfo=UTC), "csv")


@dataclass(frozen=True)
class Destination:
    """The destination parameter as post_files reads it (flows/request.py's DestinationConfig)."""

    url: str = "https://hooks.example.com/in/{export}.{ext}"
    block: str | None = None
    compression: str = "none"
    max_file_mb: float | None = None
    max_file_rows: int | None = None
    encryption: str | None = None  # destination.pgp's layer: pgp or asc

    @property
    def file_codecs(self) -> str:
        return (
            self.compression if self.encryption is None else f"{self.compression}+{self.encryption}"
        )


@dataclass
class Receiver:
    """Answers each POST with the next scripted answer (an httpx.Response, or an exception to
    raise), and keeps what it was sent."""

    answers: list[httpx.Response | Exception] = field(default_factory=list)
    received: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        self.bodies.append(request.read())
        answer = self.answers.pop(0) if self.answers else httpx.Response(200, text="ok")
        if isinstance(answer, Exception):
            raise answer
        return answer


class Logged:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Receiver:
    """Every httpx.Client post_files makes talks to this receiver instead of the network."""
    found = Receiver()
    client = functools.partial(httpx.Client, transport=httpx.MockTransport(found))
    monkeypatch.setattr(httpx, "Client", client)  # the module post_files calls it from
    return found


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The spool folder (the system temp folder) of this test."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def with_block(monkeypatch: pytest.MonkeyPatch) -> HttpPostTarget:
    """A saved HttpPostTarget named `hook`, as post_files loads it (no Prefect API here)."""
    block = HttpPostTarget(
        authorization=SecretStr(SECRET), headers={"X-Tenant": "acme"}, accept="application/json"
    )

    def load(block_type: type, name: str) -> HttpPostTarget:
        assert (block_type, name) == (HttpPostTarget, "hook")
        return block

    monkeypatch.setattr(http_post, "load_block", load)
    return block


def spooled(
    destination: Destination, parts: list[bytes], context: TargetContext = CONTEXT
) -> list[WrittenFile]:
    """Parts as the writers leave them: the rendered URL and a spool file each."""
    written = []
    for number, data in enumerate(parts, start=1):
        url, temp = HTTP_POST.part_paths(
            None,  # the spool needs no filesystem
            destination.url,
            context,
            number,
            split=destination.max_file_mb is not None,
            compression=destination.file_codecs,
        )
        Path(temp).write_bytes(data)
        written.append(WrittenFile(url, temp, rows=data.count(b"\n"), bytes=len(data)))
    return written


def post(
    destination: Destination,
    files: list[WrittenFile],
    fmt: ExportFormat = "csv",
    content_type: str | None = None,
) -> tuple[list[str], Logged]:
    logged = Logged()
    return post_files(destination, files, CONTEXT, fmt, logged, content_type), logged


def left_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize(
    ("fmt", "compression", "content_type", "name"),
    [
        ("csv", "none", "text/csv; charset=utf-8", "orders.csv"),
        ("json", "none", "application/json", "orders.json"),
        ("jsonl", "none", "application/x-ndjson", "orders.jsonl"),
        ("xml", "none", "application/xml", "orders.xml"),
        ("parquet", "none", "application/vnd.apache.parquet", "orders.parquet"),
        ("csv", "gzip", "application/gzip", "orders.csv.gz"),
        ("csv", "zstd", "application/zstd", "orders.csv.zst"),
        ("jsonl", "bz2", "application/x-bzip2", "orders.jsonl.bz2"),
        ("xml", "xz", "application/x-xz", "orders.xml.xz"),
    ],
)
def test_one_file_is_one_post_with_its_headers_and_exact_bytes(
    endpoint: Receiver,
    spool: Path,
    fmt: ExportFormat,
    compression: str,
    content_type: str,
    name: str,
) -> None:
    ext = "parquet" if fmt == "parquet" else fmt
    context = TargetContext("orders", "nightly", RUN, CONTEXT.date, ext)
    destination = Destination(compression=compression)
    data = b"id,name\r\n1,\xc3\xa9\r\n" if compression == "none" else gzip.compress(b"x\n")
    files = spooled(destination, [data], context)
    logged = Logged()
    delivered = post_files(destination, files, context, fmt, logged)
    assert delivered == [f"https://hooks.example.com/in/orders.{ext}"]
    [request] = endpoint.received
    assert request.method == "POST"
    assert str(request.url) == f"https://hooks.example.com/in/orders.{ext}"
    assert endpoint.bodies == [data]
    headers = request.headers
    assert headers["Content-Type"] == content_type
    assert headers["Content-Length"] == str(len(data))
    assert headers["X-Export-Filename"] == name
    assert (headers["X-Export-Part"], headers["X-Export-Parts"]) == ("1", "1")
    assert headers["X-Export-Request-Id"] == RUN
    assert headers["User-Agent"] == default_user_agent()
    assert "Authorization" not in headers
    assert logged.lines == [
        f"posted {name} (part 1 of 1, {len(data)} bytes) to "
        f"https://hooks.example.com/in/orders.{ext}: 200"
    ]
    assert left_in(spool) == [os.path.basename(files[0].temp_path) + SENT_SUFFIX]


@pytest.mark.parametrize(
    ("encryption", "name"), [("pgp", "orders.csv.gz.pgp"), ("asc", "orders.csv.gz.asc")]
)
def test_an_encrypted_file_is_posted_as_pgp_encrypted(
    endpoint: Receiver, spool: Path, encryption: str, name: str
) -> None:
    destination = Destination(compression="gzip", encryption=encryption)
    data = b"\x84^\x03 an OpenPGP message"
    files = spooled(destination, [data])
    post_files(destination, files, CONTEXT, "csv", Logged())
    [request] = endpoint.received
    assert endpoint.bodies == [data]
    assert left_in(spool) == [os.path.basename(files[0].temp_path) + SENT_SUFFIX]
    assert request.headers["Content-Type"] == "application/pgp-encrypted"
    assert request.headers["X-Export-Filename"] == name


def test_parts_are_posted_in_order_numbered_and_their_spools_removed(
    endpoint: Receiver, spool: Path
) -> None:
    destination = Destination(max_file_mb=1)
    files = spooled(destination, [b"a\n", b"b\n", b"c\n"])
    delivered, logged = post(destination, files)
    assert delivered == ["https://hooks.example.com/in/orders.csv"] * 3
    assert endpoint.bodies == [b"a\n", b"b\n", b"c\n"]
    assert [
        (r.headers["X-Export-Part"], r.headers["X-Export-Parts"], r.headers["X-Export-Filename"])
        for r in endpoint.received
    ] == [
        ("1", "3", "orders-0001.csv"),
        ("2", "3", "orders-0002.csv"),
        ("3", "3", "orders-0003.csv"),
    ]
    assert len(logged.lines) == 3
    assert all(name.endswith(SENT_SUFFIX) for name in left_in(spool))
    remove_spools(files)
    assert left_in(spool) == []


@pytest.mark.usefixtures("with_block")
def test_the_blocks_headers_and_secret_are_sent_and_the_url_reported_without_its_query(
    endpoint: Receiver,
) -> None:
    destination = Destination(
        url="https://hooks.example.com/in?token=abc&name={export}", block="hook"
    )
    files = spooled(destination, [b"1\n"])
    delivered, logged = post(destination, files)
    assert delivered == ["https://hooks.example.com/in"]
    [request] = endpoint.received
    assert str(request.url) == "https://hooks.example.com/in?token=abc&name=orders"
    assert request.headers["Authorization"] == SECRET
    assert request.headers["X-Tenant"] == "acme"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["X-Export-Filename"] == "orders.csv"  # `in` has no dot
    assert "abc" not in logged.lines[0] and SECRET not in logged.lines[0]


def test_a_stylesheets_content_type_is_sent_as_given(endpoint: Receiver) -> None:
    files = spooled(Destination(), [b"<html/>"])
    post(Destination(), files, "xml", "text/html; charset=utf-8")
    assert endpoint.received[0].headers["Content-Type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (408, "Request Timeout"),
        (429, "Too Many Requests"),
        (500, "Internal Server Error"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
    ],
)
def test_a_transient_answer_is_retried_without_resending_accepted_parts(
    endpoint: Receiver, status: int, reason: str
) -> None:
    """Part 2 of 3 gets a transient answer: the task's retry (post_files again) sends parts 2
    and 3 only, since part 1 was accepted."""
    endpoint.answers = [httpx.Response(200), httpx.Response(status, text="busy, try later")]
    destination = Destination(max_file_mb=1)
    files = spooled(destination, [b"a\n", b"b\n", b"c\n"])
    with pytest.raises(TransientDeliveryError) as caught:
        post(destination, files)
    assert str(caught.value) == (
        "cannot deliver `https://hooks.example.com/in/orders.csv` to HTTP: the receiver "
        f"answered {status} {reason} (busy, try later) (retried; check the receiver is healthy)"
    )
    post(destination, files)
    assert [r.headers["X-Export-Part"] for r in endpoint.received] == ["1", "2", "2", "3"]
    assert endpoint.bodies == [b"a\n", b"b\n", b"b\n", b"c\n"]


@pytest.mark.parametrize(
    ("status", "reason", "hint"),
    [
        (400, "Bad Request", "the receiver rejected the body; check it expects this format"),
        (401, "Unauthorized", "check the Authorization header in the HttpPostTarget block "
                              "(destination.block)"),
        (403, "Forbidden", "check the Authorization header in the HttpPostTarget block "
                           "(destination.block)"),
        (404, "Not Found", "check destination.url"),
        (405, "Method Not Allowed", "the URL does not accept POST; check destination.url"),
        (413, "Request Entity Too Large", "the file is too large for the receiver; set "
                                          "destination.max_file_mb to send parts"),
        (415, "Unsupported Media Type", "the receiver does not accept this Content-Type; "
                                        "choose another format or set Content-Type in the "
                                        "block's headers"),
        (422, "Unprocessable Entity", "check destination.url and the block's headers"),
    ],
)  # fmt: skip
def test_a_refusal_fails_at_once_with_a_hint(
    endpoint: Receiver, spool: Path, status: int, reason: str, hint: str
) -> None:
    endpoint.answers = [httpx.Response(status)]
    files = spooled(Destination(), [b"a\n"])
    with pytest.raises(DeliveryError) as caught:
        post(Destination(), files)
    assert not isinstance(caught.value, TransientDeliveryError)
    assert str(caught.value) == (
        f"cannot deliver `https://hooks.example.com/in/orders.csv` to HTTP: the receiver "
        f"answered {status} {reason}; {hint}"
    )
    assert len(endpoint.received) == 1
    assert left_in(spool) == [os.path.basename(files[0].temp_path)]  # the flow removes it


def test_a_later_part_refused_names_the_parts_already_accepted(endpoint: Receiver) -> None:
    endpoint.answers = [httpx.Response(200), httpx.Response(200), httpx.Response(400)]
    destination = Destination(max_file_mb=1)
    with pytest.raises(DeliveryError) as caught:
        post(destination, spooled(destination, [b"a\n", b"b\n", b"c\n"]))
    assert str(caught.value).endswith(
        "the receiver answered 400 Bad Request; the receiver rejected the body; check it "
        "expects this format; the 2 part(s) before it were accepted by the receiver and cannot "
        "be taken back"
    ), caught.value


def test_a_redirect_is_not_followed(endpoint: Receiver) -> None:
    endpoint.answers = [
        httpx.Response(307, headers={"Location": "https://u:pw@new.example.com/in?sig=x"})
    ]
    with pytest.raises(DeliveryError) as caught:
        post(Destination(), spooled(Destination(), [b"a\n"]))
    assert str(caught.value) == (
        "cannot deliver `https://hooks.example.com/in/orders.csv` to HTTP: the receiver "
        "answered 307 Temporary Redirect; it redirects to `https://new.example.com/in`, and a "
        "POST is not followed: put that URL in destination.url"
    )
    assert len(endpoint.received) == 1


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "ConnectError"),
        (httpx.ReadTimeout("timed out"), "ReadTimeout"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."),
         "RemoteProtocolError"),
        (httpx.WriteError("Broken pipe"), "WriteError"),
    ],
)  # fmt: skip
def test_a_lost_connection_is_transient(endpoint: Receiver, error: Exception, kind: str) -> None:
    endpoint.answers = [error]
    with pytest.raises(TransientDeliveryError) as caught:
        post(Destination(), spooled(Destination(), [b"a\n"]))
    assert str(caught.value) == (
        f"cannot deliver `https://hooks.example.com/in/orders.csv` to HTTP: {kind}: {error}; "
        "the receiver did not answer or dropped the connection (retried; check it is up and "
        "reachable)"
    )


def test_another_client_error_is_permanent(endpoint: Receiver) -> None:
    endpoint.answers = [httpx.UnsupportedProtocol("Request URL has an unsupported protocol")]
    with pytest.raises(DeliveryError) as caught:
        post(Destination(), spooled(Destination(), [b"a\n"]))
    assert type(caught.value) is DeliveryError
    assert str(caught.value).endswith(
        "to HTTP: UnsupportedProtocol: Request URL has an unsupported protocol"
    )


@pytest.mark.usefixtures("with_block")
@pytest.mark.parametrize(
    "echo",
    [
        f"refused header Authorization: {SECRET}",
        "unknown token s3cr3t-t0ken-value",
        f'{{"error": "bad credentials", "got": "{SECRET}"}}',
    ],
    ids=["whole header", "credentials only", "json body"],
)
def test_a_receiver_that_echoes_the_secret_never_puts_it_in_the_message(
    endpoint: Receiver, echo: str
) -> None:
    endpoint.answers = [httpx.Response(401, text=echo)]
    destination = Destination(block="hook")
    with pytest.raises(DeliveryError) as caught:
        post(destination, spooled(destination, [b"a\n"]))
    message = str(caught.value)
    assert "s3cr3t" not in message, message
    assert "***" in message, message
    assert message.startswith(
        "cannot deliver `https://hooks.example.com/in/orders.csv` to HTTP: the receiver "
        "answered 401 Unauthorized ("
    ), message


@pytest.mark.usefixtures("with_block")
def test_a_connection_error_that_quotes_the_secret_is_redacted(endpoint: Receiver) -> None:
    endpoint.answers = [httpx.ConnectError(f"proxy refused {SECRET}")]
    destination = Destination(block="hook")
    with pytest.raises(TransientDeliveryError) as caught:
        post(destination, spooled(destination, [b"a\n"]))
    assert "ConnectError: proxy refused ***;" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_long_answer_is_quoted_short_on_one_line(endpoint: Receiver) -> None:
    endpoint.answers = [httpx.Response(400, text="line one\n\n  line two\t" + "x" * 500)]
    with pytest.raises(DeliveryError) as caught:
        post(Destination(), spooled(Destination(), [b"a\n"]))
    quoted = str(caught.value).split("400 Bad Request (", 1)[1].split(")", 1)[0]
    assert quoted == ("line one line two " + "x" * 500)[:200]


@pytest.mark.parametrize(
    ("url", "max_file_mb", "compression", "number", "name"),
    [
        ("https://h.example.com/in/{export}.{ext}", None, "none", 1, "orders.csv"),
        ("https://h.example.com/in/{export}.{ext}", 2, "none", 3, "orders-0003.csv"),
        ("https://h.example.com/in/{export}.{ext}", None, "gzip", 1, "orders.csv.gz"),
        ("https://h.example.com/in/{export}.{ext}", 2, "gzip", 2, "orders-0002.csv.gz"),
        ("https://h.example.com/in/{export}-{part}.{ext}", 2, "none", 2, "orders-2.csv"),
        ("https://h.example.com/in", None, "none", 1, "orders.csv"),
        ("https://h.example.com/in/", 2, "none", 4, "orders-0004.csv"),
        ("https://h.example.com/in/.env", None, "none", 1, "orders.csv"),
        ("https://h.example.com/in/data.tar.gz", None, "gzip", 1, "data.tar.gz"),
        ("https://h.example.com/in/{export}.{ext}", 2, "zstd", 1, "orders-0001.csv.zst"),
        ("https://h.example.com/in/{export}.{ext}", None, "bz2", 1, "orders.csv.bz2"),
        ("https://h.example.com/in/{export}.{ext}", 2, "xz", 3, "orders-0003.csv.xz"),
        ("https://h.example.com/in/data.xz", None, "xz", 1, "data.xz"),
        ("https://h.example.com/in/report%20%C3%A9.csv", None, "none", 1, "report é.csv"),
        ("https://h.example.com/in/{export}.{ext}?v=1", None, "none", 1, "orders.csv"),
    ],
)
def test_the_file_name_the_receiver_is_told(
    url: str, max_file_mb: float | None, compression: str, number: int, name: str
) -> None:
    destination = Destination(url=url, max_file_mb=max_file_mb, compression=compression)
    rendered = url.format(export="orders", ext="csv", part=number)
    item = WrittenFile(rendered, "/spool/x", rows=1, bytes=1)
    assert file_name(destination, CONTEXT, item, number) == name


def test_a_name_that_is_not_ascii_travels_percent_encoded(endpoint: Receiver) -> None:
    context = TargetContext("bestellungen-ü", "nightly", RUN, CONTEXT.date, "csv")
    destination = Destination()
    post_files(destination, spooled(destination, [b"a\n"], context), context, "csv", Logged())
    assert endpoint.received[0].headers["X-Export-Filename"] == "bestellungen-%C3%BC.csv"


def test_a_spool_file_is_a_new_file_of_the_run_in_the_temp_folder(spool: Path) -> None:
    first, second = spool_path(RUN), spool_path(RUN)
    assert first != second
    for path in (first, second):
        name = os.path.basename(path)
        assert os.path.dirname(path) == str(spool)
        assert name.startswith(f"{SPOOL_PREFIX}{RUN[:8]}-") and name.endswith(SPOOL_SUFFIX)


def test_remove_spools_removes_files_and_markers_whatever_is_left(spool: Path) -> None:
    files = spooled(Destination(max_file_mb=1), [b"a", b"b", b"c"])
    Path(files[0].temp_path).unlink()
    Path(files[0].temp_path + SENT_SUFFIX).touch()
    Path(files[1].temp_path + SENT_SUFFIX).touch()
    remove_spools(files)
    remove_spools(files)  # twice: nothing left to remove is no error
    assert left_in(spool) == []


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("https://user:pw@hooks.example.com/in", "carries a user name or password before `@`"),
        ("https:///in", "has no host; write it as https://host[:port]/path"),
        ("https://hooks.example.com/{nope}", "unknown token `{nope}`"),
    ],
)
def test_a_receiver_url_is_checked_before_the_run(template: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        HTTP_POST.check_url(template)
    assert str(caught.value).startswith("destination.url: "), caught.value
    assert says in str(caught.value)
    assert "pw@" not in str(caught.value)
