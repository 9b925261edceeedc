"""The `exports` command line (Contract 3): run exports now, from prefect.yaml or the demo."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from deployments.alerts_cli import alerts_app
from deployments.audit_cli import audit
from deployments.console import fail
from deployments.gateway_cli import gateway
from deployments.keys_cli import keys_app
from deployments.pause_cli import pause, resume
from deployments.project import (
    DEFAULT_PROJECT_FILE,
    UsageError,
    apply_overrides,
    find_deployment,
    validate_export_parameters,
)
from deployments.schedule_cli import register as register_schedule_commands
from deployments.serve_cli import serve
from flows.config import DestinationConfig, ExportResult, SourceConfig
from flows.errors import ExportError
from flows.origin import RUN_NOW_TAG
from flows.types import EXPORT_FORMATS

app = typer.Typer(
    name="exports",
    help="Export SQL tables and queries to CSV, JSON, JSONL, XML and Parquet with Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(alerts_app)
app.add_typer(keys_app)
app.command()(audit)
app.command()(gateway)
register_schedule_commands(app)  # exports check, exports schedule
app.command()(pause)
app.command()(resume)
app.command()(serve)
DEMO_TABLES = ("orders", "customers")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo files.")] = Path("demo-out"),
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Export the bundled SQLite demo (orders, customers) into OUT in every format."""
    from prefect import tags

    from deployments.demo import ensure_demo_db
    from flows.export import export

    database = ensure_demo_db()
    results: list[ExportResult] = []
    try:
        with tags(RUN_NOW_TAG, f"user:{_cli_user()}"):  # the audit log's Run Now and user
            for table in DEMO_TABLES:
                for fmt in EXPORT_FORMATS:
                    results.append(
                        export(
                            source=SourceConfig(url=f"sqlite:///{database}", table=table),
                            destination=DestinationConfig(
                                url=str(out.resolve() / "{export}.{ext}")
                            ),
                            format=fmt,
                            name=table,
                            type="Demo",
                        )
                    )
    except ExportError as exc:
        if debug:
            raise
        raise fail(str(exc)) from None
    _print_table(results)


@app.command()
def run(
    deployment: Annotated[str, typer.Argument(help="Name of a deployment in prefect.yaml.")],
    file: Annotated[Path, typer.Option("--file", help="The project file.")] = DEFAULT_PROJECT_FILE,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a parameter: key=value or source.chunk_rows=1000."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ExportResult as JSON.")
    ] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Run a deployment's export now, in this process (a "Run Now" trigger)."""
    from prefect import tags

    try:
        spec = find_deployment(deployment, file)
        parameters = apply_overrides(spec.parameters, set_ or [])
        flow = spec.load_flow()
        if getattr(flow, "name", None) == "export":
            parameters = validate_export_parameters(parameters)
    except UsageError as exc:
        if debug:
            raise
        raise fail(str(exc), code=2) from None
    except (ExportError, ImportError, AttributeError) as exc:
        if debug:
            raise
        raise fail(str(exc)) from None
    user = _cli_user()
    try:
        with tags(f"deployment:{spec.name}", RUN_NOW_TAG, f"user:{user}"):
            result = flow(**parameters)
    except ExportError as exc:
        if debug:
            raise
        raise fail(str(exc)) from None
    if as_json and isinstance(result, ExportResult):
        typer.echo(result.model_dump_json(indent=2))
    elif isinstance(result, ExportResult):
        _print_table([result])
    else:
        typer.echo(json.dumps(result, default=str, indent=2))


def _cli_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _print_table(results: list[ExportResult]) -> None:
    rows: list[tuple[str, ...]] = [("file", "format", "rows", "bytes")]
    for result in results:
        for path in result.files:
            rows.append((path, result.format, str(result.rows), str(result.bytes)))
    widths = [max(len(row[index]) for row in rows) for index in range(4)]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[2].rjust(widths[2]), row[3].rjust(widths[3])]
        typer.echo("  ".join(cells).rstrip())


def main() -> Any:  # pragma: no cover - console entry point
    return app(prog_name="exports")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
