"""prefect.yaml: every deployment imports, binds to its flow and validates before any run."""

from __future__ import annotations

import inspect
from zoneinfo import ZoneInfo

import pytest

from deployments.project import load_deployments, validate_export_parameters
from tests.conftest import REPO_ROOT

DEPLOYMENTS = load_deployments(REPO_ROOT / "prefect.yaml")


def test_there_is_a_demo_deployment() -> None:
    assert any(spec.name == "demo-orders" for spec in DEPLOYMENTS)


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda spec: spec.name)
def test_parameters_bind_to_the_flow(spec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    flow = spec.load_flow()
    inspect.signature(flow.fn).bind(**spec.parameters)
    flow.validate_parameters(dict(spec.parameters))
    if flow.name == "export":
        validate_export_parameters(dict(spec.parameters))


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda spec: spec.name)
def test_every_cron_schedule_has_a_time_zone(spec) -> None:
    for schedule in spec.raw.get("schedules") or []:
        if "cron" in schedule or "rrule" in schedule:
            assert schedule.get("timezone"), f"{spec.name}: schedule without a timezone"
            ZoneInfo(schedule["timezone"])
