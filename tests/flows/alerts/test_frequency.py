"""The "Frequency" words of status alerts (Contract 5): every wording, the fallbacks, and that
the words agree with the times Prefect's own scheduler produces, across DST changes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import (
    CronSchedule,
    IntervalSchedule,
    NoSchedule,
    RRuleSchedule,
)
from prefect.server.schemas import schedules as server_schedules

from flows.alerts.frequency import (
    ONE_TIME,
    PREFECT_KEEPS_WALL_CLOCK,
    describe_schedule,
    describe_schedules,
)

pytestmark = pytest.mark.unit

Item = IntervalSchedule | CronSchedule | RRuleSchedule | NoSchedule | DeploymentSchedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC


def interval(
    *, anchor: dt.datetime | None = None, timezone: str | None = None, **delta: float
) -> IntervalSchedule:
    return IntervalSchedule(
        interval=dt.timedelta(**delta),
        anchor_date=anchor or dt.datetime(2024, 1, 15, 6, 0, tzinfo=UTC),
        timezone=timezone,
    )


def cron(text: str, timezone: str | None = None, *, day_or: bool = True) -> CronSchedule:
    return CronSchedule(cron=text, timezone=timezone, day_or=day_or)


def rrule(text: str, timezone: str | None = "Europe/Berlin") -> RRuleSchedule:
    return RRuleSchedule(rrule=text, timezone=timezone)


def _by_prefect(before_3_9: str, from_3_9: str) -> str:
    """The words of a whole-day interval in a DST zone: with a clock time from Prefect 3.9."""
    return from_3_9 if PREFECT_KEEPS_WALL_CLOCK else before_3_9


INTERVALS = [
    (interval(hours=4), "Every 4 hours"),
    (interval(hours=1), "Every hour"),
    (interval(hours=36), "Every 36 hours"),
    (interval(minutes=30), "Every 30 minutes"),
    (interval(minutes=1), "Every minute"),
    (interval(minutes=90), "Every 90 minutes"),
    (interval(seconds=45), "Every 45 seconds"),
    (interval(seconds=1), "Every second"),
    (interval(seconds=1.5), "Every 1.5 seconds"),
    # sub-day intervals run every N elapsed hours from the anchor: no clock time, no zone
    (interval(hours=4, anchor=dt.datetime(2024, 1, 15, 1, 17, tzinfo=BERLIN)), "Every 4 hours"),
    # whole days in a zone with DST: Prefect 3.9 keeps their wall-clock time, which is named;
    # 3.8 moved it with the season the scheduler started in, so no clock time
    # (test_day_intervals_and_dst_in_prefect)
    (
        interval(days=1, anchor=dt.datetime(2024, 1, 15, 6, 0, tzinfo=BERLIN)),
        _by_prefect("Every day", "Daily at 06:00 (Europe/Berlin)"),
    ),
    (
        interval(days=3, anchor=dt.datetime(2024, 1, 15, 6, 0), timezone="America/New_York"),
        _by_prefect("Every 3 days", "Every 3 days at 01:00 (America/New_York)"),  # naive: UTC
    ),
    (
        interval(days=7, anchor=dt.datetime(2024, 1, 17, 9, 30, 59, tzinfo=BERLIN)),
        _by_prefect("Every week", "Weekly on Wednesday at 09:30 (Europe/Berlin)"),
    ),
    (
        interval(weeks=2, anchor=dt.datetime(2024, 1, 15, 9, 30, tzinfo=BERLIN)),
        _by_prefect("Every 2 weeks", "Every 2 weeks on Monday at 09:30 (Europe/Berlin)"),
    ),
    # ...and in a zone without DST, the anchor's time in that zone, whatever zone it was given in
    (interval(hours=24), "Daily at 06:00 (UTC)"),
    (
        interval(
            days=1, anchor=dt.datetime(2024, 1, 15, 23, 30, tzinfo=UTC), timezone="Asia/Tokyo"
        ),
        "Daily at 08:30 (Asia/Tokyo)",
    ),
    (
        interval(days=7, anchor=dt.datetime(2024, 1, 17, 9, 30, 59, tzinfo=UTC)),
        "Weekly on Wednesday at 09:30 (UTC)",
    ),
    (
        interval(weeks=2, anchor=dt.datetime(2024, 1, 15, 9, 30, tzinfo=UTC), timezone="UTC"),
        "Every 2 weeks on Monday at 09:30 (UTC)",
    ),
]

CRONS = [
    (cron("30 9 * * 1,3", "Europe/Berlin"), "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)"),
    (
        cron("30 9 * * MON,WED", "Europe/Berlin"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
    (
        cron("30 9 * * mon,wed", "Europe/Berlin"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
    (cron("0 9 * * 1-5"), "Weekly on Monday to Friday at 09:00 (UTC)"),
    (cron("0 9 * * MON-FRI"), "Weekly on Monday to Friday at 09:00 (UTC)"),
    (cron("0 9 * * 1-3,5"), "Weekly on Monday to Wednesday, Friday at 09:00 (UTC)"),
    (cron("0 10 * * 6,0"), "Weekly on Saturday, Sunday at 10:00 (UTC)"),
    (cron("0 10 * * 7"), "Weekly on Sunday at 10:00 (UTC)"),
    (cron("0 10 * * 0-6"), "Daily at 10:00 (UTC)"),
    (cron("0 6 1 * *", "America/New_York"), "Monthly on day 1 at 06:00 (America/New_York)"),
    (cron("0 6 1,15 * *"), "Monthly on days 1, 15 at 06:00 (UTC)"),
    (cron("0 6 1-5 * *"), "Monthly on days 1 to 5 at 06:00 (UTC)"),
    (cron("0 18 L * *"), "Monthly on the last day at 18:00 (UTC)"),
    (cron("0 9 * * 5#2"), "Monthly on the second Friday at 09:00 (UTC)"),
    (cron("0 9 * * MON#1"), "Monthly on the first Monday at 09:00 (UTC)"),
    (cron("0 6 24 12 *"), "Yearly on 24 December at 06:00 (UTC)"),
    (cron("0 6 1 JAN *"), "Yearly on 1 January at 06:00 (UTC)"),
    (cron("0 6 1 1,4,7,10 *"), "On day 1 of January, April, July, October at 06:00 (UTC)"),
    (cron("0 6 * * *"), "Daily at 06:00 (UTC)"),
    (cron("0 6 * * *", None), "Daily at 06:00 (UTC)"),
    (cron("0 6 ? * *"), "Daily at 06:00 (UTC)"),
    (cron("0 6 * 1-12 *"), "Daily at 06:00 (UTC)"),
    (cron("0 6,18 * * *"), "Daily at 06:00, 18:00 (UTC)"),
    (cron("0,30 9 * * *"), "Daily at 09:00, 09:30 (UTC)"),
    (cron("0 */4 * * *"), "Every 4 hours"),
    (cron("0 */4 * * *", "Europe/Berlin"), "Every 4 hours"),
    (cron("0 0-23/4 * * *"), "Every 4 hours"),
    (cron("15 */4 * * *"), "Every 4 hours at minute 15"),
    (cron("0 1-23/4 * * *"), "Every 4 hours from 01:00 (UTC)"),
    (cron("0 */12 * * *"), "Every 12 hours"),
    (cron("0 * * * *"), "Every hour"),
    (cron("45 * * * *"), "Every hour at minute 45"),
    (cron("* * * * *"), "Every minute"),
    (cron("*/15 * * * *"), "Every 15 minutes"),
    (cron("0,30 * * * *"), "Every 30 minutes"),
    (cron("5-59/15 * * * *"), "Every 15 minutes from 00:05 (UTC)"),
    # a step that does not divide the day restarts at midnight: say where it runs
    (cron("0 */5 * * *"), "Every 5 hours from 00:00 to 20:00 (UTC)"),
    (cron("0 9-17 * * *", "Europe/Berlin"), "Every hour from 09:00 to 17:00 (Europe/Berlin)"),
    (
        cron("*/30 9-17 * * 1-5", "Europe/Berlin"),
        "Every 30 minutes from 09:00 to 17:30 on Monday to Friday (Europe/Berlin)",
    ),
    (cron("0 * * * 1-5"), "Every hour on Monday to Friday (UTC)"),
    (cron("@daily"), "Daily at 00:00 (UTC)"),
    (cron("@midnight"), "Daily at 00:00 (UTC)"),
    (cron("@hourly"), "Every hour"),
    (cron("@weekly"), "Weekly on Sunday at 00:00 (UTC)"),
    (cron("@monthly"), "Monthly on day 1 at 00:00 (UTC)"),
    (cron("@yearly"), "Yearly on 1 January at 00:00 (UTC)"),
    (cron("@annually"), "Yearly on 1 January at 00:00 (UTC)"),
    (
        cron("  30   9 * *  1,3 ", "Europe/Berlin"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
]

CRON_FALLBACKS = [
    (cron("5 4 * 2 0"), "Cron `5 4 * 2 0` (UTC)"),  # months with weekdays
    (cron("0 6 * 2 *"), "Cron `0 6 * 2 *` (UTC)"),  # every day of some months
    (cron("0 6 1 * 1"), "Cron `0 6 1 * 1` (UTC)"),  # day 1 OR Monday
    (cron("0 6 1 * 1", day_or=False), "Cron `0 6 1 * 1` (UTC)"),  # day 1 AND Monday
    (cron("0 6 */2 * *"), "Cron `0 6 */2 * *` (UTC)"),  # 16 days of the month
    (cron("0 6 1,L * *"), "Cron `0 6 1,L * *` (UTC)"),
    (cron("0 0 9 * * *", "Europe/Berlin"), "Cron `0 0 9 * * *` (Europe/Berlin)"),  # seconds
    (cron("0 6,7,9 * * *"), "Daily at 06:00, 07:00, 09:00 (UTC)"),  # uneven, few: listed
    (cron("0,20,45 9,10,11 * * *"), "Cron `0,20,45 9,10,11 * * *` (UTC)"),  # 9 uneven times
    (cron("  5 4 *  2 0 "), "Cron `5 4 * 2 0` (UTC)"),
]

RRULES = [
    (
        rrule("FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
    (
        rrule("RRULE:FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
    (
        rrule("DTSTART:20240101T093000\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
    (
        # Prefect relabels DTSTART's digits with the schedule's zone; it does not convert them
        rrule(
            "DTSTART;TZID=Europe/Berlin:20240105T073000\nRRULE:FREQ=WEEKLY;INTERVAL=2",
            "America/New_York",
        ),
        "Every 2 weeks on Friday at 07:30 (America/New_York)",
    ),
    (rrule("DTSTART:20240105T073000Z\nRRULE:FREQ=DAILY", "UTC"), "Daily at 07:30 (UTC)"),
    (
        rrule("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8"),
        "Weekly on Monday to Friday at 08:00 (Europe/Berlin)",
    ),
    (rrule("FREQ=WEEKLY"), "Weekly on Wednesday at 00:00 (Europe/Berlin)"),  # Prefect's 2020-01-01
    (rrule("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=8"), "Daily at 08:00 (Europe/Berlin)"),
    (
        rrule("FREQ=DAILY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
    ),
    (rrule("FREQ=DAILY;BYHOUR=6;BYMINUTE=0"), "Daily at 06:00 (Europe/Berlin)"),
    (rrule("FREQ=DAILY;BYHOUR=6,18;BYMINUTE=0"), "Daily at 06:00, 18:00 (Europe/Berlin)"),
    (rrule("FREQ=DAILY;INTERVAL=2;BYHOUR=6"), "Every 2 days at 06:00 (Europe/Berlin)"),
    (rrule("FREQ=DAILY;BYHOUR=6;BYMINUTE=0;BYSECOND=0;COUNT=10"), "Daily at 06:00 (Europe/Berlin)"),
    (rrule("FREQ=DAILY;BYHOUR=6;UNTIL=20300101T000000;WKST=MO"), "Daily at 06:00 (Europe/Berlin)"),
    (
        rrule("FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16,17;BYMINUTE=0"),
        "Every hour from 09:00 to 17:00 (Europe/Berlin)",
    ),
    (
        rrule("FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=6;BYMINUTE=0", "America/New_York"),
        "Monthly on day 1 at 06:00 (America/New_York)",
    ),
    (
        rrule("FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=6"),
        "Monthly on days 1, 15 at 06:00 (Europe/Berlin)",
    ),
    (
        rrule("FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18"),
        "Monthly on the last day at 18:00 (Europe/Berlin)",
    ),
    (
        rrule("FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1;BYHOUR=6"),
        "Every 3 months on day 1 at 06:00 (Europe/Berlin)",
    ),
    (
        rrule("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17"),
        "Monthly on the last Friday at 17:00 (Europe/Berlin)",
    ),
    (
        rrule("FREQ=MONTHLY;BYDAY=+2TU;BYHOUR=17"),
        "Monthly on the second Tuesday at 17:00 (Europe/Berlin)",
    ),
    (
        rrule("DTSTART:20240315T081500\nRRULE:FREQ=MONTHLY"),
        "Monthly on day 15 at 08:15 (Europe/Berlin)",
    ),
    (
        rrule("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24;BYHOUR=12"),
        "Yearly on 24 December at 12:00 (Europe/Berlin)",
    ),
    (
        rrule("DTSTART:20240301T060000\nRRULE:FREQ=YEARLY;INTERVAL=2"),
        "Every 2 years on 1 March at 06:00 (Europe/Berlin)",
    ),
    (rrule("FREQ=HOURLY;INTERVAL=4"), "Every 4 hours"),
    (rrule("FREQ=HOURLY"), "Every hour"),
    (rrule("FREQ=HOURLY;INTERVAL=4;BYMINUTE=15"), "Every 4 hours at minute 15"),
    (rrule("DTSTART:20240101T091500\nRRULE:FREQ=HOURLY"), "Every hour at minute 15"),
    (rrule("FREQ=HOURLY;BYDAY=MO,TU,WE,TH,FR"), "Every hour on Monday to Friday (Europe/Berlin)"),
    (rrule("FREQ=MINUTELY;INTERVAL=15"), "Every 15 minutes"),
    (rrule("FREQ=MINUTELY;INTERVAL=90"), "Every 90 minutes"),
    (rrule("FREQ=MINUTELY;INTERVAL=120"), "Every 2 hours"),
    (rrule("FREQ=SECONDLY;INTERVAL=30"), "Every 30 seconds"),
    (rrule("FREQ=DAILY;BYHOUR=6", None), "Daily at 06:00 (UTC)"),
    (rrule("freq=weekly;byday=mo;byhour=9"), "Weekly on Monday at 09:00 (Europe/Berlin)"),
]

RRULE_FALLBACKS = [
    (
        rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY\nEXDATE:20240105T090000"),
        "RRule `DTSTART:20240101T090000 RRULE:FREQ=DAILY EXDATE:20240105T090000` (Europe/Berlin)",
    ),
    (
        rrule("RRULE:FREQ=WEEKLY;BYDAY=MO\nRRULE:FREQ=WEEKLY;BYDAY=FR"),
        "RRule `RRULE:FREQ=WEEKLY;BYDAY=MO RRULE:FREQ=WEEKLY;BYDAY=FR` (Europe/Berlin)",
    ),
    (
        rrule("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
        "RRule `FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1` (Europe/Berlin)",
    ),
    (rrule("FREQ=YEARLY;BYWEEKNO=20", "UTC"), "RRule `FREQ=YEARLY;BYWEEKNO=20` (UTC)"),
    (rrule("FREQ=DAILY;BYSECOND=30", "UTC"), "RRule `FREQ=DAILY;BYSECOND=30` (UTC)"),
    (
        rrule("FREQ=DAILY;INTERVAL=2;BYDAY=MO", "UTC"),
        "RRule `FREQ=DAILY;INTERVAL=2;BYDAY=MO` (UTC)",
    ),
    (rrule("FREQ=MONTHLY;BYMONTHDAY=-2", "UTC"), "RRule `FREQ=MONTHLY;BYMONTHDAY=-2` (UTC)"),
    (rrule("FREQ=MONTHLY;BYDAY=MO,1FR", "UTC"), "RRule `FREQ=MONTHLY;BYDAY=MO,1FR` (UTC)"),
    (rrule("FREQ=YEARLY;BYMONTH=1,7", "UTC"), "RRule `FREQ=YEARLY;BYMONTH=1,7` (UTC)"),
    (rrule("FREQ=HOURLY;BYHOUR=9,10", "UTC"), "RRule `FREQ=HOURLY;BYHOUR=9,10` (UTC)"),
    (rrule("FREQ=WEEKLY;BYDAY=1MO", "UTC"), "RRule `FREQ=WEEKLY;BYDAY=1MO` (UTC)"),
]


def _ids(cases: Sequence[tuple[object, str]]) -> list[str]:
    return [words for _, words in cases]


@pytest.mark.parametrize(("schedule", "words"), INTERVALS, ids=_ids(INTERVALS))
def test_interval_wording(schedule: IntervalSchedule, words: str) -> None:
    assert describe_schedule(schedule) == words


@pytest.mark.parametrize(
    ("schedule", "words"), CRONS + CRON_FALLBACKS, ids=_ids(CRONS + CRON_FALLBACKS)
)
def test_cron_wording(schedule: CronSchedule, words: str) -> None:
    assert describe_schedule(schedule) == words


@pytest.mark.parametrize(
    ("schedule", "words"), RRULES + RRULE_FALLBACKS, ids=_ids(RRULES + RRULE_FALLBACKS)
)
def test_rrule_wording(schedule: RRuleSchedule, words: str) -> None:
    assert describe_schedule(schedule) == words


def test_one_time_constant() -> None:
    assert ONE_TIME == "One Time"


def test_no_schedules_is_one_time() -> None:
    assert describe_schedules([]) == ONE_TIME


def test_several_schedules_are_joined() -> None:
    schedules: list[Item] = [
        cron("30 9 * * 1,3", "Europe/Berlin"),
        interval(hours=4),
        rrule("FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=6", "America/New_York"),
    ]
    assert describe_schedules(schedules) == (
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin); Every 4 hours; "
        "Monthly on day 1 at 06:00 (America/New_York)"
    )


def test_deployment_schedules_skip_inactive_and_repeats() -> None:
    """What a caller gets from `client.read_deployment(...).schedules`."""
    schedules: list[Item] = [
        DeploymentSchedule(schedule=cron("0 6 * * *"), active=True),
        DeploymentSchedule(schedule=cron("0 */4 * * *"), active=False),
        DeploymentSchedule(schedule=interval(days=1), active=True),  # also daily at 06:00 UTC
        DeploymentSchedule(schedule=NoSchedule(), active=True),
        NoSchedule(),
        rrule("FREQ=HOURLY;INTERVAL=4"),
    ]
    assert describe_schedules(schedules) == "Daily at 06:00 (UTC); Every 4 hours"


def test_only_inactive_schedules_is_one_time() -> None:
    schedules: list[Item] = [
        DeploymentSchedule(schedule=cron("0 6 * * *"), active=False),
        NoSchedule(),
    ]
    assert describe_schedules(schedules) == ONE_TIME


def test_not_a_schedule_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="NoSchedule"):
        describe_schedule(NoSchedule())  # type: ignore[arg-type]


# --- daylight saving time ------------------------------------------------------------------


@pytest.mark.parametrize(
    "anchor",
    [
        dt.datetime(2024, 1, 15, 9, 30, tzinfo=BERLIN),  # CET, UTC+1
        dt.datetime(2024, 7, 15, 9, 30, tzinfo=BERLIN),  # CEST, UTC+2
        dt.datetime(2024, 1, 15, 8, 30, tzinfo=UTC),  # the same wall-clock times given in UTC
        dt.datetime(2024, 7, 15, 7, 30, tzinfo=UTC),
        "2024-07-15T09:30:00+02:00",
    ],
    ids=str,
)
def test_dst_does_not_change_interval_words(anchor: dt.datetime | str) -> None:
    schedule = IntervalSchedule(
        interval=dt.timedelta(days=1), anchor_date=anchor, timezone="Europe/Berlin"
    )
    assert describe_schedule(schedule) == _by_prefect("Every day", "Daily at 09:30 (Europe/Berlin)")


def test_day_intervals_and_dst_in_prefect() -> None:
    """A whole-day interval in a DST zone names its clock time only where Prefect keeps it:
    3.9 runs it at 06:00 New York time all year; 3.8 ran it at 06:00 or 07:00, depending on
    when its scheduler started listing, so no time could be named."""
    schedule = interval(days=1, anchor=dt.datetime(2026, 1, 1, 6, tzinfo=NEW_YORK))
    schedule = schedule.model_copy(update={"timezone": "America/New_York"})
    winter = _server_dates(schedule, dt.datetime(2026, 2, 1, tzinfo=UTC), n=3)
    summer = _server_dates(schedule, dt.datetime(2026, 6, 1, tzinfo=UTC), n=3)
    assert {date.astimezone(NEW_YORK).hour for date in winter} == {6}
    if PREFECT_KEEPS_WALL_CLOCK:
        assert {date.astimezone(NEW_YORK).hour for date in summer} == {6}
        assert describe_schedule(schedule).startswith("Daily at 06:00")
    else:
        assert {date.astimezone(NEW_YORK).hour for date in summer} == {7}
        assert describe_schedule(schedule) == "Every day"


def _server_dates(
    schedule: IntervalSchedule | CronSchedule | RRuleSchedule, start: dt.datetime, n: int
) -> list[dt.datetime]:
    """The run times Prefect's scheduler (the server's schedule models) produces."""
    data = schedule.model_dump()
    server: (
        server_schedules.IntervalSchedule
        | server_schedules.CronSchedule
        | server_schedules.RRuleSchedule
    )
    if isinstance(schedule, IntervalSchedule):
        server = server_schedules.IntervalSchedule.model_validate(data)
    elif isinstance(schedule, CronSchedule):
        server = server_schedules.CronSchedule.model_validate(data)
    else:
        server = server_schedules.RRuleSchedule.model_validate(data)
    return list(asyncio.run(server.get_dates(n=n, start=start)))


DST_CASES = [
    # (schedule, words, zone, weekdays (0 = Monday) or None for every day, HH:MM)
    (
        cron("30 9 * * 1,3", "Europe/Berlin"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
        BERLIN,
        {0, 2},
        "09:30",
    ),
    (
        rrule("FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=30", "Europe/Berlin"),
        "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)",
        BERLIN,
        {0, 2},
        "09:30",
    ),
    (
        rrule(
            "DTSTART;TZID=Europe/Berlin:20240105T073000\nRRULE:FREQ=WEEKLY;INTERVAL=2",
            "America/New_York",
        ),
        "Every 2 weeks on Friday at 07:30 (America/New_York)",
        NEW_YORK,
        {4},
        "07:30",
    ),
    (
        cron("0 6 * * *", "America/New_York"),
        "Daily at 06:00 (America/New_York)",
        NEW_YORK,
        None,
        "06:00",
    ),
]


@pytest.mark.parametrize(
    ("schedule", "words", "zone", "weekdays", "clock"),
    DST_CASES,
    ids=_ids([c[:2] for c in DST_CASES]),
)
def test_words_match_prefect_run_times_across_dst(
    schedule: IntervalSchedule | CronSchedule | RRuleSchedule,
    words: str,
    zone: ZoneInfo,
    weekdays: set[int] | None,
    clock: str,
) -> None:
    """The words are wall-clock time in the named zone: Prefect's own run times, spanning the
    spring DST change in Europe (31 March 2024) and the US (10 March 2024), keep that time."""
    assert describe_schedule(schedule) == words
    dates = _server_dates(schedule, dt.datetime(2024, 3, 1, tzinfo=UTC), n=40)
    local = [date.astimezone(zone) for date in dates]
    assert local[-1].date() > dt.date(2024, 4, 1), "the dates must span the DST change"
    assert len({date.utcoffset() for date in local}) == 2, "both UTC offsets must occur"
    assert {date.strftime("%H:%M") for date in local} == {clock}
    if weekdays is not None:
        assert {date.weekday() for date in local} == weekdays


@pytest.mark.parametrize(
    ("schedule", "words", "zone"),
    [
        (
            cron("0 6 1 * *", "America/New_York"),
            "Monthly on day 1 at 06:00 (America/New_York)",
            NEW_YORK,
        ),
        (
            rrule("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17", "Europe/Berlin"),
            "Monthly on the last Friday at 17:00 (Europe/Berlin)",
            BERLIN,
        ),
    ],
    ids=["cron", "rrule"],
)
def test_monthly_words_match_prefect_run_times_across_dst(
    schedule: CronSchedule | RRuleSchedule, words: str, zone: ZoneInfo
) -> None:
    assert describe_schedule(schedule) == words
    local = [
        d.astimezone(zone)
        for d in _server_dates(schedule, dt.datetime(2024, 1, 1, tzinfo=UTC), n=12)
    ]
    assert len({date.utcoffset() for date in local}) == 2
    assert len({(date.year, date.month) for date in local}) == 12
    if "day 1" in words:
        assert {(date.day, date.strftime("%H:%M")) for date in local} == {(1, "06:00")}
    else:
        assert {(date.weekday(), date.strftime("%H:%M")) for date in local} == {(4, "17:00")}
        assert all((date + dt.timedelta(days=7)).month != date.month for date in local)


@pytest.mark.parametrize(
    ("schedule", "elapsed"),
    [
        (cron("0 */4 * * *", "Europe/Berlin"), False),
        (rrule("FREQ=HOURLY;INTERVAL=4", "Europe/Berlin"), False),
        (interval(hours=4, timezone="Europe/Berlin"), True),
    ],
    ids=["cron", "rrule", "interval"],
)
def test_every_4_hours_names_no_clock_time(
    schedule: IntervalSchedule | CronSchedule | RRuleSchedule, elapsed: bool
) -> None:
    """'Every 4 hours' names no zone, across DST too: cron and an hourly rrule keep the
    wall-clock hours 0, 4, ... 20 of the zone (3 elapsed hours on the night the clocks go
    forward), an interval keeps 4 elapsed hours (its wall-clock hours shift by one)."""
    assert describe_schedule(schedule) == "Every 4 hours"
    dates = _server_dates(schedule, dt.datetime(2024, 3, 30, tzinfo=UTC), n=18)
    if elapsed:
        steps = {later.timestamp() - earlier.timestamp() for earlier, later in pairwise(dates)}
        assert steps == {4 * 3600}
    else:
        assert {date.astimezone(BERLIN).hour for date in dates} == {0, 4, 8, 12, 16, 20}
