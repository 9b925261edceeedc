"""The next run times of a deployment's schedules, computed with Prefect's server-side schedule
classes (the ones its scheduler creates runs with), so the times listed are the times that
run, daylight-saving changes included."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from deployments.triggers.check import Schedule
from flows.alerts.frequency import describe_schedule
from flows.core.prefect_compat import server_schedule

if TYPE_CHECKING:
    from flows.core.prefect_compat import ServerSchedule


def next_runs(schedules: list[Schedule], count: int, start: dt.datetime) -> list[dict[str, str]]:
    """The first `count` run times at or after `start` of all `schedules`, merged in time order.

    Each is {"local": ISO with offset, "utc": ISO with Z, "timezone", "schedule": words}.
    """
    found: list[tuple[dt.datetime, str, str]] = []
    for item in schedules:
        zone = item.timezone or "UTC"
        words = describe_schedule(item)
        for when in asyncio.run(_server_schedule(item).get_dates(count, start)):
            found.append((dt.datetime.fromtimestamp(when.timestamp(), dt.UTC), zone, words))
    found.sort(key=lambda run: run[0])
    return [
        {
            "local": when.astimezone(ZoneInfo(zone)).isoformat(),
            "utc": when.isoformat().replace("+00:00", "Z"),
            "timezone": zone,
            "schedule": words,
        }
        for when, zone, words in found[:count]
    ]


def _server_schedule(item: Schedule) -> ServerSchedule:
    """The server's twin of a deploy-time schedule: the class Prefect's scheduler uses."""
    twin = server_schedule(item)
    assert twin is not None  # every deploy-time schedule has one
    return twin
