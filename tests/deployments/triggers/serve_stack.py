"""`deployments/triggers/serve.sh` (`make serve`) started as a user starts it, on a fresh
PREFECT_HOME and port, for the tests that need the whole stack."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.processes import wait_until


def serve_env(home: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a fresh stack: no PREFECT_* of the test session, its own home and
    database, the UI off; `settings` on top."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_") or key == "PREFECT_LOGGING_LEVEL"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        EXPORTS_PORT=str(port),
        **settings,
    )
    return env


def start_serve_sh(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """serve.sh in a session of its own (as a terminal's foreground job is its own group),
    with Ctrl-C's SIGINT handled as in a terminal: a test run started in the background
    (`nohup … &`) ignores SIGINT, and a shell cannot trap a signal ignored on entry."""
    with log.open("wb") as output:
        return subprocess.Popen(
            ["bash", "deployments/triggers/serve.sh"], cwd=REPO_ROOT, env=env,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_default_sigint,
        )  # fmt: skip


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_worker(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 240) -> None:
    """Until serve.sh has deployed and starts its worker."""
    wait_until(
        lambda: "starting a worker" in log.read_text(), timeout_s, "serve.sh deploying",
        every_s=1, process=process, log=log,
    )  # fmt: skip


def processes_with(variable: str) -> list[int]:
    """Every process whose environment holds `variable` (NAME=value): what a stack started,
    however deep, inherits its PREFECT_HOME."""
    wanted = variable.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if wanted in environment.split(b"\0"):
            found.append(int(entry.name))
    return found
