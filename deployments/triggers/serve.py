"""Serving prefect.yaml's triggers from one process (`exports serve`), for small setups.

A Prefect Runner (what Prefect's `serve()` uses) registers the deployments with their schedules
and runs their runs in child processes of this one: no work pool, no worker. `--limit` is the
queue, like the work pool's concurrency limit under `make serve`. The schedules are built by the
code `prefect deploy` uses, so a served trigger runs at the same times as a deployed one. Runs
start warm (deployments/triggers/warm_start.py): about 1.2 s from an API trigger to the flow's body
instead of about 4 s (bench/trigger_latency.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefect.client.schemas.actions import DeploymentScheduleCreate

from deployments.triggers.project import DeploymentSpec
from deployments.triggers.warm_start import enable as enable_warm_start
from flows.core.prefect_compat import deployment_schedule

if TYPE_CHECKING:
    from prefect.runner import Runner

POLL_ENV = "PREFECT_RUNNER_POLL_FREQUENCY"
FAST_POLL_S = 1
CLI_MODULE = "deployments.cli.app"  # what the `exports` command imports; preloaded too


def build_runner(specs: Sequence[DeploymentSpec], limit: int) -> Runner:
    """A Prefect Runner serving these deployments, at most `limit` runs at once."""
    from prefect.runner import Runner

    # An API trigger waits for the runner's next poll: FAST_POLL_S instead of Prefect's 10 s
    # (one small query each time), unless PREFECT_RUNNER_POLL_FREQUENCY says otherwise.
    poll = None if POLL_ENV in os.environ else FAST_POLL_S
    runner = Runner(name="exports-serve", limit=limit, pause_on_shutdown=True, query_seconds=poll)
    for spec in specs:
        _add_flow(runner, spec)
    return runner


def start_warm(specs: Sequence[DeploymentSpec]) -> bool:
    """Fork the served runs from a process that imported their flows (False where that is
    not available, and every run starts a new interpreter)."""
    return enable_warm_start(sorted({spec.module_name for spec in specs} | {CLI_MODULE}))


def run_until_stopped(runner: Runner) -> None:
    """Serve until Ctrl-C or a termination signal; the served deployments are then paused."""
    from prefect.exceptions import TerminationSignal

    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass


def _add_flow(runner: Any, spec: DeploymentSpec) -> None:
    """Register the deployment with its flow object (what Prefect's `serve()` does not do),
    so the runner starts runs from that object instead of `python -m prefect.engine`."""
    raw = spec.raw
    schedules = [
        DeploymentScheduleCreate(**deployment_schedule(item)) for item in raw.get("schedules") or []
    ]
    runner.add_flow(
        spec.load_flow(),
        name=spec.name,
        description=raw.get("description"),
        tags=raw.get("tags"),
        parameters=spec.parameters,
        schedules=schedules,
        concurrency_limit=raw.get("concurrency_limit"),
    )
