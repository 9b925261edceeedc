"""The API gateway end to end: `exports gateway` (uvicorn) in a subprocess, the `export` flow
served by a Prefect runner in another, keys made with the CLI, requests sent with httpx."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_engine import run_flow
from typer.testing import CliRunner

from deployments.cli.app import app
from deployments.gateway import keys as keys_module
from deployments.gateway.keys import create_key, list_keys, revoke_key
from deployments.gateway.master_secrets import SECRETS_ENV, forget_secrets
from flows.export import export
from tests.conftest import DEMO_DB, REPO_ROOT
from tests.deployments.conftest import (
    Gateway,
    api_parameters,
    auth,
    delete_runs,
    subprocess_env,
)
from tests.flows.destinations.stores import StoreUnderTest
from tests.processes import stop_process, wait_until

pytestmark = pytest.mark.usefixtures("prefect_api")

SERVED = "export/api-served"
SERVE_SCRIPT = """
import json, sys
from prefect import serve
from flows.export import export

serve(
    export.to_deployment(name="api-served", parameters=json.loads(sys.argv[1])),
    print_starting_message=False,
)
"""
SINCE, UNTIL = "2023-01-01T00:00:00Z", "2023-02-01T00:00:00Z"
ISSUED: list[str] = []  # every key these tests made: none may appear in logs or runs
RUN_IDS: list[str] = []  # runs of the served deployment


@dataclass(frozen=True)
class Served:
    deployment_id: str
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`export/api-served` (prefect.yaml's orders-api, delivering to a tmp folder), served
    by a runner subprocess."""
    folder = tmp_path_factory.mktemp("api-served")
    log_path = folder / "runner.log"
    with log_path.open("wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-c", SERVE_SCRIPT, json.dumps(api_parameters(folder))],
            cwd=REPO_ROOT, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with get_client(sync_client=True) as client:
                found = wait_until(
                    lambda: client.read_deployment_by_name(SERVED), 90, f"{SERVED} registered",
                    every_s=0.5, process=runner, log=log_path, ignoring=(Exception,),
                )  # fmt: skip
            yield Served(str(found.id), log_path)
        finally:
            stop_process(runner)


def cli_key(deployment: str, user: str) -> str:
    made = CliRunner().invoke(app, ["keys", "create", deployment, "--user", user, "--json"])
    assert made.exit_code == 0, made.output
    token = str(json.loads(made.stdout)["key"])
    ISSUED.append(token)
    return token


def module_key(deployment: str, user: str, **options: Any) -> tuple[str, str]:
    token, record = create_key(deployment, user, **options)
    ISSUED.append(token)
    return token, record.key_id


# The window's bounds as SQLAlchemy binds them to SQLite (text compared with text).
WINDOW_BOUNDS = ("2023-01-01 00:00:00.000000", "2023-02-01 00:00:00.000000")
COMPARED = ("order_id", "customer_id", "amount", "status")


def source_rows() -> list[tuple[Any, ...]]:
    """The rows of the window, read from the demo database by sqlite3 itself."""
    with closing(sqlite3.connect(DEMO_DB)) as conn:
        return conn.execute(
            f"SELECT {', '.join(COMPARED)} FROM orders WHERE ordered_at >= ? AND ordered_at < ? "
            "ORDER BY order_id",
            WINDOW_BOUNDS,
        ).fetchall()


def exported_rows(text: str) -> list[tuple[Any, ...]]:
    return [tuple(json.loads(line)[name] for name in COMPARED) for line in text.splitlines()]


def poll_completed(gateway: Gateway, status_url: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        answer = httpx.get(status_url, headers=auth(token), timeout=30)
        assert answer.status_code == 200, answer.text
        status: dict[str, Any] = answer.json()
        if status["final"]:
            assert status["status"] == "Completed", (status, gateway.log.read_text()[-3000:])
            return status
        assert time.monotonic() < deadline, status
        time.sleep(1)


def test_trigger_poll_and_download(served: Served, gateway: Gateway) -> None:  # noqa: ARG001
    token = cli_key(SERVED, "alice")
    body = {"parameters": {"window": {"since": SINCE, "until": UNTIL}}}
    answer = httpx.post(f"{gateway.url}/v1/exports/trigger", json=body, headers=auth(token))
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert set(accepted) == {"export_request_id", "deployment", "status_url", "file_url"}
    assert accepted["deployment"] == SERVED
    assert answer.headers["location"] == accepted["status_url"]
    RUN_IDS.append(accepted["export_request_id"])

    status = poll_completed(gateway, accepted["status_url"], token)
    expected = source_rows()
    assert len(expected) > 10
    assert status["rows"] == len(expected) and len(status["files"]) == 1
    assert status["started"] and status["finished"] and status["error"] is None

    download = httpx.get(accepted["file_url"], headers=auth(token), timeout=30)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-ndjson"
    name = Path(status["files"][0]).name
    assert f'filename="{name}"' in download.headers["content-disposition"]
    assert len(download.content) == status["bytes"]
    assert exported_rows(download.text) == expected
    first = json.loads(download.text.splitlines()[0])
    assert set(first) == {"order_id", "customer_id", "ordered_at", "amount", "status"}

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(accepted["export_request_id"]))
    assert {"trigger:api", "user:alice"} <= set(run.tags)
    assert run.parameters["window"] == {
        "period": "P1D", "timezone": "UTC", "since": SINCE, "until": UNTIL,
    }  # fmt: skip


def test_wait_answers_with_the_file(served: Served, gateway: Gateway) -> None:  # noqa: ARG001
    token = cli_key(SERVED, "bert")
    body = {"parameters": {"window": {"since": SINCE, "until": UNTIL}}}
    answer = httpx.post(
        f"{gateway.url}/v1/exports/trigger?wait=150", json=body, headers=auth(token), timeout=200
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    RUN_IDS.append(answer.headers["x-export-request-id"])
    assert exported_rows(answer.text) == source_rows()

    # Not done within the wait: 202 as without it.
    quick = httpx.post(f"{gateway.url}/v1/exports/trigger?wait=1", headers=auth(token))
    assert quick.status_code == 202, quick.text
    RUN_IDS.append(quick.json()["export_request_id"])


def test_a_file_in_an_object_store_downloads_through_the_gateway(
    gateway: Gateway, idle_deployment: str, store: StoreUnderTest
) -> None:
    """S3, GCS and Azure Blob: the gateway streams the file with the run's own block."""
    token, _ = module_key(idle_deployment, "olga")
    destination = {
        "url": store.url("api/{export}-{run_id}.{ext}"),
        "block": store.save_block(f"gateway-{store.key}"),
    }
    body = {"parameters": {"window": {"since": SINCE, "until": UNTIL}}}
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(idle_deployment)
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={**body["parameters"], "destination": destination}
        )
    # The run executed as a runner's child executes it (what is tested here is the download).
    state = run_flow(export, flow_run=run, parameters=run.parameters, return_type="state")
    assert state.is_completed(), state

    status = httpx.get(f"{gateway.url}/v1/exports/runs/{run.id}", headers=auth(token)).json()
    [path] = status["files"]
    assert path == f"orders-{run.id}.jsonl"  # its name, not where the store keeps it
    download = httpx.get(
        f"{gateway.url}/v1/exports/runs/{run.id}/file", headers=auth(token), timeout=60
    )
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/x-ndjson"
    stored = store.read(f"api/orders-{run.id}.jsonl")
    assert download.content == stored and len(stored) == status["bytes"]
    assert exported_rows(download.text) == source_rows()
    assert not store.secret or store.secret not in gateway.log.read_text()


def test_a_failed_export_is_424_with_its_status(
    served: Served,  # noqa: ARG001
    gateway: Gateway,
) -> None:
    token = cli_key(SERVED, "cara")
    trigger = f"{gateway.url}/v1/exports/trigger"
    # since and until reversed: refused before a run is made
    body = {"parameters": {"window": {"since": UNTIL, "until": SINCE}}}
    refused = httpx.post(trigger, json=body, headers=auth(token))
    assert refused.status_code == 422 and "window.since" in refused.json()["detail"]
    # since in the future, until = now: only the run can tell, and it fails
    body = {"parameters": {"window": {"since": "2999-01-01T00:00:00Z"}}}
    answer = httpx.post(f"{trigger}?wait=150", json=body, headers=auth(token), timeout=200)
    assert answer.status_code == 424, answer.text
    status = answer.json()
    RUN_IDS.append(status["export_request_id"])
    assert status["status"] == "Failed" and status["final"] and status["rows"] is None
    assert "window" in status["error"], status
    again = httpx.get(f"{gateway.url}/v1/exports/runs/{status['export_request_id']}",
                      headers=auth(token))  # fmt: skip
    assert again.json() == status
    file = httpx.get(f"{gateway.url}/v1/exports/runs/{status['export_request_id']}/file",
                     headers=auth(token))  # fmt: skip
    assert file.status_code == 404 and "Failed" in file.json()["detail"]


def test_refused_keys_get_one_fixed_401(
    gateway: Gateway, idle_deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, _ = module_key(idle_deployment, "dave")
    revoked, revoked_id = module_key(idle_deployment, "dave")
    revoke_key(revoked_id)
    expired, _ = module_key(idle_deployment, "dave", expires_in_days=-1)
    with monkeypatch.context() as patched:
        patched.setenv(SECRETS_ENV, Fernet.generate_key().decode())
        other_secret, _ = module_key(idle_deployment, "dave")
    forget_secrets()
    middle = len(good) // 2
    flipped = good[:middle] + ("A" if good[middle] != "A" else "B") + good[middle + 1 :]
    headers: dict[str, dict[str, str]] = {
        "no header": {},
        "not bearer": {"Authorization": f"Basic {good}"},
        "garbage": auth("garbage"),
        "empty": {"Authorization": "Bearer"},
        "flipped": auth(flipped),
        "other secret": auth(other_secret),
        "revoked": auth(revoked),
        "expired": auth(expired),
    }
    bodies = set()
    for case, header in headers.items():
        for method, path in (
            ("POST", "/v1/exports/trigger"),
            ("GET", f"/v1/exports/runs/{uuid.uuid4()}"),
            ("GET", f"/v1/exports/runs/{uuid.uuid4()}/file"),
            ("GET", "/v1/exports/runs/not-a-uuid"),
        ):
            answer = httpx.request(method, gateway.url + path, headers=header)
            assert answer.status_code == 401, (case, path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer", case
            bodies.add(answer.content)
    assert bodies == {b'{"detail":"missing or invalid API key"}'}
    ok = httpx.get(f"{gateway.url}/v1/exports/runs/{uuid.uuid4()}", headers=auth(good))
    assert ok.status_code == 404, ok.text


def test_a_key_sees_only_its_own_deployment(
    served: Served,  # noqa: ARG001
    gateway: Gateway,
    idle_deployment: str,
) -> None:
    assert RUN_IDS, "runs of the served deployment come from the tests above"
    other, _ = module_key(idle_deployment, "erin")
    foreign = httpx.get(f"{gateway.url}/v1/exports/runs/{RUN_IDS[0]}", headers=auth(other))
    missing = httpx.get(f"{gateway.url}/v1/exports/runs/{uuid.uuid4()}", headers=auth(other))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    file = httpx.get(f"{gateway.url}/v1/exports/runs/{RUN_IDS[0]}/file", headers=auth(other))
    assert file.status_code == 404 and file.content == missing.content


def _partial_request(gateway: Gateway, token: str) -> socket.socket:
    """A POST that announces 1,000 bytes of body and sends 10."""
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=60)
    head = (
        f"POST /v1/exports/trigger HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}"
        "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    conn.sendall(head.encode() + b'{"paramet')
    return conn


def test_a_body_that_stalls_is_408_and_one_that_stops_logs_one_line(
    gateway: Gateway, idle_deployment: str
) -> None:
    """Issue 17: a client that stopped sending its body held the connection (over 15 s), and
    one that went away made the gateway log an ASGI traceback."""
    token, _ = module_key(idle_deployment, "ivy")
    with _partial_request(gateway, token) as stalled:
        answer = b""
        while b"stalled" not in answer and (chunk := stalled.recv(4096)):  # 60 s at most each
            answer += chunk
    answer = answer.decode()
    assert answer.startswith("HTTP/1.1 408 "), answer
    assert "the request body stalled" in answer

    left = _partial_request(gateway, token)
    left.close()
    deadline = time.monotonic() + 30
    log = ""
    while "left before sending its whole request body" not in log:
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.2)
        log = gateway.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log


def test_a_key_in_the_url_stays_out_of_the_access_log(
    gateway: Gateway, idle_deployment: str
) -> None:
    """Issue 17: uvicorn wrote the whole request line, `?api_key=<key>` included."""
    token, _ = module_key(idle_deployment, "hal")
    in_query = httpx.post(f"{gateway.url}/v1/exports/trigger?api_key={token}&wait=5")
    assert in_query.status_code == 401, in_query.text
    in_path = httpx.get(f"{gateway.url}/v1/exports/runs/{token}")
    assert in_path.status_code == 401, in_path.text

    log = gateway.log.read_text()
    assert '"POST /v1/exports/trigger?api_key=…&wait=5 HTTP/1.1" 401' in log
    assert '"GET /v1/exports/runs/… HTTP/1.1" 401' in log
    assert token not in log and token.removeprefix("pex_") not in log


def test_windows_the_run_could_not_compute_are_422_before_any_run(
    gateway: Gateway, idle_deployment: str
) -> None:
    """Issue 17: these were 202, then the run failed with an OverflowError."""
    token, _ = module_key(idle_deployment, "gus")
    windows = [
        ({"lookback": 1e12}, "window.lookback"),
        ({"lookback": "P999999999D"}, "window.lookback"),
        ({"since": "0001-01-01T00:00:00Z", "lookback": "P2D"}, "window.since"),
        ({"since": "9999-12-31T23:59:59-14:00"}, "window.since"),
    ]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(idle_deployment)
        deployed = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        runs_before = len(client.read_flow_runs(deployment_filter=deployed))
        for window, field in windows:
            answer = httpx.post(
                f"{gateway.url}/v1/exports/trigger",
                json={"parameters": {"window": window}},
                headers=auth(token),
            )
            assert answer.status_code == 422, (window, answer.text)
            assert answer.json()["detail"] == (
                f"ConfigurationError: {field} is not valid; the gateway's log has the details"
            ), answer.text
        assert len(client.read_flow_runs(deployment_filter=deployed)) == runs_before


def test_bad_input_is_never_a_5xx(gateway: Gateway, idle_deployment: str) -> None:
    token, _ = module_key(idle_deployment, "fay")
    trigger = f"{gateway.url}/v1/exports/trigger"
    cases = [
        httpx.get(f"{gateway.url}/v1/exports/runs/not-a-uuid", headers=auth(token)),
        httpx.get(f"{gateway.url}/v1/exports/runs/{uuid.uuid4()}/file?part=0", headers=auth(token)),
        httpx.post(f"{trigger}?wait=301", headers=auth(token)),
        httpx.post(f"{trigger}?wait=soon", headers=auth(token)),
        httpx.post(trigger, content=b"{not json", headers=auth(token)),
        httpx.post(trigger, json={"parameters": {"source": {"table": "x"}}}, headers=auth(token)),
        httpx.post(
            trigger, json={"parameters": {"window": {"since": "yesterday"}}}, headers=auth(token)
        ),  # fmt: skip
        httpx.post(trigger, json={"extra": 1}, headers=auth(token)),
        httpx.post(trigger, headers={**auth(token), "Idempotency-Key": "x" * 300}),
    ]
    for answer in cases:
        assert answer.status_code == 422, (answer.request.url, answer.text)
    big = httpx.post(trigger, content=b"{" + b" " * 70_000 + b"}", headers=auth(token))
    assert big.status_code == 413, big.text

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    streamed = httpx.post(trigger, content=chunks(), headers=auth(token))
    assert streamed.status_code == 413, streamed.text


def count_runs(deployment: str) -> int:
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=200,
            offset=0,
        )
    return len(runs)


async def _trigger_all(url: str, token: str, idempotency_keys: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{url}/v1/exports/trigger", headers={**auth(token), "Idempotency-Key": key}
                )
                for key in idempotency_keys
            )
        )


def test_concurrent_triggers_and_idempotency(gateway: Gateway, idle_deployment: str) -> None:
    """On the deployment no runner serves: the runs stay Scheduled (deleted afterwards)."""
    token, _ = module_key(idle_deployment, "gus")
    before = count_runs(idle_deployment)
    distinct = asyncio.run(_trigger_all(gateway.url, token, [f"d-{i}" for i in range(50)]))
    assert [answer.status_code for answer in distinct] == [202] * 50, distinct[0].text
    assert len({answer.json()["export_request_id"] for answer in distinct}) == 50
    assert count_runs(idle_deployment) == before + 50

    same = asyncio.run(_trigger_all(gateway.url, token, ["same"] * 10))
    assert [answer.status_code for answer in same] == [202] * 10
    assert len({answer.json()["export_request_id"] for answer in same}) == 1
    assert count_runs(idle_deployment) == before + 51

    # The same Idempotency-Key from another key is another run.
    other, _ = module_key(idle_deployment, "gus")
    [again] = asyncio.run(_trigger_all(gateway.url, other, ["same"]))
    assert again.json()["export_request_id"] != same[0].json()["export_request_id"]


def test_a_paused_trigger_is_409(gateway: Gateway, idle_deployment: str) -> None:
    token, _ = module_key(idle_deployment, "hank")
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(idle_deployment).id
        client.pause_deployment(deployment_id)
    try:
        answer = httpx.post(f"{gateway.url}/v1/exports/trigger", headers=auth(token))
    finally:
        with get_client(sync_client=True) as client:
            client.resume_deployment(deployment_id)
    assert answer.status_code == 409 and "paused" in answer.json()["detail"]


def test_openapi_and_health(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    assert {"/v1/exports/trigger", "/v1/exports/runs/{run_id}",
            "/v1/exports/runs/{run_id}/file"} <= set(document["paths"])  # fmt: skip
    schemas = document["components"]["schemas"]
    assert set(schemas["WindowOverride"]["properties"]) == {"since", "until", "lookback"}


def test_no_key_in_logs_parameters_or_tags(served: Served, gateway: Gateway) -> None:
    """Last: every key these tests made, against everything the runs and servers kept."""
    assert ISSUED and RUN_IDS
    secrets = [*ISSUED, *(token.removeprefix("pex_") for token in ISSUED)]
    time.sleep(2)  # the last log lines reach the files and the API
    texts = {"gateway log": gateway.log.read_text(), "runner log": served.log.read_text()}
    assert "POST /v1/exports/trigger" in texts["gateway log"], "uvicorn's access log is on"
    assert "refused a key" in texts["gateway log"]
    with get_client(sync_client=True) as client:
        logs = client.request(
            "POST",
            "/logs/filter",
            json={"logs": {"flow_run_id": {"any_": RUN_IDS}}, "sort": "TIMESTAMP_ASC",
                  "limit": 200, "offset": 0},
        ).json()  # fmt: skip
        assert logs, "the served runs logged to the API"
        texts["flow run logs"] = json.dumps(logs)
        for run_id in RUN_IDS:
            run = client.read_flow_run(uuid.UUID(run_id))
            texts[f"run {run_id}"] = json.dumps(
                {"parameters": run.parameters, "tags": run.tags, "name": run.name,
                 "idempotency_key": run.idempotency_key}, default=str,
            )  # fmt: skip
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a key in the {where}"


def _run_in_process(deployment: str, **overrides: Any) -> uuid.UUID:
    """A run of `deployment`, executed here as a runner's child would execute it."""
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        run = client.create_flow_run_from_deployment(found.id, parameters=overrides)
    run_flow(export, flow_run=run, parameters=run.parameters, return_type="state")
    return run.id


def test_answers_name_no_table_sql_source_column_or_server_path(
    gateway: Gateway, idle_deployment: str, tmp_path: Path
) -> None:
    """Issue 24: the gateway's answers said what only the run's readers may see: a window on a
    table export was a 422 naming the table with an SQL example, a failed run's status carried
    the source's URL, the database's error and the column names, a completed run's files were
    server paths. They now say what a status alert says (the error's kind and field) and list
    the names the caller downloads."""
    table_parameters = {**api_parameters(tmp_path), "window": None,
                        "source": {"url": f"sqlite:///{DEMO_DB}", "table": "orders"}}  # fmt: skip
    table_id = export.to_deployment(name="orders-table", parameters=table_parameters).apply()
    try:
        token, _ = module_key("export/orders-table", "kim")
        window = {"parameters": {"window": {"since": SINCE, "until": UNTIL}}}
        refused = httpx.post(f"{gateway.url}/v1/exports/trigger", json=window, headers=auth(token))
    finally:
        delete_runs(table_id)
        with get_client(sync_client=True) as client:
            client.delete_deployment(table_id)
    assert refused.status_code == 422, refused.text
    assert refused.json() == {
        "detail": "ConfigurationError: window is not valid; the gateway's log has the details"
    }

    token, _ = module_key(idle_deployment, "kim")
    hidden = "SELECT order_id, hidden_column FROM orders WHERE ordered_at >= :since"
    failed_id = _run_in_process(
        idle_deployment,
        source={"url": f"sqlite:///{DEMO_DB}", "query": f"{hidden} AND ordered_at < :until"},
        window={"since": SINCE, "until": UNTIL},
    )
    failed = httpx.get(f"{gateway.url}/v1/exports/runs/{failed_id}", headers=auth(token))
    assert failed.status_code == 200, failed.text
    status = failed.json()
    assert status == {
        "export_request_id": str(failed_id), "deployment": idle_deployment, "status": "Failed",
        "final": True, "rows": None, "bytes": None, "files": [],
        "started": status["started"], "finished": status["finished"],
        # the database's "no such column", as the Failed alert says it
        "error": "ConfigurationError: source.query is not valid; the run's logs have the details",
    }  # fmt: skip
    for internal in (str(DEMO_DB), "sqlite", "hidden_column", "SELECT", "no such"):
        assert internal not in failed.text, internal

    done_id = _run_in_process(idle_deployment, window={"since": SINCE, "until": UNTIL})
    done = httpx.get(f"{gateway.url}/v1/exports/runs/{done_id}", headers=auth(token))
    assert done.json()["files"] == [f"orders-{done_id}.jsonl"], done.text
    assert str(tmp_path.parent) not in done.text  # the tests' folders, the deployment's among them
    download = httpx.get(f"{gateway.url}/v1/exports/runs/{done_id}/file", headers=auth(token))
    assert download.status_code == 200 and exported_rows(download.text) == source_rows()


def test_links_come_from_the_gateways_address_not_the_host_header(
    gateway: Gateway, idle_deployment: str
) -> None:
    """Issue 24: `Location` and `status_url` were built from the request's Host header, so a
    caller (or a proxy's cache) could have them point anywhere; they come from the gateway's
    public URL or its own address."""
    token, _ = module_key(idle_deployment, "lou")
    spoofed = {**auth(token), "Host": "evil.example:6666", "X-Forwarded-Host": "evil.example"}
    answer = httpx.post(f"{gateway.url}/v1/exports/trigger", headers=spoofed)
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["export_request_id"]
    assert answer.json()["status_url"] == f"{gateway.url}/v1/exports/runs/{run_id}"
    assert answer.json()["file_url"] == f"{gateway.url}/v1/exports/runs/{run_id}/file"
    assert answer.headers["location"] == answer.json()["status_url"]
    assert "evil" not in answer.text


def _clock_ahead(by: timedelta) -> type[datetime]:
    """The key module's clock, `by` ahead (to mint a key as a clock that runs ahead would)."""

    class Ahead(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + by

    return Ahead


def test_a_key_created_in_the_future_is_refused(
    gateway: Gateway, idle_deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24: a key whose creation time was ahead of the gateway's clock (a clock that runs
    ahead, a key minted with a stolen master secret) was valid; more than 60 s ahead (Fernet's
    own skew) it is now the fixed 401, up to 60 s it works."""
    with monkeypatch.context() as patched:
        patched.setattr(keys_module, "datetime", _clock_ahead(timedelta(hours=1)))
        future, future_id = module_key(idle_deployment, "mel")
        patched.setattr(keys_module, "datetime", _clock_ahead(timedelta(seconds=30)))
        near, _ = module_key(idle_deployment, "mel")
    path = f"{gateway.url}/v1/exports/runs/{uuid.uuid4()}"
    refused = httpx.get(path, headers=auth(future))
    assert refused.status_code == 401, refused.text
    assert refused.content == b'{"detail":"missing or invalid API key"}'
    assert httpx.get(path, headers=auth(near)).status_code == 404  # a valid key, no such run
    [listed] = [record for record in list_keys() if record.key_id == future_id]
    assert listed.state == "not-yet-valid"
