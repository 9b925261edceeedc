"""Reading prefect.yaml: its deployments, one found by name (and its `flow/name` on the server),
and `--set` overrides of its parameters."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flows.runs.naming import EXPORT_FLOW

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


def qualified_name(deployment: str, project_file: Path = DEFAULT_PROJECT_FILE) -> str:
    """`orders-weekly` → `export/orders-weekly`, the flow's name taken from prefect.yaml; a
    name with a slash is already qualified."""
    if "/" in deployment:
        return deployment
    spec = find_deployment(deployment, project_file)
    flow_name = getattr(spec.load_flow(), "name", None) or EXPORT_FLOW
    return f"{flow_name}/{deployment}"
