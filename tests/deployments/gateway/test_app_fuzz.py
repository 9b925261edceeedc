"""The gateway fuzzed from its own OpenAPI document (schemathesis): requests generated to fit
the schema and to break it, sent with a valid key, a forged one and none, never get a 5xx.

The app runs in process (ASGI) against the session's real Prefect API; triggers land on
`export/orders-api` registered without a runner, so no export runs and `?wait=` never ends
early (it is capped at 1 s here to keep the run short)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from deployments.gateway.app import app
from deployments.gateway.keys import create_key

pytestmark = pytest.mark.usefixtures("prefect_api")

schema = schemathesis.openapi.from_asgi("/openapi.json", app)
FORGED = "pex_gAAAAABpFORGEDFORGEDFORGEDFORGEDFORGEDFORGEDFORGED=="


@pytest.fixture(scope="module")
def api_key(master_secret: str, idle_deployment: str) -> str:
    assert master_secret
    token, _ = create_key(idle_deployment, "fuzz")
    return token


def _short_wait(query: dict[str, Any] | None) -> None:
    """A numeric ?wait= becomes at most 1 s: the idle deployment's runs never finish."""
    if not query or "wait" not in query:
        return
    try:
        if int(str(query["wait"])) > 1:
            query["wait"] = 1
    except ValueError:
        pass  # not a number: the gateway must refuse it with a 4xx


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case: Any, api_key: str) -> None:
    _short_wait(case.query)
    for authorization in (f"Bearer {api_key}", f"Bearer {FORGED}", None):
        headers = dict(case.headers or {})
        if authorization is None:
            headers.pop("Authorization", None)
        else:
            headers["Authorization"] = authorization
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
