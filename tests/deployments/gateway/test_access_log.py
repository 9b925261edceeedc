"""What the gateway's access log may show of a request's path and query (the end-to-end check
is test_app.py::test_a_key_in_the_url_stays_out_of_the_access_log)."""

from __future__ import annotations

import pytest

from deployments.gateway.access_log import hidden_path

pytestmark = pytest.mark.unit

KEY = "pex_" + "gAAAAABn" * 12


@pytest.mark.parametrize(
    ("full_path", "shown"),
    [
        ("/healthz", "/healthz"),
        ("/v1/exports/trigger?wait=30", "/v1/exports/trigger?wait=30"),
        ("/v1/exports/runs/0b7f/file?part=2", "/v1/exports/runs/0b7f/file?part=2"),
        (f"/v1/exports/trigger?api_key={KEY}&wait=5", "/v1/exports/trigger?api_key=…&wait=5"),
        (f"/v1/exports/trigger?wait={KEY}", "/v1/exports/trigger?wait=…"),
        (f"/v1/exports/trigger?{KEY}", "/v1/exports/trigger?…"),
        (f"/v1/exports/trigger?flag&{KEY}=1", "/v1/exports/trigger?flag&…"),
        (f"/v1/exports/runs/{KEY}", "/v1/exports/runs/…"),
        (
            "/v1/exports/runs/0b7f3c1e-6a53-4a0e-9d8e-2f4f1b2c3d4e",
            "/v1/exports/runs/0b7f3c1e-6a53-4a0e-9d8e-2f4f1b2c3d4e",
        ),
    ],
)
def test_only_the_gateways_own_values_are_shown(full_path: str, shown: str) -> None:
    assert hidden_path(full_path) == shown
