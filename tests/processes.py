"""Waiting for and stopping the processes and servers the tests start, written once: a wait
that fails with what it waited for and the process's log (not a bare timeout), and a stop
that always ends the process, SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
Log = Path | Callable[[], str] | None


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    every_s: float = 0.2,
    process: subprocess.Popen[Any] | None = None,
    log: Log = None,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Call `condition` every `every_s` seconds until it returns something true, and return
    that. Fails (AssertionError, naming `what`, with `log`'s text) once `timeout_s` passed or
    `process` ended without it; exceptions of the `ignoring` types count as not yet."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
        except ignoring as error:
            last_error = error
        else:
            if value:
                return value
        if process is not None and process.poll() is not None:
            raise AssertionError(
                _failure(f"{what}: the process ended (exit code {process.returncode})", log)
            )
        if time.monotonic() > deadline:
            reason = f"{what}: not within {timeout_s:g} s"
            if last_error is not None:
                reason += f" (last: {last_error!r})"
            raise AssertionError(_failure(reason, log))
        time.sleep(every_s)


def http_ok(url: str) -> bool:
    """True when `url` answers 200 now; a refused or slow connection is False."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_http(
    url: str,
    timeout_s: float,
    *,
    every_s: float = 0.3,
    process: subprocess.Popen[Any] | None = None,
    log: Log = None,
) -> None:
    """Until `url` (a health endpoint) answers 200."""
    wait_until(
        lambda: http_ok(url), timeout_s, f"{url} answering 200",
        every_s=every_s, process=process, log=log,
    )  # fmt: skip


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    timeout_s: float,
    *,
    every_s: float = 0.2,
    process: subprocess.Popen[Any] | None = None,
    log: Log = None,
) -> None:
    """Until something accepts TCP connections on 127.0.0.1:`port`."""
    wait_until(
        lambda: port_open(port), timeout_s, f"a listener on port {port}",
        every_s=every_s, process=process, log=log,
    )  # fmt: skip


def stop_process(
    process: subprocess.Popen[Any], grace_s: float = 20, *, group: bool = False
) -> int:
    """SIGTERM, then SIGKILL if it has not ended within `grace_s`; its exit code. `group`: to
    its whole process group (started with start_new_session=True), so the processes it
    started (a server's services, a runner's flow runs) end with it."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)

    send(signal.SIGTERM)
    try:
        return process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        return process.wait()


def _failure(reason: str, log: Log) -> str:
    if log is None:
        return reason
    text = log.read_text(errors="replace") if isinstance(log, Path) else log()
    return f"{reason}\n{text}"
