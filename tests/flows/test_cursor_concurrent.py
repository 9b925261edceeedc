"""An unsplit PostgreSQL read shares one snapshot with its cursor and its checks, while rows
are written as it reads (a real PostgreSQL server and Prefect API): over five runs of one
incremental export, one failing at delivery and one split, with inserts and updates committed
between the runs and while each run's reader is fetching, every version of every row reaches
exactly one delivered file; and a `unique` check counts the rows the file was read from, not
a duplicate committed while it was read. A writer thread watches pg_stat_activity for the
export's reader (its server-side cursor's FETCH) and commits then; it then checks that the
reader's transaction was still open, so each write is known to have landed mid-read."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from blocks.export_state import load_export_state
from flows.core.errors import CheckFailedError
from flows.export import export
from tests.flows.conftest import url_for_psycopg
from tests.servers.receiver import WebhookReceiver

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("prefect_api")]

# Small fetches make a read of a few thousand rows last long enough to be caught mid-read.
CHUNK_ROWS = 10

READING = (
    "SELECT pid, xact_start FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND query LIKE 'FETCH FORWARD%%'"
)
STILL_OPEN = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND xact_start = %s"


class Items:
    """A table whose `seq` grows with every insert and update (an updated_at counter); each
    write is committed before the next starts, so `seq` follows commit order. `versions`:
    every (id, seq) the database ever committed."""

    def __init__(self, url: str) -> None:
        self.source_url = url  # the export's (SQLAlchemy) URL
        self.url = url_for_psycopg(url)
        self.seq = 0
        self.versions: set[tuple[int, int]] = set()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text, seq int)")

    def insert(self, conn: psycopg.Connection, ids: range) -> None:
        self._write(conn, "INSERT INTO items VALUES (%s, %s, %s)", ids)

    def update(self, conn: psycopg.Connection, ids: range) -> None:
        self._write(conn, "UPDATE items SET v = %s, seq = %s WHERE id = %s", ids, update=True)

    def _write(self, conn: psycopg.Connection, sql: str, ids: range, update: bool = False) -> None:
        rows = [(key, f"v{self.seq + n}", self.seq + n) for n, key in enumerate(ids, 1)]
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(sql, [(v, s, k) if update else (k, v, s) for k, v, s in rows])
        self.seq += len(rows)
        self.versions |= {(key, seq) for key, _, seq in rows}


class MidRead(threading.Thread):
    """Commits `write` once the export's reader is fetching; `landed` says whether the
    reader's transaction was still open after the commit (the write landed mid-read)."""

    def __init__(self, url: str, write: Callable[[psycopg.Connection], None]) -> None:
        super().__init__(daemon=True)
        self.url, self.write = url, write
        self.landed = False
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.is_set():
                found = conn.execute(READING).fetchone()
                if found is None:
                    time.sleep(0.001)
                    continue
                self.write(conn)
                self.landed = conn.execute(STILL_OPEN, found).fetchone() is not None
                return

    def __enter__(self) -> MidRead:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(30)


@pytest.fixture
def items(pg_url: str) -> Iterator[Items]:
    yield Items(pg_url)


def delivered(path: Path) -> list[tuple[int, int]]:
    return [(row["id"], row["seq"]) for row in map(json.loads, path.read_text().splitlines())]


def run(items: Items, name: str, target: str, **source: Any) -> Any:
    return export(
        source={
            "url": items.source_url,
            "table": "items",
            "reader": "sqlalchemy",  # a server-side cursor: its FETCHes show the read going on
            "chunk_rows": CHUNK_ROWS,
            "incremental": {"cursor": "seq"},
            **source,
        },
        destination={"url": target},
        format="jsonl",
        name=name,
        return_state=True,
    )


def test_every_version_is_delivered_once_while_runs_read(
    items: Items, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    name = "cursor-concurrent"
    files: list[Path] = []
    landed = 0
    with psycopg.connect(items.url, autocommit=True) as conn:
        items.insert(conn, range(1, 1501))
    updated = iter(range(1, 1501))  # each first-run row is updated once at most, so every
    # version a write replaces was in an earlier successful run's snapshot

    def writes(count: int) -> Callable[[psycopg.Connection], None]:
        keys = [next(updated) for _ in range(count)]

        def write(conn: psycopg.Connection) -> None:
            start = 10_000 + items.seq
            items.insert(conn, range(start, start + count))
            items.update(conn, range(keys[0], keys[-1] + 1))

        return write

    for number in range(1, 6):
        target = tmp_path / f"run{number}.jsonl"
        split = {"partitions": 2} if number == 4 else {}
        with MidRead(items.url, writes(5)) as writer:
            if number == 3:  # delivery fails: the partner's endpoint refuses the file
                receiver.default_status = 400
                state = run(items, name, f"{receiver.url}/items", **split)
                receiver.default_status = 200
                assert state.is_failed()
            else:
                state = run(items, name, str(target), **split)
                assert state.is_completed(), state.message
                files += sorted(tmp_path.glob(f"run{number}*.jsonl"))  # a split run's parts
        landed += writer.landed
        with psycopg.connect(items.url, autocommit=True) as conn:  # and between the runs
            writes(250)(conn)
    state = run(items, name, str(tmp_path / "last.jsonl"))
    assert state.is_completed(), state.message
    files.append(tmp_path / "last.jsonl")

    assert landed >= 3  # writes really committed while runs were reading
    rows = [row for path in files for row in delivered(path)]
    assert len(rows) == len(set(rows))  # no version twice
    assert set(rows) == items.versions  # and none missing, the failed run's gap included
    assert load_export_state(name).cursor.value == str(items.seq)  # type: ignore[union-attr]


def test_a_unique_check_counts_the_rows_the_file_was_read_from(
    items: Items, tmp_path: Path
) -> None:
    with psycopg.connect(items.url, autocommit=True) as conn:
        items.insert(conn, range(1, 1501))

    def duplicate(conn: psycopg.Connection) -> None:
        conn.execute("UPDATE items SET v = 'v1' WHERE id = 2")  # v = 'v1' twice now

    checks = {"unique": ["v"]}
    with MidRead(items.url, duplicate) as writer:
        state = export(
            source={
                "url": items.source_url,
                "table": "items",
                "reader": "sqlalchemy",
                "chunk_rows": CHUNK_ROWS,
            },
            destination={"url": str(tmp_path / "items.jsonl")},
            format="jsonl",
            name="unique-mid-read",
            checks=checks,
            return_state=True,
        )
    assert writer.landed
    assert state.is_completed(), state.message  # the file's 1,500 rows hold no duplicate
    values = [json.loads(line)["v"] for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert len(values) == 1500 and len(set(values)) == 1500
    # the next run reads the duplicate and its check says so
    again = export(
        source={
            "url": items.source_url,
            "table": "items",
        },
        destination={"url": str(tmp_path / "again.jsonl")},
        format="jsonl",
        name="unique-mid-read",
        checks=checks,
        return_state=True,
    )
    assert again.is_failed()
    with pytest.raises(CheckFailedError, match=r"unique\(v\): 1 duplicate key"):
        again.result()
    assert not (tmp_path / "again.jsonl").exists()
