"""deployments.triggers.check: each mistake in a prefect.yaml trigger is named with its deployment
and field, all of them at once, before `prefect deploy` would skip or misread it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

from deployments.triggers.check import TriggerProblem, check_project, schedules_of
from deployments.triggers.project import UsageError, load_deployments
from flows.core.errors import ConfigurationError
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

EXPORT_PARAMETERS: dict[str, Any] = {
    "name": "orders",
    "format": "csv",
    "source": {"url": "sqlite:///demo/demo.sqlite", "table": "orders"},
    "destination": {"url": "out/{export}.{ext}"},
}


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entrypoints (flows/export.py:export) are relative to the project folder."""
    monkeypatch.chdir(REPO_ROOT)


def deployment(name: str = "orders-weekly-berlin", **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "entrypoint": "flows/export.py:export",
        "parameters": EXPORT_PARAMETERS,
        "work_pool": {"name": "exports"},
    }
    spec.update(fields)
    return {key: value for key, value in spec.items() if value is not None}


def write_project(tmp_path: Path, *deployments: dict[str, Any]) -> Path:
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump({"deployments": list(deployments)}, sort_keys=False))
    return path


def problems_of(tmp_path: Path, *deployments: dict[str, Any]) -> list[str]:
    return [str(problem) for problem in check_project(write_project(tmp_path, *deployments))]


class TestValidTriggers:
    def test_every_kind_of_schedule_passes(self, tmp_path: Path) -> None:
        schedules = [
            {"cron": "30 9 * * 1,3", "timezone": "Europe/Berlin"},
            {"rrule": "FREQ=MONTHLY;BYDAY=2FR;BYHOUR=6;BYMINUTE=0", "timezone": "UTC"},
            {
                "interval": 14400,
                "anchor_date": "2026-01-01T00:00:00+01:00",
                "timezone": "Europe/Berlin",
                "active": False,
                "slug": "every-4-hours",
            },
            {"cron": "0 6 * * *", "timezone": "UTC", "parameters": {"format": "jsonl"}},
        ]
        path = write_project(
            tmp_path,
            deployment(schedules=schedules, concurrency_limit=1),
            deployment(
                "on-demand", concurrency_limit={"limit": 2, "collision_strategy": "ENQUEUE"}
            ),
        )
        assert check_project(path) == []
        [spec, _] = load_deployments(path)
        kinds = [type(schedule) for _, schedule in schedules_of(spec)]
        assert kinds == [CronSchedule, RRuleSchedule, IntervalSchedule, CronSchedule]

    def test_the_message_names_file_deployment_and_field(self) -> None:
        problem = TriggerProblem("prefect.yaml", "orders-weekly-berlin", "schedules[0].cron", "bad")
        assert (
            str(problem)
            == "prefect.yaml: deployment `orders-weekly-berlin`: schedules[0].cron: bad"
        )


class TestInvalidTriggers:
    @pytest.mark.parametrize(
        ("schedule", "field", "message"),
        [
            (
                {"cron": "30 9 * * 1,3", "timezone": "Europe/Berln"},
                "schedules[0].timezone",
                "`Europe/Berln` is not an IANA time zone; use a name such as Europe/Berlin, "
                "America/New_York or UTC",
            ),
            (
                {"cron": "61 * * * *", "timezone": "UTC"},
                "schedules[0].cron",
                "`61 * * * *` is not a cron expression Prefect accepts",
            ),
            (
                {"rrule": "FREQ=SOMETIMES;BYHOUR=9", "timezone": "UTC"},
                "schedules[0].rrule",
                "not an RRULE Prefect accepts",
            ),
            (
                {"cron": "0 6 * * *"},
                "schedules[0].timezone",
                "missing; a cron schedule needs an IANA `timezone`",
            ),
            (
                {"rrule": "FREQ=DAILY;BYHOUR=6"},
                "schedules[0].timezone",
                "missing; a rrule schedule needs an IANA `timezone`",
            ),
            (
                {
                    "interval": 3600,
                    "anchor_date": "2026-01-01T00:00:00",
                    "timezone": "Europe/Berlin",
                },
                "schedules[0].anchor_date",
                "`2026-01-01T00:00:00` has no UTC offset, and Prefect reads a naive anchor as UTC",
            ),
            (
                {"interval": 3600, "timezone": "Europe/Berlin"},
                "schedules[0].anchor_date",
                "missing; an interval counts from its anchor_date",
            ),
            (
                {"interval": 3600, "anchor_date": "2026-01-01T00:00:00+01:00"},
                "schedules[0].timezone",
                "missing; an interval needs a `timezone`",
            ),
            (
                {"interval": 0, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"},
                "schedules[0].interval",
                "`0` must be more than 0 seconds",
            ),
            (
                {"cron": "0 6 * * *", "interval": 3600, "timezone": "UTC"},
                "schedules[0]",
                "has `cron` and `interval`; give exactly one of cron, interval or rrule",
            ),
            (
                {"timezone": "UTC"},
                "schedules[0]",
                "has none; give exactly one of cron, interval or rrule",
            ),
            (
                {"cron": "0 6 * * *", "timezone": "UTC", "catchup": True},
                "schedules[0].catchup",
                "unknown key `catchup`; prefect deploy accepts cron, interval, rrule, timezone",
            ),
            (
                {"cron": "0 6 * * *", "timezone": "UTC", "max_active_runs": 1},
                "schedules[0].max_active_runs",
                "unknown key `max_active_runs`",
            ),
            (
                {"cron": "0 6 * * *", "timezone": "UTC", "parameters": {"colour": "red"}},
                "schedules[0].parameters.colour",
                "flow `export` takes no parameter `colour`",
            ),
            (
                {"cron": "0 6 * * *", "timezone": "UTC", "parameters": {"format": "xls"}},
                "schedules[0].parameters.format",
                "`xls` is not supported; use one of csv, json, jsonl, xml, parquet",
            ),
        ],
    )
    def test_one_bad_schedule_is_one_named_problem(
        self, tmp_path: Path, schedule: dict[str, Any], field: str, message: str
    ) -> None:
        [problem] = problems_of(tmp_path, deployment(schedules=[schedule]))
        prefix = f"prefect.yaml: deployment `orders-weekly-berlin`: {field}: "
        assert problem.startswith(str(tmp_path / prefix)), problem
        assert message in problem

    def test_an_unquoted_anchor_date_must_be_quoted(self, tmp_path: Path) -> None:
        path = tmp_path / "prefect.yaml"
        path.write_text(
            "deployments:\n"
            "  - name: hourly\n"
            "    entrypoint: flows/export.py:export\n"
            f"    parameters: {yaml.safe_dump(EXPORT_PARAMETERS, default_flow_style=True)}"
            "    work_pool: {name: exports}\n"
            "    schedules:\n"
            "      - interval: 3600\n"
            "        anchor_date: 2026-01-01T00:00:00+01:00\n"
            "        timezone: Europe/Berlin\n"
        )
        [problem] = [str(p) for p in check_project(path)]
        assert "deployment `hourly`: schedules[0].anchor_date: write it in quotes" in problem

    @pytest.mark.parametrize(
        ("fields", "field", "message"),
        [
            (
                {"parameters": {**EXPORT_PARAMETERS, "colour": "red"}},
                "parameters.colour",
                "flow `export` takes no parameter `colour`; it takes source, destination",
            ),
            (
                {"parameters": {"format": "csv", "destination": {"url": "x.{ext}"}}},
                "parameters.source",
                "missing; flow `export` requires `source`",
            ),
            (
                {"parameters": {**EXPORT_PARAMETERS, "source": {"table": "orders"}}},
                "parameters.source",
                "give exactly one of `url` (a SQLAlchemy URL) or `block`",
            ),
            ({"entrypoint": None}, "entrypoint", "missing; give it as path/to/file.py:flow"),
            ({"entrypoint": "flows/nope.py:export"}, "entrypoint", "`flows/nope.py` not found"),
            ({"entrypoint": "flows/export.py:nope"}, "entrypoint", "has no `nope`"),
            (
                {"entrypoint": "flows/request.py:parse_format"},
                "entrypoint",
                "is not a Prefect flow; decorate it with @flow",
            ),
            ({"work_pool": None}, "work_pool.name", "missing; name the work pool"),
            ({"concurrency_limit": 0}, "concurrency_limit", "`0` is not a whole number"),
            (
                {"concurrency_limit": {"limit": 2, "collision_strategy": "SOMETIMES"}},
                "concurrency_limit.collision_strategy",
                "'ENQUEUE' or 'CANCEL_NEW'",
            ),
        ],
    )
    def test_a_bad_deployment_field_is_named(
        self, tmp_path: Path, fields: dict[str, Any], field: str, message: str
    ) -> None:
        [problem] = problems_of(tmp_path, deployment(**fields))
        assert f"deployment `orders-weekly-berlin`: {field}: " in problem
        assert message in problem

    def test_a_wrongly_typed_parameter_of_another_flow_is_named(self, tmp_path: Path) -> None:
        spec = deployment(
            "reconciler",
            entrypoint="flows/alert_reconciler.py:reconcile_alerts",
            parameters={"since_hours": "a day"},
        )
        [problem] = problems_of(tmp_path, spec)
        assert (
            "deployment `reconciler`: parameters.since_hours: Input should be a valid number"
            in (problem)
        )

    def test_names_are_present_and_unique(self, tmp_path: Path) -> None:
        problems = problems_of(tmp_path, deployment("twice"), deployment("twice"), deployment(None))
        assert problems == [
            f"{tmp_path / 'prefect.yaml'}: deployment `twice`: name: `twice` is also deployment "
            "#1's name; names are unique",
            f"{tmp_path / 'prefect.yaml'}: deployment `#3`: name: missing; every deployment "
            "needs a unique `name`",
        ]

    def test_all_problems_are_collected(self, tmp_path: Path) -> None:
        problems = problems_of(
            tmp_path,
            deployment(schedules=[{"cron": "61 * * * *"}, {"cron": "0 6 * * *", "timezone": "X"}]),
            deployment("second", work_pool=None, parameters={**EXPORT_PARAMETERS, "colour": 1}),
        )
        fields = [problem.split(": ")[2] for problem in problems]
        assert fields == [
            "schedules[0].timezone",
            "schedules[1].timezone",
            "parameters.colour",
            "work_pool.name",
        ]

    def test_a_missing_file_is_a_usage_error(self, tmp_path: Path) -> None:
        with pytest.raises(UsageError, match="does not exist"):
            check_project(tmp_path / "nope.yaml")


class TestSchedulesOf:
    def test_returns_prefects_schedules_with_their_raw_items(self) -> None:
        [spec] = [
            s
            for s in load_deployments(REPO_ROOT / "prefect.yaml")
            if s.name == "orders-every-4-hours"
        ]
        [(raw, schedule)] = schedules_of(spec)
        assert raw["interval"] == 14400
        assert isinstance(schedule, IntervalSchedule)
        assert schedule.interval.total_seconds() == 14400 and schedule.timezone == "Europe/Berlin"

    def test_an_invalid_schedule_raises_with_the_check_message(self, tmp_path: Path) -> None:
        path = write_project(tmp_path, deployment(schedules=[{"cron": "0 6 * * *"}]))
        [spec] = load_deployments(path)
        with pytest.raises(ConfigurationError, match=r"schedules\[0\]\.timezone: missing"):
            schedules_of(spec)
