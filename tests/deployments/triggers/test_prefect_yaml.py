"""prefect.yaml: every deployment imports, binds to its flow, validates and schedules cleanly."""

from __future__ import annotations

import pytest

from deployments.triggers.check import check_project
from deployments.triggers.project import load_deployments
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

DEPLOYMENTS = load_deployments(REPO_ROOT / "prefect.yaml")


def test_there_is_a_demo_deployment() -> None:
    assert any(spec.name == "demo-orders" for spec in DEPLOYMENTS)


def test_the_project_file_has_no_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entrypoints, parameters (also per schedule), schedules, time zones, work pools."""
    monkeypatch.chdir(REPO_ROOT)
    problems = check_project(REPO_ROOT / "prefect.yaml")
    assert [str(problem) for problem in problems] == []
    assert sum(bool(spec.raw.get("schedules")) for spec in DEPLOYMENTS) >= 6
