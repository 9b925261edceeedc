"""A burst of API triggers against a Prefect server on SQLite and on PostgreSQL (issue 17, 9d).

    python -m bench.trigger_burst_bench [--triggers 150] [--backend postgres|sqlite|both]
                                        [--concurrent-creates N] [--repeat 1]

Per backend, everything runs for real on loopback: a `prefect server start` of its own (API
and services, no UI; SQLite in its own PREFECT_HOME, or a database in a private PostgreSQL 15
cluster through asyncpg), prefect.yaml's `orders-api` deployment registered with no runner (the
runs stay Scheduled: only their creation is measured), and `exports gateway` (its default
`--concurrent-creates` unless given). Then `--triggers` POST /v1/exports/trigger are sent at
once, each with its own Idempotency-Key, while GET /healthz is polled every 0.1 s. Measured:

- **trigger s**: from just before a POST to its 2xx answer (p50, p99, max);
- **created s**: from just before the POST to the run's `created` time on the server;
- **/healthz ms**: the gateway's liveness answer during the burst (p50, max);
- **runs**: flow runs on the server afterwards (one per Idempotency-Key is right);
- **non-2xx**, **server errors**: answers that were not 2xx; lines of the Prefect server's log
  with ERROR, a traceback or "database is locked" (of which "locked" counts the last).

The baseline, measured in the same run on the same server and gateway, is one trigger at a
time (`--triggers` / 10, at least 5, after two untimed ones): what a trigger costs unloaded,
so the burst's rows show what the queueing and the server's contention add.

Results: stdout (Markdown) and bench/results/trigger_burst-*.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.servers.ports import free_port
from tests.servers.postgres import start_postgres
from tests.servers.prefect_api import PrefectServer, start_prefect_server
from tests.servers.probe import LivenessProbe

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DEPLOYMENT = "export/orders-api"
SERVER_ERRORS = re.compile(r"\bERROR\b|Traceback|database is locked|Exception in ASGI")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _register(server: PrefectServer) -> str:
    """The deployment, the master secret and one key on `server`, in a child process (this
    process keeps no Prefect settings): the key."""
    code = (
        "import sys, tempfile\n"
        "from flows.export import export\n"
        "from deployments.gateway.keys import create_key\n"
        "from deployments.gateway.master_secrets import init_secret\n"
        "from tests.deployments.conftest import api_parameters\n"
        "from pathlib import Path\n"
        "folder = Path(tempfile.mkdtemp())\n"
        "export.to_deployment(name='orders-api', parameters=api_parameters(folder)).apply()\n"
        "init_secret()\n"
        f"print(create_key({DEPLOYMENT!r}, 'bench')[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO, env=server.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def _start_gateway(
    server: PrefectServer, creates: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    options = ["--concurrent-creates", str(creates)] if creates else []
    log = server.home / "gateway.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", "gateway", "--port", str(port), *options],
            cwd=REPO, env=server.env(), stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"the gateway did not start: {log}")


async def _trigger(
    client: httpx.AsyncClient, url: str, key: str, value: str
) -> tuple[str, int, float, datetime, str | None]:
    sent = datetime.now(UTC)
    started = time.perf_counter()
    answer = await client.post(
        f"{url}/v1/exports/trigger",
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": value},
    )
    seconds = time.perf_counter() - started
    run = answer.json().get("export_request_id") if answer.is_success else None
    return value, answer.status_code, seconds, sent, run


def _cpu_s(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process and everything it started
    (PostgreSQL's backends come and go: the ended ones count in their parent's children)."""
    import psutil

    used: dict[str, float] = {}
    for name, pid in roots.items():
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        used[name] = total
    return used


async def _burst(url: str, key: str, count: int, prefix: str) -> dict[str, Any]:
    """`count` triggers at once while a liveness probe (a process of its own) polls /healthz."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    probe = LivenessProbe(f"{url}/healthz", every_s=0.1)
    try:
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(_trigger(client, url, key, f"{prefix}-{index}") for index in range(count))
            )
            wall = time.perf_counter() - started
    finally:
        health = probe.stop()
    return {"answers": answers, "health_s": health, "wall_s": wall}


async def _one_at_a_time(url: str, key: str, count: int) -> list[float]:
    async with httpx.AsyncClient(timeout=60) as client:
        for index in range(2):  # untimed: the gateway's and the server's first calls
            await _trigger(client, url, key, f"warm-{index}")
        times = []
        for index in range(count):
            value, status, seconds, _, _ = await _trigger(client, url, key, f"alone-{index}")
            assert 200 <= status < 300, (value, status)
            times.append(seconds)
    return times


def _created_at(server: PrefectServer) -> dict[str, list[datetime]]:
    """Each Idempotency-Key's runs on the server: their creation times."""
    code = (
        "import json\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId\n"
        "with get_client(sync_client=True) as client:\n"
        f"    deployment = client.read_deployment_by_name({DEPLOYMENT!r})\n"
        "    found, offset = {}, 0\n"
        "    while True:\n"
        "        page = client.read_flow_runs(deployment_filter=DeploymentFilter(\n"
        "            id=DeploymentFilterId(any_=[deployment.id])), limit=200, offset=offset)\n"
        "        for run in page:\n"
        "            found.setdefault(run.idempotency_key, []).append(run.created.isoformat())\n"
        "        offset += len(page)\n"
        "        if len(page) < 200:\n"
        "            break\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO, env=server.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    found: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        key.rsplit(":", 1)[-1]: [datetime.fromisoformat(time) for time in times]
        for key, times in found.items()
    }


def run_backend(backend: str, triggers: int, creates: int | None, repeat: int) -> dict[str, Any]:
    with ExitStack() as stack:
        database_url = None
        if backend == "postgres":
            postgres = start_postgres()
            stack.callback(postgres.stop)
            name = postgres.create_database("prefect")
            database_url = postgres.url(name).replace("postgresql://", "postgresql+asyncpg://")
        print(f"{backend}: starting prefect server", file=sys.stderr)
        server = start_prefect_server(database_url)
        stack.callback(server.stop)
        key = _register(server)
        gateway, url = _start_gateway(server, creates)
        stack.callback(gateway.wait, timeout=30)
        stack.callback(gateway.terminate)  # (callbacks run last in, first out)
        alone = asyncio.run(_one_at_a_time(url, key, max(5, triggers // 10)))
        roots = {"server": server.process.pid, "gateway": gateway.pid}
        if backend == "postgres":
            roots["postgres"] = int(
                (postgres.root / "data" / "postmaster.pid").read_text().split()[0]
            )
        bursts = []
        for round_ in range(repeat):
            print(f"{backend}: burst {round_ + 1} of {triggers}", file=sys.stderr)
            before = _cpu_s(roots)
            bursts.append(asyncio.run(_burst(url, key, triggers, f"burst{round_}")))
            after = _cpu_s(roots)
            bursts[-1]["cpu_s"] = {name: after[name] - before[name] for name in roots}
            time.sleep(2)
        created = _created_at(server)
        log = server.log_text()
        gateway_log = (server.home / "gateway.log").read_text(errors="replace")
    answers = [answer for burst in bursts for answer in burst["answers"]]
    trigger_s = [seconds for _, status, seconds, _, _ in answers if 200 <= status < 300]
    created_s = [
        (min(created[value]) - sent).total_seconds()
        for value, status, _, sent, _ in answers
        if 200 <= status < 300 and value in created
    ]
    health = [seconds for burst in bursts for seconds in burst["health_s"]]
    error_lines = [line for line in log.splitlines() if SERVER_ERRORS.search(line)]
    return {
        "backend": backend,
        "triggers": triggers,
        "repeat": repeat,
        "concurrent_creates": creates,
        "alone_s": alone,
        "trigger_s": trigger_s,
        "created_s": created_s,
        "health_s": health,
        "burst_wall_s": [burst["wall_s"] for burst in bursts],
        "cpu_s": {
            name: sum(burst["cpu_s"][name] for burst in bursts) / repeat
            for name in bursts[0]["cpu_s"]
        },
        "non_2xx": [status for _, status, _, _, _ in answers if not 200 <= status < 300],
        "runs": sum(len(runs) for value, runs in created.items() if value.startswith("burst")),
        "keys_with_duplicates": sum(len(runs) > 1 for runs in created.values()),
        "server_errors": len(error_lines),
        "locked": sum("database is locked" in line for line in error_lines),
        "gateway_errors": sum(
            bool(SERVER_ERRORS.search(line)) for line in gateway_log.splitlines()
        ),
    }


def _row(result: dict[str, Any]) -> str:
    trigger, created, health = result["trigger_s"], result["created_s"], result["health_s"]
    width = result["concurrent_creates"] or "default"
    return (
        f"| {result['backend']} | {width} | {result['triggers']} at once | "
        f"{statistics.median(trigger):.2f} / {_percentile(trigger, 0.99):.2f} / "
        f"{max(trigger):.2f} | "
        f"{statistics.median(created):.2f} / {_percentile(created, 0.99):.2f} | "
        f"{1000 * statistics.median(health):.0f} / {1000 * max(health):.0f} | "
        f"{result['runs']} ({result['keys_with_duplicates']} keys twice) | "
        f"{len(result['non_2xx'])} | {result['server_errors']} ({result['locked']} locked) | "
        f"{result['gateway_errors']} | {statistics.mean(result['burst_wall_s']):.1f} | "
        + " / ".join(
            f"{result['cpu_s'].get(name, 0):.1f}" for name in ("server", "postgres", "gateway")
        )
        + " |"
    )


def _baseline_row(result: dict[str, Any]) -> str:
    alone = result["alone_s"]
    return (
        f"| {result['backend']} | | baseline: one at a time ({len(alone)}) | "
        f"{statistics.median(alone):.2f} / {_percentile(alone, 0.99):.2f} / {max(alone):.2f} "
        "| | | | | | | | |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=150)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument(
        "--concurrent-creates",
        default="default",
        help="comma-separated widths of `exports gateway --concurrent-creates` to measure, "
        "each on a fresh server; `default` is the gateway's own (2)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="bursts per backend")

    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    widths = [
        None if width == "default" else int(width) for width in args.concurrent_creates.split(",")
    ]
    results = [
        run_backend(backend, args.triggers, width, args.repeat)
        for backend in backends
        for width in widths
    ]
    print(f"API trigger burst, {args.triggers} triggers at once (median / p99 / max)")
    print(
        "| server database | gateway creates at once | triggers | trigger s p50 / p99 / max | "
        "created s p50 / p99 | /healthz ms p50 / max | runs | non-2xx | server errors | "
        "gateway errors | burst s | CPU s: server / postgres / gateway |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(_baseline_row(result))
        print(_row(result))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"trigger_burst-{stamp}.json"
    path.write_text(json.dumps({"when": stamp, "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
