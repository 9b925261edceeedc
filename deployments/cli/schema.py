"""`exports schema`: the columns an export's last successful run wrote, which a run with
`on_schema_change: fail` must write again (blocks/export_state.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from blocks.export_state import ExportState, load_export_state
from deployments.cli.console import print_table

app = typer.Typer(
    name="schema",
    help="The columns and types an export's last successful run wrote (on_schema_change).",
    no_args_is_help=True,
)


def _shown(state: ExportState) -> dict[str, Any]:
    return {
        "export": state.export,
        "run_id": state.run_id,
        "finished": state.finished.isoformat() if state.finished else None,
        "columns": [{"name": column.name, "type": column.type} for column in state.columns],
    }


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The export's name (its `name`, else its table).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the schema as JSON (null when none).")
    ] = False,
) -> None:
    """Print the recorded columns and their types, and the run they come from."""
    state = load_export_state(name)
    recorded = state if state is not None and state.columns else None
    if as_json:
        typer.echo(json.dumps(_shown(recorded) if recorded else None, indent=2))
        return
    if recorded is None:
        typer.echo(f"no schema recorded for export `{name}`: its next successful run records one")
        return
    finished = recorded.finished.isoformat(timespec="seconds") if recorded.finished else "-"
    typer.echo(f"export {name}: run {recorded.run_id or '-'}, finished {finished}")
    print_table([("column", "type")] + [(column.name, column.type) for column in recorded.columns])
