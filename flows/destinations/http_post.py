"""Delivery by HTTP POST: each finished file goes to the destination URL as one request's body.

While rows are written, the file is spooled to a local temporary file (`spool_path`); only
the finished file is sent. So a failed export sends nothing, a retried POST re-sends the same
bytes without reading the database again, and the request carries an exact Content-Length.
The body is streamed from disk in chunks: memory holds one chunk, not the file.

An answer of 2xx is success. 408, 429, 5xx, timeouts and refused or dropped connections are
transient (`TransientDeliveryError`: the `post_files` task retries them); any other answer is
permanent and fails at once with a hint. A part the receiver accepted cannot be taken back.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx
from fsspec import AbstractFileSystem

from blocks.http_post import HttpPostTarget, default_user_agent
from flows.core.codecs import with_codec_suffix
from flows.core.errors import (
    ConfigurationError,
    DeliveryError,
    TransientDeliveryError,
    first_line,
    is_transient_status,
)
from flows.core.formats import ExportFormat, media_type
from flows.core.targets import (
    TargetContext,
    check_rendered,
    check_targets,
    check_template,
    check_token_values,
    render_target,
    template_fields,
)
from flows.core.urls import without_secrets
from flows.destinations.store import Store, WrittenFile, load_block

SPOOL_PREFIX = "prefect-exports-"
SPOOL_SUFFIX = ".spool"
SENT_SUFFIX = ".sent"  # marks a spooled part the receiver accepted (see `post_files`)
READ_CHUNK = 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
SNIPPET_CHARS = 200  # of a refusal's body, quoted in the error message
ANSWER_BYTES = 64 * 1024  # of an answer's body, read at most
_AUTH_HINT = "check the Authorization header in the HttpPostTarget block (destination.block)"
HINTS = {
    400: "the receiver rejected the body; check it expects this format",
    401: _AUTH_HINT,
    403: _AUTH_HINT,
    404: "check destination.url",
    405: "the URL does not accept POST; check destination.url",
    413: "the file is too large for the receiver; set destination.max_file_mb to send parts",
    415: (
        "the receiver does not accept this Content-Type; choose another format or set "
        "Content-Type in the block's headers"
    ),
}


class HttpPost(Store):
    """An endpoint, not a file: the URL is rendered from the template like any other (tokens
    allowed anywhere; no part number or `.gz` is added), the file is spooled to a local
    temporary file while rows are written, and publishing is one POST of the finished file."""

    name = "HTTP"
    schemes = ("http", "https")
    protocol = "file"  # the spool
    block_types = (HttpPostTarget,)

    @property
    def writes_to(self) -> str:
        return f"{self.name} (local spool file)"  # a failure while rows are written

    def full_disk_advice(self) -> str:
        """Which folder to free: the spool folder is the process's (TMPDIR), not the
        destination's. Named in the run's error and log only; alerts and the gateway show an
        error's kind and field, never its text."""
        return (
            f"free space in the spool folder `{spool_folder()}` (the system temp folder; set "
            "TMPDIR to spool elsewhere)"
        )

    def check_url(self, template: str) -> None:
        """A webhook URL needs a host, and credentials belong in the block (kept secret), not in
        the URL (visible in the run's parameters and easily logged)."""
        template_fields(template)
        netloc = urlsplit(template).netloc
        if "@" in netloc:
            raise ConfigurationError(
                f"destination.url: `{without_secrets(template)}` carries a user name or password "
                "before `@`",
                field="destination.url",
                hint="remove it and put the whole Authorization header value (e.g. "
                '"Basic ..." or "Bearer ...") in an HttpPostTarget block named in '
                "destination.block",
            )
        if not netloc:
            raise ConfigurationError(
                f"destination.url: `{template}` has no host",
                field="destination.url",
                hint="write it as https://host[:port]/path, e.g. https://hooks.example.com/exports",
            )

    def check_template(self, template: str, *, split: bool) -> None:
        """An endpoint, not a file: the URL need not end in a file name."""
        check_template(template, split=split, names_file=False)

    def check_targets(
        self,
        template: str,
        context: TargetContext,
        *,
        split: bool,
        compression: str,
        manifest: bool,
    ) -> None:
        check_targets(
            template,
            context,
            split=split,
            names_file=False,
            compression=compression,
            manifest=manifest,
        )

    def check_manifest(self) -> None:
        raise ConfigurationError(
            "destination.manifest: an HTTP receiver gets each file as a POST, with "
            "X-Export-Part / X-Export-Parts; a manifest is written next to files in a "
            "folder or a bucket",
            field="destination.manifest",
        )

    def check_done_marker(self) -> None:
        raise ConfigurationError(
            "destination.done_marker: an HTTP receiver gets each file as a POST, with "
            "X-Export-Part / X-Export-Parts; a completion marker is written next to files in "
            "a folder or a bucket",
            field="destination.done_marker",
            hint="remove destination.done_marker, or deliver to a store",
        )

    def check_remote_workers(self, url: str) -> None:  # noqa: ARG002 - the interface of every store
        raise ConfigurationError(
            "runner.dask: an HTTP destination is POSTed from the flow's process, which cannot "
            "read the parts Dask workers spool on their machines",
            field="runner.dask",
            hint="remove `runner` or deliver to a store",
        )

    def filesystem(self, url: str, block_name: str | None) -> AbstractFileSystem:  # noqa: ARG002 - the interface of every store
        import fsspec

        return fsspec.filesystem("file")  # the spool; the block is read when posting

    def part_paths(
        self,
        fs: AbstractFileSystem,  # noqa: ARG002 - the interface of every store
        template: str,
        context: TargetContext,
        number: int,
        *,
        split: bool,  # noqa: ARG002 - the receiver numbers parts by X-Export-Part
        compression: str,  # noqa: ARG002 - the file name travels in a header
    ) -> tuple[str, str]:
        url = render_target(template, context, part=number)
        check_token_values(context)
        check_rendered(template, url, names_file=False)
        return url, spool_path(context.run_id)

    def prepare(self, fs: AbstractFileSystem, final_path: str, run_id: str, *, first: bool) -> None:  # noqa: ARG002 - the interface of every store
        """The spool folder is the system's temp folder: nothing to prepare."""

    def shown(self, fs: AbstractFileSystem, path: str, scheme: str) -> str:  # noqa: ARG002 - the interface of every store
        return without_secrets(path)


class HttpDestination(Protocol):
    """What posting needs of the destination parameter (flows/request.py's DestinationConfig)."""

    @property
    def url(self) -> str: ...
    @property
    def block(self) -> str | None: ...
    @property
    def compression(self) -> str: ...
    @property
    def file_codecs(self) -> str: ...
    @property
    def max_file_mb(self) -> float | None: ...
    @property
    def max_file_rows(self) -> int | None: ...


class _Logger(Protocol):
    def info(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class _Request:
    """One POST: where to, which spooled file, and the headers (the secret among them)."""

    url: str
    shown: str
    path: str
    headers: dict[str, str]


def spool_folder() -> str:
    """Where parts are spooled: the system temp folder (TMPDIR, TEMP or TMP, else /tmp)."""
    return tempfile.gettempdir()


def spool_path(run_id: str) -> str:
    """A new local file in the spool folder, for one part of one run."""
    name = f"{SPOOL_PREFIX}{run_id[:8]}-{uuid.uuid4().hex[:8]}{SPOOL_SUFFIX}"
    return os.path.join(spool_folder(), name)


def remove_spools(files: Sequence[WrittenFile]) -> None:
    """Delete the spool files and their markers, whatever happened to the POSTs."""
    for item in files:
        for path in (item.temp_path, item.temp_path + SENT_SUFFIX):
            Path(path).unlink(missing_ok=True)


def post_files(
    destination: HttpDestination,
    files: Sequence[WrittenFile],
    context: TargetContext,
    fmt: ExportFormat,
    logger: _Logger,
    content_type: str | None = None,
) -> list[str]:
    """POST each spooled file, in order; returns the URLs posted to (without query strings).

    The task calling this is retried on transient failures: parts the receiver accepted in an
    earlier attempt (their spool file replaced by a `.sent` marker) are not sent again.
    """
    block = load_block(HttpPostTarget, destination.block) if destination.block else None
    base = block.request_headers() if block else {"User-Agent": default_user_agent()}
    secrets = _secret_values(base.get("Authorization"))
    timeout = block.timeout_s if block else DEFAULT_TIMEOUT_S
    verify = block.verify_tls if block else True
    delivered: list[str] = []
    with httpx.Client(timeout=timeout, verify=verify, follow_redirects=False) as client:
        for number, item in enumerate(files, start=1):
            if Path(item.temp_path + SENT_SUFFIX).exists():  # accepted in an earlier attempt
                delivered.append(without_secrets(item.final_path))
                continue
            request = _request(
                destination, context, (fmt, content_type), item, base, number, len(files)
            )
            try:
                status = _post(client, request, secrets)
            except DeliveryError as exc:
                if number > 1 and not isinstance(exc, TransientDeliveryError):
                    raise DeliveryError(
                        f"{exc}; the {number - 1} part(s) before it were accepted by the "
                        "receiver and cannot be taken back",
                        store=exc.store,
                        target=exc.target,
                    ) from exc
                raise
            Path(item.temp_path).unlink(missing_ok=True)
            Path(item.temp_path + SENT_SUFFIX).touch()
            logger.info(
                "posted %s (part %s of %s, %s bytes) to %s: %s",
                request.headers["X-Export-Filename"],
                number,
                len(files),
                request.headers["Content-Length"],
                request.shown,
                status,
            )
            delivered.append(request.shown)
    return delivered


def _request(
    destination: HttpDestination,
    context: TargetContext,
    format_and_type: tuple[ExportFormat, str | None],
    item: WrittenFile,
    base: dict[str, str],
    number: int,
    parts: int,
) -> _Request:
    """The headers of one part: defaults, then the block's, then the ones we compute."""
    fmt, content_type = format_and_type
    headers = {"Content-Type": content_type or media_type(fmt, destination.file_codecs), **base}
    headers.update(
        {
            "Content-Length": str(os.path.getsize(item.temp_path)),
            "X-Export-Filename": _header_text(file_name(destination, context, item, number)),
            "X-Export-Part": str(number),
            "X-Export-Parts": str(parts),
            "X-Export-Request-Id": context.run_id,
        }
    )
    return _Request(item.final_path, without_secrets(item.final_path), item.temp_path, headers)


def file_name(
    destination: HttpDestination, context: TargetContext, item: WrittenFile, number: int
) -> str:
    """The file's name for the receiver: the URL's last path segment if it looks like a file
    name (has a dot), else `{export}.{ext}`; numbered and `.gz` (or the codec's extension)
    like a file on disk."""
    segment = unquote(urlsplit(item.final_path).path.rsplit("/", 1)[-1])
    name = segment if "." in segment.lstrip(".") else f"{context.export}.{context.ext}"
    has_part = any(token == "part" for token, _ in template_fields(destination.url))
    split = destination.max_file_mb is not None or destination.max_file_rows is not None
    if split and not has_part:
        dot = name.find(".", 1)
        name = f"{name}-{number:04d}" if dot < 0 else f"{name[:dot]}-{number:04d}{name[dot:]}"
    return with_codec_suffix(name, destination.file_codecs)


def _header_text(value: str) -> str:
    """Header values are ASCII on the wire: percent-encode anything else."""
    return value if value.isascii() and value.isprintable() else quote(value, safe=" ")


def _body(path: str) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(READ_CHUNK):
            yield chunk


def _post(client: httpx.Client, request: _Request, secrets: list[str]) -> int:
    """Send one part; its status code if 2xx, else a typed error."""
    target = f"cannot deliver `{request.shown}` to {HTTP_POST.name}"
    try:
        with client.stream(
            "POST", request.url, content=_body(request.path), headers=request.headers
        ) as response:
            answer = _read_start(response)  # and lets the connection be reused
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise TransientDeliveryError(
            f"{target}: {type(exc).__name__}: {_redact(first_line(exc), secrets)}; the receiver "
            "did not answer or dropped the connection (retried; check it is up and reachable)",
            store=HTTP_POST.name,
            target=request.shown,
        ) from exc
    except httpx.HTTPError as exc:
        raise DeliveryError(
            f"{target}: {type(exc).__name__}: {_redact(first_line(exc), secrets)}",
            store=HTTP_POST.name,
            target=request.shown,
        ) from exc
    status = response.status_code
    if response.is_success:
        return status
    snippet = " ".join(answer.decode("utf-8", "replace").split())[:SNIPPET_CHARS]
    snippet = f" ({_redact(snippet, secrets)})" if snippet else ""
    answered = f"{target}: the receiver answered {status} {response.reason_phrase}{snippet}"
    if is_transient_status(status):
        raise TransientDeliveryError(
            f"{answered} (retried; check the receiver is healthy)",
            store=HTTP_POST.name,
            target=request.shown,
        )
    if response.is_redirect:
        location = without_secrets(response.headers.get("Location", "?"))
        raise DeliveryError(
            f"{answered}; it redirects to `{location}`, and a POST is not followed: put that "
            "URL in destination.url",
            store=HTTP_POST.name,
            target=request.shown,
        )
    hint = HINTS.get(status, "check destination.url and the block's headers")
    raise DeliveryError(f"{answered}; {hint}", store=HTTP_POST.name, target=request.shown)


def _read_start(response: httpx.Response) -> bytes:
    """The start of the answer's body (a refusal explains itself there); a longer body is
    not read, and its connection is closed instead of reused."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= ANSWER_BYTES:
            break
    return data


def _secret_values(authorization: str | None) -> list[str]:
    """The Authorization value and its credentials part (after "Bearer "), longest first."""
    if not authorization:
        return []
    values = {authorization.strip(), authorization.strip().partition(" ")[2].strip()}
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    """A receiver may echo the header it refused: never let the secret into a message."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


HTTP_POST = HttpPost()
