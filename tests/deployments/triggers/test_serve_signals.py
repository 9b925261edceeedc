"""`make serve` stops everything it started when the user presses Ctrl-C: the terminal gets
its prompt back within seconds and no server, worker or flow-run process is left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.deployments.triggers.serve_stack import (
    processes_with,
    serve_env,
    start_serve_sh,
    wait_for_worker,
)
from tests.servers.ports import free_port

STOP_WITHIN_S = 10


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_every_process_within_seconds(sent: signal.Signals, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve_sh(serve_env(home, port), log)
    marker = f"PREFECT_HOME={home}"
    try:
        wait_for_worker(process, log)
        text = log.read_text()
        assert f"  export PREFECT_API_URL=http://127.0.0.1:{port}/api\n" in text, text
        assert len(processes_with(marker)) >= 3, "the script, the server and the worker"
        started = time.monotonic()
        if sent == signal.SIGINT:
            os.killpg(process.pid, sent)  # Ctrl-C: the terminal signals its foreground group
        else:
            process.send_signal(sent)
        process.wait(timeout=STOP_WITHIN_S)
        while processes_with(marker) and time.monotonic() - started < STOP_WITHIN_S:
            time.sleep(0.1)
        assert processes_with(marker) == [], log.read_text()
        assert time.monotonic() - started < STOP_WITHIN_S
        assert log.read_text().rstrip().endswith("stopped")
    finally:
        for pid in processes_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
