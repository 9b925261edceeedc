"""API trigger latency: from `POST /v1/exports/trigger` to the flow run's body starting.

    python -m bench.trigger_latency [--triggers 20] [--poll 1]

Everything runs for real on loopback: a Prefect API (`prefect_test_harness`), prefect.yaml's
`orders-api` trigger served by `exports serve` (a runner polling every `--poll` seconds), and
`exports gateway`. Each trigger is timed from just before its POST to the flow run's Running
state (the engine has started the flow's body), as recorded by the server; triggers are sent
one after the other, each once the previous run has finished. `exports serve` runs twice:
with its default warm start (runs forked from a process that has imported Prefect and the
flow) and with `--no-warm-start` (a new interpreter per run, as Prefect's `serve()` does);
each phase begins with one untimed trigger. The baseline, measured in the same run, is an
in-process call of the same flow (no trigger, no runner, no new process), so what the table
shows above it is the trigger path itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "export/orders-api"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0, help="runner poll interval, s")
    args = parser.parse_args()

    from cryptography.fernet import Fernet
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    os.environ["EXPORTS_KEY_SECRETS"] = Fernet.generate_key().decode()
    with prefect_test_harness(server_startup_timeout=120):
        env = {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_RUNNER_POLL_FREQUENCY": f"{args.poll:g}",
        }
        gateway = _start(["gateway", "--port", "18787"], env, "gateway")
        latencies: dict[str, list[float]] = {}
        try:
            for mode, options in (("warm", []), ("cold", ["--no-warm-start"])):
                serve = _start(["serve", "orders-api", "--limit", "1", *options], env, mode)
                try:
                    _wait_ready()
                    from deployments.gateway.keys import create_key

                    key, _ = create_key(DEPLOYMENT, "bench")
                    _one_trigger(key)  # untimed: the runner is polling, the forkserver is up
                    latencies[mode] = [_one_trigger(key) for _ in range(args.triggers)]
                finally:
                    _stop(serve)
            baseline = _in_process_start_s()
        finally:
            _stop(gateway)
    _report(latencies, baseline, args.poll)


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.terminate()
    child.wait(timeout=30)


def _start(arguments: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (REPO_ROOT / "bench" / "results").resolve()
    log.mkdir(parents=True, exist_ok=True)
    with (log / f"trigger-latency-{name}.log").open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", *arguments],
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_ready() -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                if client.read_deployment_by_name(DEPLOYMENT).paused:
                    raise RuntimeError("paused until the new runner registers it")
                if httpx.get("http://127.0.0.1:18787/healthz", timeout=2).status_code == 200:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
    raise SystemExit("the runner or the gateway did not start; see bench/results/*.log")


def _running_at(run_id: str, timeout_s: float = 120) -> datetime:
    """When the server recorded the run as Running (its body starting), once it has ended."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)  # type: ignore[arg-type]
            if run.state is not None and run.state.is_final():
                assert run.state.is_completed(), run.state
                states = client.read_flow_run_states(run.id)
                return next(s.timestamp for s in states if s.type.value == "RUNNING")
            time.sleep(0.2)
    raise SystemExit(f"run {run_id} did not finish in {timeout_s:g} s")


def _one_trigger(key: str) -> float:
    sent = datetime.now().astimezone()
    answer = httpx.post(
        "http://127.0.0.1:18787/v1/exports/trigger",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    running = _running_at(answer.json()["export_request_id"])
    return (running - sent).total_seconds()


def _in_process_start_s() -> float:
    """The same flow called in this process: from the call to its Running state."""
    from prefect.client.orchestration import get_client

    from flows.export import export

    parameters: dict[str, Any] = {
        "source": {"url": f"sqlite:///{REPO_ROOT / 'demo' / 'demo.sqlite'}", "table": "orders"},
        "destination": {"url": str(REPO_ROOT / "bench" / "results" / "{export}.{ext}")},
    }
    export(**parameters)  # warm: imports, the first connection
    called = datetime.now().astimezone()
    state = export(**parameters, return_state=True)
    with get_client(sync_client=True) as client:
        run_id = state.state_details.flow_run_id
        states = client.read_flow_run_states(run_id)  # type: ignore[arg-type]
    running = next(s.timestamp for s in states if s.type.value == "RUNNING")
    return (running - called).total_seconds()


ROW_NAMES = {
    "warm": "trigger, `exports serve` (warm start: forked run process)",
    "cold": "trigger, `exports serve --no-warm-start` (new interpreter)",
}


def _report(latencies: dict[str, list[float]], baseline: float, poll: float) -> None:
    count = len(next(iter(latencies.values())))
    print(f"API trigger → flow body start, {count} triggers each, runner poll {poll:g} s")
    print("| measure | median s | p90 s | min s | max s |")
    print("|---|---|---|---|---|")
    for mode, values in latencies.items():
        ordered = sorted(values)
        p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
        print(
            f"| {ROW_NAMES[mode]} | {statistics.median(ordered):.2f} "
            f"| {p90:.2f} | {ordered[0]:.2f} | {ordered[-1]:.2f} |"
        )
    print(f"| baseline: the same flow called in process | {baseline:.2f} | | | |")


if __name__ == "__main__":
    main()
