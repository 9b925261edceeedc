"""Checking prefect.yaml's triggers (Contract 2) before `prefect deploy` does.

`prefect deploy` in Prefect 3.8 skips a whole file whose schedules do not match its model,
and accepts some mistakes silently (a cron without `timezone` runs in UTC; a naive
`anchor_date` is read as UTC). `check_project` reports every problem at once, naming the
deployment and the field. Schedules are built with Prefect's own deploy code, so a file that
passes here also deploys, and `schedules_of` hands the same objects to `exports schedule`.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.exceptions import ParameterTypeError
from pydantic import TypeAdapter, ValidationError

from deployments.triggers.project import DeploymentSpec, UsageError
from flows.core.errors import ConfigurationError
from flows.core.prefect_compat import (
    concurrency_keys,
    deployment_schedule,
    schedule_keys,
    validate_deployment,
    validate_flow_parameters,
    validate_schedule_config,
)
from flows.core.zones import ZONE_HINT, is_iana_zone
from flows.parameters import validate_export_parameters
from flows.runs.naming import EXPORT_FLOW

__all__ = ["SCHEDULE_KEYS", "Schedule", "TriggerProblem", "check_project", "schedules_of"]

Schedule = CronSchedule | IntervalSchedule | RRuleSchedule
SCHEDULE_KINDS = ("cron", "interval", "rrule")
SCHEDULE_KEYS = schedule_keys()
"""The keys `prefect deploy` accepts in a `schedules:` item (it refuses the file otherwise)."""
_CONCURRENCY_KEYS = concurrency_keys()
_UNION_MEMBER = re.compile(r"^function-|\[|^(str|int|float|bool|list|dict)$")
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$", re.DOTALL)


@dataclass(frozen=True)
class TriggerProblem:
    """One thing to fix in the project file: where it is and what to change."""

    file: str
    deployment: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"deployment `{self.deployment}`: " if self.deployment is not None else ""
        return f"{self.file}: {where}{self.field}: {self.message}"


_Found = list[tuple[str, str]]  # (field path, message) within one deployment


def check_project(project_file: Path) -> list[TriggerProblem]:
    """Every problem of every deployment in `project_file`, in file order.

    Raises:
        UsageError: the file does not exist.
    """
    shown = str(project_file)
    if not project_file.is_file():
        raise UsageError(f"--file: `{project_file}` does not exist; run from the project folder")
    try:
        document = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        return [TriggerProblem(shown, None, "yaml", " ".join(str(exc).split()))]
    deployments = document.get("deployments") if isinstance(document, dict) else None
    if not isinstance(deployments, list) or not deployments:
        return [TriggerProblem(shown, None, "deployments", "missing; list the deployments")]
    problems: list[TriggerProblem] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(deployments):
        label = f"#{index + 1}"
        if not isinstance(raw, dict):
            problems.append(TriggerProblem(shown, label, "deployment", "must be a mapping"))
            continue
        name = raw.get("name")
        found: _Found = []
        if not isinstance(name, str) or not name.strip():
            found.append(("name", "missing; every deployment needs a unique `name`"))
        else:
            label = name
            if name in seen:
                found.append(
                    ("name", f"`{name}` is also deployment #{seen[name]}'s name; names are unique")
                )
            seen.setdefault(name, index + 1)
        found += _check_deployment(raw)
        problems += [TriggerProblem(shown, label, field, message) for field, message in found]
    return problems


def count_schedules(project_file: Path) -> tuple[int, int]:
    """How many deployments and schedules the file has (for the OK line of `exports check`)."""
    document = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    deployments = [raw for raw in document.get("deployments") or [] if isinstance(raw, dict)]
    return len(deployments), sum(len(raw.get("schedules") or []) for raw in deployments)


def schedules_of(spec: DeploymentSpec) -> list[tuple[dict[str, Any], Schedule]]:
    """Each of the deployment's `schedules:` items with the schedule `prefect deploy` builds.

    Raises:
        ConfigurationError: a schedule is invalid, with the same words as `exports check`.
    """
    items = spec.raw.get("schedules") or []
    if not isinstance(items, list):
        raise ConfigurationError(
            f"deployment `{spec.name}`: schedules: must be a list", field="schedules"
        )
    result: list[tuple[dict[str, Any], Schedule]] = []
    for index, raw in enumerate(items):
        found, schedule = _check_schedule(index, raw)
        if found or schedule is None:
            field, message = found[0] if found else (f"schedules[{index}]", "invalid")
            raise ConfigurationError(f"deployment `{spec.name}`: {field}: {message}", field=field)
        result.append((raw, schedule))
    return result


def is_active(raw: dict[str, Any]) -> bool:
    """Whether a `schedules:` item is active (`active: false` pauses only that schedule)."""
    return TypeAdapter(bool).validate_python(raw.get("active", True))


# --- one deployment ---------------------------------------------------------------------------


def _check_deployment(raw: dict[str, Any]) -> _Found:
    found = _check_shape(raw)
    flow = None
    entrypoint = raw.get("entrypoint")
    if not isinstance(entrypoint, str) or ":" not in entrypoint:
        found.append(("entrypoint", "missing; give it as path/to/file.py:flow_function"))
    else:
        flow, problem = _load_flow(entrypoint)
        if problem:
            found.append(("entrypoint", problem))
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        found.append(("parameters", "must be a mapping of parameter names to values"))
        parameters = {}
    base = _check_parameters(flow, parameters) if flow is not None else []
    found += [(f"parameters{sub}", message) for sub, message in base]

    items = raw.get("schedules")
    if items is not None and not isinstance(items, list):
        found.append(("schedules", "must be a list of mappings, e.g. - cron: ... timezone: ..."))
        items = []
    for index, item in enumerate(items or []):
        schedule_found, _ = _check_schedule(index, item)
        found += schedule_found
        overrides = item.get("parameters") if isinstance(item, dict) else None
        if flow is not None and isinstance(overrides, dict) and overrides:
            merged = {**parameters, **overrides}  # as Prefect's scheduler merges them
            for sub, message in _check_parameters(flow, merged):
                if (sub, message) not in base:
                    found.append((f"schedules[{index}].parameters{sub}", message))

    pool = raw.get("work_pool")
    if not isinstance(pool, dict) or not isinstance(pool.get("name"), str) or not pool["name"]:
        found.append(
            ("work_pool.name", "missing; name the work pool, e.g. work_pool: {name: exports}")
        )
    if "concurrency_limit" in raw and raw["concurrency_limit"] is not None:
        found += _check_concurrency(raw["concurrency_limit"])
    return found


def _check_shape(raw: dict[str, Any]) -> _Found:
    """Prefect's own model of a deployment (schedules and limits are checked separately)."""
    ours = {"schedules", "concurrency_limit", "name"}
    try:
        validate_deployment({k: v for k, v in raw.items() if k not in ours})
    except ValidationError as exc:
        found: dict[str, list[str]] = {}
        for error in exc.errors():
            messages = found.setdefault(_location(error["loc"]), [])
            if _pydantic_message(error) not in messages:
                messages.append(_pydantic_message(error))
        return [(field, " or ".join(messages)) for field, messages in found.items()]
    return []


def _load_flow(entrypoint: str) -> tuple[Flow[..., Any] | None, str | None]:
    path, _, attribute = entrypoint.rpartition(":")
    if not path.endswith(".py") or not attribute:
        return None, f"`{entrypoint}` is not path/to/file.py:flow_function"
    if not Path(path).is_file():
        return None, f"`{path}` not found; paths are relative to the project folder (run there)"
    spec = DeploymentSpec(name="", entrypoint=entrypoint, parameters={}, raw={})
    try:
        flow = spec.load_flow()
    except AttributeError:
        return None, f"`{path}` has no `{attribute}`; check the name after the colon"
    except Exception as exc:  # noqa: BLE001 - any import error is the user's to see
        return None, f"`{entrypoint}` does not import: {type(exc).__name__}: {exc}"
    if not isinstance(flow, Flow):
        return None, f"`{entrypoint}` is not a Prefect flow; decorate it with @flow"
    return flow, None


def _check_parameters(flow: Flow[..., Any], parameters: dict[str, Any]) -> _Found:
    """('' or '.field', message) for parameters that do not fit the flow; [] when they do."""
    signature = inspect.signature(flow.fn)
    takes = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in takes.values())
    found: _Found = []
    if not takes_any:
        for key in sorted(set(parameters) - set(takes)):
            found.append(
                (
                    f".{key}",
                    f"flow `{flow.name}` takes no parameter `{key}`; it takes "
                    f"{', '.join(takes) or 'none'}",
                )
            )
    for key, parameter in takes.items():
        required = parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        )
        if required and key not in parameters:
            found.append((f".{key}", f"missing; flow `{flow.name}` requires `{key}`"))
    if found:
        return found
    try:
        if flow.name == EXPORT_FLOW:
            validate_export_parameters(dict(parameters))
        validate_flow_parameters(flow, dict(parameters))
    except ParameterTypeError as exc:
        lines = str(exc).splitlines()[1:]  # "Flow run received invalid parameters:" first
        return [_split_field(line.strip().removeprefix("- ")) for line in lines if line.strip()]
    except (ConfigurationError, ValueError, TypeError) as exc:
        return [_split_field(" ".join(str(exc).split()))]
    return []


def _split_field(text: str) -> tuple[str, str]:
    """`source.url: message` → ('.source.url', 'message'); text without a field → ('', text)."""
    match = _FIELD_PREFIX.match(text)
    return (f".{match.group(1)}", match.group(2)) if match else ("", text)


def _check_concurrency(value: Any) -> _Found:
    """An int >= 1, or {limit, collision_strategy, grace_period_seconds} as deploy reads it."""
    field = "concurrency_limit"
    if not isinstance(value, dict):
        return _check_limit(field, value)
    found: _Found = [
        (
            f"{field}.{key}",
            f"unknown key; Prefect ignores it (keys: {', '.join(_CONCURRENCY_KEYS)})",
        )
        for key in sorted(set(value) - set(_CONCURRENCY_KEYS))
    ]
    found += _check_limit(f"{field}.limit", value.get("limit"))
    options = {"collision_strategy": value.get("collision_strategy")}
    if value.get("grace_period_seconds") is not None:
        options["grace_period_seconds"] = value["grace_period_seconds"]
    try:
        ConcurrencyOptions.model_validate(options)  # what `prefect deploy` builds from it
    except ValidationError as exc:
        for error in exc.errors():
            found.append((f"{field}.{_location(error['loc'])}", _pydantic_message(error)))
    return found


def _check_limit(field: str, value: Any) -> _Found:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return [(field, f"`{value}` is not a whole number of runs of at least 1")]
    return []


# --- one schedule -----------------------------------------------------------------------------


def _check_schedule(index: int, raw: Any) -> tuple[_Found, Schedule | None]:
    """The problems of one `schedules:` item and, when there are none, its Prefect schedule."""
    at = f"schedules[{index}]"
    if not isinstance(raw, dict):
        return [(at, "must be a mapping, e.g. {cron: '0 6 * * *', timezone: Europe/Berlin}")], None
    found: _Found = [
        (f"{at}.{key}", f"unknown key `{key}`; prefect deploy accepts {', '.join(SCHEDULE_KEYS)}")
        for key in raw
        if key not in SCHEDULE_KEYS
    ]
    kinds = [kind for kind in SCHEDULE_KINDS if raw.get(kind) is not None]
    if len(kinds) != 1:
        has = f"has {' and '.join(f'`{kind}`' for kind in kinds)}" if kinds else "has none"
        found.append((at, f"{has}; give exactly one of cron, interval or rrule"))
    kind = kinds[0] if len(kinds) == 1 else None
    timezone = raw.get("timezone")
    if timezone is not None and not is_iana_zone(timezone):
        found.append((f"{at}.timezone", f"`{timezone}` is not an IANA time zone; {ZONE_HINT}"))
    elif timezone is None and kind in ("cron", "rrule"):
        found.append(
            (
                f"{at}.timezone",
                f"missing; a {kind} schedule needs an IANA `timezone` to keep its "
                f"wall-clock time (without one Prefect uses UTC); {ZONE_HINT}",
            )
        )
    if kind == "interval":
        found += _check_interval(at, raw)
    if found:
        return found, None
    try:
        validate_schedule_config(raw)
        built = deployment_schedule(raw)
        DeploymentScheduleCreate.model_validate(built)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = _location(error["loc"]).removeprefix("schedule.")
        return [(f"{at}.{key}" if key else at, _schedule_message(raw, key, error))], None
    except ValueError as exc:
        return [(at, " ".join(str(exc).split()))], None
    schedule = built["schedule"]
    assert isinstance(schedule, CronSchedule | IntervalSchedule | RRuleSchedule)
    return [], schedule


def _check_interval(at: str, raw: dict[str, Any]) -> _Found:
    found: _Found = []
    interval = raw["interval"]
    seconds: float | None = None
    if isinstance(interval, int | float) and not isinstance(interval, bool):
        seconds = float(interval)
    elif isinstance(interval, str):
        try:
            seconds = TypeAdapter(dt.timedelta).validate_python(interval).total_seconds()
        except ValidationError:
            seconds = None
    if seconds is None:
        found.append((f"{at}.interval", f"`{interval}` is not a number of seconds, e.g. 14400"))
    elif seconds <= 0:
        found.append((f"{at}.interval", f"`{interval}` must be more than 0 seconds"))
    anchor = raw.get("anchor_date")
    example = "2026-01-01T00:00:00+01:00"
    if anchor is None:
        found.append(
            (
                f"{at}.anchor_date",
                "missing; an interval counts from its anchor_date (without one, from the "
                f'moment of deploying): give one with its UTC offset, e.g. "{example}"',
            )
        )
    elif isinstance(anchor, dt.datetime | dt.date):
        found.append(
            (
                f"{at}.anchor_date",
                f'write it in quotes, e.g. "{example}": unquoted, YAML reads '
                "it as a timestamp, and prefect deploy refuses the file",
            )
        )
    elif not isinstance(anchor, str):
        found.append((f"{at}.anchor_date", f'`{anchor}` is not a date and time, e.g. "{example}"'))
    else:
        try:
            parsed = dt.datetime.fromisoformat(anchor)
        except ValueError:
            found.append(
                (
                    f"{at}.anchor_date",
                    f'`{anchor}` is not an ISO 8601 date and time, e.g. "{example}"',
                )
            )
        else:
            if parsed.tzinfo is None:
                found.append(
                    (
                        f"{at}.anchor_date",
                        f"`{anchor}` has no UTC offset, and Prefect reads a "
                        "naive anchor as UTC, not in the schedule's timezone; write the offset, "
                        f'e.g. "{example}"',
                    )
                )
    if raw.get("timezone") is None:
        found.append(
            (
                f"{at}.timezone",
                "missing; an interval needs a `timezone` for its daylight-saving handling "
                f"(without one Prefect uses UTC); {ZONE_HINT}",
            )
        )
    return found


def _schedule_message(raw: dict[str, Any], key: str, error: Any) -> str:
    detail = _pydantic_message(error)
    if key == "cron":
        return (
            f"`{raw.get('cron')}` is not a cron expression Prefect accepts (minute hour "
            f"day-of-month month day-of-week, e.g. `30 9 * * 1,3`): {detail}"
        )
    if key == "rrule":
        return f"not an RRULE Prefect accepts (e.g. `FREQ=WEEKLY;BYDAY=MO;BYHOUR=9`): {detail}"
    if key == "timezone":
        return f"`{raw.get('timezone')}`: {detail}; {ZONE_HINT}"
    return detail


def _location(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a field path, without the names of union members."""
    parts = [str(part) for part in loc]
    return ".".join(part for part in parts if not _UNION_MEMBER.search(part))


def _pydantic_message(error: Any) -> str:
    return " ".join(str(error.get("msg", "invalid value")).removeprefix("Value error, ").split())
