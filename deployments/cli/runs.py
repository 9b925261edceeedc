"""`exports run` and `exports demo`: exports run now, in this process ("Run Now" triggers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deployments.cli.console import DebugOption, FileOption, cli_user, fail, print_table
from deployments.cli.quiet import quiet_prefect
from deployments.triggers.project import DEFAULT_PROJECT_FILE, apply_overrides, find_deployment
from flows.runs.naming import EXPORT_FLOW
from flows.runs.tags import run_now_tags

if TYPE_CHECKING:
    from flows.runs.result import ExportResult

app = typer.Typer()
DEMO_TABLES = ("orders", "customers")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo files.")] = Path("demo-out"),
    debug: DebugOption = False,
) -> None:
    """Export the bundled SQLite demo (orders, customers) into OUT in every format."""
    with quiet_prefect(debug):
        with ThreadPoolExecutor(1, thread_name_prefix="server") as starter:
            # A temporary server takes seconds to start in its own process: the engine's
            # imports (here, not at the top: no other command needs them) and the demo
            # database are ready meanwhile.
            temporary_server = starter.submit(_start_temporary_server)
            import pandas  # noqa: F401 - pyarrow's first array from Python rows imports it

            from demo.build import ensure_demo_db
            from flows.core.config import SourceConfig
            from flows.core.formats import EXPORT_FORMATS
            from flows.export import export
            from flows.request import DestinationConfig

            database = ensure_demo_db()
            on_temporary_server = temporary_server.result()
        folder = DestinationConfig(url=str(out.resolve() / "{export}.{ext}"))

        from prefect import tags

        # Tagged for the audit log's Run Now and user. One after another: side by side, the
        # runs' API calls wait on each other in the temporary server's SQLite.
        with tags(*run_now_tags(cli_user())), _without_heartbeats(on_temporary_server):
            results = [
                export(
                    source=SourceConfig(url=f"sqlite:///{database}", table=table),
                    destination=folder,
                    format=fmt,
                    name=table,
                    type="Demo",
                )
                for table in DEMO_TABLES
                for fmt in EXPORT_FORMATS
            ]
    _print_results(results)


def _start_temporary_server() -> bool:
    """Start Prefect's temporary server now, when no PREFECT_API_URL names one (else every
    flow run would ask for it, and threads at once would race); whether it did."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return False
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().start()
    return True


@contextmanager
def _without_heartbeats(on_temporary_server: bool) -> Iterator[None]:
    """Flow-run heartbeats off on a temporary server: nothing watches them there, and their
    thread costs each run up to a second to stop (docs/benchmarks.md)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if not on_temporary_server:
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@app.command()
def run(
    deployment: Annotated[str, typer.Argument(help="Name of a deployment in prefect.yaml.")],
    file: FileOption = DEFAULT_PROJECT_FILE,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a parameter: key=value or source.chunk_rows=1000."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ExportResult as JSON.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Run a deployment's export now, in this process (a "Run Now" trigger)."""
    from prefect import tags

    from flows.parameters import validate_export_parameters
    from flows.runs.result import ExportResult

    spec = find_deployment(deployment, file)
    parameters = apply_overrides(spec.parameters, set_ or [])
    try:
        flow = spec.load_flow()
    except (ImportError, AttributeError) as exc:
        raise fail(str(exc)) from exc
    if getattr(flow, "name", None) == EXPORT_FLOW:
        parameters = validate_export_parameters(parameters)
    with quiet_prefect(debug), tags(*run_now_tags(cli_user(), deployment=spec.name)):
        result = flow(**parameters)
    if as_json and isinstance(result, ExportResult):
        typer.echo(result.model_dump_json(indent=2))
    elif isinstance(result, ExportResult):
        _print_results([result])
    else:
        typer.echo(json.dumps(result, default=str, indent=2))


def _print_results(results: list[ExportResult]) -> None:
    rows: list[tuple[str, ...]] = [("file", "format", "rows", "bytes")]
    for result in results:
        for path in result.files:
            rows.append((path, result.format, str(result.rows), str(result.bytes)))
    print_table(rows, right_aligned={2, 3})
