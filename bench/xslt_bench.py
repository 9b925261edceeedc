"""XSLT over the XML export against plain XML, in the same run (issue 15).

    python -m bench.xslt_bench [--rows 1000000] [--repeat 3]

Builds a SQLite table of `--rows` orders (id, status, quantity, amount, note) in a temporary
folder, then per repeat runs, each in a fresh process: the plain XML export, and the same
export through `definitions/fixed_width.xsl` with `xslt_scope: item` (every row's element
transformed on its own as rows stream). The pipe is the flow's tasks without Prefect
(inspect, read, write, publish; see bench/export_bench.py "engine"). Reported: rows/s, the
ratio to plain XML, and peak RSS (VmHWM), whose difference is what the stylesheet costs in
memory: the target is within 50 MB. Results: stdout (Markdown) and
bench/results/xslt_bench-*.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
STYLESHEET = REPO / "definitions" / "fixed_width.xsl"
STATUSES = ("paid", "shipped", "delivered", "cancelled", "refunded", "pending")


def build_table(path: Path, rows: int) -> None:
    rng = random.Random(20261204)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, quantity INTEGER, "
            "amount NUMERIC(12, 2), note TEXT)"
        )
        batch = []
        for number in range(1, rows + 1):
            note = None if number % 7 == 0 else f"note {rng.getrandbits(40):x} & <more>"
            amount = round(rng.uniform(1, 5000), 2)
            batch.append((number, STATUSES[number % 6], number % 9, amount, note))
            if len(batch) == 50_000:
                conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", batch)
                batch.clear()
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", batch)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One export without Prefect, as the flow's tasks run it."""
    import uuid

    from flows.core.config import FormatOptions, SourceConfig
    from flows.core.targets import TargetContext
    from flows.destinations.publish import publish
    from flows.formats.options import export_extension
    from flows.request import DestinationConfig
    from flows.sink import PartSink
    from flows.sources.plan import inspect_source
    from flows.sources.read import read_for_format

    options = FormatOptions.model_validate(spec["options"])
    started = time.perf_counter()
    plan = inspect_source(SourceConfig(url=spec["url"], table="orders"))
    destination = DestinationConfig(url=str(Path(spec["out"]) / "{export}-{run_id}.{ext}"))
    context = TargetContext(
        export="orders",
        deployment="bench",
        run_id=str(uuid.uuid4()),
        date=datetime.now(UTC),
        ext=export_extension("xml", options),
    )
    sink: PartSink | None = None
    rows = 0
    for batch in read_for_format(plan, "xml", options):
        if sink is None:
            sink = PartSink.open(destination, "xml", batch.schema, options, context)
        sink.write(batch)
        rows += batch.num_rows
    assert sink is not None
    written = sink.finish()
    files = publish(destination.store, destination.filesystem(), written, destination.scheme)
    work = time.perf_counter() - started
    for name in files:
        Path(name).unlink()
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    return {"work_s": work, "rows": rows, "bytes": sum(w.bytes for w in written), "hwm_mb": hwm}


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.xslt_bench", "--child", json.dumps(spec)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


METHODS = {
    "plain XML": {},
    "XSLT fixed_width.xsl, item scope": {"xslt": str(STYLESHEET)},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.xslt_bench", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
    with tempfile.TemporaryDirectory(prefix="xslt-bench-") as work:
        database = Path(work) / "orders.sqlite"
        build_table(database, args.rows)
        out = Path(work) / "out"
        out.mkdir()
        for repeat in range(args.repeat):
            for name, options in METHODS.items():
                spec = {"url": f"sqlite:///{database}", "options": options, "out": str(out)}
                report = run_child(spec)
                records[name].append(report)
                print(
                    f"  [run {repeat + 1}] {name:<36} {report['work_s']:7.2f} s  "
                    f"{report['hwm_mb']:6.0f} MB",
                    flush=True,
                )
    plain = statistics.median(r["work_s"] for r in records["plain XML"])
    plain_hwm = max(r["hwm_mb"] for r in records["plain XML"])
    print(f"\n## {args.rows:,} rows (medians of {args.repeat}; peak RSS: max)\n")
    print("| method | work s | rows/s | × plain XML | peak RSS MB | RSS − plain MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in records.items():
        work = statistics.median(r["work_s"] for r in runs)
        hwm = max(r["hwm_mb"] for r in runs)
        print(
            f"| {name} | {work:.2f} | {args.rows / work:,.0f} | {plain / work:.2f} | "
            f"{hwm:.0f} | {hwm - plain_hwm:+.0f} |"
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"xslt_bench-{stamp}.json"
    path.write_text(json.dumps({"rows": args.rows, "records": records}, indent=2))
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
