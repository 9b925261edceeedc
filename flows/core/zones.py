"""IANA time zone names: one check and one message for every field that takes a zone."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

ZONE_HINT = "use a name such as Europe/Berlin, America/New_York or UTC"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_iana_zone(name: object) -> bool:
    return isinstance(name, str) and name in _zones()


def iana_zone(value: str, field: str | None = None) -> str:
    """The zone name if the tz database knows it, else a ValueError (naming the field, if the
    caller's errors do not already)."""
    if not is_iana_zone(value):
        prefix = f"{field}: " if field else ""
        raise ValueError(f"{prefix}`{value}` is not an IANA time zone; {ZONE_HINT}")
    return value
