"""`exports cursor`: show, set (backfill) and reset an export's stored cursor mark
(`source.incremental`), kept in its ExportState block on the Prefect server."""

from __future__ import annotations

import decimal
from typing import Annotated

import typer

from blocks.export_state import ExportState, StateCursor, load_export_state, save_export_state
from deployments.cli.console import fail

app = typer.Typer(
    name="cursor",
    help="The stored cursor of an export with source.incremental: show, set or reset its mark.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="The export's name (its `name` parameter).")]


def _shown(mark: StateCursor | None) -> str:
    if mark is None:
        return "none (the next run starts at `initial`, or takes every row)"
    kind = f", {mark.kind}" if mark.kind else ""
    return f"{mark.value} ({mark.column}{kind})"


@app.command()
def show(name: NameArgument) -> None:
    """Print the mark: the next run delivers the rows whose cursor is above it."""
    state = load_export_state(name)
    typer.echo(f"cursor of `{name}`: {_shown(state.cursor if state else None)}")


@app.command("set")
def set_(
    name: NameArgument,
    value: Annotated[str, typer.Argument(help="The new mark; the next run starts above it.")],
    column: Annotated[
        str | None,
        typer.Option(help="The cursor column, when the export has no mark yet."),
    ] = None,
) -> None:
    """Move the mark (e.g. back, to deliver again every row above VALUE); prints the old one.
    The value must fit the cursor's kind (an integer, a timestamp ...)."""
    from flows.sources.cursor import cursor_text, parse_cursor  # pyarrow: not at CLI start

    state = load_export_state(name) or ExportState(export=name)
    old = state.cursor
    if old is None and column is None:
        raise fail(
            f"`{name}` has no cursor mark yet; give its column with --column COLUMN "
            "(source.incremental.cursor)"
        )
    if old is not None and column is not None and column != old.column:
        raise fail(
            f"the mark of `{name}` is for the column `{old.column}`, not `{column}`; run "
            f"`exports cursor reset {name}` first to change columns"
        )
    kind = old.kind if old is not None else ""
    try:
        text = cursor_text(parse_cursor(value.strip(), kind))
    except (ValueError, decimal.InvalidOperation):
        raise fail(
            f"`{value}` is not a {kind} value of the cursor `{old.column if old else column}`"
            f"; give e.g. {_EXAMPLES.get(kind, 'a value of its type')}"
        ) from None
    new = StateCursor(column=old.column if old else str(column), value=text, kind=kind)
    save_export_state(state.model_copy(update={"cursor": new}))
    typer.echo(f"cursor of `{name}`: {_shown(old)} -> {_shown(new)}")


@app.command()
def reset(name: NameArgument) -> None:
    """Forget the mark: the next run starts at `initial`, or takes every row."""
    state = load_export_state(name)
    old = state.cursor if state else None
    if state is not None and old is not None:
        save_export_state(state.model_copy(update={"cursor": None}))
    typer.echo(f"cursor of `{name}`: {_shown(old)} -> {_shown(None)}")


_EXAMPLES = {
    "int": "42",
    "float": "2.5",
    "decimal": "12.50",
    "date": "2026-03-01",
    "time": "06:30:00",
    "timestamp": "2026-03-01T06:00:00",
    "timestamptz": "2026-03-01T06:00:00+00:00",
}
