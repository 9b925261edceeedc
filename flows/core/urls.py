"""A destination URL's scheme, and the URL without what must not be logged."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def url_scheme(url: str) -> str:
    """The scheme of a destination URL; a plain path is `file`."""
    head, sep, _ = url.partition("://")
    if not sep or len(head) == 1:  # no scheme, or a Windows drive letter
        return "file"
    return head.lower()


def without_secrets(url: str) -> str:
    """The URL without user or password, query string and fragment (webhook URLs often carry
    a token in the query): the form of a server's URL that may be logged and reported."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
