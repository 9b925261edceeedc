"""Issue 27's four pieces on one export, as a partner's delta would use them: a stored cursor,
a masked and a hashed column, checks and the schema contract. Each keeps working beside the
others: the cursor's range still delivers only new rows, with the masks and hashes applied to
them; a failed check leaves the mark where it was; a changed schema stops the next run."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from blocks.export_state import load_export_state
from blocks.hash_key import HashKey
from flows.export import export

pytestmark = pytest.mark.usefixtures("prefect_api")

KEY = "a-hash-key-of-the-tests-0123456789"


def _rows(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_cursor_masks_hashes_checks_and_schema_on_one_export(tmp_path: Path) -> None:
    database = tmp_path / "people.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE people (id INTEGER, email TEXT, card TEXT, seq INTEGER)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?)",
            [(i, f"p{i}@example.com", f"41111111111{i:05d}", i) for i in range(1, 6)],
        )
    conn.close()
    HashKey(key=KEY).save("test-delta-key", overwrite=True)
    parameters: dict[str, Any] = {
        "source": {
            "url": f"sqlite:///{database}",
            "table": "people",
            "incremental": {"cursor": "seq"},
            "columns": [
                {"name": "id"},
                {"name": "email", "hash": "hmac_sha256", "key": "test-delta-key"},
                {"name": "card", "mask": "last4"},
                {"name": "seq"},
            ],
        },
        "destination": {"url": f"{tmp_path}/out/{{run_id}}.{{ext}}"},
        "format": "jsonl",
        "name": "delta-together",
        "checks": {"unique": ["id"], "not_null": ["email"], "min_rows": 1},
        "on_schema_change": "fail",
    }
    first = export(**parameters)
    rows = _rows(first.files[0])
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
    for row in rows:
        expected = hmac.new(KEY.encode(), f"p{row['id']}@example.com".encode(), hashlib.sha256)
        assert row["email"] == expected.hexdigest()
        assert row["card"] == "*" * 12 + f"{row['id']:04d}"
    assert first.cursor == {"column": "seq", "from": None, "to": "5"}

    with sqlite3.connect(database) as conn:  # a duplicate id: the unique check fails
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?, ?)",
            [(6, "p6@example.com", "4111111111100006", 6), (6, "x@example.com", "0", 7)],
        )
    conn.close()
    failed = export(**parameters, return_state=True)
    assert failed.is_failed()
    assert type(failed.result(raise_on_failure=False)).__name__ == "CheckFailedError"
    state = load_export_state("delta-together")
    assert state is not None and state.cursor is not None and state.cursor.value == "5"

    with sqlite3.connect(database) as conn:  # fixed: the next run delivers 6 and 7 only
        conn.execute("UPDATE people SET id = 7 WHERE seq = 7")
    conn.close()
    second = export(**parameters)
    assert [row["id"] for row in _rows(second.files[0])] == [6, 7]
    assert second.cursor == {"column": "seq", "from": "5", "to": "7"}

    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE people ADD COLUMN note TEXT")
        conn.execute("INSERT INTO people VALUES (8, 'p8@example.com', '1', 8, 'n')")
    conn.close()
    parameters["source"] = {**parameters["source"], "columns": None}  # every column now
    stopped = export(**parameters, return_state=True)
    assert stopped.is_failed()
    error = stopped.result(raise_on_failure=False)
    assert type(error).__name__ == "SchemaChangedError" and "note" in str(error)
    kept = load_export_state("delta-together")
    assert kept is not None and kept.cursor is not None and kept.cursor.value == "7"
