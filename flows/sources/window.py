"""Incremental windows: which [since, until) a run delivers, and the values bound for them.

A window applies when the source query uses `:since` or `:until`, or when the `window`
parameter is given. The query selects its rows with the half-open convention

    WHERE ts >= :since AND ts < :until

so consecutive windows neither overlap nor leave gaps (unless `lookback` asks for overlap).

Rules (each run resolves its window once, before anything is read or written):

- `until` = `window.until`; else the run's scheduled time if a schedule started it
  (`flow_run.auto_scheduled` → `expected_start_time`); else the run's start (now, UTC,
  microseconds dropped).
- `since` = `window.since`; else the latest tick of the deployment's active schedules
  strictly before `until` (over several schedules, the latest of them); else
  `until - window.period`; else a ConfigurationError. Then `since -= window.lookback`.
- These are fixed windows: a scheduled run owns [previous tick, its tick), so a retried run
  delivers the same window, and a failed run's window is delivered again by re-running that
  run. A manual ("run now" / API) run of a scheduled deployment delivers from the last tick to
  now.
- `since >= until`, a `window` with a `table` source or with a query that uses neither
  `:since` nor `:until`, and `since` / `until` in `source.params` are configuration errors,
  raised before the run writes anything. So is `{since}` / `{until}` in the destination URL
  when no window applies.
- Values are bound as `window.bind_as` says: `timestamp` (naive wall clock in
  `window.timezone`), `timestamptz` (aware, UTC), `text` (`YYYY-MM-DD HH:MM:SS[.ffffff]` in
  `window.timezone`) or `epoch` (integer Unix seconds, rounded down).

Previous ticks are computed with Prefect's own server schedule classes (the ones its scheduler
uses, DST rules included). Their `get_dates` only go forward, so the search looks back over
growing spans before `until` and keeps the latest date it finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.utilities.asyncutils import run_coro_as_sync

from flows.core.config import Destination, SourceConfig, WindowConfig
from flows.core.errors import ConfigurationError
from flows.core.prefect_compat import server_schedule
from flows.core.targets import check_window_tokens
from flows.runs.result import WindowBounds

if TYPE_CHECKING:
    from flows.core.prefect_compat import ServerSchedule

WINDOW_PARAMS = ("since", "until")
# How far back the previous tick is looked for, span after span (a yearly schedule on
# 29 February needs the last).
SEARCH_SPANS = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=400),
    timedelta(days=1500),
)
_BATCH = 500  # dates asked for per get_dates call (Prefect checks at most 1,000 candidates)

_NO_BINDS = (
    "window: source.query uses neither :since nor :until, so the window filters nothing; "
    "add e.g. WHERE ts >= :since AND ts < :until to the query, or remove `window`"
)

Origin = Literal["explicit", "schedule", "period"]


@dataclass(frozen=True)
class ResolvedWindow:
    """A run's window as aware UTC datetimes, and where `since` came from."""

    since: datetime
    until: datetime
    origin: Origin
    lookback: timedelta = timedelta(0)

    def bounds(self) -> WindowBounds:
        return WindowBounds(since=self.since, until=self.until)


def query_uses(source: SourceConfig) -> frozenset[str]:
    """Which of :since and :until the source query uses (none for a table)."""
    if source.query is None:
        return frozenset()
    names = sa.text(source.query).compile().params
    return frozenset(name for name in WINDOW_PARAMS if name in names)


def check_window(
    source: SourceConfig, window: WindowConfig | None, destination: Destination
) -> None:
    """The checks that need no clock and no Prefect API: run before anything else.

    Raises:
        ConfigurationError: naming the field and what to change.
    """
    named = [name for name in WINDOW_PARAMS if name in source.params]
    if named:
        raise ConfigurationError(
            f"source.params: `{named[0]}` is the run's window bound",
            field="source.params",
            hint="remove it from source.params and set window.since / window.until instead",
        )
    uses = query_uses(source)
    if source.incremental is not None and (window is not None or uses):
        field, what = (
            ("window", "`window`")
            if window is not None
            else ("source.query", f"a query using `:{sorted(uses)[0]}`")
        )
        raise ConfigurationError(
            f"{field}: source.incremental delivers what changed since the last run, so "
            f"{what} has nothing to add",
            field=field,
            hint="remove the window and its :since / :until binds, or remove source.incremental",
        )
    if window is not None:
        _require_binds(source, uses)
    check_window_tokens(destination.url, has_window=window is not None or bool(uses))


def _require_binds(source: SourceConfig, uses: frozenset[str]) -> None:
    if source.table is not None:
        raise ConfigurationError(
            f"window: source is the table `{source.table}`, which a window cannot filter",
            field="window",
            hint=f"use source.query, e.g. SELECT * FROM {source.table} "
            "WHERE ts >= :since AND ts < :until, or remove `window`",
        )
    if not uses:
        raise ConfigurationError(_NO_BINDS, field="window")


def resolve_window(
    config: WindowConfig | None,
    uses: frozenset[str],
    flow_run: FlowRun | None = None,
) -> ResolvedWindow | None:
    """The window of this run, or None when none applies (see the module docstring).

    Args:
        config: the `window` parameter.
        uses: which of :since / :until the query uses (`query_uses`).
        flow_run: the run; by default the current flow run, if any.

    Raises:
        ConfigurationError: `window` without :since / :until, no way to find `since`, or
            an empty window.
    """
    if config is None and not uses:
        return None
    if not uses:
        raise ConfigurationError(_NO_BINDS, field="window")
    config = config or WindowConfig()
    if flow_run is None:
        context = FlowRunContext.get()
        flow_run = context.flow_run if context is not None else None
    until = config.until or _scheduled_time(flow_run) or datetime.now(UTC).replace(microsecond=0)
    origin: Origin
    if config.since is not None:
        since, origin = config.since, "explicit"
    else:
        tick = previous_tick(_deployment_schedules(flow_run), until)
        if tick is not None:
            since, origin = tick, "schedule"
        elif config.period is not None:
            since, origin = until - config.period, "period"
        else:
            raise ConfigurationError(
                "window.since: this run has no schedule to take it from",
                field="window.since",
                hint="set window.since or window.period (e.g. P1D)",
            )
    since = _utc(since) - config.lookback
    until = _utc(until)
    if since >= until:
        raise ConfigurationError(
            f"window.since: `{since.isoformat()}` is not before until `{until.isoformat()}`",
            field="window.since",
            hint="set window.since earlier or window.until later",
        )
    return ResolvedWindow(since, until, origin, config.lookback)


def bind_values(window: ResolvedWindow, config: WindowConfig | None) -> dict[str, Any]:
    """The values bound for :since and :until, as `config.bind_as` says."""
    config = config or WindowConfig()
    zone = ZoneInfo(config.timezone)

    def bound(value: datetime) -> Any:
        if config.bind_as == "timestamptz":
            return value
        if config.bind_as == "epoch":
            return int(value.timestamp() // 1)
        local = value.astimezone(zone).replace(tzinfo=None)
        if config.bind_as == "timestamp":
            return local
        text = local.strftime("%Y-%m-%d %H:%M:%S")
        return f"{text}.{local.microsecond:06d}" if local.microsecond else text

    return {"since": bound(window.since), "until": bound(window.until)}


def in_zone(window: ResolvedWindow, config: WindowConfig | None) -> tuple[datetime, datetime]:
    """since and until in the window's time zone (for the {since} / {until} tokens)."""
    zone = ZoneInfo((config or WindowConfig()).timezone)
    return window.since.astimezone(zone), window.until.astimezone(zone)


def describe_window(window: ResolvedWindow) -> str:
    """For the run log: `2026-03-01 00:00:00+00:00 → ... (from the schedule, lookback 15 min)`."""
    origin = {
        "explicit": "window.since",
        "schedule": "from the schedule",
        "period": "until - window.period",
    }[window.origin]
    lookback = f"lookback {_duration(window.lookback)}" if window.lookback else "no lookback"
    return f"{window.since} → {window.until} ({origin}, {lookback})"


def previous_tick(schedules: Iterable[Any], before: datetime) -> datetime | None:
    """The latest date of any of `schedules` strictly before `before` (aware), in UTC, or
    None when none has one in the searched spans. Accepts Prefect's client or server
    Cron/Interval/RRule schedules; others (NoSchedule) are skipped."""
    ticks = [
        tick
        for schedule in schedules
        if (server := server_schedule(schedule)) is not None
        if (tick := _previous(server, _utc(before))) is not None
    ]
    return max(ticks) if ticks else None


def _previous(schedule: ServerSchedule, before: datetime) -> datetime | None:
    for span in SEARCH_SPANS:
        latest: datetime | None = None
        start = before - span
        while True:
            dates = _dates(schedule, start, before)
            earlier = [date for date in dates if date < before]
            if earlier:
                latest = earlier[-1]
            if len(dates) < _BATCH or not earlier or len(earlier) < len(dates):
                break  # every date up to `before` was seen
            start = earlier[-1] + timedelta(microseconds=1)
        if latest is not None:
            return latest
    return None


def _dates(schedule: ServerSchedule, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's dates from start to end (both included), at most _BATCH, in UTC."""
    found = cast(
        "list[datetime] | None",
        run_coro_as_sync(schedule.get_dates(n=_BATCH, start=start, end=end)),
    )
    return sorted(_utc(date) for date in found or [])


def _deployment_schedules(flow_run: FlowRun | None) -> Sequence[Any]:
    """The active schedules of the deployment that created the run (none without one)."""
    if flow_run is None or flow_run.deployment_id is None:
        return []
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(flow_run.deployment_id)
    return [item.schedule for item in deployment.schedules if item.active]


def _scheduled_time(flow_run: FlowRun | None) -> datetime | None:
    if flow_run is None or not flow_run.auto_scheduled:
        return None
    return flow_run.expected_start_time


def _utc(value: datetime) -> datetime:
    """An aware stdlib datetime in UTC (Prefect's schedules hand out pendulum/whenever ones)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    moment = value.astimezone(UTC)
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for size, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''}"
    return f"{value.total_seconds():g} s"
