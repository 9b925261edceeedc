"""Reading prefect.yaml: find a deployment, apply --set overrides, validate its parameters."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flows.config import (
    DestinationConfig,
    FormatOptions,
    SourceConfig,
    WindowConfig,
    parse_format,
)
from flows.errors import ConfigurationError
from flows.window import check_window

DEFAULT_PROJECT_FILE = Path("prefect.yaml")


class UsageError(ValueError):
    """The command line itself is wrong (exit code 2)."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of prefect.yaml: its name, entrypoint and parameters."""

    name: str
    entrypoint: str
    parameters: dict[str, Any]
    raw: dict[str, Any]

    @property
    def module_name(self) -> str:
        """The entrypoint's module, e.g. `flows.export` for `flows/export.py:export`."""
        return self.entrypoint.partition(":")[0].removesuffix(".py").replace("/", ".")

    def load_flow(self) -> Callable[..., Any]:
        module = importlib.import_module(self.module_name)
        return getattr(module, self.entrypoint.partition(":")[2])  # type: ignore[no-any-return]


def load_deployments(project_file: Path = DEFAULT_PROJECT_FILE) -> list[DeploymentSpec]:
    if not project_file.is_file():
        raise UsageError(f"--file: `{project_file}` does not exist; run from the project folder")
    document = yaml.safe_load(project_file.read_text()) or {}
    specs = []
    for raw in document.get("deployments") or []:
        specs.append(
            DeploymentSpec(
                name=str(raw.get("name")),
                entrypoint=str(raw.get("entrypoint", "")),
                parameters=dict(raw.get("parameters") or {}),
                raw=raw,
            )
        )
    return specs


def find_deployment(name: str, project_file: Path = DEFAULT_PROJECT_FILE) -> DeploymentSpec:
    specs = load_deployments(project_file)
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in specs) or "none"
    raise UsageError(f"no deployment named `{name}` in {project_file}; deployments: {known}")


def apply_overrides(parameters: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Apply `key=value` / `a.b=value` overrides; values are read as YAML scalars."""
    result: dict[str, Any] = _deep_copy(parameters)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set: `{assignment}` is not key=value, e.g. format=jsonl")
        target = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = {}
                target[part] = child
            target = child
        target[parts[-1]] = yaml.safe_load(text) if text else ""
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


def validate_export_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate an `export` flow's parameters into their models, naming the bad field."""
    from flows.export import export

    signature = inspect.signature(export.fn)
    unknown = sorted(set(parameters) - set(signature.parameters))
    if unknown:
        raise ConfigurationError(
            f"parameters: unknown parameter `{unknown[0]}`; the export flow takes "
            f"{', '.join(signature.parameters)}"
        )
    validated = dict(parameters)
    models: dict[str, Any] = {
        "source": SourceConfig,
        "destination": DestinationConfig,
        "format_options": FormatOptions,
        "window": WindowConfig,
    }
    for key, model in models.items():
        if key not in parameters:
            if key in ("source", "destination"):
                raise ConfigurationError(f"{key}: missing; the export flow needs `{key}`")
            continue
        if parameters[key] is None:
            continue
        try:
            validated[key] = model.model_validate(parameters[key])
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error(key, exc)) from None
    if "format" in parameters:
        validated["format"] = parse_format(str(parameters["format"]))
    source, destination = validated["source"], validated["destination"]
    if isinstance(source, SourceConfig) and isinstance(destination, DestinationConfig):
        check_window(source, validated.get("window"), destination)
    return validated


def describe_validation_error(prefix: str, exc: ValidationError) -> str:
    """One line for the first problem pydantic found, naming the field."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if message.split(":")[0].strip().startswith(prefix):
        return message
    field = f"{prefix}.{location}" if location else prefix
    value = error.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" `{value}`"
    return f"{field}:{shown} {message}"
