"""Destination URL templates: which tokens exist and how they render into each file's URL.

What a URL's scheme means (which store, and its own rules for the URL) is the store registry's
(flows/destinations/registry.py); this module knows no store.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows.core.codecs import codec_suffix, with_codec_suffix
from flows.core.errors import ConfigurationError
from flows.core.urls import url_scheme, without_secrets

TEMPLATE_TOKENS = ("export", "deployment", "run_id", "date", "ext", "part", "since", "until")
# Tokens that only render for a run with a window (flows/sources/window.py).
WINDOW_TOKENS = ("since", "until")
PART_SUFFIX = "-{part:04d}"
# The longest file or folder name, in bytes of UTF-8: ext4, XFS, Btrfs, APFS, NTFS and SFTP
# servers on them. Every store keeps to it, so an export moves between stores unchanged.
MAX_NAME_BYTES = 255
MANIFEST_SUFFIX = ".manifest.json"
# What an export name may not hold: a folder separator (the template owns folders), control
# characters and line separators (a newline in a file name, a NUL no filesystem takes).
_SEPARATORS = ("/", "\\")
_CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")


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


def shown_template(template: str) -> str:
    """A template as a refusal quotes it: a server's URL without its user, password, query and
    fragment (a refused URL may carry them), a path as written."""
    if "://" not in template:
        return template
    try:
        return without_secrets(template)
    except ValueError:  # not even a URL urlsplit reads (e.g. an unclosed [)
        return template.partition("://")[0] + "://…"


def template_fields(template: str) -> list[tuple[str, str]]:
    """The (token, format spec) pairs in a template, raising on unknown tokens."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(
            f"destination.url: template `{shown_template(template)}` is malformed ({exc}); "
            "tokens look like {export} or {date:%Y-%m-%d}, and a literal brace is written {{ or }}",
            field="destination.url",
        ) from exc
    fields: list[tuple[str, str]] = []
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_TOKENS:
            raise ConfigurationError(
                f"destination.url: unknown token `{{{name}}}` in `{shown_template(template)}`",
                field="destination.url",
                hint=f"use one of {', '.join('{' + t + '}' for t in TEMPLATE_TOKENS)}",
            )
        fields.append((name, spec or ""))
    return fields


def check_template(template: str, *, split: bool, names_file: bool = True) -> None:
    """Fail before the run starts if the template cannot render a usable path: unknown tokens,
    a bad format spec, or (where the URL `names_file`) a folder instead of a file name."""
    template_fields(template)
    try:
        render_target(template, TargetContext.sample(), part=1 if split else None)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"destination.url: template `{shown_template(template)}` cannot be rendered ({exc})",
            field="destination.url",
            hint="check the format spec after the colon, e.g. {date:%Y/%m/%d} or {part:03d}",
        ) from exc
    if names_file and template.rstrip().endswith(("/", "\\")):
        raise ConfigurationError(
            f"destination.url: `{shown_template(template)}` names a folder; end it with a file "
            "name, e.g. out/{export}-{date:%Y%m%d}.{ext}",
            field="destination.url",
        )
    check_targets(template, TargetContext.sample(), split=split, names_file=names_file)


def check_targets(
    template: str,
    context: TargetContext,
    *,
    split: bool,
    names_file: bool = True,
    compression: str = "none",
    manifest: bool = False,
) -> None:
    """Fail before the run starts if a file it would write leaves the template's folder or
    cannot be written: rendered with this run's values (the export's name and extension), the
    first part's name, with the codec's `.gz`/`.zst`/..., and the manifest's
    (`check_rendered`)."""
    check_token_values(context)
    template = with_part_token(template) if split and names_file else template
    url = render_target(template, context, part=1)
    if names_file:
        url = with_codec_suffix(url, compression)
    check_rendered(template, url, names_file=names_file)
    if manifest and names_file:
        check_rendered(template, manifest_name(url, context.ext, compression), names_file=True)


def manifest_name(final: str, ext: str, compression: str = "none") -> str:
    """The manifest next to the files: an unsplit export's file name, its extension (and
    the codec's, or `.gz`) replaced by `.manifest.json`, e.g.
    out/orders-20260301.manifest.json."""
    for suffix in dict.fromkeys((codec_suffix(compression), ".gz")):  # `.gz` once, as before
        final = final.removesuffix(suffix)
    return final.removesuffix(f".{ext}") + MANIFEST_SUFFIX


# `destination.done_marker`'s tokens: the URL's, but `{part}` (one marker for the whole set).
MARKER_TOKENS = tuple(token for token in TEMPLATE_TOKENS if token != "part")


def check_done_marker(
    marker: str, template: str, context: TargetContext, *, split: bool, compression: str
) -> None:
    """Fail before the run when the completion marker cannot be one file next to the files:
    a folder in it, an unknown token (or `{part}`), a window token without a window, a name
    the stores cannot write (`name_problem`), or the name of a file or manifest of the run."""
    field = "destination.done_marker"
    shown = _shown(marker)
    if any(sep in marker for sep in _SEPARATORS):
        raise ConfigurationError(
            f"{field}: `{shown}` has a folder in it; the marker is written in the folder of "
            "the files",
            field=field,
            hint="give a file name only, e.g. _SUCCESS or {export}-{date:%Y%m%d}.done",
        )
    try:
        parsed = list(string.Formatter().parse(marker))
    except ValueError as exc:
        raise ConfigurationError(
            f"{field}: template `{shown}` is malformed ({exc})",
            field=field,
            hint="tokens look like {export} or {date:%Y%m%d}, and a literal brace is {{ or }}",
        ) from exc
    tokens = [name for _, name, _, _ in parsed if name is not None]
    for token in tokens:
        if token not in MARKER_TOKENS:
            raise ConfigurationError(
                f"{field}: unknown token `{{{token}}}` in `{shown}` (one marker stands for "
                "every part)",
                field=field,
                hint=f"use one of {', '.join('{' + t + '}' for t in MARKER_TOKENS)}",
            )
    if context.since is None and (window := [t for t in tokens if t in WINDOW_TOKENS]):
        raise ConfigurationError(
            f"{field}: `{{{window[0]}}}` in `{shown}` needs a window",
            field=field,
            hint="use :since / :until in source.query (or set `window`), or remove the token",
        )
    try:
        name = render_target(marker, context, part=None)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"{field}: template `{shown}` cannot be rendered ({exc})",
            field=field,
            hint="check the format spec after the colon, e.g. {date:%Y%m%d}",
        ) from exc
    problem = name_problem(name)
    if problem is not None:
        raise ConfigurationError(
            f"{field}: `{shown}` renders `{_shown(name)}`, which {problem}",
            field=field,
            hint="use letters, digits, `-`, `_` and `.`, e.g. _SUCCESS",
        )
    first = render_target(with_part_token(template) if split else template, context, part=1)
    first = with_codec_suffix(first, compression)
    taken = {_file_name(first), _file_name(manifest_name(first, context.ext, compression))}
    if name in taken:
        raise ConfigurationError(
            f"{field}: `{shown}` renders `{_shown(name)}`, a name of the export's own files",
            field=field,
            hint="give the marker a name of its own, e.g. _SUCCESS",
        )


def marker_name(marker: str, context: TargetContext) -> str:
    """The completion marker's file name, rendered with the run's values."""
    return render_target(marker, context, part=None)


def _file_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def name_problem(value: str) -> str | None:
    """Why `value` cannot be one file name of an export (`{export}`, `{deployment}`), or None:
    a `/` or `\\` (the template owns folders), a control character, a leading `.` (hidden
    names are the exports' temporary files, and `..` leaves the folder), or more than 255 bytes.
    """
    if not value:
        return "is empty"
    if any(sep in value for sep in _SEPARATORS):
        sep = next(sep for sep in _SEPARATORS if sep in value)
        return (
            f"has a `{sep}`; it is one file name, and the folders are destination.url's "
            "(e.g. out/tenant-a/{export}.{ext})"
        )
    if (control := _control_character(value)) is not None:
        return f"has a control character ({control}), which no file name should hold"
    if value.startswith("."):
        return (
            "starts with `.`; hidden names are the exports' temporary files, and `..` leaves "
            "the folder"
        )
    size = len(value.encode())
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes of UTF-8; a file name holds at most {MAX_NAME_BYTES}"
    return None


def check_token_values(context: TargetContext) -> None:
    """The values that become one file or folder name each: the export's name (the `name`
    parameter, or the table's) and the deployment's."""
    check_name("name", context.export)
    check_name("{deployment}", context.deployment)


def check_name(field: str, value: str) -> None:
    """Fail naming `field` when `value` cannot be one file name of an export (`name_problem`)."""
    problem = name_problem(value)
    if problem is not None:
        raise ConfigurationError(
            f"{field}: `{_shown(value)}` {problem}",
            field=field,
            hint="use letters, digits, spaces, `-`, `_` and `.`",
        )


def check_rendered(template: str, url: str, *, names_file: bool = True) -> None:
    """Fail if the URL `template` rendered to leaves the template's folder or cannot be
    written: a `..` segment, an empty one (`//`), an absolute path from a relative template, a
    control character, or (where the URL names a file) a name of more than 255 bytes."""
    path, template_path = _path_of(url), _path_of(template)
    where = f"destination.url: `{shown_template(template)}` renders `{_shown(path)}`"
    if (control := _control_character(url)) is not None:
        raise ConfigurationError(
            f"{where}, with a control character ({control}); remove it from the template or the "
            "values of its tokens",
            field="destination.url",
        )
    absolute = path.startswith("/")
    if absolute and not template_path.startswith("/"):
        raise ConfigurationError(
            f"{where}, an absolute path from a relative template; a token's value must not "
            "start with `/`",
            field="destination.url",
        )
    segments = path.removeprefix("/").split("/")
    if not names_file and segments[-1] == "":  # an endpoint's URL may end in /
        segments.pop()
    for segment in segments:
        if segment == "..":
            raise ConfigurationError(
                f"{where}, with a `..` segment, which leaves the template's folder; name the "
                "folder without `..` (an absolute path for a local folder)",
                field="destination.url",
            )
        if segment == "" and path:
            raise ConfigurationError(
                f"{where}, with an empty segment (`//`); write one `/` between folders",
                field="destination.url",
            )
        size = len(segment.encode())
        if names_file and size > MAX_NAME_BYTES:
            raise ConfigurationError(
                f"{where}, whose name `{_shown(segment)}` is {size} bytes of UTF-8; a file or "
                f"folder name holds at most {MAX_NAME_BYTES}: shorten the export's name or the "
                "template",
                field="destination.url",
            )


def _path_of(url: str) -> str:
    """The path of a destination URL or template: a local path as written (without file://),
    else what follows the host or bucket (`/key`), without a query string or fragment."""
    if url_scheme(url) in ("file", "local"):
        return url.partition("://")[2] if "://" in url else url
    rest = url.partition("://")[2]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else ""
    if url_scheme(url) in ("http", "https"):
        path = path.partition("?")[0].partition("#")[0]
    return path


def _control_character(value: str) -> str | None:
    """The first control character or line separator in `value`, escaped (`\\n`, `\\x00`)."""
    for char in value:
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            return char.encode("unicode_escape").decode("ascii")
    return None


def _shown(value: str, limit: int = 80) -> str:
    """A value as a message shows it: control characters escaped, a long one cut short."""
    escaped = "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in _CONTROL_CATEGORIES
        else char
        for char in value
    )
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


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
        f"destination.url: `{{{token}}}` in `{shown_template(template)}` needs a window; use "
        ":since / :until in source.query (or set `window`), or remove the token"
    )


def check_window_tokens(template: str, *, has_window: bool) -> None:
    """Fail when the template uses {since} or {until} but the run has no window."""
    if has_window:
        return
    for token in uses_window_tokens(template):
        raise ConfigurationError(_no_window_message(template, token), field="destination.url")


class _DateToken:
    """`{date}` renders as YYYY-MM-DD; `{date:%Y/%m}` uses strftime."""

    def __init__(self, value: datetime, default: str = "%Y-%m-%d") -> None:
        self.value = value
        self.default = default

    def __format__(self, spec: str) -> str:
        return self.value.strftime(spec or self.default)
