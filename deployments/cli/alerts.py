"""`exports alerts`: the one switch for every export's status alerts (Contract 3 and 5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from prefect.client.orchestration import get_client
from pydantic import SecretStr, ValidationError

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts, load_alert_settings
from deployments.cli.console import fail
from flows.alerts.payload import alert_time
from flows.alerts.webhook import send_alert
from flows.core.signing import signing_key

app = typer.Typer(
    name="alerts",
    help="Turn status alerts (Initiated / Completed / Failed webhooks) on or off for all exports.",
    no_args_is_help=True,
)
TEST_REQUEST_ID = "00000000-0000-0000-0000-000000000000"


def _save(settings: StatusAlerts) -> None:
    settings.save(ALERTS_BLOCK_NAME, overwrite=True)


def _settings_with(current: StatusAlerts | None, **changes: Any) -> StatusAlerts:
    """The saved settings with `changes`, validated (a bad URL or zone names the option)."""
    fields = current.model_dump() if current else {}
    fields = {key: value for key, value in fields.items() if key in StatusAlerts.model_fields}
    if current is not None and current.secret is not None:
        fields["secret"] = current.secret
    fields.update(changes)
    try:
        return StatusAlerts(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "settings"
        option = {"url": "--url", "timezone": "--timezone", "secret": "--secret"}.get(field, field)
        raise fail(f"{option}: {problem['msg'].removeprefix('Value error, ')}", 2) from None


@app.command()
def enable(
    url: Annotated[str, typer.Option(help="The webhook every export POSTs its alerts to.")],
    secret: Annotated[
        str | None,
        typer.Option(
            help="Sign each alert: whsec_<base64> (Standard Webhooks) or any text; kept if "
            "not given."
        ),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help='Time zone of "Date and Time" (default UTC).')
    ] = None,
) -> None:
    """Send alerts for every export, deployed or new, from its next state change on."""
    changes: dict[str, Any] = {"enabled": True, "url": url}
    if secret is not None:
        try:
            signing_key(secret)  # a usage error before the API is asked anything
        except ValueError as exc:
            raise fail(f"--secret: {exc}", 2) from None
        changes["secret"] = SecretStr(secret)
    if timezone is not None:
        changes["timezone"] = timezone
    settings = _settings_with(load_alert_settings(), **changes)
    _save(settings)
    typer.echo(f"status alerts enabled: POST to {settings.url} (times in {settings.timezone})")
    _install_crash_automations()


def _install_crash_automations() -> None:
    """Killed runs get their Failed alert from the alert-reconciler deployment, started by
    two automations (docs/crash-alerts.md); without that deployment, say how to add it."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    from flows.alerts.automations import RECONCILER_DEPLOYMENT, install_crash_automations

    try:
        with get_client(sync_client=True) as client:
            reconciler = client.read_deployment_by_name(RECONCILER_DEPLOYMENT).id
    except Exception:  # noqa: BLE001 - not deployed (ObjectNotFound) or no API
        typer.echo(
            f"note: deploy `{RECONCILER_DEPLOYMENT}` (prefect deploy -n alert-reconciler) and "
            "enable again, so that runs killed with their process still send Failed"
        )
        return
    heartbeat = int(PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() or 180)
    install_crash_automations(reconciler, heartbeat_s=heartbeat)
    typer.echo(
        f"killed runs: marked Crashed after {3 * heartbeat} s without a heartbeat, then "
        f"`{RECONCILER_DEPLOYMENT}` sends their Failed alert"
    )


@app.command()
def disable() -> None:
    """Stop sending alerts for every export (the URL and secret are kept)."""
    current = load_alert_settings()
    if current is None or not current.enabled:
        typer.echo("status alerts are already disabled")
        if current is None:
            _save(StatusAlerts())
        return
    _save(_settings_with(current, enabled=False))
    typer.echo("status alerts disabled")


@app.command()
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print the settings as JSON.")] = False,
) -> None:
    """Print the alert settings (the secret only as set or not set)."""
    settings = load_alert_settings() or StatusAlerts()
    shown = settings.shown()
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        typer.echo(f"{key:13} {value}")


@app.command()
def test() -> None:
    """POST a test alert (marked "Test": true) and report the webhook's answer."""
    settings = load_alert_settings()
    if settings is None or not settings.url:
        raise fail("no webhook set; run `exports alerts enable --url URL` first")
    payload = {
        "Export Request Id": TEST_REQUEST_ID,
        "Partner": "Local folder",
        "Type": "Test",
        "Status": "Initiated",
        "Frequency": "One Time",
        "Date and Time": alert_time(datetime.now(UTC), settings.timezone),
        "Test": True,
    }
    outcome = send_alert(settings, payload)
    if not outcome.delivered:
        raise fail(
            f"test alert to {settings.url} not delivered after {outcome.attempts} attempt(s): "
            f"{outcome.error}"
        )
    note = "" if settings.enabled else " (alerts are disabled: exports send none)"
    typer.echo(
        f"test alert delivered to {settings.url}: HTTP {outcome.http_status} "
        f"after {outcome.attempts} attempt(s){note}"
    )
