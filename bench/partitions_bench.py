"""Split reads (`source.partitions`) against single-stream COPY, through the real flow.

    python -m bench.partitions_bench [--rows 2000000,200000] [--repeat 3]
                                     [--formats csv,parquet] [--partitions 1,2,4] [--dsn DSN]

Per table size, repeat and format: psycopg's `COPY (SELECT * FROM t) TO STDOUT` to a file (the
reference, one stream), then the `export` flow with each partition count, each in a fresh
process against one `prefect server start` (bench/export_bench.py's children and table). The
ratio is the median over those pairs of COPY seconds ÷ export seconds (the export's rows/s as
a fraction of COPY's). "cores" is the export process's CPU seconds ÷ its wall seconds: above 1
the partitions' threads ran at once, which they can only do where the hot loop leaves the GIL.
"client CPU s" is the process's CPU seconds (imports and Prefect included), "server CPU s"
the PostgreSQL backends' (reaped children of the postmaster): on one 2-core machine the two
share the cores, so their sum over 2 is the least wall time any reader could reach.
Results: stdout (Markdown) and bench/results/partitions_bench-*.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.export_bench import (
    RESULTS_DIR,
    Bench,
    _postmaster_pid,
    _reaped_cpu,
    _settled_reaped_cpu,
    _sqlalchemy_url,
    ensure_table,
    machine_info,
    prefect_server,
)

# Targets of issue 14: rows/s of the flow with 2 partitions as a fraction of COPY's.
TARGETS = {("csv", 2): 1.0, ("parquet", 2): 0.9}


def measure(bench: Bench, base: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    postmaster = _postmaster_pid(base["dsn"])  # its reaped children: our backends' CPU
    pair = 0
    for repeat in range(args.repeat):
        for fmt in args.formats:
            pair += 1
            specs = [{"kind": "copy"}] + [
                {"kind": "flow", "fmt": fmt, "partitions": count} for count in args.partitions
            ]
            for spec in specs:
                server_before = _reaped_cpu(postmaster)
                report = bench.run_child({**base, **spec})
                report.update(pair=pair, repeat=repeat, fmt=fmt, partitions=spec.get("partitions"))
                report["server_cpu_s"] = _settled_reaped_cpu(postmaster) - server_before
                records.append(report)
                cores = report["cpu_s"] / report["child_s"]
                print(
                    f"  [{base['rows']:>9,} rows, run {repeat + 1}] {spec['kind']:<5} "
                    f"{fmt:<8} p={spec.get('partitions', '-')!s:<3} work {report['work_s']:7.2f} s"
                    f"  cores {cores:4.2f}  server CPU {report['server_cpu_s']:5.2f} s"
                    f"  RSS {report['peak_rss_mb']:6.0f} MB",
                    flush=True,
                )
    return records


def summarise(records: list[dict[str, Any]], rows: int) -> list[dict[str, Any]]:
    copies = {r["pair"]: r for r in records if r["kind"] == "copy"}
    lines = []
    groups: dict[tuple[str, str, int | None], list[dict[str, Any]]] = {}
    for record in records:
        fmt = "csv" if record["kind"] == "copy" else record["fmt"]
        groups.setdefault((record["kind"], fmt, record.get("partitions")), []).append(record)
    for (kind, fmt, count), runs in sorted(
        groups.items(), key=lambda item: (item[0][0] != "copy", item[0][1], item[0][2] or 0)
    ):
        if kind == "copy" and fmt != "csv":
            continue
        work = statistics.median(r["work_s"] for r in runs)
        entry: dict[str, Any] = {
            "method": "psycopg COPY → file" if kind == "copy" else f"flow, {count} partition(s)",
            "format": fmt,
            "partitions": count,
            "rows": rows,
            "work_s": work,
            "rows_per_s": rows / work,
            "cores": statistics.median(r["cpu_s"] / r["child_s"] for r in runs),
            "client_cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "server_cpu_s": statistics.median(r["server_cpu_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
        if kind != "copy":
            entry["ratio"] = statistics.median(
                copies[r["pair"]]["work_s"] / r["work_s"] for r in runs
            )
            target = TARGETS.get((fmt, count or 1))
            if target is not None:
                entry["target"] = target
                entry["target_met"] = entry["ratio"] >= target
        lines.append(entry)
    return lines


def format_table(lines: list[dict[str, Any]]) -> str:
    out = [
        "| method | format | work s | rows/s | × COPY (target) | cores | client CPU s "
        "| server CPU s | peak RSS MB |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for line in lines:
        ratio = "1.00 (reference)" if "ratio" not in line else f"{line['ratio']:.2f}"
        if "target" in line:
            ratio += f" (≥ {line['target']}: {'met' if line['target_met'] else '**missed**'})"
        out.append(
            f"| {line['method']} | {line['format']} | {line['work_s']:.2f} | "
            f"{line['rows_per_s']:,.0f} | {ratio} | {line['cores']:.2f} | "
            f"{line['client_cpu_s']:.2f} | {line['server_cpu_s']:.2f} | {line['peak_rss_mb']:.0f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partitions_bench", description=__doc__)
    parser.add_argument("--rows", default="2000000,200000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--partitions", default="1,2,4")
    parser.add_argument("--dsn", help="reuse a server's events_<rows> tables")
    args = parser.parse_args(argv)
    args.formats = [item.strip() for item in args.formats.split(",") if item.strip()]
    args.partitions = [int(item) for item in args.partitions.split(",") if item.strip()]
    sizes = [int(item) for item in args.rows.split(",") if item.strip()]
    server = None
    if args.dsn is None:
        from tests.servers.postgres import start_postgres

        server = start_postgres()
        server.create_database("bench")
        args.dsn = server.dsn("bench")
    results: dict[str, Any] = {"machine": machine_info(args.dsn), "tables": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="partitions-bench-") as work_dir:
            work = Path(work_dir)
            bench = Bench(args, work)
            with prefect_server(work) as (_, client_env):
                bench.child_env.update(client_env)
                for rows in sizes:
                    table, _ = ensure_table(args.dsn, rows)
                    base = {
                        "dsn": args.dsn,
                        "url": _sqlalchemy_url(args.dsn),
                        "table": table,
                        "rows": rows,
                    }
                    lines = summarise(measure(bench, base, args), rows)
                    results["tables"][str(rows)] = lines
                    print(f"\n## {rows:,} rows (medians of {args.repeat})\n")
                    print(format_table(lines), flush=True)
    finally:
        if server is not None:
            server.stop()
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"partitions_bench-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
