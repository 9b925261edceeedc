"""Destination URL templates: which tokens exist and how they render into each file's URL.

What a URL's scheme means (which store, and its own rules for the URL) is the store registry's
(flows/destinations/registry.py); this module knows no store.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flows.errors import ConfigurationError

TEMPLATE_TOKENS = ("export", "deployment", "run_id", "date", "ext", "part", "since", "until")
# Tokens that only render for a run with a window (flows/sources/window.py).
WINDOW_TOKENS = ("since", "until")
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


def check_template(template: str, *, split: bool, names_file: bool = True) -> None:
    """Fail before the run starts if the template cannot render a usable path: unknown tokens,
    a bad format spec, or (where the URL `names_file`) a folder instead of a file name."""
    template_fields(template)
    try:
        render_target(template, TargetContext.sample(), part=1 if split else None)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigurationError(
            f"destination.url: template `{template}` cannot be rendered ({exc}); "
            "check the format spec after the colon, e.g. {date:%Y/%m/%d} or {part:03d}"
        ) from exc
    if names_file and template.rstrip().endswith(("/", "\\")):
        raise ConfigurationError(
            f"destination.url: `{template}` names a folder; end it with a file name, "
            "e.g. out/{export}-{date:%Y%m%d}.{ext}"
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
