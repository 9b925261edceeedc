"""tests/processes.py, the waits and stops every server fixture uses: a wait fails saying what
it waited for with the process's log, and a stop ends a process that ignores SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import stop_process, wait_for_port, wait_until

pytestmark = pytest.mark.unit

IGNORES_SIGTERM = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_wait_until_returns_the_conditions_value() -> None:
    calls: list[int] = []

    def third_time() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) == 3 else None

    assert wait_until(third_time, 5, "three calls", every_s=0.01) == [1, 1, 1]


def test_a_wait_that_times_out_names_what_it_waited_for_and_the_last_error() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("nobody listens")

    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        wait_until(refused, 0.3, "the server", every_s=0.05, ignoring=(ConnectionRefusedError,))
    assert time.monotonic() - started < 3
    assert str(failure.value).startswith("the server: not within 0.3 s (last: ")
    assert "nobody listens" in str(failure.value)


def test_a_wait_fails_at_once_with_the_log_when_the_process_ended(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("port 5432 is already in use\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        wait_for_port(9, 60, process=process, log=log)
    assert time.monotonic() - started < 5
    assert str(failure.value) == (
        "a listener on port 9: the process ended (exit code 3)\nport 5432 is already in use\n"
    )


def test_stop_process_kills_what_ignores_sigterm_after_the_grace_period() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())
    try:
        started = time.monotonic()
        assert stop_process(process, grace_s=0.5) == -9
        assert 0.5 <= time.monotonic() - started < 10
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)  # the process was stopped, not its group


def test_stop_process_of_a_group_ends_the_processes_it_started() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    child = int(process.stdout.readline())
    assert stop_process(process, grace_s=0.5, group=True) == -9
    assert wait_until(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), 5, "the child")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True
