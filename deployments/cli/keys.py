"""`exports keys`: make, list and revoke the gateway's API keys, and its master secret."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from deployments.cli.console import DeployedFileOption, DeploymentArgument, print_table
from deployments.gateway.keys import KeyRecord, create_key, list_keys, revoke_key
from deployments.gateway.master_secrets import SECRETS_BLOCK, SECRETS_ENV, init_secret
from deployments.triggers.project import DEFAULT_PROJECT_FILE, qualified_name

app = typer.Typer(
    name="keys",
    help="API keys of the gateway: one per caller and deployment, shown once, revocable.",
    no_args_is_help=True,
)


def _shown(record: KeyRecord) -> dict[str, str | None]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "key_id": record.key_id,
        "deployment": record.deployment,
        "user": record.user,
        "state": record.state,
        "created": iso(record.created),
        "expires": iso(record.expires),
        "revoked_at": iso(record.revoked_at),
        "last_used": iso(record.last_used),
    }


@app.command()
def create(
    deployment: DeploymentArgument,
    user: Annotated[str, typer.Option(help="Who the key is for; runs are tagged user:USER.")],
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="The key stops working after N days (default never)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print key and entry as JSON.")] = False,
    file: DeployedFileOption = DEFAULT_PROJECT_FILE,
) -> None:
    """Make a key for one deployment; it is printed once and cannot be shown again."""
    token, record = create_key(qualified_name(deployment, Path(file)), user, expires_in_days)
    warning = "store this key now (a secret manager): it is not kept and cannot be shown again"
    if as_json:
        typer.echo(json.dumps({"key": token, **_shown(record), "warning": warning}, indent=2))
        return
    typer.echo(f"API key {record.key_id} for {record.deployment} (user {record.user}), ", nl=False)
    typer.echo(f"expires {record.expires.isoformat() if record.expires else 'never'}:")
    typer.echo(token)
    typer.echo(f"warning: {warning}", err=True)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """List every key's id, deployment, user, state and dates (never the key itself)."""
    shown = [_shown(record) for record in list_keys()]
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    columns = ("key_id", "deployment", "user", "state", "created", "expires", "last_used")
    print_table([columns] + [tuple(item[column] or "-" for column in columns) for item in shown])


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (exports keys list).")],
) -> None:
    """Revoke a key at once, for every gateway (its registry entry is kept)."""
    record = revoke_key(key_id)
    assert record.revoked_at is not None
    typer.echo(f"API key {key_id} revoked at {record.revoked_at.isoformat()}")


@app.command("init-secret")
def init_secret_command(
    rotate: Annotated[
        bool,
        typer.Option(help="Put a new secret first; the old ones still verify until removed."),
    ] = False,
) -> None:
    """Save a new master secret (Fernet key) in the Secret block exports-key-secrets."""
    count = init_secret(rotate=rotate)
    typer.echo(
        f"saved a new master secret in the Secret block `{SECRETS_BLOCK}` ({count} in all; "
        "new keys are made under the first)"
    )
    if count > 1:
        typer.echo(
            "keys made under the older secrets keep working until you remove those from the "
            "block (after re-issuing the keys)"
        )
    if os.environ.get(SECRETS_ENV):
        typer.echo(f"note: {SECRETS_ENV} is set here and comes before the block")
