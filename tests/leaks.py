"""The suite's final scan for secrets (issue 17): no API key, master secret, webhook secret or
credential may appear in what a run writes - logs, artifacts, parameters and states (all kept in
the Prefect server's database file), the gateway's and runners' log files, the files the tests
wrote, and the alerts that reached a webhook receiver.

The secrets are the suite's own: the test servers' credentials, the webhook secrets the alert
tests set, every key `create_key` made in this process, anything shaped like a key
(`pex_…`, also from subprocesses), and the master secrets the Secret block holds at the end.
Blocks keep credentials encrypted in the database (Prefect encrypts block data), so a
credential found in the file was written somewhere else. A token a user writes into a
parameter themselves (an HTTP POST URL's `?token=`) is theirs to keep there: the README says to
put credentials in blocks, and the tests check such a token stays out of logs and messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.flows.destinations.stores import TEMPORARY_NAME

# Anything shaped like an API key: `pex_` and a Fernet token.
KEY_SHAPE = re.compile(rb"pex_gAAAAA[A-Za-z0-9_=-]{20,}")
# A file bigger than this is exported data; secrets would be in small files (logs, databases).
LARGEST_SCANNED = 256 * 1024 * 1024
CHUNK = 8 * 1024 * 1024


@dataclass
class SecretRegistry:
    """The secrets the suite used, by what they are (the name goes in a finding, never the
    value)."""

    secrets: dict[str, str] = field(default_factory=dict)
    alert_bodies: list[bytes] = field(default_factory=list)

    def remember(self, what: str, value: str) -> None:
        if len(value) >= 8:  # shorter values turn up in any binary file by chance
            self.secrets.setdefault(value, what)

    def remember_key(self, token: str) -> None:
        self.remember("an API key", token)
        self.remember("an API key without its prefix", token.removeprefix("pex_"))

    def findings(self, places: Iterable[Path]) -> list[str]:
        """What leaked where: `<what> in <place>` once per pair."""
        needles = [(value.encode(), what) for value, what in self.secrets.items()]
        found: set[str] = set()
        for path in places:
            for what in _leaks_in_file(path, needles):
                found.add(f"{what} in {path}")
        for number, body in enumerate(self.alert_bodies):
            for what in _leaks_in(body, needles):
                found.add(f"{what} in the alert body #{number} a webhook receiver got")
        return sorted(found)


REGISTRY = SecretRegistry()


def record_keys(module: Any) -> None:
    """Wrap `create_key` so every key the suite makes is remembered (the tests bind it at
    import, after tests/conftest.py has run this)."""
    original: Callable[..., tuple[str, Any]] = module.create_key

    def create_key(*args: Any, **kwargs: Any) -> tuple[str, Any]:
        token, record = original(*args, **kwargs)
        REGISTRY.remember_key(token)
        return token, record

    create_key.__doc__ = original.__doc__
    module.create_key = create_key


def files_under(folder: Path) -> Iterable[Path]:
    return (path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def temporary_files(folder: Path) -> list[str]:
    """The runs' temporary files left under `folder`: after the suite, none (a failed write
    removes its own; a killed run's go with the next run to the same target)."""
    return sorted(str(path) for path in files_under(folder) if TEMPORARY_NAME.search(path.name))


def _leaks_in_file(path: Path, needles: list[tuple[bytes, str]]) -> set[str]:
    try:
        if path.stat().st_size > LARGEST_SCANNED:
            return set()
        found: set[str] = set()
        overlap = max((len(needle) for needle, _ in needles), default=0) + 200
        tail = b""
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                found |= _leaks_in(tail + chunk, needles)
                tail = chunk[-overlap:]
        return found
    except OSError:  # a server's socket or a file removed while the scan ran
        return set()


def _leaks_in(data: bytes, needles: list[tuple[bytes, str]]) -> set[str]:
    found = {what for needle, what in needles if needle in data}
    if KEY_SHAPE.search(data):
        found.add("a key-shaped value (pex_…)")
    return found
