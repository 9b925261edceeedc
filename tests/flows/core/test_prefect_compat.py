"""Each piece of Prefect's internals the project relies on (flows/core/prefect_compat.py),
checked against the installed Prefect: after an upgrade, the first test to fail here names the
piece to fix. Also: prefect.yaml names the Prefect version CI tests."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import multiprocessing
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from prefect import flow
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ParameterTypeError
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.server.schemas import schedules as server_schedules
from pydantic import ValidationError

from flows.core import prefect_compat as compat

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]


def _project() -> dict[str, Any]:
    document = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


# --- prefect deploy's model of prefect.yaml ---------------------------------------------------


def test_the_deploy_model_accepts_every_deployment_of_prefect_yaml() -> None:
    ours = {"schedules", "concurrency_limit", "name"}  # what check.py checks itself
    deployments = _project()["deployments"]
    assert len(deployments) >= 5
    for raw in deployments:
        compat.validate_deployment({k: v for k, v in raw.items() if k not in ours})


def test_the_deploy_model_names_the_field_it_refuses() -> None:
    with pytest.raises(ValidationError) as caught:
        compat.validate_deployment({"entrypoint": "flows/export.py:export", "tags": 5})
    assert {error["loc"][0] for error in caught.value.errors()} == {"tags"}


def test_a_schedules_item_is_read_as_deploy_reads_it() -> None:
    compat.validate_schedule_config({"cron": "0 6 * * *", "timezone": "Europe/Berlin"})
    with pytest.raises(ValidationError) as caught:
        compat.validate_schedule_config({"cron": "0 6 * * *", "timezone_": "Europe/Berlin"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_the_keys_deploy_accepts_in_a_schedule_and_a_concurrency_limit() -> None:
    assert set(compat.schedule_keys()) >= {
        "cron",
        "interval",
        "rrule",
        "timezone",
        "anchor_date",
        "active",
        "parameters",
        "slug",
    }
    assert compat.concurrency_keys() == ("limit", "collision_strategy", "grace_period_seconds")


# --- prefect deploy's schedule conversion -----------------------------------------------------


def test_a_cron_item_becomes_the_schedule_deploy_creates() -> None:
    built = compat.deployment_schedule({"cron": "0 6 * * *", "timezone": "Europe/Berlin"})
    schedule = DeploymentScheduleCreate.model_validate(built).schedule
    assert isinstance(schedule, CronSchedule)
    assert (schedule.cron, schedule.timezone) == ("0 6 * * *", "Europe/Berlin")


def test_an_interval_item_keeps_its_anchor_timezone_and_active_flag() -> None:
    raw = {
        "interval": 14400,
        "anchor_date": "2026-01-01T00:00:00+01:00",
        "timezone": "Europe/Berlin",
        "active": False,
    }
    created = DeploymentScheduleCreate.model_validate(compat.deployment_schedule(raw))
    assert created.active is False
    assert isinstance(created.schedule, IntervalSchedule)
    assert created.schedule.interval == timedelta(hours=4)
    assert created.schedule.anchor_date == datetime(2025, 12, 31, 23, tzinfo=UTC)
    assert created.schedule.timezone == "Europe/Berlin"


def test_an_item_deploy_cannot_build_raises_value_error() -> None:
    with pytest.raises(ValueError, match="cron"):
        compat.deployment_schedule({"cron": "61 6 * * *", "timezone": "Europe/Berlin"})


# --- the scheduler's schedule classes ---------------------------------------------------------


def _dates(schedule: Any, count: int, start: datetime) -> list[datetime]:
    found = asyncio.run(schedule.get_dates(count, start))
    return [datetime.fromtimestamp(when.timestamp(), UTC) for when in found]


def test_a_client_cron_gives_the_dates_of_the_schedulers_class_across_dst() -> None:
    """06:00 in Berlin is 05:00 UTC before 29 March 2026 and 04:00 UTC after."""
    client = CronSchedule(cron="0 6 * * *", timezone="Europe/Berlin")
    twin = compat.server_schedule(client)
    assert isinstance(twin, server_schedules.CronSchedule)
    start = datetime(2026, 3, 27, tzinfo=UTC)
    expected = [
        datetime(2026, 3, 27, 5, tzinfo=UTC),
        datetime(2026, 3, 28, 5, tzinfo=UTC),
        datetime(2026, 3, 29, 4, tzinfo=UTC),
        datetime(2026, 3, 30, 4, tzinfo=UTC),
    ]
    assert _dates(twin, 4, start) == expected
    reference = server_schedules.CronSchedule(cron="0 6 * * *", timezone="Europe/Berlin")
    assert _dates(reference, 4, start) == expected


def test_interval_and_rrule_schedules_have_twins_and_other_things_none() -> None:
    interval = IntervalSchedule(
        interval=timedelta(days=1),
        anchor_date=datetime(2026, 1, 1, 6, tzinfo=UTC),
        timezone="Europe/Berlin",
    )
    rrule = RRuleSchedule(
        rrule="DTSTART:20260101T090000\nFREQ=WEEKLY;BYDAY=MO", timezone="Europe/Berlin"
    )
    start = datetime(2026, 3, 27, tzinfo=UTC)
    interval_twin = compat.server_schedule(interval)
    rrule_twin = compat.server_schedule(rrule)
    assert isinstance(interval_twin, server_schedules.IntervalSchedule)
    assert isinstance(rrule_twin, server_schedules.RRuleSchedule)
    # The interval keeps 07:00 Berlin wall-clock time; the rrule 09:00 Berlin on Mondays.
    assert _dates(interval_twin, 3, start) == [
        datetime(2026, 3, 27, 6, tzinfo=UTC),
        datetime(2026, 3, 28, 6, tzinfo=UTC),
        datetime(2026, 3, 29, 5, tzinfo=UTC),
    ]
    assert _dates(rrule_twin, 2, start) == [
        datetime(2026, 3, 30, 7, tzinfo=UTC),
        datetime(2026, 4, 6, 7, tzinfo=UTC),
    ]
    assert compat.server_schedule(interval_twin) is interval_twin
    assert compat.server_schedule({"cron": "0 6 * * *"}) is None


# --- the temporary server ---------------------------------------------------------------------


def test_the_temporary_server_is_the_one_prefects_client_starts() -> None:
    """One instance per process, the one `get_client` starts without PREFECT_API_URL
    (starting it is exercised by tests/deployments/cli/test_runs.py's `exports run`)."""
    from prefect.client import orchestration
    from prefect.server.api.server import SubprocessASGIServer

    server = compat.temporary_server()
    assert type(server) is SubprocessASGIServer
    assert compat.temporary_server() is server is SubprocessASGIServer()
    assert "SubprocessASGIServer()" in inspect.getsource(orchestration.get_client)
    assert callable(server.start) and inspect.signature(server.start).parameters.keys() <= {
        "timeout"
    }


# --- logging set-up ---------------------------------------------------------------------------


@pytest.fixture
def prefect_console() -> Iterator[list[PrefectConsoleHandler]]:
    compat.ensure_logging()
    yield compat.console_handlers()


def test_prefects_console_handlers_are_where_its_terminal_lines_come_out(
    prefect_console: list[PrefectConsoleHandler],
) -> None:
    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG

    assert PROCESS_LOGGING_CONFIG  # ensure_logging configured it
    assert prefect_console
    assert all(isinstance(handler, PrefectConsoleHandler) for handler in prefect_console)
    seen: list[str] = []

    def record(entry: logging.LogRecord) -> bool:
        seen.append(entry.getMessage())
        return False  # nothing printed

    for handler in prefect_console:
        handler.addFilter(record)
    try:
        logging.getLogger("uvicorn").critical("uvicorn line")
    finally:
        for handler in prefect_console:
            handler.removeFilter(record)
    assert "uvicorn line" in seen


def test_muting_disables_every_prefect_logger_and_no_other() -> None:
    logging.getLogger("prefect.compat_probe")
    names = [n for n in logging.root.manager.loggerDict if n == "prefect" or n[:8] == "prefect."]
    others = ["uvicorn", "deployments", "flows.core.probe"]
    before = {name: logging.getLogger(name).disabled for name in [*names, *others]}
    try:
        compat.mute_prefect_loggers()
        assert all(logging.getLogger(name).disabled for name in names)
        assert not any(logging.getLogger(name).disabled for name in others)
    finally:
        for name, disabled in before.items():
            logging.getLogger(name).disabled = disabled


@flow(name="compat-probe")
def _probe(rows: int) -> int:
    return rows


def test_flow_parameters_are_validated_without_prefects_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    compat.validate_flow_parameters(_probe, {"rows": 3})
    with caplog.at_level(logging.DEBUG), pytest.raises(ParameterTypeError, match="rows"):
        compat.validate_flow_parameters(_probe, {"rows": "many"})
    assert [r for r in caplog.records if r.name.startswith("prefect.flows")] == []
    assert logging.getLogger("prefect.flows").disabled is False
    # Without it, Prefect's `prefect.flows` logger writes the failure at ERROR first.
    with caplog.at_level(logging.DEBUG), pytest.raises(ParameterTypeError):
        _probe.validate_parameters({"rows": "many"})
    assert any(r.name == "prefect.flows" and r.levelno == logging.ERROR for r in caplog.records)


_ACCESS_LOG_PROBE = """
import json, logging, logging.config, sys
if sys.argv[1] == "first":
    from flows.core.prefect_compat import configure_logging_first
    configure_logging_first()
logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
    "handlers": {"access": {"class": "logging.StreamHandler"}},
    "loggers": {"uvicorn.access": {"handlers": ["access"], "level": "INFO"}}})
import prefect.main  # what the gateway's first request imports
print(json.dumps(len(logging.getLogger("uvicorn.access").handlers)))
"""


def test_a_logging_configuration_applied_after_prefects_stays() -> None:
    """The gateway's access log: configured after Prefect's, it keeps its handler; configured
    before, Prefect's import takes it away (why the gateway calls it first)."""
    handlers = {}
    for order in ("first", "after"):
        done = subprocess.run(
            [sys.executable, "-c", _ACCESS_LOG_PROBE, order],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        handlers[order] = json.loads(done.stdout.strip().splitlines()[-1])
    assert handlers == {"first": 1, "after": 0}


# --- how the engine starts a served run -------------------------------------------------------


@pytest.fixture
def engine_module() -> Iterator[Any]:
    from prefect import flow_engine

    original = vars(flow_engine)["multiprocessing"]
    yield flow_engine
    setattr(flow_engine, "multiprocessing", original)  # noqa: B010


def test_the_engine_starts_runs_through_multiprocessing_spawn(engine_module: Any) -> None:
    assert compat.engine_spawns_runs() is True
    source = inspect.getsource(engine_module.run_flow_in_subprocess)
    assert 'multiprocessing.get_context("spawn")' in source


def test_runs_spawn_with_the_given_context_and_nothing_else_changes(engine_module: Any) -> None:
    context = multiprocessing.get_context("forkserver")
    compat.spawn_runs_with(context)
    stand_in = engine_module.multiprocessing
    assert stand_in.get_context("spawn") is context
    assert stand_in.get_context("fork") is multiprocessing.get_context("fork")
    assert stand_in.Process is multiprocessing.Process
    assert compat.engine_spawns_runs() is False  # it is ours now, not the module


# --- the Prefect version prefect.yaml names ---------------------------------------------------


def test_prefect_yaml_names_the_prefect_version_ci_tests() -> None:
    """`prefect-version` is the installed Prefect's minor version, within pyproject's range."""
    installed = Version(version("prefect"))
    named = Version(str(_project()["prefect-version"]))
    assert (named.major, named.minor) == (installed.major, installed.minor)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (requirement,) = [
        dep for dep in pyproject["project"]["dependencies"] if dep.startswith("prefect>")
    ]
    allowed = SpecifierSet(requirement.removeprefix("prefect"))
    assert installed in allowed
    assert named in allowed
