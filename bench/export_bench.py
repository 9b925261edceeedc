"""Export speed and memory against PostgreSQL's own COPY, on a 12-column table.

    python -m bench.export_bench [--rows 2000000,200000] [--repeat 3]
                                 [--formats csv,jsonl,json,xml,parquet,avro]
                                 [--compression none|gzip|zstd|bz2|xz]
                                 [--methods copy,engine,flow] [--dsn DSN] [--profile]

What it measures, each in a fresh Python subprocess (so peak RSS is per measurement: the
child reports its own VmHWM from /proc/self/status):

- `copy`    the reference: psycopg `COPY (SELECT * FROM t) TO STDOUT (FORMAT csv)` → file.
- `engine`  our pipe without Prefect: inspect_source + read_for_format + PartSink + publish,
            exactly what the flow's tasks do (product defaults: rows are counted first).
- `flow`    the real Prefect flow `flows.export.export(...)`, against ONE Prefect server
            started for the whole bench (children reach it through PREFECT_API_URL).
- `--compression` applies `destination.compression` to the text formats (csv, jsonl, json,
            xml); their rows are named e.g. `csv + zstd`. Parquet and Avro compress inside.
- baselines: a child that only imports the engine modules, and one that imports Prefect and
            runs an empty flow (Prefect's own footprint, to read the flow's memory against).

Each export is paired with a COPY run just before it (COPY, engine, flow per format and
repeat); the ratio is the median over those pairs of COPY seconds ÷ export seconds, which is
the export's rows/s as a fraction of COPY's. "work s" is timed inside the child after its
imports (for the flow: the whole `export(...)` call); "process s" is the child's whole wall
time, interpreter start and imports included.

Without --dsn it starts a private PostgreSQL (tests.servers.postgres.start_postgres) and
removes it at the end; with --dsn it reuses tables named events_<rows> that already exist.
Results go to stdout (a Markdown table) and, as JSON, to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
FORMATS = ("csv", "jsonl", "json", "xml", "parquet", "avro")
TEXT_FORMATS = ("csv", "jsonl", "json", "xml")  # what --compression applies to
COMPRESSIONS = ("none", "gzip", "zstd", "bz2", "xz")
METHODS = ("copy", "engine", "flow")
# Export rows/s as a fraction of COPY's (from the issue).
TARGETS = {"csv": 0.8, "jsonl": 0.5, "json": 0.5, "xml": 0.25, "parquet": 0.5}
RSS_LIMIT_MB = 200.0
DEFAULT_ROWS = (2_000_000, 200_000)
CHILD_TIMEOUT_S = 1800
MIB = 1024 * 1024

TABLE_DDL = """
CREATE TABLE {table} (
    id          bigint PRIMARY KEY,
    event_id    uuid NOT NULL,
    name        text NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL,
    amount      numeric(12,2),
    active      boolean,
    quantity    int,
    payload     jsonb,
    comment     text,
    day         date,
    score       double precision
)
"""
# Deterministic mixed data: every 10th note holds commas and quotes, every 5th comment is
# NULL, timestamps carry microseconds, scores are full-precision doubles.
TABLE_FILL = """
INSERT INTO {table}
SELECT g,
       md5(g::text)::uuid,
       'user_' || (g % 50000),
       CASE WHEN g % 10 = 0 THEN 'said "hi, there", then left; ok'
            ELSE 'plain note number ' || g END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
           + (g % 999983) * interval '1 microsecond',
       ((g * 7919) % 100000000) / 100.0,
       g % 3 = 0,
       (g % 100000)::int,
       jsonb_build_object('kind', 'k' || (g % 17), 'n', g % 1000,
                          'tags', jsonb_build_array('a', 'b' || (g % 7)), 'ok', g % 2 = 0),
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'comment ' || (g * 31 % 100003) END,
       date '2020-01-01' + (g % 2000)::int,
       g / 7.0::double precision + 0.001
FROM generate_series(1::bigint, {rows}) AS g
"""


# --------------------------------------------------------------------------------------
# Children: one measurement each, reporting JSON to the file named in their spec.
# --------------------------------------------------------------------------------------


def _child(spec: dict[str, Any]) -> None:
    started = time.perf_counter()
    kind = spec["kind"]
    report: dict[str, Any] = {"kind": kind}
    if kind == "copy":
        report.update(_child_copy(spec))
    elif kind == "engine":
        report.update(_child_engine(spec))
    elif kind == "flow":
        report.update(_child_flow(spec))
    elif kind == "baseline_engine":
        import flows.sink
        import flows.sources.read  # noqa: F401

        report["work_s"] = 0.0
    elif kind == "baseline_prefect":
        report.update(_child_empty_flow())
    elif kind == "profile":
        report.update(_child_profile(spec))
    elif kind == "stages":
        report.update(_child_stages(spec))
    else:
        raise SystemExit(f"unknown child kind {kind}")
    report["child_s"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_s"] = usage.ru_utime + usage.ru_stime  # all threads, whole child
    report["prefect_imported"] = "prefect" in sys.modules
    report["vm_hwm_mb"] = _vm_hwm_mb()
    Path(spec["report"]).write_text(json.dumps(report))


def _vm_hwm_mb() -> float:
    """Peak resident set size of this process since its exec, in MiB (Linux /proc)."""
    return _proc_status_mb("VmHWM")


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child_copy(spec: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    path = Path(spec["out_dir"], f"{spec['table']}.csv")
    started = time.perf_counter()
    written = 0
    with psycopg.connect(spec["dsn"]) as conn, conn.cursor() as cursor:
        sql = f"COPY (SELECT * FROM {spec['table']}) TO STDOUT (FORMAT csv)"
        with cursor.copy(sql) as copy, open(path, "wb") as out:
            for data in copy:
                written += out.write(data)
    return {"work_s": time.perf_counter() - started, "bytes": written, "rows": spec["rows"]}


def _engine_run(spec: dict[str, Any], timer: _Timer | None = None) -> dict[str, Any]:
    """What the flow's tasks do (flows/export.py write_batches + deliver_files), minus Prefect."""
    import uuid

    from flows.core.config import FormatOptions, SourceConfig
    from flows.core.formats import file_extension
    from flows.core.targets import TargetContext
    from flows.destinations.publish import publish
    from flows.request import DestinationConfig
    from flows.sink import PartSink
    from flows.sources.plan import inspect_source
    from flows.sources.read import read_for_format

    timer = timer or _Timer()
    fmt = spec["fmt"]
    if spec.get("csv_block_bytes"):  # what-if runs only (--profile)
        from flows.sources import postgres

        postgres.CSV_BLOCK_BYTES = int(spec["csv_block_bytes"])
    started = time.perf_counter()
    source = SourceConfig(url=spec["url"], table=spec["table"])
    destination = DestinationConfig(
        url=_out_template(spec["out_dir"]), compression=spec.get("compression", "none")
    )
    options = FormatOptions()
    with timer.section("inspect_source (incl. count)"):
        plan = inspect_source(source)
    context = TargetContext(
        export=spec["table"],
        deployment="adhoc",
        run_id=str(uuid.uuid4()),
        date=datetime.now(UTC),
        ext=file_extension(fmt),
    )
    sink: PartSink | None = None
    rows = 0
    batches = read_for_format(plan, fmt, options)
    try:
        while True:
            with timer.section("read_for_format (COPY, + CSV parse on the Arrow path)"):
                batch = next(batches, None)
            if batch is None:
                break
            if sink is None:
                sink = PartSink.open(destination, fmt, batch.schema, options, context)
            with timer.section("sink.write (render + file write)"):
                sink.write(batch)
            rows += batch.num_rows
        assert sink is not None
        with timer.section("sink.finish"):
            written = sink.finish()
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    with timer.section("publish"):
        files = publish(destination.store, destination.filesystem(), written, destination.scheme)
    return {
        "work_s": time.perf_counter() - started,
        "rows": rows,
        "bytes": sum(item.bytes for item in written),
        "files": files,
        "chunk_rows": plan.chunk_rows,
        "reader": plan.reader,
    }


def _child_engine(spec: dict[str, Any]) -> dict[str, Any]:
    return _engine_run(spec)


def _child_flow(spec: dict[str, Any]) -> dict[str, Any]:
    imports_started = time.perf_counter()
    from flows.export import export

    import_s = time.perf_counter() - imports_started
    started = time.perf_counter()
    source: dict[str, Any] = {"url": spec["url"], "table": spec["table"]}
    if spec.get("partitions", 1) > 1:  # bench/partitions_bench.py
        source["partitions"] = spec["partitions"]
    result = export(
        source=source,
        destination={
            "url": _out_template(spec["out_dir"]),
            "compression": spec.get("compression", "none"),
        },
        format=spec["fmt"],
    )
    work_s = time.perf_counter() - started
    return {
        "work_s": work_s,
        "flow_s": result.duration_s,
        "import_s": import_s,
        "rows": result.rows,
        "bytes": result.bytes,
        "files": result.files,
    }


def _child_empty_flow() -> dict[str, Any]:
    imports_started = time.perf_counter()
    from prefect import flow

    import_s = time.perf_counter() - imports_started

    @flow(name="bench-empty")
    def empty() -> int:
        return 1

    started = time.perf_counter()
    empty()
    return {"work_s": time.perf_counter() - started, "import_s": import_s}


class _Timer:
    """Inclusive wall time per named section (sections may nest)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, module: Any, attribute: str, label: Any) -> None:
        """Time every call of module.attribute, under label(*args) (a name or a function).
        Attributes the product no longer has are skipped: the profile follows the code."""
        original = getattr(module, attribute, None)
        if original is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            name = label(*args, **kwargs) if callable(label) else label
            with self.section(name):
                return original(*args, **kwargs)

        setattr(module, attribute, timed)


def _child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """The engine run with wall-clock timers around its stages, the render functions (per
    column kind) and the file writes, inclusive; plus how far the COPY text read from
    PostgreSQL runs ahead of the writers, and the memory after each batch."""
    import pyarrow as pa

    from flows.formats import parquet_writer, render
    from flows.sink import PartSink, _CountingFile
    from flows.sources import postgres

    timer = _Timer()
    stream_class = getattr(postgres, "_CopyStream", None)
    timer.wrap(postgres, "_finish_batch", "  _finish_batch (cast to schema)")
    timer.wrap(postgres.pa, "concat_batches", "  pa.concat_batches (rebatch)")
    # Rendering side (inside sink.write); formats.py calls these through the module.
    for name in ("csv_cells", "json_values", "xml_elements"):
        timer.wrap(render, name, _kind_label(f"  render.{name}"))
    timer.wrap(render, "concat", "  render.concat (row join)")
    for name in ("_float_text", "_timestamp_text", "_json_strings", "xml_escape"):
        timer.wrap(render, name, f"    render.{name}")
    timer.wrap(_CountingFile, "write", "  file write (_CountingFile.write)")
    timer.wrap(parquet_writer.pq.ParquetWriter, "write_batch", "  pq.ParquetWriter.write_batch")

    stream_bytes = [0]
    if stream_class is not None:
        blocks = stream_class.row_blocks

        def counting_blocks(self: Any) -> Any:
            for block in blocks(self):
                stream_bytes[0] += len(block[0])
                yield block

        stream_class.row_blocks = counting_blocks
    trace: list[tuple[int, int, float]] = []  # rows handed on, COPY bytes read, RSS MB
    original_write = PartSink.write

    def tracing_write(self: Any, batch: Any) -> None:
        done = (trace[-1][0] if trace else 0) + batch.num_rows
        trace.append((done, stream_bytes[0], _vm_rss_mb()))
        original_write(self, batch)

    PartSink.write = tracing_write  # type: ignore[method-assign]
    report = _engine_run(spec, timer)
    report["sections"] = {
        name: {"s": round(seconds, 3), "calls": timer.calls[name]}
        for name, seconds in timer.seconds.items()
    }
    # COPY text already read from PostgreSQL but not yet handed to the writer, at each batch.
    bytes_per_row = stream_bytes[0] / max(report["rows"], 1)
    report["read_ahead_mb_max"] = (
        max(((read - done * bytes_per_row) / MIB for done, read, _ in trace), default=0.0)
        if stream_bytes[0]
        else None
    )
    report["rss_mb_by_batch"] = [round(rss) for _, _, rss in trace]
    report["arrow_mb_max"] = pa.default_memory_pool().max_memory() / MIB
    report["arrow_pool"] = pa.default_memory_pool().backend_name
    return report


def _kind_label(prefix: str) -> Any:
    def label(*args: Any, **_kwargs: Any) -> str:
        kind = args[1] if len(args) > 1 else "?"
        return f"{prefix}[{kind}]"

    return label


def _child_stages(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds of each stage of the pipe, run alone one after the other: CPU time is
    robust to other load on the machine, and comparable with COPY's own.

    1. psycopg `for data in copy` → file (the reference loop): client and server CPU;
    2. flows.sources.read.read_batches alone (COPY + parse into Arrow), batches kept in memory;
    3. per format, from those batches: the writer's render per column, the row join, the
       file writes (Parquet: the whole write_batch).
    Server CPU is what the cluster's postmaster has reaped from its exited backends (only for
    a local server; NaN otherwise).
    """
    import psycopg
    import pyarrow as pa

    from flows.core.config import FormatOptions, SourceConfig
    from flows.formats import render, writers
    from flows.sources import postgres
    from flows.sources.plan import inspect_source
    from flows.sources.read import read_batches

    plan = inspect_source(SourceConfig(url=spec["url"], table=spec["table"]))
    out: dict[str, Any] = {"rows": spec["rows"]}
    text_path = Path(spec["out_dir"], "copy.csv")
    postmaster = _postmaster_pid(spec["dsn"])

    def reference() -> None:
        with psycopg.connect(spec["dsn"]) as conn, conn.cursor() as cursor:
            for setting in getattr(postgres, "SESSION_SETTINGS", ()):
                cursor.execute(setting)
            sql = f"COPY (SELECT * FROM {spec['table']}) TO STDOUT (FORMAT csv)"
            with cursor.copy(sql) as copy, open(text_path, "wb") as text_file:
                for data in copy:
                    text_file.write(data)

    out["copy_loop"] = _stage(postmaster, reference)
    out["copy_loop"]["bytes"] = text_path.stat().st_size
    text_path.unlink()
    held: list[pa.RecordBatch] = []
    out["read_batches"] = _stage(postmaster, lambda: held.extend(read_batches(plan)))
    schema = held[0].schema

    # Render: CPU of the main thread, per column (in column order) and per inner function.
    column_cpu: dict[str, float] = {}
    inner_cpu: dict[str, float] = {}
    position = [0]

    def per_column(function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                name = schema.names[position[0] % len(schema)]
                column_cpu[name] = column_cpu.get(name, 0.0) + time.thread_time() - started
                position[0] += 1

        return timed

    def inner(name: str, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                inner_cpu[name] = inner_cpu.get(name, 0.0) + time.thread_time() - started

        return timed

    originals = {name: getattr(render, name) for name in _RENDER_FUNCTIONS if hasattr(render, name)}
    for name, function in originals.items():
        wrapper = per_column if name in ("csv_cells", "json_values", "xml_elements") else None
        setattr(render, name, wrapper(function) if wrapper else inner(name, function))

    out["formats"] = {}
    for fmt in spec["formats"]:
        column_cpu.clear()
        inner_cpu.clear()
        target = Path(spec["out_dir"], f"stage.{fmt}")
        render_cpu = write_cpu = 0.0
        with open(target, "wb") as raw:
            writer = writers.open_writer(fmt, raw, schema, FormatOptions())
            text_writer = isinstance(writer, writers.TextWriter)
            for batch in held:
                position[0] = 0
                if text_writer:
                    started = time.thread_time()
                    rows = writer.render(batch)  # type: ignore[attr-defined]
                    render_cpu += time.thread_time() - started
                    started = time.thread_time()
                    writer._emit(render.string_bytes(rows))
                    write_cpu += time.thread_time() - started
                else:
                    started = _cpu()
                    writer.write(batch)
                    render_cpu += _cpu() - started
            writer.close()
        out["formats"][fmt] = {
            "render_cpu_s": render_cpu,
            "write_cpu_s": write_cpu,
            "bytes": target.stat().st_size,
            "columns_cpu_s": dict(column_cpu),
            "inner_cpu_s": dict(inner_cpu),
        }
        target.unlink()
    for name, function in originals.items():
        setattr(render, name, function)

    return out


def _stage(postmaster: int | None, run: Any) -> dict[str, float]:
    server_before, cpu_before, wall_before = _reaped_cpu(postmaster), _cpu(), time.perf_counter()
    run()
    wall = time.perf_counter() - wall_before
    cpu = _cpu() - cpu_before
    return {
        "client_cpu_s": cpu,
        "server_cpu_s": _settled_reaped_cpu(postmaster) - server_before,
        "wall_s": wall,
    }


def _postmaster_pid(dsn: str) -> int | None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        backend = conn.info.backend_pid
        try:
            fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
    return int(fields[1])


def _reaped_cpu(pid: int | None) -> float:
    """CPU seconds of a process plus its reaped children (utime+stime+cutime+cstime)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _settled_reaped_cpu(pid: int | None) -> float:
    """_reaped_cpu once the backends of the stage have exited and been reaped."""
    last = _reaped_cpu(pid)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _reaped_cpu(pid)
        if now == last:
            break
        last = now
    return last


_RENDER_FUNCTIONS = (
    "csv_cells",
    "json_values",
    "xml_elements",
    "concat",
    "_float_text",
    "_timestamp_text",
    "_json_strings",
    "xml_escape",
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _vm_rss_mb() -> float:
    return _proc_status_mb("VmRSS")


def _out_template(out_dir: str) -> str:
    return str(Path(out_dir) / "{export}-{run_id}.{ext}")


# --------------------------------------------------------------------------------------
# Parent: servers, table, running children, summary.
# --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.out_dir = work / "out"
        self.logs = work / "logs"
        self.out_dir.mkdir()
        self.logs.mkdir()
        self.child_env = dict(os.environ)
        self.counter = 0

    def run_child(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.counter += 1
        report_path = self.work / f"report-{self.counter}.json"
        log_path = self.logs / f"{self.counter:04d}-{spec['kind']}-{spec.get('fmt', '')}.log"
        spec = {**spec, "report": str(report_path), "out_dir": str(self.out_dir)}
        command = [sys.executable, "-m", "bench.export_bench", "--child", json.dumps(spec)]
        load_before = os.getloadavg()[0]
        flows_sha = code_fingerprint()
        started = time.perf_counter()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=REPO, env=self.child_env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                _, status, usage = _wait4(process, CHILD_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                process.wait()
                raise
        process_s = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code
        if code != 0 or not report_path.exists():
            tail = log_path.read_text(errors="replace")[-3000:]
            what = f"{spec['kind']} {spec.get('fmt', '')}"
            raise RuntimeError(f"child {what} failed ({code}):\n{tail}")
        report = json.loads(report_path.read_text())
        report_path.unlink()
        report["process_s"] = process_s
        report["load1_before"] = load_before
        report["flows_sha256"] = flows_sha
        # The child's own high-water mark (VmHWM): ru_maxrss from wait4 also counts the
        # parent's memory at fork time, which Linux carries over the exec.
        report["wait4_maxrss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux
        report["peak_rss_mb"] = report["vm_hwm_mb"]
        for item in self.out_dir.iterdir():
            item.unlink()
        return report


def _wait4(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, int, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"child {process.pid} ran over {timeout} s")
        time.sleep(0.02)


def _sqlalchemy_url(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy.engine import URL

    if dsn.startswith(("postgresql://", "postgres://")):
        return dsn
    parts = conninfo_to_dict(dsn)
    return URL.create(
        "postgresql",
        username=parts.get("user"),
        password=parts.get("password"),
        host=parts.get("host"),
        port=int(parts["port"]) if parts.get("port") else None,
        database=parts.get("dbname"),
    ).render_as_string(hide_password=False)


def ensure_table(dsn: str, rows: int) -> tuple[str, float | None]:
    """events_<rows>, created (and vacuumed) unless it exists; returns (name, seconds to create)."""
    import psycopg

    table = f"events_{rows}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if exists and exists[0]:
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            if count and count[0] == rows:
                return table, None
            raise SystemExit(f"{table} exists with {count and count[0]} rows, not {rows}")
        started = time.perf_counter()
        conn.execute(TABLE_DDL.format(table=table))
        conn.execute(TABLE_FILL.format(table=table, rows=rows))
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        return table, time.perf_counter() - started


@contextmanager
def prefect_server(work: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """One `prefect server start` for the whole bench; yields its API URL and client env."""
    from tests.servers.ports import free_port

    port = free_port()
    home = work / "prefect-home"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).parent / "prefect")
    log = open(work / "prefect-server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    "prefect server exited:\n" + (work / "prefect-server.log").read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not become healthy in 120 s")
            time.sleep(0.5)
        client_env = {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        yield api, client_env
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def machine_info(dsn: str) -> dict[str, Any]:
    import psycopg
    import pyarrow
    import sqlalchemy

    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT version()").fetchone()
        pg_version = row[0] if row else "?"
    try:
        prefect_version = subprocess.run(
            [sys.executable, "-c", "import prefect; print(prefect.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except subprocess.CalledProcessError:
        prefect_version = "?"
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit or "not a git checkout",
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "psycopg": psycopg.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "prefect": prefect_version,
        "postgresql": pg_version,
    }


def measure(bench: Bench, args: argparse.Namespace, base: dict[str, Any]) -> list[dict[str, Any]]:
    """All runs for one table: per repeat the baselines, then COPY/engine/flow per format."""
    records: list[dict[str, Any]] = []

    def record(spec: dict[str, Any], repeat: int, pair: int | None) -> dict[str, Any]:
        if args.compression != "none" and spec.get("fmt") in TEXT_FORMATS:
            spec = {**spec, "compression": args.compression}
        report = bench.run_child({**base, **spec})
        report.update(repeat=repeat, pair=pair, fmt=spec.get("fmt"), rows_table=base["rows"])
        if "compression" in spec:
            report["compression"] = spec["compression"]
        records.append(report)
        line = (
            f"  [{base['rows']:>9,} rows, run {repeat + 1}] {spec['kind']:<16} "
            f"{spec.get('fmt') or '':<8} work {report['work_s']:7.2f} s  "
            f"process {report['process_s']:7.2f} s  RSS {report['peak_rss_mb']:6.0f} MB"
        )
        if "flow_s" in report:
            line += f"  flow {report['flow_s']:.2f} s"
        print(line, flush=True)
        return report

    pair = 0
    for repeat in range(args.repeat):
        if "engine" in args.methods:
            record({"kind": "baseline_engine"}, repeat, None)
        if "flow" in args.methods:
            record({"kind": "baseline_prefect"}, repeat, None)
        for fmt in args.formats:
            pair += 1
            if "copy" in args.methods:
                record({"kind": "copy"}, repeat, pair)
            for method in ("engine", "flow"):
                if method in args.methods:
                    record({"kind": method, "fmt": fmt}, repeat, pair)
    return records


def summarise(records: list[dict[str, Any]], rows: int) -> list[dict[str, Any]]:
    copies = {r["pair"]: r for r in records if r["kind"] == "copy"}
    lines: list[dict[str, Any]] = []

    def line(kind: str, fmt: str | None, runs: list[dict[str, Any]]) -> dict[str, Any]:
        work = statistics.median(r["work_s"] for r in runs)
        process = statistics.median(r["process_s"] for r in runs)
        codec = runs[0].get("compression")
        entry: dict[str, Any] = {
            "method": kind,
            "format": f"{fmt} + {codec}" if codec else fmt,
            "rows": rows,
            "runs": len(runs),
            "work_s": work,
            "process_s": process,
            "rows_per_s": rows / work if work else None,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "bytes": runs[0].get("bytes"),
        }
        if kind == "flow":
            entry["flow_s"] = statistics.median(r["flow_s"] for r in runs)
        paired = [r for r in runs if r.get("pair") in copies and kind != "copy"]
        if paired:
            entry["ratio"] = statistics.median(
                copies[r["pair"]]["work_s"] / r["work_s"] for r in paired
            )
            entry["ratio_process"] = statistics.median(
                copies[r["pair"]]["process_s"] / r["process_s"] for r in paired
            )
        if fmt in TARGETS and kind in ("engine", "flow") and not codec:
            entry["target"] = TARGETS[fmt]
            entry["target_met"] = entry.get("ratio", 0) >= TARGETS[fmt]
            entry["target_met_process"] = entry.get("ratio_process", 0) >= TARGETS[fmt]
            entry["rss_met"] = entry["peak_rss_mb"] <= RSS_LIMIT_MB
        return entry

    for kind in ("baseline_engine", "baseline_prefect", "copy"):
        runs = [r for r in records if r["kind"] == kind]
        if runs:
            lines.append(line(kind, "csv" if kind == "copy" else None, runs))
    formats = list(dict.fromkeys(r["fmt"] for r in records if r.get("fmt")))
    for fmt in formats:
        for kind in ("engine", "flow"):
            runs = [r for r in records if r["kind"] == kind and r["fmt"] == fmt]
            if runs:
                lines.append(line(kind, fmt, runs))
    return lines


def format_table(summary: list[dict[str, Any]]) -> str:
    header = (
        "| method | format | rows | work s | rows/s | × COPY rows/s (target) | met | "
        "process s | × COPY (process) | flow s | peak RSS MB |\n"
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|"
    )
    out = [header]
    for e in summary:
        ratio = e.get("ratio")
        target = e.get("target")
        if e["method"] == "copy":
            ratio_text, met = "1.00 (reference)", ""
        elif ratio is None:
            ratio_text, met = "", ""
        else:
            ratio_text = f"{ratio:.2f}" + (f" (≥ {target})" if target else "")
            met = ("met" if e["target_met"] else "MISSED") if target else ""
        rss = f"{e['peak_rss_mb']:.0f}"
        if "rss_met" in e and not e["rss_met"]:
            rss += " (> 200)"
        rows_per_s = f"{e['rows_per_s']:,.0f}" if e["method"] not in _BASELINES else ""
        work = f"{e['work_s']:.2f}"
        process_ratio = f"{e['ratio_process']:.2f}" if "ratio_process" in e else ""
        flow_s = f"{e['flow_s']:.2f}" if "flow_s" in e else ""
        out.append(
            f"| {_METHOD_NAMES[e['method']]} | {e['format'] or ''} | {e['rows']:,} | {work} | "
            f"{rows_per_s} | {ratio_text} | {met} | {e['process_s']:.2f} | {process_ratio} | "
            f"{flow_s} | {rss} |"
        )
    return "\n".join(out)


_BASELINES = ("baseline_engine", "baseline_prefect")
_METHOD_NAMES = {
    "copy": "psycopg COPY → file",
    "engine": "engine (no Prefect)",
    "flow": "Prefect flow `export`",
    "baseline_engine": "baseline: import engine",
    "baseline_prefect": "baseline: Prefect empty flow",
}


def format_flatness(summaries: dict[int, list[dict[str, Any]]]) -> str:
    if len(summaries) < 2:
        return ""
    sizes = sorted(summaries)
    small, large = sizes[0], sizes[-1]
    by_key = {
        size: {(e["method"], e["format"]): e["peak_rss_mb"] for e in lines}
        for size, lines in summaries.items()
    }
    out = [
        f"| method | format | RSS MB at {small:,} | RSS MB at {large:,} | growth MB |",
        "|---|---|---:|---:|---:|",
    ]
    for key, rss_small in by_key[small].items():
        if key in by_key[large]:
            rss_large = by_key[large][key]
            out.append(
                f"| {_METHOD_NAMES[key[0]]} | {key[1] or ''} | {rss_small:.0f} | {rss_large:.0f} "
                f"| {rss_large - rss_small:+.0f} |"
            )
    return "\n".join(out)


def run_profiles(bench: Bench, base: dict[str, Any], formats: list[str]) -> dict[str, Any]:
    """Where the time and memory go: CPU per stage, wall per section, smaller CSV blocks.
    A profile that fails (the product's internals moved) is recorded and skipped."""
    profiles: dict[str, Any] = {"sections": {}, "small_blocks": {}, "errors": []}
    rows = base["rows"]
    print(f"\nprofile ({rows:,} rows)", flush=True)

    def attempt(spec: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return bench.run_child({**base, **spec})
        except RuntimeError as exc:
            profiles["errors"].append(str(exc)[-2000:])
            print(f"  (profile {spec['kind']} {spec.get('fmt', '')} failed: see results JSON)")
            return None

    stages = attempt({"kind": "stages", "formats": formats})
    if stages is not None:
        profiles["stages"] = stages
        print(format_stages(stages))
    for fmt in formats:
        report = attempt({"kind": "profile", "fmt": fmt})
        if report is None:
            continue
        profiles["sections"][fmt] = report
        ahead = report.get("read_ahead_mb_max")
        print(
            f"\nengine {fmt}: {report['work_s']:.2f} s wall,"
            f" peak RSS {report['peak_rss_mb']:.0f} MB (Arrow pool max"
            f" {report['arrow_mb_max']:.0f} MB"
            + (f", COPY text read ahead of the writer up to {ahead:.0f} MB" if ahead else "")
            + "); wall seconds, inclusive:"
        )
        for name, item in sorted(report["sections"].items(), key=lambda kv: -kv[1]["s"]):
            print(f"  {item['s']:8.2f} s  {item['calls']:6d} calls  {name}")
        print("  RSS MB after each batch:", report["rss_mb_by_batch"][:12], "…")
    block = 1024 * 1024
    print(f"\nwhat-if: CSV_BLOCK_BYTES = {block // MIB} MiB instead of the product's value")
    for fmt in formats[:1]:
        report = attempt({"kind": "engine", "fmt": fmt, "csv_block_bytes": block})
        if report is not None:
            profiles["small_blocks"][fmt] = report
            print(
                f"  engine {fmt:<8} {report['work_s']:6.2f} s"
                f"  peak RSS {report['peak_rss_mb']:.0f} MB"
            )
    return profiles


def format_stages(stages: dict[str, Any]) -> str:
    loop, read = stages["copy_loop"], stages["read_batches"]
    lines = [
        "CPU seconds per stage, each run alone (client = this process, all threads;"
        " server = the PostgreSQL backend):",
        f"  COPY → file, `for data in copy` (the reference): client {loop['client_cpu_s']:.2f},"
        f" server {loop['server_cpu_s']:.2f}, wall {loop['wall_s']:.2f}"
        f" ({loop['bytes'] / MIB:.0f} MiB of CSV)",
        f"  read_batches alone (COPY + parse into Arrow): client {read['client_cpu_s']:.2f},"
        f" server {read['server_cpu_s']:.2f}, wall {read['wall_s']:.2f}",
    ]
    for fmt, item in stages["formats"].items():
        columns = sorted(item["columns_cpu_s"].items(), key=lambda kv: -kv[1])
        inner = sorted(item["inner_cpu_s"].items(), key=lambda kv: -kv[1])
        lines.append(
            f"  {fmt}: render {item['render_cpu_s']:.2f}, file write {item['write_cpu_s']:.2f}"
            f" ({item['bytes'] / MIB:.0f} MiB)"
        )
        if columns:
            lines.append(
                "      by column: " + ", ".join(f"{name} {sec:.2f}" for name, sec in columns)
            )
        if inner:
            lines.append("      inside: " + ", ".join(f"{name} {sec:.2f}" for name, sec in inner))
    return "\n".join(lines)


def code_fingerprint() -> str:
    """A hash of flows/**/*.py: the results say which code they measured."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "flows").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_bench", description=__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rows",
        default=",".join(str(n) for n in DEFAULT_ROWS),
        help="table size(s), comma-separated (default: 2000000,200000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="formats to export")
    parser.add_argument(
        "--compression",
        default="none",
        choices=COMPRESSIONS,
        help="destination.compression of the text formats (csv, jsonl, json, xml)",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="copy,engine,flow")
    parser.add_argument("--dsn", help="libpq DSN or postgresql:// URL of an existing server")
    parser.add_argument(
        "--profile", action="store_true", help="also time the engine's stages per format"
    )
    args = parser.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return 0
    args.rows = [int(n.replace("_", "")) for n in args.rows.split(",") if n]
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.formats) - set(FORMATS) or set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown format or method: {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    server = None
    try:
        if args.dsn:
            dsn = args.dsn
        else:
            from tests.servers.postgres import start_postgres

            print("starting a private PostgreSQL …", flush=True)
            server = start_postgres()
            dsn = server.dsn()
        url = _sqlalchemy_url(dsn)
        machine = machine_info(dsn)
        print(json.dumps(machine, indent=2), flush=True)
        tables: dict[int, str] = {}
        for rows in args.rows:
            table, seconds = ensure_table(dsn, rows)
            tables[rows] = table
            made = f"created in {seconds:.1f} s" if seconds is not None else "reused"
            print(f"table {table}: {made}", flush=True)

        bench = Bench(args, work)
        summaries: dict[int, list[dict[str, Any]]] = {}
        all_records: list[dict[str, Any]] = []
        profiles: dict[int, Any] = {}
        fingerprint = code_fingerprint()
        machine["flows_sha256"] = fingerprint
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        result_path = RESULTS_DIR / f"export_bench-{stamp}.json"

        def save() -> None:
            result_path.write_text(
                json.dumps(
                    {
                        "taken_at": stamp,
                        "command": " ".join(["python -m bench.export_bench", *sys.argv[1:]]),
                        "machine": machine,
                        "targets": TARGETS,
                        "rss_limit_mb": RSS_LIMIT_MB,
                        "summary": {str(k): v for k, v in summaries.items()},
                        "profiles": {str(k): v for k, v in profiles.items()},
                        "records": all_records,
                    },
                    indent=2,
                    default=str,
                )
            )

        with _maybe_prefect(args, work) as client_env:
            bench.child_env.update(client_env)
            for rows in args.rows:
                base = {"dsn": dsn, "url": url, "table": tables[rows], "rows": rows}
                print(f"\nmeasuring {tables[rows]} ({rows:,} rows) × {args.repeat} …", flush=True)
                records = measure(bench, args, base)
                all_records.extend(records)
                summaries[rows] = summarise(records, rows)
                save()
                if args.profile and "engine" in args.methods:
                    profiles[rows] = run_profiles(bench, base, args.formats)
                    save()

        print()
        for rows in args.rows:
            print(format_table(summaries[rows]))
            print()
        flatness = format_flatness(summaries)
        if flatness:
            print(flatness)
        if code_fingerprint() != fingerprint:
            machine["flows_changed_during_run"] = True
            print("\nWARNING: flows/ changed while the bench ran; rerun for clean numbers")
        save()
        print(f"\nresults: {result_path.relative_to(REPO)}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


@contextmanager
def _maybe_prefect(args: argparse.Namespace, work: Path) -> Iterator[dict[str, str]]:
    if "flow" not in args.methods:
        yield {}
        return
    print("starting one Prefect server for the bench …", flush=True)
    with prefect_server(work) as (api, client_env):
        print(f"prefect API at {api}", flush=True)
        yield client_env


if __name__ == "__main__":
    sys.exit(main())
