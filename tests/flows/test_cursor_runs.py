"""The stored cursor across runs, on a real Prefect server and real SQLite, PostgreSQL and
MariaDB: rows inserted and updated between runs, one run failing at delivery, are each
delivered exactly once; `exports cursor set` to an earlier value delivers again exactly the
rows above it; two runs of one export started at once move the mark once and deliver no row
twice, and one that finds the cursor held past `lock_timeout` fails naming the run holding it;
the result, the manifest, the audit record and the Completed alert say the range.
Every delivered file is read back with the json module and compared with the database by key
and cursor value."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from blocks.alerts import ALERTS_BLOCK_NAME, StatusAlerts
from blocks.export_state import load_export_state
from deployments.audit import AuditQuery, read_audit
from deployments.cli.app import app
from flows.alerts.hooks import deliver_pending_alerts
from flows.core.errors import CursorLockedError
from flows.export import export
from flows.sources.connections import create_engine
from tests.servers.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("prefect_api")

runner = CliRunner()


class Items:
    """A table whose `seq` grows with every insert and update (an updated_at counter)."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).touch()  # a new database file
        self.engine = create_engine(url)
        self.seq = 0
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, v VARCHAR(20), seq INTEGER)")
            )

    def insert(self, *ids: int) -> None:
        with self.engine.begin() as conn:
            for key in ids:
                self.seq += 1
                conn.execute(
                    sa.text("INSERT INTO items VALUES (:id, :v, :seq)"),
                    {"id": key, "v": f"v{self.seq}", "seq": self.seq},
                )

    def update(self, *ids: int) -> None:
        with self.engine.begin() as conn:
            for key in ids:
                self.seq += 1
                conn.execute(
                    sa.text("UPDATE items SET v = :v, seq = :seq WHERE id = :id"),
                    {"id": key, "v": f"v{self.seq}", "seq": self.seq},
                )

    def above(self, seq: int) -> set[tuple[int, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, seq FROM items WHERE seq > :s"), {"s": seq})
            return {(int(key), int(value)) for key, value in rows}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def items(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Items]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'items.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    table = Items(url)
    yield table
    table.engine.dispose()


def delivered(path: Path) -> list[tuple[int, int]]:
    return [(row["id"], row["seq"]) for row in map(json.loads, path.read_text().splitlines())]


def run(items: Items, name: str, target: Path | str, **parameters: Any) -> Any:
    return export(
        source={"url": items.url, "table": "items", "incremental": {"cursor": "seq"}},
        destination={"url": str(target)},
        format="jsonl",
        name=name,
        **parameters,
    )


def test_every_version_of_every_row_is_delivered_once_over_five_runs(
    items: Items, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    name = f"cursor-{items.engine.dialect.name}"
    versions: set[tuple[int, int]] = set()  # every version a successful run could see
    files: list[Path] = []
    items.insert(1, 2, 3, 4, 5)
    for number in range(1, 6):
        target = tmp_path / f"run{number}.jsonl"
        if number == 2:  # delivery fails: the partner's endpoint refuses the file
            receiver.default_status = 400
            state = run(items, name, f"{receiver.url}/items", return_state=True)
            receiver.default_status = 200
            assert state.is_failed()
            assert [request.status for request in receiver.requests] == [400]
            assert load_export_state(name).cursor.value == "5"  # type: ignore[union-attr]
        else:
            versions |= items.above(0)
            result = run(items, name, target)
            files.append(target)
            assert result.cursor["column"] == "seq"
            assert result.cursor["to"] == str(items.seq)
        items.update(2, number)
        items.insert(10 + number)
    versions |= items.above(0)
    result = run(items, name, tmp_path / "last.jsonl")
    files.append(tmp_path / "last.jsonl")
    rows = [row for path in files for row in delivered(path)]
    assert len(rows) == len(set(rows))  # no version twice
    assert set(rows) == versions  # and none missing, the failed run's gap included
    assert load_export_state(name).cursor.value == str(items.seq)  # type: ignore[union-attr]

    # exports cursor set to an earlier value: the next run delivers exactly the rows above it
    answer = runner.invoke(app, ["cursor", "set", name, "7"])
    assert answer.exit_code == 0, answer.output
    assert answer.output.strip() == (f"cursor of `{name}`: {items.seq} (seq, int) -> 7 (seq, int)")
    result = run(items, name, tmp_path / "again.jsonl")
    assert sorted(delivered(tmp_path / "again.jsonl")) == sorted(items.above(7))
    assert result.cursor == {"column": "seq", "from": "7", "to": str(items.seq)}


def test_cursor_set_refuses_a_value_of_the_wrong_kind_and_reset_starts_over(
    tmp_path: Path,
) -> None:
    items = Items(f"sqlite:///{tmp_path / 'items.sqlite'}")
    items.insert(1, 2)
    run(items, "cursor-cli", tmp_path / "a.jsonl")
    wrong = runner.invoke(app, ["cursor", "set", "cursor-cli", "yesterday"])
    assert wrong.exit_code == 1
    assert "`yesterday` is not a int value of the cursor `seq`; give e.g. 42" in wrong.stderr
    shown = runner.invoke(app, ["cursor", "show", "cursor-cli"])
    assert shown.stdout.strip() == "cursor of `cursor-cli`: 2 (seq, int)"
    reset = runner.invoke(app, ["cursor", "reset", "cursor-cli"])
    assert reset.exit_code == 0
    assert load_export_state("cursor-cli").cursor is None  # type: ignore[union-attr]
    run(items, "cursor-cli", tmp_path / "b.jsonl")
    assert sorted(delivered(tmp_path / "b.jsonl")) == [(1, 1), (2, 2)]


def test_two_runs_at_once_move_the_mark_once_and_deliver_no_row_twice(tmp_path: Path) -> None:
    items = Items(f"sqlite:///{tmp_path / 'items.sqlite'}")
    items.insert(*range(1, 201))
    results: dict[int, Any] = {}

    def start(number: int) -> None:
        results[number] = run(items, "cursor-race", tmp_path / f"race{number}.jsonl")

    threads = [threading.Thread(target=start, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    rows = [row for n in (1, 2) for row in delivered(tmp_path / f"race{n}.jsonl")]
    assert sorted(rows) == sorted(items.above(0))  # every row, once
    ranges = sorted((r.cursor["from"] or "", r.cursor["to"]) for r in results.values())
    assert ranges == [("", "200"), ("200", "200")]  # one mark move; the second waited
    assert load_export_state("cursor-race").cursor.value == "200"  # type: ignore[union-attr]


def test_a_run_that_finds_the_cursor_held_fails_naming_the_run_holding_it(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """The first run holds the lock while its delivery hangs (the receiver answers nothing
    until released); a second run with lock_timeout 1s, and one with 0, fail before reading
    a row, naming the export and the first run; the first then delivers and moves the mark
    alone."""
    items = Items(f"sqlite:///{tmp_path / 'items.sqlite'}")
    items.insert(1, 2, 3)
    name = "cursor-locked"
    firsts: list[Any] = []
    receiver.hold()
    first = threading.Thread(
        target=lambda: firsts.append(run(items, name, f"{receiver.url}/items"))
    )
    first.start()
    errors = {}
    try:
        receiver.wait_for(1)  # the first run is delivering, under the lock
        items.insert(4)
        for timeout in ("1s", 0):
            state = export(
                source={
                    "url": items.url,
                    "table": "items",
                    "incremental": {"cursor": "seq", "lock_timeout": timeout},
                },
                destination={"url": str(tmp_path / "second" / "{export}.{ext}")},
                format="jsonl",
                name=name,
                return_state=True,
            )
            errors[timeout] = state.result(raise_on_failure=False)
    finally:
        receiver.release()
        first.join(120)
    [result] = firsts
    held_by = f"held by run {result.export_request_id} (`export-{name}-jsonl`)"
    for timeout, waited in (("1s", "waited 1s for it"), (0, "does not wait (0)")):
        error = errors[timeout]
        assert isinstance(error, CursorLockedError)
        assert str(error) == (
            f"source.incremental.lock_timeout: the cursor of export `{name}` is {held_by}, and "
            f"this run {waited}; no row was read and nothing was published; let that run "
            "finish (or cancel it), then run this export again, or give a longer "
            "source.incremental.lock_timeout"
        )
        assert (error.export, error.holder) == (name, result.export_request_id)
    assert not (tmp_path / "second").exists()  # no file, no temporary one
    [posted] = receiver.requests
    rows = [(row["id"], row["seq"]) for row in map(json.loads, posted.body.splitlines())]
    assert rows == [(1, 1), (2, 2), (3, 3)]
    assert result.cursor == {"column": "seq", "from": None, "to": "3"}
    assert load_export_state(name).cursor.value == "3"  # type: ignore[union-attr]


def test_the_manifest_the_audit_and_the_completed_alert_say_the_range(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    items = Items(f"sqlite:///{tmp_path / 'items.sqlite'}")
    items.insert(1, 2, 3)
    StatusAlerts(enabled=True, url=f"{receiver.url}/alerts").save(ALERTS_BLOCK_NAME, overwrite=True)
    try:
        result = export(
            source={
                "url": items.url,
                "table": "items",
                "incremental": {"cursor": "seq", "initial": 2},
            },
            destination={"url": str(tmp_path / "out.jsonl"), "manifest": True},
            format="jsonl",
            name="cursor-said",
        )
        deliver_pending_alerts(timeout_s=120)
    finally:
        StatusAlerts().save(ALERTS_BLOCK_NAME, overwrite=True)
    ranged = {"column": "seq", "from": "2", "to": "3"}
    assert result.cursor == ranged
    assert sorted(delivered(tmp_path / "out.jsonl")) == [(2, 2), (3, 3)]
    assert json.loads(Path(result.manifest).read_text())["cursor"] == ranged
    alerts = [json.loads(request.body) for request in receiver.requests]
    assert [(alert["Status"], alert.get("Cursor")) for alert in alerts] == [
        ("Initiated", None),
        ("Completed", ranged),
    ]
    [record] = [
        r
        for r in read_audit(AuditQuery(limit=50))
        if r.export_request_id == result.export_request_id
    ]
    assert record.cursor == ranged
