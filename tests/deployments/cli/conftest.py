"""What the CLI tests share."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def logging_back() -> Iterator[None]:
    """A command whose API did not answer mutes Prefect's logging for the rest of its process
    (it ends then); the test session's process goes on, with its logging given back."""
    yield
    logging.raiseExceptions = True
    logging.disable(logging.NOTSET)
    for name in list(logging.root.manager.loggerDict):
        if name == "prefect" or name.startswith("prefect."):
            logging.getLogger(name).disabled = False
