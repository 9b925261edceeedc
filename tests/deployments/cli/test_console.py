"""How `exports` commands report what stops them: one line on stderr, the traceback with
--debug."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli.app import app
from tests.conftest import NO_PREFECT_API, REPO_ROOT

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("logging_back")]

runner = CliRunner()


def test_a_prefect_api_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    """Issue 17: with its Prefect API down (here a closed port, as the unit tier gives every
    test), `exports run` printed Prefect's traceback; now it says what to start or fix."""
    arguments = [
        "run", "demo-orders", "--file", str(REPO_ROOT / "prefect.yaml"),
        "--set", f"destination.url={tmp_path}/{{export}}.{{ext}}",
    ]  # fmt: skip
    done = runner.invoke(app, arguments)
    assert done.exit_code == 1, done.output
    assert done.stderr.splitlines() == [
        f"error: the Prefect API at {NO_PREFECT_API} did not answer (RuntimeError: Failed to "
        f"reach API at {NO_PREFECT_API}/); start it (`prefect server start`, `make serve`) or "
        "point PREFECT_API_URL at a running one, then run the command again (a run it stopped "
        "published nothing)"
    ]
    assert list(tmp_path.iterdir()) == []
    debug = runner.invoke(app, [*arguments, "--debug"])
    assert debug.exit_code == 1
    assert isinstance(debug.exception, RuntimeError)
