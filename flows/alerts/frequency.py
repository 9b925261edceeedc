"""The "Frequency" words of a status alert (Contract 5): a deployment schedule in plain English.

Alert readers are not cron experts, so common schedules get words ("Every 4 hours",
"Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)") and anything else falls back to the
schedule's own text and time zone ("Cron `5 4 * 2 0` (UTC)") rather than to words that might be
wrong. Wording never raises for a schedule Prefect accepted: an alert must not fail on it.

Wordings (TZ is the schedule's `timezone`, None → "UTC"; times are wall-clock HH:MM in TZ, so
a daylight-saving change never changes the words, and seconds are not shown):

- "Every N minutes" / "Every hour" / "Every N hours" (also "Every N seconds"): repeats that run
  all day. No TZ, since the words hold in every zone. A cron or hourly rrule repeat that does
  not start on the hour adds "at minute M"; one starting later in the day adds "from HH:MM (TZ)";
  one covering part of the day says "from HH:MM to HH:MM (TZ)"; on some weekdays only, it
  adds "on Monday to Friday (TZ)".
- "Daily at HH:MM (TZ)" (several times: "Daily at 06:00, 18:00 (TZ)", at most six),
  "Every N days at HH:MM (TZ)".
- "Weekly on Monday, Wednesday at HH:MM (TZ)"; three or more consecutive days are a range,
  "Weekly on Monday to Friday at HH:MM (TZ)"; "Every N weeks on Monday at HH:MM (TZ)".
- "Monthly on day 1 at HH:MM (TZ)", "Monthly on days 1, 15 ...", "Monthly on days 1 to 5 ...",
  "Monthly on the last day ...", "Monthly on the second Friday ...", "Every N months on ...".
- "Yearly on 1 January at HH:MM (TZ)"; cron days in some months: "On day 1 of January, April,
  July, October at HH:MM (TZ)".
- Fallbacks: "Cron `<cron>` (TZ)", "RRule `<rrule>` (TZ)" (lines joined by a space).

Interval schedules of whole days name a time of day only in a zone without daylight saving
time (UTC, Etc/GMT+5, Asia/Tokyo): "Daily at 06:00 (UTC)", "Weekly on Monday at 09:30 (UTC)".
In a zone with DST they are "Every day", "Every 3 days", "Every week", "Every 2 weeks":
Prefect 3.8 counts elapsed time from the anchor up to where its scheduler starts listing runs,
so the same interval runs at 06:00 or 07:00 local depending on the season it started in (a cron
keeps the time; docs/schedules.md). Shorter intervals run every N elapsed units from the
anchor, so they are only "Every N hours/minutes/seconds". Interval and cron wordings are the
same for the same meaning ("Daily at", not "Every day at").

RRules follow Prefect's reading: DTSTART's wall-clock digits are taken in the schedule's
`timezone` (a TZID or Z on DTSTART is relabelled, not converted); without DTSTART, Prefect's
anchor 2020-01-01 00:00 applies. COUNT, UNTIL and WKST do not change the words; rrule sets
(RDATE, EXDATE, EXRULE, several RRULEs) and BYSETPOS, BYWEEKNO, BYYEARDAY fall back.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

import prefect
from packaging.version import Version
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import (
    CronSchedule,
    IntervalSchedule,
    NoSchedule,
    RRuleSchedule,
)

__all__ = ["ONE_TIME", "describe_schedule", "describe_schedules"]

ONE_TIME = "One Time"
"""The Frequency of a run that no schedule started (CLI/UI "run now", the API gateway)."""

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}
_MAX_TIMES = 6  # more times of day than this read better as the schedule's own text
_MAX_PARTS = 8  # likewise for listed days of the month
_DAY_MINUTES = 24 * 60
_LAST_DAY = -1  # "the last day of the month" among days of the month


class _Unworded(Exception):
    """The schedule has no simple wording; the caller falls back to the schedule's text."""


def describe_schedule(schedule: IntervalSchedule | CronSchedule | RRuleSchedule) -> str:
    """The Frequency words of one schedule, or its own text and time zone when none fit."""
    if isinstance(schedule, IntervalSchedule):
        return _describe_interval(schedule)
    if isinstance(schedule, CronSchedule):
        tz = schedule.timezone or "UTC"
        try:
            return _describe_cron(schedule.cron, tz)
        except (_Unworded, ValueError, IndexError):
            return f"Cron `{' '.join(schedule.cron.split())}` ({tz})"
    if isinstance(schedule, RRuleSchedule):
        tz = schedule.timezone or "UTC"
        try:
            return _describe_rrule(schedule.rrule, tz)
        except (_Unworded, ValueError, IndexError):
            text = " ".join(line.strip() for line in schedule.rrule.splitlines() if line.strip())
            return f"RRule `{text}` ({tz})"
    raise TypeError(f"not a Prefect schedule: {type(schedule).__name__}")


def describe_schedules(
    schedules: Sequence[
        IntervalSchedule | CronSchedule | RRuleSchedule | NoSchedule | DeploymentSchedule
    ],
) -> str:
    """The Frequency of a deployment with several schedules: each active one's words joined by
    "; " (repeats once), or ONE_TIME when none is active.

    Accepts bare schedules or a deployment's `DeploymentSchedule`s, so a caller can pass
    `deployment.schedules` as read from the API; paused ones and `NoSchedule` are skipped.
    """
    words: list[str] = []
    for item in schedules:
        if isinstance(item, DeploymentSchedule):
            if not item.active:
                continue
            schedule = item.schedule
        else:
            schedule = item
        if isinstance(schedule, NoSchedule):
            continue
        text = describe_schedule(schedule)
        if text not in words:
            words.append(text)
    return "; ".join(words) if words else ONE_TIME


# --- shared wording -------------------------------------------------------------------------


def _every(seconds: float) -> str:
    """'Every N <unit>' in the largest whole unit up to hours (days need a time of day)."""
    for size, unit in ((3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = int(seconds // size)
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return f"Every {seconds:g} seconds"


def _has_dst(zone: ZoneInfo, year: int) -> bool:
    """Whether the zone's UTC offset changes in the year (or the next)."""
    offsets = {
        dt.datetime(y, month, 1, tzinfo=zone).utcoffset()
        for y in (year, year + 1)
        for month in range(1, 13)
    }
    return len(offsets) > 1


def _hhmm(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def _runs(values: Iterable[int], label: Callable[[int], str] = str) -> str:
    """Sorted values listed with ", "; three or more consecutive ones become "A to B"."""
    ordered = sorted(set(values))
    parts: list[str] = []
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"{label(ordered[start])} to {label(ordered[end])}")
        else:
            parts.extend(label(value) for value in ordered[start : end + 1])
        start = end + 1
    if len(parts) > _MAX_PARTS:
        raise _Unworded
    return ", ".join(parts)


def _weekday_name(day: int) -> str:
    return _WEEKDAYS[day]


def _month_name(month: int) -> str:
    return _MONTHS[month - 1]


@dataclass(frozen=True)
class _Days:
    """Which days a schedule runs on. Weekdays are 0 = Monday; `month_days` may hold _LAST_DAY;
    `nth` is (ordinal, weekday) for "the second Friday"; `months` empty means every month."""

    kind: Literal["daily", "weekly", "monthly", "yearly"]
    weekdays: frozenset[int] = frozenset()
    month_days: frozenset[int] = frozenset()
    nth: tuple[int, int] | None = None
    months: frozenset[int] = frozenset()


def _times(hours: Iterable[int], minutes: Iterable[int]) -> list[int]:
    """Every time of day (minutes since midnight) the hour and minute sets produce."""
    return sorted({hour * 60 + minute for hour in hours for minute in minutes})


def _repeat(times: list[int]) -> tuple[str, bool] | None:
    """'Every 4 hours'-style words for evenly spaced times of day, and whether they name a
    clock time (then the time zone is shown); None when the times are not evenly spaced."""
    if len(times) < 2:
        return None
    step = times[1] - times[0]
    if any(later - earlier != step for earlier, later in pairwise(times)):
        return None
    words = _every(step * 60)
    first = times[0]
    if step * len(times) == _DAY_MINUTES:  # the whole day, wrapping round midnight evenly
        if first == 0:
            return words, False
        if step % 60 == 0 and first < 60:
            return f"{words} at minute {first}", False
        if len(times) > 2:  # two times a day read better as "Daily at 06:00, 18:00"
            return f"{words} from {_hhmm(first)}", True
        return None
    if len(times) < 3:
        return None
    return f"{words} from {_hhmm(first)} to {_hhmm(times[-1])}", True


def _month_days_words(days: frozenset[int]) -> str:
    if days == {_LAST_DAY}:
        return "the last day"
    if _LAST_DAY in days:
        raise _Unworded
    listed = _runs(days)
    return f"day {listed}" if len(days) == 1 else f"days {listed}"


def _words(days: _Days, times: list[int], tz: str, every: int = 1) -> str:
    """Combine days and times of day into the alert's wording (see the module docstring)."""
    if not times:
        raise _Unworded
    repeat = _repeat(times)
    if repeat is not None and every == 1 and days.kind in ("daily", "weekly"):
        words, names_time = repeat
        if days.kind == "weekly":
            return f"{words} on {_runs(days.weekdays, _weekday_name)} ({tz})"
        return f"{words} ({tz})" if names_time else words
    if len(times) > _MAX_TIMES:
        raise _Unworded
    at = f"at {', '.join(_hhmm(t) for t in times)} ({tz})"
    if days.kind == "daily":
        return f"Daily {at}" if every == 1 else f"Every {every} days {at}"
    if days.kind == "weekly":
        on = _runs(days.weekdays, _weekday_name)
        return f"Weekly on {on} {at}" if every == 1 else f"Every {every} weeks on {on} {at}"
    if days.kind == "monthly":
        if days.nth is not None:
            ordinal, weekday = days.nth
            if ordinal not in _ORDINALS:
                raise _Unworded
            on = f"the {_ORDINALS[ordinal]} {_WEEKDAYS[weekday]}"
        else:
            on = _month_days_words(days.month_days)
        if days.months:
            if every != 1 or days.nth is not None:
                raise _Unworded
            if (
                len(days.months) == 1
                and len(days.month_days) == 1
                and _LAST_DAY not in days.month_days
            ):
                (month,) = days.months
                (day,) = days.month_days
                return f"Yearly on {day} {_month_name(month)} {at}"
            return f"On {on} of {_runs(days.months, _month_name)} {at}"
        return f"Monthly on {on} {at}" if every == 1 else f"Every {every} months on {on} {at}"
    # yearly: one day of one month
    (month,) = days.months
    (day,) = days.month_days
    if day == _LAST_DAY:
        raise _Unworded
    on = f"{day} {_month_name(month)}"
    return f"Yearly on {on} {at}" if every == 1 else f"Every {every} years on {on} {at}"


# Prefect 3.9 keeps a whole-day interval at its anchor's wall-clock time across DST changes;
# 3.8 moved it by an hour, so no clock time could be named then.
PREFECT_KEEPS_WALL_CLOCK = Version(prefect.__version__) >= Version("3.9")

# --- interval schedules ---------------------------------------------------------------------


def _describe_interval(schedule: IntervalSchedule) -> str:
    """Whole days and weeks name the anchor's wall-clock time where no DST can move it."""
    seconds = schedule.interval.total_seconds()
    if seconds % 86400 != 0:
        return _every(seconds)
    tz = schedule.timezone or "UTC"
    anchor: dt.datetime = schedule.anchor_date
    if anchor.tzinfo is None:  # Prefect stores it aware; naive would mean "in the schedule's zone"
        anchor = anchor.replace(tzinfo=ZoneInfo(tz))
    local = anchor.astimezone(ZoneInfo(tz))
    days = int(seconds // 86400)
    if _has_dst(ZoneInfo(tz), local.year) and not PREFECT_KEEPS_WALL_CLOCK:
        count, unit = (days // 7, "week") if days % 7 == 0 else (days, "day")
        return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    times = [local.hour * 60 + local.minute]
    if days % 7 == 0:
        return _words(_Days("weekly", weekdays=frozenset({local.weekday()})), times, tz, days // 7)
    return _words(_Days("daily"), times, tz, days)


# --- cron schedules -------------------------------------------------------------------------

_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_MONTH_NAMES = {name[:3].lower(): number for number, name in enumerate(_MONTHS, start=1)}
_CRON_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_CRON_PART = re.compile(r"^(?:(\*|\?)|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


def _cron_field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """The values a cron field allows: lists, ranges, steps and (for months, days) names."""

    def value(token: str) -> int:
        number = names[token.lower()] if names and token.lower() in names else int(token)
        if not low <= number <= high:
            raise _Unworded
        return number

    values: set[int] = set()
    for part in text.split(","):
        match = _CRON_PART.match(part)
        if match is None:
            raise _Unworded
        star, first, last, step = match.groups()
        if star:
            start, stop = low, high
        else:
            start = value(first)
            stop = value(last) if last else (high if step else start)
        if stop < start:
            raise _Unworded
        values.update(range(start, stop + 1, int(step) if step else 1))
    return values


def _describe_cron(cron: str, tz: str) -> str:
    """Five-field cron (or a macro) in words. Day-of-month together with day-of-week falls
    back, so `day_or` (how croniter combines them) never changes the words; so do months
    with weekdays or with every day, and six-field (seconds) crons."""
    fields = _CRON_MACROS.get(cron.strip().lower(), cron).split()
    if len(fields) != 5:
        raise _Unworded
    minute, hour, month_day, month, weekday = fields
    times = _times(_cron_field(hour, 0, 23), _cron_field(minute, 0, 59))
    months = frozenset(_cron_field(month, 1, 12, _CRON_MONTH_NAMES))
    if len(months) == 12:
        months = frozenset()
    any_month_day = month_day in ("*", "?")
    any_weekday = weekday in ("*", "?")
    if not any_month_day and not any_weekday:
        raise _Unworded
    if not any_weekday:
        if months:
            raise _Unworded
        if "#" in weekday:
            day_text, _, ordinal = weekday.partition("#")
            day = _cron_field(day_text, 0, 7, _CRON_DAY_NAMES)
            if len(day) != 1:
                raise _Unworded
            nth = (int(ordinal), (day.pop() - 1) % 7)
            return _words(_Days("monthly", nth=nth), times, tz)
        weekdays = frozenset((d - 1) % 7 for d in _cron_field(weekday, 0, 7, _CRON_DAY_NAMES))
        if len(weekdays) == 7:
            return _words(_Days("daily"), times, tz)
        return _words(_Days("weekly", weekdays=weekdays), times, tz)
    if not any_month_day:
        days = {_LAST_DAY} if month_day.upper() == "L" else _cron_field(month_day, 1, 31)
        return _words(_Days("monthly", month_days=frozenset(days), months=months), times, tz)
    if months:
        raise _Unworded
    return _words(_Days("daily"), times, tz)


# --- rrule schedules ------------------------------------------------------------------------

_RRULE_DEFAULT_START = dt.datetime(2020, 1, 1)  # Prefect's DTSTART when the rrule has none
_RRULE_DAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_RRULE_FREQ_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600}
_RRULE_IGNORED = {"COUNT", "UNTIL", "WKST"}
_RRULE_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


def _rrule_parts(text: str) -> tuple[dt.datetime, dict[str, str]]:
    """DTSTART (wall-clock digits, no zone) and the one RRULE's KEY=VALUE parts."""
    start = _RRULE_DEFAULT_START
    rule: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        head = re.split(r"[:;]", line, maxsplit=1)[0].upper()
        if head == "DTSTART":
            digits = line.rsplit(":", 1)[1].strip().upper().rstrip("Z")
            start = dt.datetime.strptime(digits, "%Y%m%dT%H%M%S" if "T" in digits else "%Y%m%d")
        elif rule is None and (head == "RRULE" or head.startswith("FREQ=")):
            body = line.split(":", 1)[1] if head == "RRULE" else line
            rule = {}
            for item in body.split(";"):
                key, _, value = item.partition("=")
                rule[key.strip().upper()] = value.strip().upper()
        else:
            raise _Unworded  # RDATE, EXDATE, EXRULE or a second RRULE: an rrule set
    if rule is None:
        raise _Unworded
    return start, rule


def _ints(text: str | None, low: int, high: int) -> list[int] | None:
    if text is None:
        return None
    values = [int(item) for item in text.split(",")]
    if any(not low <= value <= high for value in values):
        raise _Unworded
    return values


def _describe_rrule(text: str, tz: str) -> str:
    """The common single-RRULE shapes in words (see the module docstring)."""
    start, rule = _rrule_parts(text)
    freq = rule.pop("FREQ", "")
    every = int(rule.pop("INTERVAL", "1"))
    for key in _RRULE_IGNORED:
        rule.pop(key, None)
    if any(int(second) != 0 for second in rule.pop("BYSECOND", "0").split(",")):
        raise _Unworded
    hours = _ints(rule.pop("BYHOUR", None), 0, 23)
    minutes = _ints(rule.pop("BYMINUTE", None), 0, 59)
    month_days = _ints(rule.pop("BYMONTHDAY", None), -31, 31)
    months = _ints(rule.pop("BYMONTH", None), 1, 12)
    byday: list[tuple[int | None, int]] | None = None
    if "BYDAY" in rule:
        byday = []
        for item in rule.pop("BYDAY").split(","):
            match = _RRULE_BYDAY.match(item.strip())
            if match is None:
                raise _Unworded
            ordinal, code = match.groups()
            byday.append((int(ordinal) if ordinal else None, _RRULE_DAYS[code]))
    if rule or every < 1:  # BYSETPOS, BYWEEKNO, BYYEARDAY, BYEASTER or unknown parts
        raise _Unworded
    plain_days = None if byday is None else frozenset(d for n, d in byday if n is None)
    if byday is not None and plain_days is not None and len(plain_days) != len(byday):
        plain_days = None  # some have ordinals ("1MO"): only monthly understands those

    if freq in _RRULE_FREQ_SECONDS:
        if hours is not None or month_days is not None or months is not None:
            raise _Unworded
        words = _every(every * _RRULE_FREQ_SECONDS[freq])
        if freq == "HOURLY":
            minute = start.minute if minutes is None else minutes[0]
            if minutes is not None and len(minutes) != 1:
                raise _Unworded
            if minute:
                words = f"{words} at minute {minute}"
        elif minutes is not None:
            raise _Unworded
        if byday is None:
            return words
        if plain_days is None:
            raise _Unworded
        if len(plain_days) == 7:
            return words
        return f"{words} on {_runs(plain_days, _weekday_name)} ({tz})"

    times = _times(
        hours if hours is not None else [start.hour],
        minutes if minutes is not None else [start.minute],
    )
    if freq == "DAILY":
        if month_days is not None or months is not None:
            raise _Unworded
        if byday is None:
            return _words(_Days("daily"), times, tz, every)
        if plain_days is None or every != 1:
            raise _Unworded
        freq = "WEEKLY"
    if freq == "WEEKLY":
        if month_days is not None or months is not None:
            raise _Unworded
        if byday is None:
            plain_days = frozenset({start.weekday()})
        if plain_days is None:
            raise _Unworded
        if len(plain_days) == 7 and every == 1:
            return _words(_Days("daily"), times, tz)
        return _words(_Days("weekly", weekdays=plain_days), times, tz, every)
    if freq == "MONTHLY":
        if months is not None:
            raise _Unworded
        if byday is not None:
            if month_days is not None or len(byday) != 1 or byday[0][0] is None:
                raise _Unworded
            ordinal, weekday = byday[0]
            assert ordinal is not None
            return _words(_Days("monthly", nth=(ordinal, weekday)), times, tz, every)
        days = month_days if month_days is not None else [start.day]
        if any(day < 0 and day != _LAST_DAY for day in days):
            raise _Unworded
        return _words(_Days("monthly", month_days=frozenset(days)), times, tz, every)
    if freq == "YEARLY":
        if byday is not None:
            raise _Unworded
        in_months = months if months is not None else [start.month]
        on_days = month_days if month_days is not None else [start.day]
        if len(in_months) != 1 or len(on_days) != 1:
            raise _Unworded
        year_days = _Days("yearly", month_days=frozenset(on_days), months=frozenset(in_months))
        return _words(year_days, times, tz, every)
    raise _Unworded
