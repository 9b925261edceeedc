"""`exports check` and `exports schedule`: run times computed by Prefect's schedule classes,
compared with times worked out here with zoneinfo alone, across daylight-saving changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from typer.testing import CliRunner

from deployments.cli.app import app
from tests.conftest import REPO_ROOT
from tests.servers.ports import free_port

pytestmark = pytest.mark.unit

runner = CliRunner()
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """prefect.yaml and its entrypoints are read from the project folder."""
    monkeypatch.chdir(REPO_ROOT)


def schedule_json(deployment: str, *args: str) -> list[dict[str, str]]:
    result = runner.invoke(app, ["schedule", deployment, "--json", *args])
    assert result.exit_code == 0, result.stderr
    runs: list[dict[str, str]] = json.loads(result.stdout)
    return runs


def instants(runs: list[dict[str, str]]) -> list[datetime]:
    """The runs' UTC times, checked to be the same instants as their local times."""
    found = []
    for run in runs:
        assert run["utc"].endswith("Z")
        utc = datetime.fromisoformat(run["utc"].replace("Z", "+00:00"))
        assert datetime.fromisoformat(run["local"]) == utc
        found.append(utc)
    return found


def days(start: date) -> Iterator[date]:
    while True:
        yield start
        start += timedelta(days=1)


def wall_clock(
    start: date, zone: ZoneInfo, hours: list[int], minute: int = 0, **when: Any
) -> Iterator[datetime]:
    """Local wall-clock times on matching days (weekdays=..., month_day=...), as UTC."""
    for day in days(start):
        if "weekdays" in when and day.weekday() not in when["weekdays"]:
            continue
        if "month_day" in when and day.day != when["month_day"]:
            continue
        for hour in hours:
            yield datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def first(times: Iterator[datetime], after: datetime, count: int) -> list[datetime]:
    found: list[datetime] = []
    for when in times:
        if when >= after:
            found.append(when)
        if len(found) == count:
            return found
    raise AssertionError("unreachable")


def utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


class TestScheduleAcrossDaylightSaving:
    def test_weekly_berlin_keeps_09_30_into_summer_time(self) -> None:
        runs = schedule_json("orders-weekly-berlin", "--after", "2026-03-20")
        expected = first(
            wall_clock(date(2026, 3, 20), BERLIN, [9], 30, weekdays={0, 2}), utc("2026-03-20"), 5
        )
        assert instants(runs) == expected
        assert [run["utc"] for run in runs[:3]] == [
            "2026-03-23T08:30:00Z",
            "2026-03-25T08:30:00Z",
            "2026-03-30T07:30:00Z",
        ]
        assert runs[0]["local"] == "2026-03-23T09:30:00+01:00"
        assert runs[2]["local"] == "2026-03-30T09:30:00+02:00"
        assert {run["timezone"] for run in runs} == {"Europe/Berlin"}

    def test_weekly_berlin_keeps_09_30_into_winter_time(self) -> None:
        runs = schedule_json("orders-weekly-berlin", "--after", "2026-10-20", "--next", "3")
        expected = first(
            wall_clock(date(2026, 10, 20), BERLIN, [9], 30, weekdays={0, 2}), utc("2026-10-20"), 3
        )
        assert instants(runs) == expected
        assert [run["local"][-6:] for run in runs] == ["+02:00", "+01:00", "+01:00"]

    def test_the_table_shows_local_time_with_offset_utc_and_words(self) -> None:
        result = runner.invoke(app, ["schedule", "orders-weekly-berlin", "--after", "2026-03-20"])
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "orders-weekly-berlin: next 5 runs from 2026-03-20 00:00Z"
        assert lines[1].split() == ["local", "time", "UTC", "schedule"]
        words = "Weekly on Monday, Wednesday at 09:30 (Europe/Berlin)"
        assert lines[2].split("  ")[0] == "Mon 2026-03-23 09:30 CET (+01:00)"
        assert lines[4].split() == [
            *"Mon 2026-03-30 09:30 CEST (+02:00) 2026-03-30 07:30Z".split(),
            *words.split(),
        ]
        assert len(lines) == 2 + 5

    @pytest.mark.parametrize(
        ("after", "utc_hours"),
        [("2026-02-15", [11, 10, 10]), ("2026-09-15", [10, 11, 11])],
    )
    def test_monthly_new_york_is_06_00_local_in_winter_and_summer(
        self, after: str, utc_hours: list[int]
    ) -> None:
        runs = schedule_json("orders-monthly-new-york", "--after", after, "--next", "3")
        expected = first(
            wall_clock(date.fromisoformat(after), NEW_YORK, [6], month_day=1), utc(after), 3
        )
        assert instants(runs) == expected
        assert [when.hour for when in expected] == utc_hours  # 11:00Z EST, 10:00Z EDT
        assert all(run["local"][11:16] == "06:00" for run in runs)

    def test_every_4_hours_is_elapsed_time_across_the_spring_change(self) -> None:
        after = "2026-03-28T12:00:00+01:00"
        runs = schedule_json("orders-every-4-hours", "--after", after, "--next", "6")
        anchor = datetime(2026, 1, 1, tzinfo=BERLIN).astimezone(UTC)  # elapsed time: in UTC
        grid = (anchor + timedelta(hours=4 * step) for step in range(10_000))
        expected = first(grid, utc(after), 6)
        assert instants(runs) == expected
        assert [run["local"][11:] for run in runs] == [
            "12:00:00+01:00",
            "16:00:00+01:00",
            "20:00:00+01:00",
            "00:00:00+01:00",
            "05:00:00+02:00",  # 4 hours after 00:00+01:00; the local grid moves by an hour
            "09:00:00+02:00",
        ]

    def test_every_24_hours_keeps_06_00_new_york_across_the_change(self) -> None:
        runs = schedule_json("orders-every-24-hours", "--after", "2026-03-05", "--next", "6")
        expected = first(wall_clock(date(2026, 3, 5), NEW_YORK, [6]), utc("2026-03-05"), 6)
        assert instants(runs) == expected
        assert [run["utc"][11:16] for run in runs] == ["11:00"] * 3 + ["10:00"] * 3

    def test_every_24_hours_keeps_06_00_new_york_listed_from_summer(self) -> None:
        """A cron: listed from any date it is 06:00 local (an `interval: 86400` anchored in
        January would list 07:00 from a summer date in Prefect 3.8, docs/schedules.md)."""
        runs = schedule_json("orders-every-24-hours", "--after", "2026-06-01", "--next", "3")
        expected = first(wall_clock(date(2026, 6, 1), NEW_YORK, [6]), utc("2026-06-01"), 3)
        assert instants(runs) == expected
        assert [run["local"][11:] for run in runs] == ["06:00:00-04:00"] * 3

    def test_every_8_hours_is_00_08_16_new_york_on_the_spring_change(self) -> None:
        runs = schedule_json("orders-every-8-hours", "--after", "2026-03-07", "--next", "9")
        expected = first(wall_clock(date(2026, 3, 6), NEW_YORK, [0, 8, 16]), utc("2026-03-07"), 9)
        assert instants(runs) == expected
        assert [run["local"][11:16] for run in runs] == ["00:00", "08:00", "16:00"] * 3
        gaps = {later - earlier for earlier, later in zip(expected, expected[1:], strict=False)}
        assert gaps == {timedelta(hours=8), timedelta(hours=7)}

    def test_json_shape(self) -> None:
        [run] = schedule_json(
            "orders-every-12-hours", "--after", "2026-03-20T01:00Z", "--next", "1"
        )
        assert run == {
            "local": "2026-03-20T12:00:00+00:00",
            "utc": "2026-03-20T12:00:00Z",
            "timezone": "UTC",
            "schedule": "Every 12 hours",
        }


class TestScheduleOfAProjectFile:
    def test_several_schedules_are_merged_and_paused_ones_left_out(self, tmp_path: Path) -> None:
        spec = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"][0]
        spec["schedules"] = [
            {"cron": "0 9 * * *", "timezone": "Europe/Berlin"},
            {"cron": "0 9 * * *", "timezone": "America/New_York"},
            {"cron": "30 9 * * *", "timezone": "UTC", "active": False},
        ]
        path = tmp_path / "prefect.yaml"
        path.write_text(yaml.safe_dump({"deployments": [spec]}))
        runs = schedule_json(
            "demo-orders", "--file", str(path), "--after", "2026-03-20", "--next", "4"
        )
        assert [run["utc"] for run in runs] == [
            "2026-03-20T08:00:00Z",
            "2026-03-20T13:00:00Z",
            "2026-03-21T08:00:00Z",
            "2026-03-21T13:00:00Z",
        ]
        assert [run["timezone"] for run in runs] == ["Europe/Berlin", "America/New_York"] * 2
        assert runs[1]["schedule"] == "Daily at 09:00 (America/New_York)"

    def test_a_deployment_without_schedule_runs_when_started(self) -> None:
        result = runner.invoke(app, ["schedule", "demo-orders"])
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == (
            "demo-orders has no schedule: it runs when started (API, CLI or UI)"
        )
        assert schedule_json("demo-orders") == []

    def test_default_start_is_now(self) -> None:
        before = datetime.now(UTC)
        runs = schedule_json("alert-reconciler", "--next", "2")
        [first_run, second] = instants(runs)
        assert before - timedelta(minutes=1) <= first_run <= before + timedelta(minutes=10)
        assert second - first_run == timedelta(minutes=10)

    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (["no-such-export"], 2, "no deployment named `no-such-export`"),
            (["orders-weekly-berlin", "--after", "next tuesday"], 2, "--after: `next tuesday`"),
            (["orders-weekly-berlin", "--next", "0"], 2, "--next"),
        ],
    )
    def test_usage_errors(self, args: list[str], code: int, message: str) -> None:
        result = runner.invoke(app, ["schedule", *args])
        assert result.exit_code == code
        assert message in result.stderr
        if args[0] == "no-such-export":
            assert "orders-weekly-berlin" in result.stderr and "demo-orders" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1

    def test_an_invalid_schedule_is_one_line_and_exit_1(self, tmp_path: Path) -> None:
        path = tmp_path / "prefect.yaml"
        path.write_text(
            yaml.safe_dump({"deployments": [{"name": "x", "schedules": [{"cron": "61 * * * *"}]}]})
        )
        result = runner.invoke(app, ["schedule", "x", "--file", str(path)])
        assert result.exit_code == 1
        [line] = result.stderr.strip().splitlines()
        assert "deployment `x`: schedules[0].timezone: missing" in line


class TestCheck:
    def test_the_project_file_is_ok(self) -> None:
        result = runner.invoke(app, ["check"])
        assert result.exit_code == 0, result.stderr
        deployments = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
        schedules = sum(len(spec.get("schedules") or []) for spec in deployments)
        windowed = ("orders-monthly-new-york", "orders-api")  # their queries take the window
        exports = [spec for spec in deployments if spec["entrypoint"].endswith(":export")]
        assert result.stdout.strip().splitlines() == [
            f"prefect.yaml: {len(deployments)} deployments, {schedules} schedules, "
            f"{len(exports) - len(windowed)} sources found — OK",
            *(
                f"  source of `{name}` not checked: its query takes the run's window "
                "(:since / :until)"
                for name in windowed
            ),
        ]

    def test_a_missing_table_fails_the_check(self, tmp_path: Path) -> None:
        """Issue 17: the check said OK for a table that is not in the database."""
        spec = _demo_orders()
        spec["parameters"]["source"]["table"] = "no_such_table"
        path = tmp_path / "prefect.yaml"
        path.write_text(yaml.safe_dump({"deployments": [spec]}))
        result = runner.invoke(app, ["check", "--file", str(path)])
        assert result.exit_code == 1, result.stdout
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith(
            f"{path}: deployment `demo-orders`: source: source.table: table `no_such_table` not "
            "found in `sqlite:///"
        ), line
        offline = runner.invoke(app, ["check", "--file", str(path), "--offline"])
        assert offline.exit_code == 0, offline.stderr
        assert offline.stdout.strip() == (
            f"{path}: 1 deployments, 0 schedules, databases not asked (--offline) — OK"
        )

    def test_a_check_on_a_column_not_exported_fails_the_check(self, tmp_path: Path) -> None:
        """`checks` names exported columns: the demo's orders table has no `emial`."""
        spec = _demo_orders()
        spec["parameters"]["checks"] = {"not_null": ["emial"]}
        path = tmp_path / "prefect.yaml"
        path.write_text(yaml.safe_dump({"deployments": [spec]}))
        result = runner.invoke(app, ["check", "--file", str(path)])
        assert result.exit_code == 1, result.stdout
        [line] = result.stderr.splitlines()
        assert line == (
            f"{path}: deployment `demo-orders`: source: checks.not_null[0]: `emial` is not an "
            "exported column; name one of order_id, customer_id, ordered_at, ordered_at_local, "
            "amount, big_amount, quantity, discount, paid, status, comment, attributes, receipt"
        )

    def test_a_database_that_does_not_answer_is_said_not_checked(self, tmp_path: Path) -> None:
        spec = _demo_orders()
        spec["parameters"]["source"] = {
            "url": f"postgresql://reader@127.0.0.1:{free_port()}/shop",  # nothing listens
            "table": "orders",
        }
        path = tmp_path / "prefect.yaml"
        path.write_text(yaml.safe_dump({"deployments": [spec]}))
        result = runner.invoke(app, ["check", "--file", str(path)])
        assert result.exit_code == 0, result.stderr
        first, note = result.stdout.strip().splitlines()
        assert first == f"{path}: 1 deployments, 0 schedules, 0 sources found — OK"
        assert note.startswith("  source of `demo-orders` not checked: source `postgresql"), note
        assert "could not connect" in note

    def test_a_bad_file_prints_each_problem_on_one_line(self, tmp_path: Path) -> None:
        spec = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"][2]
        spec["schedules"] = [
            {"cron": "30 9 * * 1,3", "timezone": "Europe/Berln"},
            {"cron": "61 * * * *", "timezone": "UTC"},
        ]
        path = tmp_path / "prefect.yaml"
        path.write_text(yaml.safe_dump({"deployments": [spec]}))
        result = runner.invoke(app, ["check", "--file", str(path)])
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"{path}: deployment `orders-weekly-berlin`: schedules[0].timezone: `Europe/Berln` "
            "is not an IANA time zone; use a name such as Europe/Berlin, America/New_York or UTC",
            f"{path}: deployment `orders-weekly-berlin`: schedules[1].cron: `61 * * * *` is not "
            "a cron expression Prefect accepts (minute hour day-of-month month day-of-week, e.g. "
            '`30 9 * * 1,3`): Invalid cron string: "61 * * * *"',
        ]

    def test_a_missing_file_is_a_usage_error(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["check", "--file", str(tmp_path / "nope.yaml")])
        assert result.exit_code == 2
        assert "does not exist" in result.stderr


def _demo_orders() -> dict[str, Any]:
    deployments = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
    [spec] = [spec for spec in deployments if spec["name"] == "demo-orders"]
    spec.pop("schedules", None)
    return dict(spec)
