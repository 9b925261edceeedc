"""Scheduled triggers on a real Prefect server, set up the way `make serve` does it:
`deployments/triggers/serve.sh` starts `prefect server start` (with its scheduler), creates the
`exports` process work pool with a concurrency limit (1 here), deploys the example prefect.yaml with
`prefect deploy --all` and starts a worker. Expected run times are computed here with zoneinfo,
independently of Prefect's schedule code."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, FlowRunFilter
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled
from typer.testing import CliRunner

from blocks import PROJECT_BLOCKS, StatusAlerts
from deployments.cli.app import app
from deployments.triggers.project import load_deployments
from tests.conftest import REPO_ROOT
from tests.deployments.triggers.serve_stack import serve_env, start_serve_sh, wait_for_worker
from tests.processes import stop_process
from tests.servers.ports import free_port

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
# The server's scheduler creates this many runs ahead for each deployment: enough for the
# weekly trigger to reach the next spring change (2027-03-28) from any day of the year.
RUNS_AHEAD = 60
# Local hours of the every-4-hours trigger, anchored at 2026-01-01 00:00 Berlin (winter time).
WINTER_GRID = {0, 4, 8, 12, 16, 20}
SUMMER_GRID = {1, 5, 9, 13, 17, 21}
DEPLOYED = [spec.name for spec in load_deployments(REPO_ROOT / "prefect.yaml")]


@dataclass(frozen=True)
class Stack:
    api_url: str
    log: Path

    def client(self) -> SyncPrefectClient:
        return get_client(sync_client=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = serve_env(
        home,
        port,
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="1",
        PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS=str(RUNS_AHEAD),
        PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS=str(RUNS_AHEAD),
        PREFECT_SERVER_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME="P2000D",
        PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS="1",
        PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS="5",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        EXPORTS_CONCURRENCY="1",
    )
    log = home / "serve.log"
    process = start_serve_sh(env, log)
    stack = Stack(f"http://127.0.0.1:{port}/api", log)
    try:
        with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
            _wait_until_deployed(stack, process)
            yield stack
    finally:
        stop_process(process, grace_s=30, group=True)


def _wait_until_deployed(stack: Stack, process: subprocess.Popen[bytes]) -> None:
    wait_for_worker(process, stack.log)
    with stack.client() as client:
        names = {d.name for d in client.read_deployments(limit=100, offset=0)}
    assert set(DEPLOYED) <= names, (names, stack.log.read_text())


def deployment_id(client: SyncPrefectClient, name: str) -> Any:
    flow = "alert-reconciler" if name == "alert-reconciler" else "export"
    return client.read_deployment_by_name(f"{flow}/{name}").id


def runs_of(
    client: SyncPrefectClient,
    name: str,
    after: dt.datetime | None = None,
    before: dt.datetime | None = None,
) -> list[FlowRun]:
    """Every run of a deployment (in the window, if given), earliest first."""
    found: list[FlowRun] = []
    time_filter: dict[str, Any] = {}
    if after is not None:
        time_filter["after_"] = after
    if before is not None:
        time_filter["before_"] = before
    flow_run_filter = FlowRunFilter(expected_start_time=time_filter) if time_filter else None
    while True:
        page = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id={"any_": [deployment_id(client, name)]}),
            flow_run_filter=flow_run_filter,
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
            offset=len(found),
        )
        found += page
        if len(page) < 200:
            return found


def start_times(runs: list[FlowRun]) -> list[dt.datetime]:
    return [  # plain datetimes: Prefect's pendulum ones subtract to Interval objects
        dt.datetime.fromtimestamp(run.expected_start_time.timestamp(), UTC)
        for run in runs
        if run.expected_start_time
    ]


def wall_clock_times(
    first: dt.datetime, last: dt.datetime, zone: ZoneInfo, at: dt.time, on_day: Any = None
) -> list[dt.datetime]:
    """Every local `at` (on the days `on_day(date)` accepts), from `first` to `last`, in UTC."""
    day = first.astimezone(zone).date()
    expected = []
    while day <= last.astimezone(zone).date():
        moment = dt.datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
        if (on_day is None or on_day(day)) and first <= moment <= last:
            expected.append(moment)
        day += dt.timedelta(days=1)
    return expected


def offsets(times: list[dt.datetime], zone: ZoneInfo) -> set[dt.timedelta | None]:
    return {moment.astimezone(zone).utcoffset() for moment in times}


# ---- 1. the scheduler's own runs, from now on ------------------------------------------------


def test_the_block_catalogue_lists_every_project_block_type(stack: Stack) -> None:
    """What the UI's "Add block" page lists: our types are there on a fresh server, each
    saying how it is used (Status Alerts: under which name)."""
    response = httpx.post(f"{stack.api_url}/block_types/filter", json={"limit": 200})
    response.raise_for_status()
    listed = {item["slug"]: item for item in response.json()}
    for block in PROJECT_BLOCKS:
        slug = block.get_block_type_slug()
        assert slug in listed, (slug, sorted(listed))
        assert listed[slug]["description"] == block.get_description()
    alerts = listed[StatusAlerts.get_block_type_slug()]["description"]
    assert "under the name `status-alerts`" in alerts
    assert "registered 11 block types with" in stack.log.read_text()


def test_the_scheduler_keeps_weekly_and_monthly_times_across_the_next_dst_change(
    stack: Stack,
) -> None:
    with stack.client() as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            weekly = start_times(runs_of(client, "orders-weekly-berlin"))
            monthly = start_times(runs_of(client, "orders-monthly-new-york"))
            daily = start_times(runs_of(client, "orders-every-24-hours"))
            if min(len(weekly), len(monthly), len(daily)) >= RUNS_AHEAD:
                break
            time.sleep(1)
    assert len(weekly) == len(monthly) == len(daily) == RUNS_AHEAD
    assert weekly == wall_clock_times(
        weekly[0], weekly[-1], BERLIN, dt.time(9, 30), lambda day: day.weekday() in (0, 2)
    )
    assert monthly == wall_clock_times(
        monthly[0], monthly[-1], NEW_YORK, dt.time(6, 0), lambda day: day.day == 1
    )
    assert daily == wall_clock_times(daily[0], daily[-1], NEW_YORK, dt.time(6, 0))
    # 60 weeks and 60 months from any day reach past a DST change: both offsets appear.
    assert len(offsets(weekly, BERLIN)) == 2 and len(offsets(monthly, NEW_YORK)) == 2


def test_the_audit_log_lists_the_scheduler_runs_as_scheduled(stack: Stack) -> None:
    """`exports audit` on the real server: the runs its scheduler made ahead, by `schedule`,
    listed with --include-scheduled (not yet due, they are not in the default view)."""
    ahead = ["audit", "orders-weekly-berlin", "--status", "scheduled", "--output", "json"]
    result = CliRunner().invoke(app, ahead)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [], "the default view lists runs due by now"
    result = CliRunner().invoke(app, [*ahead, "--include-scheduled"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    with stack.client() as client:
        upcoming_ids = {str(run.id) for run in runs_of(client, "orders-weekly-berlin")}
    listed = {record["export_request_id"] for record in records}
    assert len(records) == 50 and listed <= upcoming_ids
    for record in records:
        assert (record["trigger_type"], record["triggered_by"]) == ("Scheduled", "schedule")
        assert (record["deployment"], record["status"], record["rows"]) == (
            "orders-weekly-berlin", "Scheduled", None,
        )  # fmt: skip


# ---- 1. runs the server creates over the DST changes of 2026 ---------------------------------


@pytest.fixture
def paused_pool(stack: Stack) -> Iterator[None]:
    """No worker takes the (past, hence due) backfilled runs while the test reads them."""
    with stack.client() as client:
        client._client.patch("/work_pools/exports", json={"is_paused": True}).raise_for_status()
        try:
            yield
        finally:
            client._client.patch("/work_pools/exports", json={"is_paused": False})


def server_schedules(
    client: SyncPrefectClient, name: str, first: dt.datetime, last: dt.datetime
) -> list[dt.datetime]:
    """Ask the server to create the deployment's runs from `first` to `last` (what its
    scheduler does, over a past range), read them back and delete them."""
    deployment = deployment_id(client, name)
    client._client.post(
        f"/deployments/{deployment}/schedule",
        json={"start_time": first.isoformat(), "end_time": last.isoformat(), "max_runs": 1000},
    ).raise_for_status()
    runs = runs_of(client, name, first, last)
    for run in runs:
        assert run.auto_scheduled, run
        client.delete_flow_run(run.id)
    return start_times(runs)


def at(zone: ZoneInfo, *parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (at(BERLIN, 2026, 3, 16), at(BERLIN, 2026, 4, 9)),  # change on Sunday 29 March
        (at(BERLIN, 2026, 10, 12), at(BERLIN, 2026, 11, 5)),  # change on Sunday 25 October
    ],
    ids=["berlin-spring", "berlin-autumn"],
)
@pytest.mark.usefixtures("paused_pool")
def test_weekly_berlin_keeps_0930_across_2026_changes(
    stack: Stack, first: dt.datetime, last: dt.datetime
) -> None:
    with stack.client() as client:
        times = server_schedules(client, "orders-weekly-berlin", first, last)
    expected = wall_clock_times(
        first, last, BERLIN, dt.time(9, 30), lambda day: day.weekday() in (0, 2)
    )
    assert times == expected and len(times) == 8
    assert len(offsets(times, BERLIN)) == 2


@pytest.mark.parametrize(
    ("first", "last", "utc_hours"),
    [
        # 1 Feb and 1 Mar are winter (11:00 UTC); New York moves on 8 March; 1 Apr is 10:00 UTC.
        (at(NEW_YORK, 2026, 1, 15), at(NEW_YORK, 2026, 4, 15), [11, 11, 10]),
        # 1 Oct is summer; the change is at 02:00 on 1 Nov itself, so 06:00 that day is winter.
        (at(NEW_YORK, 2026, 9, 15), at(NEW_YORK, 2026, 12, 15), [10, 11, 11]),
    ],
    ids=["new-york-spring", "new-york-autumn"],
)
@pytest.mark.usefixtures("paused_pool")
def test_monthly_new_york_keeps_0600_across_2026_changes(
    stack: Stack, first: dt.datetime, last: dt.datetime, utc_hours: list[int]
) -> None:
    with stack.client() as client:
        times = server_schedules(client, "orders-monthly-new-york", first, last)
    assert times == wall_clock_times(first, last, NEW_YORK, dt.time(6), lambda d: d.day == 1)
    assert [moment.hour for moment in times] == utc_hours


@pytest.mark.parametrize(
    ("first", "last", "local_hours_before", "local_hours_after"),
    [
        (at(BERLIN, 2026, 3, 28), at(BERLIN, 2026, 3, 31), WINTER_GRID, SUMMER_GRID),
        (at(BERLIN, 2026, 10, 24), at(BERLIN, 2026, 10, 27), SUMMER_GRID, WINTER_GRID),
    ],
    ids=["berlin-spring", "berlin-autumn"],
)
@pytest.mark.usefixtures("paused_pool")
def test_every_4_hours_counts_elapsed_time_so_its_local_grid_moves(
    stack: Stack,
    first: dt.datetime,
    last: dt.datetime,
    local_hours_before: set[int],
    local_hours_after: set[int],
) -> None:
    """As prefect.yaml documents: exactly 4 hours apart, anchored 2026-01-01 00:00 Berlin
    (winter time), so from the spring change to the autumn one they fall on 01:00, 05:00..."""
    with stack.client() as client:
        times = server_schedules(client, "orders-every-4-hours", first, last)
    anchor = at(BERLIN, 2026, 1, 1)
    assert all((moment - anchor) % (4 * HOUR) == dt.timedelta(0) for moment in times)
    assert all(later - earlier == 4 * HOUR for earlier, later in pairwise(times))
    assert times[0] <= first.astimezone(UTC) + 4 * HOUR and times[-1] >= last - 4 * HOUR
    change = next(
        b for a, b in pairwise(times) if a.astimezone(BERLIN).dst() != b.astimezone(BERLIN).dst()
    )
    assert {m.astimezone(BERLIN).hour for m in times if m < change} == local_hours_before
    assert {m.astimezone(BERLIN).hour for m in times if m >= change} == local_hours_after


@pytest.mark.parametrize(
    ("first", "last", "odd_gap"),
    [
        (at(NEW_YORK, 2026, 3, 6), at(NEW_YORK, 2026, 3, 11), 7 * HOUR),
        (at(NEW_YORK, 2026, 10, 30), at(NEW_YORK, 2026, 11, 4), 9 * HOUR),
    ],
    ids=["new-york-spring", "new-york-autumn"],
)
@pytest.mark.usefixtures("paused_pool")
def test_every_8_hours_and_daily_keep_new_york_wall_clock(
    stack: Stack, first: dt.datetime, last: dt.datetime, odd_gap: dt.timedelta
) -> None:
    with stack.client() as client:
        eight = server_schedules(client, "orders-every-8-hours", first, last)
        daily = server_schedules(client, "orders-every-24-hours", first, last)
    expected: list[dt.datetime] = sorted(
        moment
        for hour in (0, 8, 16)
        for moment in wall_clock_times(first, last, NEW_YORK, dt.time(hour))
    )
    assert eight == expected
    gaps = [later - earlier for earlier, later in pairwise(eight)]
    assert sorted(set(gaps)) == sorted({8 * HOUR, odd_gap}) and gaps.count(odd_gap) == 1
    assert daily == wall_clock_times(first, last, NEW_YORK, dt.time(6))
    assert len(offsets(daily, NEW_YORK)) == 2


# ---- 2. a scheduled run on the worker delivers exactly its window -----------------------------


def wait_until_final(
    client: SyncPrefectClient, run_ids: list[Any], timeout_s: float
) -> list[FlowRun]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [client.read_flow_run(run_id) for run_id in run_ids]
        if all(run.state and run.state.is_final() for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def test_a_scheduled_run_on_the_worker_delivers_exactly_its_window(stack: Stack) -> None:
    """The monthly trigger's run of 1 March 2024 06:00 New York (11:00 UTC) owns the orders
    from the previous scheduled time, 1 February 06:00 New York, up to its own."""
    since, until = dt.datetime(2024, 2, 1, 11), dt.datetime(2024, 3, 1, 11)  # UTC wall clock
    with stack.client() as client:
        first, last = at(UTC, 2024, 2, 20), at(UTC, 2024, 3, 5)
        deployment = deployment_id(client, "orders-monthly-new-york")
        client._client.post(
            f"/deployments/{deployment}/schedule",
            json={"start_time": first.isoformat(), "end_time": last.isoformat(), "max_runs": 10},
        ).raise_for_status()
        [scheduled] = runs_of(client, "orders-monthly-new-york", first, last)
        assert scheduled.auto_scheduled and start_times([scheduled]) == [until.replace(tzinfo=UTC)]
        [run] = wait_until_final(client, [scheduled.id], timeout_s=180)
    delivered = REPO_ROOT / "out" / "orders-monthly-new-york" / f"orders-2024-02-{run.id}.csv"
    try:
        assert run.state is not None and run.state.is_completed(), (
            run.state,
            stack.log.read_text()[-3000:],
        )
        with delivered.open(newline="") as file:
            got = [int(row["order_id"]) for row in csv.DictReader(file)]
    finally:
        delivered.unlink(missing_ok=True)
    with sqlite3.connect(REPO_ROOT / "demo" / "demo.sqlite") as db:
        every = db.execute("SELECT order_id, ordered_at FROM orders ORDER BY order_id").fetchall()
    expected = [
        key for key, text in every if text and since <= dt.datetime.fromisoformat(text) < until
    ]
    assert got == expected and len(expected) > 10


# ---- 3. many due at once: they queue under the pool's limit of 1 -----------------------------


def test_five_runs_due_at_once_all_complete_one_at_a_time(stack: Stack) -> None:
    now = dt.datetime.now(UTC)
    with stack.client() as client:
        deployment = deployment_id(client, "demo-orders")
        due = Scheduled(scheduled_time=now)
        ids = [client.create_flow_run_from_deployment(deployment, state=due).id for _ in range(5)]
        runs = wait_until_final(client, ids, timeout_s=300)
        histories = {run_id: client.read_flow_run_states(run_id) for run_id in ids}
    try:
        assert [run.state_name for run in runs] == ["Completed"] * 5, stack.log.read_text()[-3000:]
        spans = sorted((run.start_time, run.end_time) for run in runs)
        for (_, end), (start, _) in pairwise(spans):
            assert end is not None and start is not None and end <= start, spans
        # Those that waited show as Late meanwhile, as documented.
        assert any(state.name == "Late" for history in histories.values() for state in history), (
            histories
        )
        for run in runs:  # every run delivered its own file
            assert list((REPO_ROOT / "out" / "demo-orders").glob(f"orders-*-{run.id}.csv"))
    finally:
        for run_id in ids:
            for path in (REPO_ROOT / "out" / "demo-orders").glob(f"*-{run_id}.csv"):
                path.unlink()


# ---- 4. pause / resume -----------------------------------------------------------------------


def upcoming(client: SyncPrefectClient, name: str) -> list[FlowRun]:
    return [
        run
        for run in runs_of(client, name, after=dt.datetime.now(UTC))
        if run.state is not None and run.state.is_scheduled()
    ]


def test_a_paused_deployment_gets_no_new_runs_and_resumed_it_does(stack: Stack) -> None:
    cli = CliRunner()
    with stack.client() as client:
        assert upcoming(client, "orders-every-12-hours")
        paused = cli.invoke(app, ["pause", "orders-every-12-hours"])
        assert paused.exit_code == 0, paused.output
        assert "paused" in paused.output
        time.sleep(5)  # five scheduler loops
        assert client.read_deployment(deployment_id(client, "orders-every-12-hours")).paused
        assert upcoming(client, "orders-every-12-hours") == []
        resumed = cli.invoke(app, ["resume", "orders-every-12-hours"])
        assert resumed.exit_code == 0, resumed.output
        deadline = time.monotonic() + 30
        while not upcoming(client, "orders-every-12-hours") and time.monotonic() < deadline:
            time.sleep(1)
        again = upcoming(client, "orders-every-12-hours")
    assert len(again) >= 3
    assert all(moment.hour in (0, 12) and moment.minute == 0 for moment in start_times(again))
