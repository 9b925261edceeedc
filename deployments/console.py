"""How every `exports` command reports an error (Contract 3): one line on stderr, exit 1."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr; raise the returned Exit (code 2 for usage errors)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
