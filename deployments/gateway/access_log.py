"""The gateway's access log without what a client should not have put in its URL.

Keys travel in the Authorization header, which the access log never shows. A client may still
put one in the URL (`?api_key=…`, or a path): it gets its 401, and uvicorn's access log would
keep the whole request line, key included. This filter leaves the values of the gateway's own
query parameters (`wait`, `part`: numbers) and short names, and writes `…` for everything
else, before any handler formats the line.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

SHOWN_VALUES = frozenset({"wait", "part"})
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_NUMBER = re.compile(r"^[0-9]{1,6}$")
_LONGEST_PATH_SEGMENT = 64  # a run id is 36 characters; a key is longer
HIDDEN = "…"


def hidden_path(full_path: str) -> str:
    """The path and query of a request as the access log may show them."""
    path, question, query = full_path.partition("?")
    segments = [HIDDEN if len(s) > _LONGEST_PATH_SEGMENT else s for s in path.split("/")]
    shown = "/".join(segments)
    if not question:
        return shown
    items = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if not _NAME.match(name):
            items.append(HIDDEN)
        elif not equals:
            items.append(name)
        elif name in SHOWN_VALUES and _NUMBER.match(value):
            items.append(item)
        else:
            items.append(f"{name}={HIDDEN}")
    return f"{shown}?{'&'.join(items)}"


class QueryValuesHidden(logging.Filter):
    """On uvicorn's access handler: its records' args are (client, method, path, http, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], hidden_path(args[2]), args[3], args[4])
        return True


def gateway_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with the filter on its access handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["query_values_hidden"] = {"()": QueryValuesHidden}
    config["handlers"]["access"]["filters"] = ["query_values_hidden"]
    return config
