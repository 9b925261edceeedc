"""`exports schema show` without a Prefect API: the one line every command prints for it
(the recorded schema itself, on a real server: tests/flows/test_schema_change.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deployments.cli.app import app
from tests.conftest import NO_PREFECT_API

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("logging_back")]


def test_a_prefect_api_that_does_not_answer_is_one_line() -> None:
    done = CliRunner().invoke(app, ["schema", "show", "orders"])
    assert done.exit_code == 1, done.output
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: the Prefect API at {NO_PREFECT_API} did not answer (")
    assert line.endswith(
        "start it (`prefect server start`, `make serve`) or point PREFECT_API_URL at a running "
        "one, then run the command again (a run it stopped published nothing)"
    )
