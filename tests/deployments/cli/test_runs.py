"""The `exports` CLI, run through typer's CliRunner against the real flow and Prefect API."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import fastavro
import openpyxl
import pyarrow.parquet as pq
import pytest
from lxml import etree
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from deployments.cli.app import app
from flows.core.formats import EXPORT_FORMATS
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("prefect_api")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """prefect.yaml and its relative demo paths are read from the project folder."""
    monkeypatch.chdir(REPO_ROOT)


class TestRun:
    def test_json_prints_the_export_result(self, tmp_path: Path) -> None:
        target = tmp_path / "{deployment}" / "{export}-{run_id}.{ext}"
        result = runner.invoke(
            app, ["run", "demo-orders", "--set", f"destination.url={target}", "--json"]
        )
        assert result.exit_code == 0, result.stderr
        payload = json.loads(result.stdout)
        assert set(payload) >= {
            "export_request_id",
            "rows",
            "bytes",
            "files",
            "format",
            "started",
            "finished",
        }
        assert payload["rows"] == 1000 and payload["format"] == "csv"
        [path] = payload["files"]
        delivered = Path(path)
        assert delivered.parent == tmp_path / "demo-orders"
        assert delivered.name == f"orders-{payload['export_request_id']}.csv"
        assert delivered.stat().st_size == payload["bytes"]
        with delivered.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert len(rows) == 1 + 1000 and rows[0][0] == "order_id"

    def test_set_overrides_format_and_nested_params(self, tmp_path: Path) -> None:
        target = tmp_path / "{export}.{ext}"
        result = runner.invoke(
            app,
            [
                "run",
                "demo-paid-orders-jsonl",
                "--set",
                f"destination.url={target}",
                "--set",
                "source.params.min_amount=5000",
                "--set",
                "format=xml",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.stderr
        payload = json.loads(result.stdout)
        [path] = payload["files"]
        assert path.endswith("paid-orders.xml.gz")
        import gzip

        root = etree.fromstring(gzip.decompress(Path(path).read_bytes()))
        amounts = [float(item.findtext("amount")) for item in root]
        assert len(amounts) == payload["rows"] > 0
        assert min(amounts) >= 5000

    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (
                ["--set", "format=xls"],
                1,
                "format: `xls` is not supported; use one of csv, json, jsonl, xml, parquet",
            ),
            (["--set", "destination.url=ftp://host/x.csv"], 1, "destination.url: scheme `ftp://`"),
            (
                ["--set", "destination.url=out/{nope}.csv"],
                1,
                "destination.url: unknown token `{nope}`",
            ),
            (
                ["--set", "source.table=missing_table"],
                1,
                "source.table: table `missing_table` not found",
            ),
            (["--set", "source.chunk_rows=0"], 1, "source.chunk_rows"),
            (["--set", "format"], 2, "--set: `format` is not key=value"),
        ],
    )
    def test_bad_input_is_one_line_on_stderr(
        self, tmp_path: Path, args: list[str], code: int, message: str
    ) -> None:
        before = set(tmp_path.rglob("*"))
        result = runner.invoke(
            app,
            ["run", "demo-orders", "--set", f"destination.url={tmp_path}/x.{{ext}}", *args],
        )
        assert result.exit_code == code
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert message in lines[0]
        assert set(tmp_path.rglob("*")) == before, "nothing may be written"

    def test_set_name_cannot_leave_the_destination_folder(self, tmp_path: Path) -> None:
        """Issue 24: `exports run --set name=../../x` with `out/a/b/{export}.{ext}` wrote
        out/x.csv: the name is refused before the run, one line naming the field, and
        nothing is written anywhere under the folder."""
        target = tmp_path / "a" / "b" / "{export}.{ext}"
        result = runner.invoke(
            app,
            ["run", "demo-orders", "--set", f"destination.url={target}", "--set", "name=../../x"],
        )
        assert result.exit_code == 1, result.stdout
        [line] = result.stderr.strip().splitlines()
        assert "name: `../../x` has a `/`; it is one file name" in line, line
        assert list(tmp_path.rglob("*")) == []

    def test_unknown_deployment_is_a_usage_error(self) -> None:
        result = runner.invoke(app, ["run", "no-such-export"])
        assert result.exit_code == 2
        assert "no deployment named `no-such-export`" in result.stderr
        assert "demo-orders" in result.stderr


class TestDemo:
    def test_writes_every_format_for_both_tables(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
        assert result.exit_code == 0, result.stderr
        names = sorted(path.name for path in tmp_path.iterdir())
        assert names == sorted(
            f"{table}.{ext}" for table in ("orders", "customers") for ext in EXPORT_FORMATS
        )
        with (tmp_path / "orders.avro").open("rb") as avro:
            assert sum(1 for _ in fastavro.reader(avro)) == 1000
        book = openpyxl.load_workbook(tmp_path / "customers.xlsx", read_only=True)
        assert sum(1 for _ in book["data"].iter_rows()) == 1 + 50  # the header, 50 customers
        book.close()
        assert "orders.parquet" in result.stdout and "rows" in result.stdout
        assert pq.read_table(tmp_path / "orders.parquet").num_rows == 1000
        assert len(json.loads((tmp_path / "customers.json").read_text(encoding="utf-8"))) == 50
        lines = (tmp_path / "orders.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1000 and all(json.loads(line)["order_id"] for line in lines)
        root = etree.parse(str(tmp_path / "orders.xml")).getroot()
        assert root.tag == "root" and len(root) == 1000
        rows = list(
            csv.reader(io.StringIO((tmp_path / "customers.csv").read_text("utf-8"), newline=""))
        )
        assert len(rows) == 51


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`exports` in a process of its own: the terminal as a user sees it, Prefect's console
    logging included (CliRunner does not capture that). A temporary server gets 120 s to
    start (Prefect's default is 20 s; the suite runs on both cores of a busy machine)."""
    if "PREFECT_API_URL" not in env:
        env = {**env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "deployments.cli", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


class TestTerminal:
    """What `exports` commands print on stderr: for `run`, one line per retry and one for the
    error, the tracebacks with --debug (and in the run's Prefect logs); on a temporary server,
    nothing of the server's own."""

    def test_a_missing_table_on_a_temporary_server_is_one_line(self, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env["PREFECT_HOME"] = str(tmp_path / "home")  # no API: a temporary server starts
        missing = ["run", "demo-orders", "--set", "source.table=no_such"]
        target = ["--set", f"destination.url={tmp_path}/{{export}}.{{ext}}"]
        done = run_cli(*missing, *target, env=env)
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            "error: source.table: table `no_such` not found in `sqlite:///demo/demo.sqlite`; "
            "tables there: customers, orders"
        ], done.stderr  # no telemetry error, no traceback, no server chatter
        # --debug's traceback does not depend on the server: the session's, not a second
        # temporary one (16 s to start)
        debug_env = {**env, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        debug = run_cli(*missing, *target, "--debug", env=debug_env)
        assert "Traceback (most recent call last)" in debug.stderr
        assert "ConfigurationError: source.table: table `no_such` not found" in debug.stderr

    def test_the_demo_on_a_temporary_server_prints_its_table_only(self, tmp_path: Path) -> None:
        """The demo imports the export engine after its console is made quiet (Prefect 3.9
        sets its logging up lazily: a regression printed every run's INFO lines)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env["PREFECT_HOME"] = str(tmp_path / "home")  # no API: a temporary server starts
        done = run_cli("demo", "--out", str(tmp_path / "out"), env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert done.stdout.splitlines()[0].split() == ["file", "format", "rows", "bytes"]
        assert len(done.stdout.splitlines()) == 1 + 2 * len(EXPORT_FORMATS)  # two tables

    def test_audit_on_a_temporary_server_prints_no_telemetry_error(self, tmp_path: Path) -> None:
        """Issue 24: only `exports run` and `demo` turned a temporary server's telemetry off:
        `exports audit` printed its ERROR (a traceback of "Failed to send telemetry" or of
        "database is locked" writing the telemetry session). Every command does now."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"  # as on a user's machine
        }
        env["PREFECT_HOME"] = str(tmp_path / "home")  # no API: a temporary server starts
        done = run_cli("audit", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "no runs\n"
        assert "telemetry" not in done.stderr.lower() and "ERROR" not in done.stderr
        assert done.stderr == ""

    def test_each_retry_of_an_unreachable_source_is_one_line(self, tmp_path: Path) -> None:
        """With the alerts block saved (as any earlier test may have), the Failed alert loads
        it in the background as the process ends, and Prefect's event for that load could not
        be sent: its "Error emitting event" line came after the error (seen under xdist)."""
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)  # alerts off: no webhook
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        done = run_cli(
            "run", "demo-orders", "--set", "source.url=postgresql+psycopg://u:p@127.0.0.1:1/db",
            "--set", f"destination.url={tmp_path}/{{export}}.{{ext}}", env=env,
        )  # fmt: skip
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert len(lines) == 3, done.stderr
        assert [" - Retry 1/2 will start" in lines[0], " - Retry 2/2 will start" in lines[1]] == [
            True,
            True,
        ], lines
        assert lines[2].startswith("error: source `postgresql+psycopg://u:***@127.0.0.1:1/db`: ")
        assert "u:p@" not in done.stderr
