"""Every private Prefect module or behaviour the project relies on, behind one door.

Prefect's public API does not cover everything we need: the model `prefect deploy` reads
prefect.yaml with, the schedule classes its scheduler runs, the temporary server a process
starts without PREFECT_API_URL, how its logging is set up. Those pieces live here, one section
each, and tests/flows/core/test_prefect_compat.py checks each against the installed Prefect:
an upgrade starts by running that file and reading this one. Bottom layer: it imports Prefect,
pydantic and the standard library only, and Prefect's CLI and server modules inside the
functions (the command line and the gateway import this module as they start).
"""

from __future__ import annotations

import logging
import multiprocessing
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from prefect.logging.handlers import PrefectConsoleHandler
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.schemas import schedules as server_schedules

    # For annotations only (import it under TYPE_CHECKING): the server's module loads lazily.
    ServerSchedule = (
        server_schedules.CronSchedule
        | server_schedules.IntervalSchedule
        | server_schedules.RRuleSchedule
    )

__all__ = [
    "concurrency_keys",
    "configure_logging_first",
    "console_handlers",
    "deployment_schedule",
    "engine_spawns_runs",
    "ensure_logging",
    "mute_prefect_loggers",
    "schedule_keys",
    "server_schedule",
    "slots_refused",
    "spawn_runs_with",
    "start_temporary_server",
    "temporary_server",
    "validate_deployment",
    "validate_flow_parameters",
    "validate_schedule_config",
]


# --- prefect deploy's model of prefect.yaml (prefect.cli.deploy._models) -------------------
# `exports check` refuses what `prefect deploy` would refuse, with Prefect's own pydantic
# models of a deployment, a `schedules:` item and a `concurrency_limit:` mapping.


def validate_deployment(raw: dict[str, Any]) -> None:
    """Check a prefect.yaml deployment (without schedules and limits) as `prefect deploy` does.

    Raises:
        pydantic.ValidationError: what deploy would refuse, field by field.
    """
    from prefect.cli.deploy._models import DeploymentConfig

    DeploymentConfig.model_validate(raw)


def validate_schedule_config(raw: dict[str, Any]) -> None:
    """Check one `schedules:` item as `prefect deploy` reads it.

    Raises:
        pydantic.ValidationError: a key or value deploy refuses.
    """
    from prefect.cli.deploy._models import RawScheduleConfig

    RawScheduleConfig.model_validate(raw)


def schedule_keys() -> tuple[str, ...]:
    """The keys `prefect deploy` accepts in a `schedules:` item (it refuses the file else)."""
    from prefect.cli.deploy._models import RawScheduleConfig

    return _field_names(RawScheduleConfig)


def concurrency_keys() -> tuple[str, ...]:
    """The keys `prefect deploy` reads from a `concurrency_limit:` mapping."""
    from prefect.cli.deploy._models import ConcurrencyLimitSpec

    return _field_names(ConcurrencyLimitSpec)


def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


# --- a full global concurrency limit, not waited for (prefect.concurrency._asyncio) ----------
# `concurrency(name, max_retries=0)` on a limit with no free slot raises Prefect's private
# ConcurrencySlotAcquisitionError from the server's 423 Locked answer (a wait that runs out
# raises the public TimeoutError instead).

_LOCKED = 423


def slots_refused(exc: BaseException) -> bool:
    """True when `exc` is Prefect's refusal of a slot the limit has none of (HTTP 423)."""
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    return type(exc).__name__ == "ConcurrencySlotAcquisitionError" and (
        getattr(response, "status_code", None) == _LOCKED
    )


# --- prefect deploy's schedule conversion (prefect.cli.deploy._schedules) --------------------
# `exports check`, `exports schedule` and `exports serve` build a trigger's schedule with the
# function `prefect deploy` uses, so a checked, listed or served schedule is the deployed one.


def deployment_schedule(raw: dict[str, Any]) -> dict[str, Any]:
    """A `schedules:` item as `prefect deploy` turns it into DeploymentScheduleCreate fields
    (`schedule` a client CronSchedule, IntervalSchedule or RRuleSchedule, `active`, ...).

    Raises:
        ValueError: the item is not a schedule deploy can build (pydantic's ValidationError
            among them).
    """
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    return dict(_schedule_config_to_deployment_schedule(dict(raw)))


# --- the scheduler's schedule classes (prefect.server.schemas.schedules) ---------------------
# A deployment's schedules reach us as client classes, which compute no dates. The server's
# twins are the classes Prefect's scheduler creates runs with (daylight-saving rules included):
# `exports schedule` lists their dates and a windowed run finds its previous tick with them.


def server_schedule(schedule: Any) -> ServerSchedule | None:
    """The scheduler's twin of a client (or server) schedule; None for any other kind."""
    from prefect.client.schemas import schedules as client_schedules
    from prefect.server.schemas import schedules as server_schedules

    if isinstance(
        schedule,
        server_schedules.CronSchedule
        | server_schedules.IntervalSchedule
        | server_schedules.RRuleSchedule,
    ):
        return schedule
    twins: dict[type[Any], type[ServerSchedule]] = {
        client_schedules.CronSchedule: server_schedules.CronSchedule,
        client_schedules.IntervalSchedule: server_schedules.IntervalSchedule,
        client_schedules.RRuleSchedule: server_schedules.RRuleSchedule,
    }
    twin = twins.get(type(schedule))
    return None if twin is None else twin.model_validate(schedule.model_dump())


# --- the temporary server (prefect.server.api.server.SubprocessASGIServer) -------------------
# Without PREFECT_API_URL, Prefect's client starts this one server per process at its first
# API call. `exports run` starts it up front, before its threads would race to start it.


def temporary_server() -> SubprocessASGIServer:
    """The temporary server Prefect's client starts (one instance per process)."""
    from prefect.server.api.server import SubprocessASGIServer

    return SubprocessASGIServer()


def start_temporary_server() -> None:
    """Start the temporary server now (nothing if it runs); it stops as the process ends."""
    temporary_server().start()


# --- logging set-up (prefect.logging.configuration, Prefect's console handler and loggers) ---
# The command line shows Prefect's console lines its own way (deployments/cli/quiet.py), and the
# gateway keeps uvicorn's access log; both depend on when and how Prefect configures logging.


def ensure_logging() -> None:
    """Configure Prefect's logging now unless done: Prefect 3.9 does it when its flow machinery
    is first imported, and the console handlers must exist before we filter them."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()


def configure_logging_first() -> None:
    """Let Prefect configure logging now, so a configuration applied after this one stays.
    Importing Prefect's flow machinery (`prefect.main`) resets the loggers of its logging
    settings, `uvicorn.access` among them; it does so once per process."""
    import prefect.main  # noqa: F401


def console_handlers() -> list[PrefectConsoleHandler]:
    """Prefect's console handlers on any logger: where its terminal lines come out."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, PrefectConsoleHandler)
    ]


def mute_prefect_loggers() -> None:
    """Silence every `prefect` logger. `logging.disable` is not enough: Prefect's internal
    loggers answer isEnabledFor themselves, past it."""
    for name in list(logging.root.manager.loggerDict):
        if name == "prefect" or name.startswith("prefect."):
            logging.getLogger(name).disabled = True


def validate_flow_parameters(flow: Any, parameters: dict[str, Any]) -> None:
    """`flow.validate_parameters`, without the ERROR line Prefect's `prefect.flows` logger
    writes before it raises (the caller reports the problem itself).

    Raises:
        prefect.exceptions.ParameterTypeError: the parameters do not fit the flow.
    """
    logger = logging.getLogger("prefect.flows")
    disabled, logger.disabled = logger.disabled, True
    try:
        flow.validate_parameters(parameters)
    finally:
        logger.disabled = disabled


# --- how the engine starts a served run (prefect.flow_engine.multiprocessing) ----------------
# Prefect's runner starts each served run in a new interpreter: `run_flow_in_subprocess` asks
# `multiprocessing` for the spawn context by name. `exports serve` hands it a forkserver
# context instead (deployments/triggers/warm_start.py): runs start about 2.4 s sooner.


class _ContextForSpawn:
    """Stands in for the `multiprocessing` module inside `prefect.flow_engine`: its spawn
    context is the one given, anything else the module's own."""

    def __init__(self, module: ModuleType, context: multiprocessing.context.BaseContext) -> None:
        self._module = module
        self._context = context

    def get_context(self, method: str | None = None) -> Any:
        return self._context if method == "spawn" else self._module.get_context(method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def engine_spawns_runs() -> bool:
    """Whether Prefect's engine still starts runs through its `multiprocessing` module."""
    from prefect import flow_engine

    return isinstance(getattr(flow_engine, "multiprocessing", None), ModuleType)


def spawn_runs_with(context: multiprocessing.context.BaseContext) -> None:
    """Start this process's served runs with `context` where the engine asks for spawn."""
    from prefect import flow_engine

    setattr(flow_engine, "multiprocessing", _ContextForSpawn(multiprocessing, context))  # noqa: B010
