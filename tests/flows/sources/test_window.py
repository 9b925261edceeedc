"""Incremental windows (`:since` / `:until`): the delivered file holds exactly the rows with
since <= ts < until, however the window was found and however it is bound.

The flows run for real against SQLite files and the session PostgreSQL server; the files are
read back and their ids compared with the ids computed here from the generated timestamps.
Previous ticks are checked on Prefect's own schedule objects, across a DST change.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ParameterTypeError
from prefect.flow_engine import run_flow
from prefect.schedules import Cron

from flows.core.config import WindowConfig
from flows.core.errors import ConfigurationError
from flows.export import export
from flows.parameters import validate_export_parameters
from flows.runs.result import ExportResult
from flows.sources.window import previous_tick, resolve_window
from tests.flows.conftest import PG_READERS

BERLIN = ZoneInfo("Europe/Berlin")
STEP = timedelta(minutes=15)
SQLITE_START = datetime(2026, 3, 1, tzinfo=UTC)
SQLITE_ROWS = 96  # one day, a row every 15 minutes
WINDOW_QUERY = "SELECT id, {column} FROM readings WHERE {column} >= :since AND {column} < :until"


def _ids_between(start: datetime, since: datetime, until: datetime, count: int) -> list[int]:
    """The ids (0-based, a row every STEP from `start`) with since <= ts < until."""
    return [i for i in range(count) if since <= start + i * STEP < until]


def _read_ids(path: Path) -> list[int]:
    """The `id` column of a delivered CSV or JSONL file, parsed independently."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [int(json.loads(line)["id"]) for line in text.splitlines()]
    return [int(row["id"]) for row in csv.DictReader(text.splitlines())]


def _files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def _sqlite_readings(path: Path, start: datetime, count: int, zone: Any = UTC) -> str:
    """Table `readings`: ts as 'YYYY-MM-DD HH:MM:SS' (sqlite's own form) and ts_micro as
    SQLAlchemy's DATETIME text ('... HH:MM:SS.000000'), both wall clock in `zone`."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, ts TEXT, ts_micro DATETIME)")
        conn.executemany(
            "INSERT INTO readings VALUES (?, ?, ?)",
            [
                (
                    i,
                    (start + i * STEP).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                    (start + i * STEP).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S.%f"),
                )
                for i in range(count)
            ],
        )
        conn.commit()
    return f"sqlite:///{path}"


@pytest.fixture
def readings(tmp_path: Path) -> str:
    """A SQLite file with SQLITE_ROWS readings from SQLITE_START; its SQLAlchemy URL."""
    return _sqlite_readings(tmp_path / "readings.sqlite", SQLITE_START, SQLITE_ROWS)


def _query(column: str = "ts") -> str:
    return WINDOW_QUERY.format(column=column) + " ORDER BY id"


def _export_window(
    url: str, folder: Path, window: dict[str, Any], column: str = "ts", fmt: str = "csv"
) -> ExportResult:
    """Export the readings of `window` to `folder`/out."""
    return export(
        source={"url": url, "query": _query(column)},
        destination={"url": str(folder / "out" / "{export}.{ext}")},
        format=fmt,
        window=window,
    )


@pytest.mark.usefixtures("prefect_api")
class TestExplicitWindow:
    @pytest.mark.parametrize(("column", "fmt"), [("ts", "csv"), ("ts_micro", "jsonl")])
    def test_rows_are_exactly_the_window(
        self, readings: str, tmp_path: Path, column: str, fmt: str
    ) -> None:
        since = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
        until = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        window = {"since": "2026-03-01T07:00:00+01:00", "until": "2026-03-01T12:00:00"}
        result = _export_window(readings, tmp_path, window, column, fmt)
        ids = _read_ids(Path(result.files[0]))
        assert ids == _ids_between(SQLITE_START, since, until, SQLITE_ROWS)
        assert ids[0] == 24, "the row exactly at since is included"
        assert ids[-1] == 47, "the row exactly at until (id 48) is excluded"
        assert result.rows == 24
        assert result.window is not None
        assert (result.window.since, result.window.until) == (since, until)

    @pytest.mark.parametrize("bind_as", ["timestamp", "text"])
    def test_lookback_widens_the_window(self, readings: str, tmp_path: Path, bind_as: str) -> None:
        window = {
            "since": "2026-03-01T06:00:00Z",
            "until": "2026-03-01T12:00:00Z",
            "lookback": "PT30M",
            "bind_as": bind_as,
        }
        result = _export_window(readings, tmp_path, window)
        since = datetime(2026, 3, 1, 5, 30, tzinfo=UTC)
        until = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        assert _read_ids(Path(result.files[0])) == _ids_between(
            SQLITE_START, since, until, SQLITE_ROWS
        )
        assert result.window is not None and result.window.since == since

    def test_timezone_binds_wall_clock(self, readings: str, tmp_path: Path) -> None:
        """With timezone Europe/Berlin the stored text is read as Berlin wall clock: the
        window 06:00Z-08:00Z selects the rows stored as 07:00 to 09:00."""
        window = {
            "since": "2026-03-01T06:00:00Z",
            "until": "2026-03-01T08:00:00Z",
            "timezone": "Europe/Berlin",
        }
        result = _export_window(readings, tmp_path, window)
        wall_since = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
        wall_until = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        assert _read_ids(Path(result.files[0])) == _ids_between(
            SQLITE_START, wall_since, wall_until, SQLITE_ROWS
        )


@pytest.mark.usefixtures("prefect_api")
class TestPeriodAndTokens:
    def test_period_without_schedule_ends_now(self, tmp_path: Path) -> None:
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
        count = 24 * 4 + 8  # to two hours from now
        url = _sqlite_readings(tmp_path / "now.sqlite", start, count, BERLIN)
        before = datetime.now(UTC).replace(microsecond=0)
        result = export(
            source={"url": url, "query": _query()},
            destination={
                "url": str(tmp_path / "out" / "{export}-{since:%Y%m%dT%H%M}-{until}.{ext}")
            },
            format="csv",
            name="readings",
            window={"period": "PT6H", "timezone": "Europe/Berlin"},
        )
        after = datetime.now(UTC)
        window = result.window
        assert window is not None
        assert before <= window.until <= after
        assert window.until - window.since == timedelta(hours=6)
        path = Path(result.files[0])
        assert _read_ids(path) == _ids_between(start, window.since, window.until, count)
        assert result.rows in (24, 25)  # 6 h of 15-minute rows; 25 when since hits a row
        since_local, until_local = window.since.astimezone(BERLIN), window.until.astimezone(BERLIN)
        assert path.name == (f"readings-{since_local:%Y%m%dT%H%M}-{until_local:%Y%m%dT%H%M%S}.csv")


# --------------------------------------------------------------------------------------
# PostgreSQL: each bind_as against its column type, with both readers
# --------------------------------------------------------------------------------------

PG_START = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # crosses Berlin's DST change (01:00Z)
PG_ROWS = 40
PG_COLUMNS = {"timestamp": "local_ts", "timestamptz": "at", "text": "local_text", "epoch": "epoch"}


@pytest.fixture
def pg_readings(pg_url: str) -> str:
    """Table `readings` with one instant per row stored four ways: Berlin wall clock as
    timestamp and as text, timestamptz, and bigint Unix seconds."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE readings (id integer PRIMARY KEY, local_ts timestamp, "
            "at timestamptz, local_text text, epoch bigint)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO readings VALUES (%s, %s, %s, %s, %s)",
                [
                    (
                        i,
                        (PG_START + i * STEP).astimezone(BERLIN).replace(tzinfo=None),
                        PG_START + i * STEP,
                        (PG_START + i * STEP).astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S"),
                        int((PG_START + i * STEP).timestamp()),
                    )
                    for i in range(PG_ROWS)
                ],
            )
    return pg_url


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.postgres
@pytest.mark.parametrize("reader", PG_READERS)
@pytest.mark.parametrize("bind_as", list(PG_COLUMNS))
def test_bind_as_on_postgres(pg_readings: str, tmp_path: Path, reader: str, bind_as: str) -> None:
    since = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET
    until = datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # 04:00 CEST
    result = export(
        source={"url": pg_readings, "query": _query(PG_COLUMNS[bind_as]), "reader": reader},
        destination={"url": str(tmp_path / "out" / "{export}.{ext}")},
        format="csv",
        window={
            "since": "2026-03-29T01:30:00+01:00",
            "until": "2026-03-29T04:00:00+02:00",
            "timezone": "Europe/Berlin",
            "bind_as": bind_as,
        },
    )
    expected = _ids_between(PG_START, since, until, PG_ROWS)
    assert len(expected) == 6
    assert _read_ids(Path(result.files[0])) == expected
    assert result.rows == 6


# --------------------------------------------------------------------------------------
# Schedules: the previous tick, and `since` taken from a deployment's schedule
# --------------------------------------------------------------------------------------


@pytest.mark.unit
class TestPreviousTick:
    def test_weekly_cron_across_dst(self) -> None:
        weekly = CronSchedule(cron="30 9 * * 1,3", timezone="Europe/Berlin")
        tick = previous_tick([weekly], datetime(2026, 3, 30, 9, 30, tzinfo=BERLIN))
        assert tick == datetime(2026, 3, 25, 9, 30, tzinfo=BERLIN)
        assert tick is not None and tick.utcoffset() == timedelta(0)  # handed out in UTC

    def test_strictly_before(self) -> None:
        weekly = CronSchedule(cron="30 9 * * 1,3", timezone="Europe/Berlin")
        just_after = datetime(2026, 3, 30, 9, 30, 1, tzinfo=BERLIN)
        assert previous_tick([weekly], just_after) == datetime(2026, 3, 30, 9, 30, tzinfo=BERLIN)

    @pytest.mark.parametrize(
        ("before", "expected"),
        [  # every 4 elapsed hours from 00:00 CET: 23:00Z, 03:00Z, 07:00Z, ...
            (
                datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN),
                datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN),
            ),
            (
                datetime(2026, 3, 29, 9, 0, tzinfo=BERLIN),
                datetime(2026, 3, 29, 5, 0, tzinfo=BERLIN),
            ),
            (
                datetime(2026, 3, 29, 9, 1, tzinfo=BERLIN),
                datetime(2026, 3, 29, 9, 0, tzinfo=BERLIN),
            ),
        ],
    )
    def test_four_hour_interval_across_dst(self, before: datetime, expected: datetime) -> None:
        every_4h = IntervalSchedule(
            interval=timedelta(hours=4),
            anchor_date=datetime(2026, 1, 1, tzinfo=BERLIN),
            timezone="Europe/Berlin",
        )
        assert previous_tick([every_4h], before) == expected

    def test_monthly(self) -> None:
        monthly = CronSchedule(cron="0 6 1 * *", timezone="Europe/Berlin")
        tick = previous_tick([monthly], datetime(2026, 4, 1, 6, 0, tzinfo=BERLIN))
        assert tick == datetime(2026, 3, 1, 6, 0, tzinfo=BERLIN)
        last_day = RRuleSchedule(
            rrule="FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=23;BYMINUTE=0", timezone="Europe/Berlin"
        )
        tick = previous_tick([last_day], datetime(2026, 4, 30, 23, 0, tzinfo=BERLIN))
        assert tick == datetime(2026, 3, 31, 23, 0, tzinfo=BERLIN)

    def test_latest_over_several_schedules_and_dense_ones(self) -> None:
        weekly = CronSchedule(cron="30 9 * * 1,3", timezone="Europe/Berlin")
        monthly = CronSchedule(cron="0 6 1 * *", timezone="Europe/Berlin")
        before = datetime(2026, 4, 1, 7, 0, tzinfo=BERLIN)
        assert previous_tick([weekly, monthly], before) == datetime(2026, 4, 1, 6, tzinfo=BERLIN)
        every_10s = IntervalSchedule(
            interval=timedelta(seconds=10), anchor_date=datetime(2026, 1, 1, tzinfo=UTC)
        )
        before = datetime(2026, 3, 29, 10, 0, 5, tzinfo=UTC)
        assert previous_tick([every_10s], before) == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
        leap_day = CronSchedule(cron="0 0 29 2 *", timezone="UTC")
        before = datetime(2027, 3, 1, tzinfo=UTC)
        assert previous_tick([leap_day], before) == datetime(2024, 2, 29, tzinfo=UTC)


@pytest.mark.usefixtures("prefect_api")
class TestScheduledDeployment:
    def _deploy(self, url: str, folder: Path) -> Any:
        deployment = export.to_deployment(
            name=f"window-{uuid.uuid4().hex[:8]}",
            schedule=Cron("0 * * * *", timezone="Europe/Berlin"),  # hourly
            parameters={
                "source": {"url": url, "query": _query()},
                "destination": {"url": str(folder / "{export}-{since:%H%M}.{ext}")},
                "format": "csv",
                "name": "readings",
            },
        )
        return deployment.apply()

    def test_manual_run_delivers_last_tick_to_now(self, tmp_path: Path) -> None:
        """A run of a scheduled deployment, executed in-process: since is the hourly
        schedule's last tick (read from the deployment through the API), until is now."""
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
        count = 4 * 5
        url = _sqlite_readings(tmp_path / "hourly.sqlite", start, count)
        deployment_id = self._deploy(url, tmp_path / "out")
        with get_client(sync_client=True) as client:
            flow_run = client.create_flow_run_from_deployment(deployment_id)
        result = run_flow(export, flow_run=flow_run, parameters=flow_run.parameters)
        assert isinstance(result, ExportResult)
        window = result.window
        assert window is not None
        last_tick = (window.until - timedelta(microseconds=1)).replace(
            minute=0, second=0, microsecond=0
        )
        assert window.since == last_tick
        assert _read_ids(Path(result.files[0])) == _ids_between(
            start, window.since, window.until, count
        )
        assert Path(result.files[0]).name == f"readings-{window.since:%H%M}.csv"  # in UTC

    def test_scheduled_run_owns_previous_tick_to_its_tick(self, tmp_path: Path) -> None:
        """A run the scheduler created (auto_scheduled) ends at its scheduled time."""
        url = _sqlite_readings(tmp_path / "hourly.sqlite", SQLITE_START, SQLITE_ROWS)
        deployment_id = self._deploy(url, tmp_path / "out")
        tick = datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN)  # the hour after the DST jump
        with get_client(sync_client=True) as client:
            created = client.create_flow_run_from_deployment(deployment_id)
        scheduled = created.model_copy(update={"auto_scheduled": True, "expected_start_time": tick})
        window = resolve_window(None, frozenset({"since", "until"}), scheduled)
        assert window is not None
        assert (window.since, window.until, window.origin) == (
            datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN),  # 01:00Z: 02:00 CET never happened
            tick,
            "schedule",
        )


# --------------------------------------------------------------------------------------
# Bad input: one line naming the field, raised before any file is written
# --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
class TestBadWindow:
    @pytest.mark.parametrize(
        ("source", "window", "destination", "field", "needle"),
        [
            ({"table": "readings"}, {"period": "P1D"}, None, "window", "source.query"),
            (
                {"query": "SELECT id, ts FROM readings"},
                {"period": "P1D"},
                None,
                "window",
                ":since",
            ),
            (
                {"query": _query(), "params": {"since": "2026-03-01"}},
                {"period": "P1D"},
                None,
                "source.params",
                "window.since / window.until",
            ),
            ({"query": _query()}, None, None, "window.since", "window.period"),
            (
                {"query": _query()},
                {"since": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
                None,
                "window.since",
                "is not before until",
            ),
            (
                {"query": "SELECT id, ts FROM readings"},
                None,
                "{export}-{since}.{ext}",
                "destination.url",
                "needs a window",
            ),
        ],
    )
    def test_flow_fails_before_writing(
        self,
        readings: str,
        tmp_path: Path,
        source: dict[str, Any],
        window: dict[str, Any] | None,
        destination: str | None,
        field: str,
        needle: str,
    ) -> None:
        out = tmp_path / "out"
        out.mkdir()
        parameters: dict[str, Any] = {
            "source": {"url": readings, **source},
            "destination": {"url": str(out / (destination or "{export}.{ext}"))},
            "format": "csv",
        }
        if window is not None:
            parameters["window"] = window
        with pytest.raises(ConfigurationError) as caught:
            export(**parameters)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{field}:"), message
        assert needle in message, message
        assert _files_in(out) == []
        if field != "window.since":  # needs no clock or schedule: checked before the run too
            with pytest.raises(ConfigurationError, match=f"^{field}:"):
                validate_export_parameters(parameters)

    @pytest.mark.parametrize(
        ("window", "message"),
        [
            (
                {"timezone": "Europe/Berln"},
                "window.timezone: `Europe/Berln` is not an IANA time zone",
            ),
            (
                {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
                "window.since: `2026-03-02T00:00:00+00:00` is not before window.until",
            ),
            ({"lookback": -60}, "window.lookback: `-60` seconds is negative"),
            ({"period": "PT0S"}, "window.period: `0` seconds is not a positive duration"),
            ({"bind_as": "date"}, "window.bind_as: `date`"),
            # Windows the run could not compute (issue 17: they passed, then overflowed)
            ({"lookback": 1e12}, "window.lookback: `1e+12` seconds is longer than 365,250 days"),
            ({"period": "P999999999D"}, "window.period: `8.64e+13` seconds is longer than"),
            (
                {"since": "0001-01-01T00:00:00Z", "lookback": "P2D"},
                "window.since: `0001-01-01T00:00:00+00:00` less window.lookback is outside "
                "the years 1 to 9999 in UTC",
            ),
            (
                {"since": "9999-12-31T23:59:59-14:00"},
                "window.since: `9999-12-31T23:59:59-14:00` is outside the years 1 to 9999",
            ),
            (
                {"until": "0001-01-05T00:00:00Z", "period": "P10D"},
                "window.until: `0001-01-05T00:00:00+00:00` less window.period is outside",
            ),
            (
                {"since": "0001-01-01T00:00:00Z", "timezone": "America/New_York"},
                "window.since: `0001-01-01T00:00:00+00:00` is outside the years 1 to 9999 in "
                "UTC or in America/New_York",
            ),
        ],
    )
    def test_parameters_name_the_field(
        self, readings: str, tmp_path: Path, window: dict[str, Any], message: str
    ) -> None:
        out = tmp_path / "out"
        out.mkdir()
        parameters = {
            "source": {"url": readings, "query": _query()},
            "destination": {"url": str(out / "{export}.{ext}")},
            "window": window,
        }
        with pytest.raises(ConfigurationError) as caught:
            validate_export_parameters(parameters)
        assert str(caught.value).startswith(message), caught.value
        with pytest.raises(ParameterTypeError) as flow_error:
            export(**parameters)
        field = message.split(":")[0]
        assert f"{field}:" in str(flow_error.value)  # Prefect's report names the field
        assert _files_in(out) == []

    def test_naive_times_are_utc(self) -> None:
        config = WindowConfig.model_validate({"since": "2026-03-01T00:00:00"})
        assert config.since == datetime(2026, 3, 1, tzinfo=UTC)
        assert WindowConfig.model_validate({"lookback": "PT15M"}).lookback == timedelta(minutes=15)
        assert WindowConfig.model_validate({"lookback": 900}).lookback == timedelta(minutes=15)
