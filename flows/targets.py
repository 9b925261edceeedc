"""Destination URL templates: which tokens exist, how they render, which schemes we deliver to."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flows.errors import ConfigurationError

TEMPLATE_TOKENS = ("export", "deployment", "run_id", "date", "ext", "part", "since", "until")
# Tokens that only render for a run with a window (flows/window.py).
WINDOW_TOKENS = ("since", "until")
# Schemes this release delivers to; object stores arrive with their blocks.
LOCAL_SCHEMES = ("file", "local")
# The finished file is POSTed to the URL (flows/http_post.py); it names an endpoint, not a file.
HTTP_SCHEMES = ("http", "https")
SUPPORTED_SCHEMES = (*LOCAL_SCHEMES, "s3", "gs", "gcs", "az", "abfs", "sftp", *HTTP_SCHEMES)
PART_SUFFIX = "-{part:04d}"


@dataclass(frozen=True)
class TargetContext:
    """The values a destination template's tokens render from."""

    export: str
    deployment: str
    run_id: str
    date: datetime
    ext: str
    # The run's window, in the window's time zone; None for runs without one.
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def sample(cls) -> TargetContext:
        return cls(
            "export",
            "deployment",
            "00000000-0000-0000-0000-000000000000",
            datetime(2000, 1, 1, tzinfo=UTC),
            "csv",
            datetime(1999, 12, 31, tzinfo=UTC),
            datetime(2000, 1, 1, tzinfo=UTC),
        )


def url_scheme(url: str) -> str:
    """The scheme of a destination URL; a plain path is `file`."""
    head, sep, _ = url.partition("://")
    if not sep or len(head) == 1:  # no scheme, or a Windows drive letter
        return "file"
    return head.lower()


def display_url(url: str) -> str:
    """The form of a destination URL that may be logged and reported: no user or password,
    no query string and no fragment (webhook URLs often carry a token in the query)."""
    if url_scheme(url) in LOCAL_SCHEMES:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def template_fields(template: str) -> list[tuple[str, str]]:
    """The (token, format spec) pairs in a template, raising on unknown tokens."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(
            f"destination.url: template `{template}` is malformed ({exc}); "
            "tokens look like {export} or {date:%Y-%m-%d}, and a literal brace is written {{ or }}"
        ) from exc
    fields: list[tuple[str, str]] = []
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_TOKENS:
            raise ConfigurationError(
                f"destination.url: unknown token `{{{name}}}` in `{template}`; "
                f"use one of {', '.join('{' + t + '}' for t in TEMPLATE_TOKENS)}"
            )
        fields.append((name, spec or ""))
    return fields


def validate_template(template: str, *, split: bool) -> None:
    """Fail before the run starts if the template cannot render a usable path."""
    scheme = url_scheme(template)
    if scheme not in SUPPORTED_SCHEMES:
        raise ConfigurationError(
            f"destination.url: scheme `{scheme}://` is not supported; "
            f"use a local path or one of {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}"
        )
    if scheme == "sftp":
        _check_server_url(template)
    template_fields(template)
    if scheme in HTTP_SCHEMES:
        _check_http_url(template)
    try:
        render_target(template, TargetContext.sample(), part=1 if split else None)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"destination.url: template `{template}` cannot be rendered ({exc}); "
            "check the format spec after the colon, e.g. {date:%Y/%m/%d} or {part:03d}"
        ) from exc
    if scheme not in HTTP_SCHEMES and template.rstrip().endswith(("/", "\\")):
        raise ConfigurationError(
            f"destination.url: `{template}` names a folder; end it with a file name, "
            "e.g. out/{export}-{date:%Y%m%d}.{ext}"
        )


def _check_server_url(template: str) -> None:
    """A server URL names its host, and never a password: URLs are logged and shown."""
    netloc = template.partition("://")[2].partition("/")[0]
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        raise ConfigurationError(
            f"destination.url: `sftp://{user}:***@{hostport}/...` carries a password, and URLs "
            "are logged; save the password in an SftpCredentials block, name it in "
            f"destination.block and write sftp://{user}@{hostport}/..."
        )
    try:
        parts = urlsplit(template)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(
            f"destination.url: `{template}` has no valid host and port ({exc}); "
            "write sftp://host[:port]/path/{export}.{ext}"
        ) from None
    if not parts.hostname or "{" in netloc or port == 0:
        raise ConfigurationError(
            f"destination.url: `{template}` must name a server (no template tokens there); "
            "write sftp://host[:port]/path/{export}.{ext}"
        )


def _check_http_url(template: str) -> None:
    """A webhook URL needs a host, and credentials belong in the block (kept secret), not in
    the URL (visible in the run's parameters and easily logged)."""
    netloc = urlsplit(template).netloc
    if "@" in netloc:
        raise ConfigurationError(
            f"destination.url: `{display_url(template)}` carries a user name or password "
            "before `@`; remove it and put the whole Authorization header value (e.g. "
            '"Basic ..." or "Bearer ...") in an HttpPostTarget block named in destination.block'
        )
    if not netloc:
        raise ConfigurationError(
            f"destination.url: `{template}` has no host; write it as "
            "https://host[:port]/path, e.g. https://hooks.example.com/exports"
        )


def with_part_token(template: str) -> str:
    """Add a part number before the extension when a split export's template has none."""
    if any(name == "part" for name, _ in template_fields(template)):
        return template
    slash = max(template.rfind("/"), template.rfind("\\"))
    dot = template.find(".", slash + 1)
    if dot <= slash + 1:  # no extension (or a dotfile): append
        return template + PART_SUFFIX
    return template[:dot] + PART_SUFFIX + template[dot:]


def uses_window_tokens(template: str) -> list[str]:
    """The window tokens ({since}, {until}) a template uses, in order of first use."""
    names = [name for name, _ in template_fields(template) if name in WINDOW_TOKENS]
    return list(dict.fromkeys(names))


def render_target(template: str, ctx: TargetContext, *, part: int | None) -> str:
    """The URL of one output file."""
    values: dict[str, Any] = {
        "export": ctx.export,
        "deployment": ctx.deployment,
        "run_id": ctx.run_id,
        "date": _DateToken(ctx.date),
        "ext": ctx.ext,
        "part": part if part is not None else 1,
    }
    if ctx.since is not None and ctx.until is not None:
        values["since"] = _DateToken(ctx.since, WINDOW_TOKEN_FORMAT)
        values["until"] = _DateToken(ctx.until, WINDOW_TOKEN_FORMAT)
    else:
        check_window_tokens(template, has_window=False)
    return template.format_map(values)


# {since} / {until} without a format spec: sortable and safe in file and object names.
WINDOW_TOKEN_FORMAT = "%Y%m%dT%H%M%S"


def _no_window_message(template: str, token: str) -> str:
    return (
        f"destination.url: `{{{token}}}` in `{template}` needs a window; use :since / :until "
        "in source.query (or set `window`), or remove the token"
    )


def check_window_tokens(template: str, *, has_window: bool) -> None:
    """Fail when the template uses {since} or {until} but the run has no window."""
    if has_window:
        return
    for token in uses_window_tokens(template):
        raise ConfigurationError(_no_window_message(template, token))


class _DateToken:
    """`{date}` renders as YYYY-MM-DD; `{date:%Y/%m}` uses strftime."""

    def __init__(self, value: datetime, default: str = "%Y-%m-%d") -> None:
        self.value = value
        self.default = default

    def __format__(self, spec: str) -> str:
        return self.value.strftime(spec or self.default)
