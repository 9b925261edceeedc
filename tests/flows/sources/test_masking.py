"""Hashed and masked columns end to end: the real flow reads SQLite, PostgreSQL (COPY, its
server-rendered rows, SQLAlchemy) and MariaDB, with the hash key in a HashKey block on the
session's Prefect server. Every delivered value is compared with what Python's `hmac` and a
plain slice make of the rows the test inserted; the JSON Lines files and the manifest are read
back with `json`. The key itself is in the session's leak scan (tests/leaks.py): it must reach
no log, parameter, artifact, file or alert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from blocks.hash_key import HashKey
from flows.core.errors import ConfigurationError
from flows.export import export
from flows.runs.result import ExportResult
from tests.flows.conftest import url_for_psycopg
from tests.leaks import REGISTRY

pytestmark = pytest.mark.usefixtures("prefect_api")

KEY = "masking-test-key-5f0c2b9e8d1a4c7b"
REGISTRY.remember("the hash key", KEY)
KEY_BLOCK = "people-hash-key"

ROWS = [
    (1, "ana@example.org", "4111111111111111", "123-45-6789"),
    (2, None, None, None),
    (3, "bé@例え.jp", "12", "x"),
    (4, "", "é€ü12345", ""),
    (5, "x", "abcd", "y"),
]
COLUMNS = [
    "id",
    {"name": "email", "hash": "hmac_sha256", "key": KEY_BLOCK, "as": "email_hash"},
    {"name": "card", "mask": "last4"},
    {"name": "ssn", "mask": None},
]
MASKS_ONLY = [column for column in COLUMNS if not (isinstance(column, dict) and "hash" in column)]


def _hashed(value: str | None) -> str | None:
    if value is None:
        return None
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def _last4(value: str | None) -> str | None:
    return None if value is None else "*" * max(len(value) - 4, 0) + value[-4:]


EXPECTED = [
    {"id": id_, "email_hash": _hashed(email), "card": _last4(card), "ssn": None}
    for id_, email, card, _ in ROWS
]


@pytest.fixture
def hash_key() -> str:
    HashKey(key=KEY).save(KEY_BLOCK, overwrite=True)
    return KEY_BLOCK


@pytest.fixture
def sqlite_people(tmp_path: Path) -> str:
    database = tmp_path / "people.sqlite"
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, card TEXT, ssn TEXT)"
        )
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?)", ROWS)
    return f"sqlite:///{database}"


@pytest.fixture
def postgres_people(pg_url: str) -> str:
    with psycopg.connect(url_for_psycopg(pg_url), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE people (id bigint PRIMARY KEY, email text, card varchar(20), ssn text)"
        )
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO people VALUES (%s, %s, %s, %s)", ROWS)
    return pg_url


@pytest.fixture
def mariadb_people(mariadb_url: str) -> str:
    rest = mariadb_url.split("@", 1)[1]
    host_port, _, database = rest.partition("/")
    host, _, port = host_port.partition(":")
    connect = {"host": host, "port": int(port), "user": "root", "charset": "utf8mb4"}
    with pymysql.connect(**connect, database=database.partition("?")[0]) as conn:
        with conn.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE people (id BIGINT PRIMARY KEY, email TEXT, card VARCHAR(20), "
                "ssn TEXT) DEFAULT CHARSET=utf8mb4"
            )
            cursor.executemany("INSERT INTO people VALUES (%s, %s, %s, %s)", ROWS)
        conn.commit()
    return mariadb_url


def _export(url: str, source: dict[str, Any], folder: Path, columns: list[Any]) -> ExportResult:
    destination: dict[str, Any] = {"url": str(folder / "{export}.{ext}"), "manifest": True}
    return export(
        source={"url": url, "columns": columns, **source},
        destination=destination,
        format="jsonl",
        name="people",
    )


def _lines(path: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda row: row["id"])


SOURCES = {
    "sqlite table": ("sqlite_people", {"table": "people"}),
    "sqlite query": ("sqlite_people", {"query": "SELECT * FROM people"}),
    "postgres table, COPY": ("postgres_people", {"table": "people"}),
    "postgres query, SQLAlchemy": (
        "postgres_people",
        {"query": "SELECT * FROM people", "reader": "sqlalchemy"},
    ),
    "mariadb table": ("mariadb_people", {"table": "people"}),
}


@pytest.mark.usefixtures("hash_key")
@pytest.mark.parametrize("name", SOURCES)
def test_hashed_and_masked_columns_read_back_as_python_makes_them(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture, source = SOURCES[name]
    result = _export(request.getfixturevalue(fixture), source, tmp_path, COLUMNS)
    [path] = result.files
    assert _lines(path) == EXPECTED
    assert (result.hashed, result.masked) == (["email_hash"], ["card", "ssn"])
    assert result.manifest is not None
    manifest = json.loads(Path(result.manifest).read_text())
    assert (manifest["hashed"], manifest["masked"]) == (["email_hash"], ["card", "ssn"])
    for written in (path, result.manifest):
        assert KEY not in Path(written).read_text(encoding="utf-8")


def test_postgres_renders_masked_rows_itself(postgres_people: str, tmp_path: Path) -> None:
    """No hash: COPY writes the finished JSON lines, masks included (flows/sources/pg_render.py)."""
    result = _export(postgres_people, {"table": "people"}, tmp_path, MASKS_ONLY)
    [path] = result.files
    expected = [{key: row[key] for key in ("id", "card", "ssn")} for row in EXPECTED]
    assert _lines(path) == expected
    assert (result.hashed, result.masked) == ([], ["card", "ssn"])


def test_a_hash_key_block_that_does_not_exist_is_refused_before_the_run(
    sqlite_people: str, tmp_path: Path
) -> None:
    columns = ["id", {"name": "email", "hash": "hmac_sha256", "key": "no-such-hash-key"}]
    out = tmp_path / "out"
    with pytest.raises(ConfigurationError) as caught:
        _export(sqlite_people, {"table": "people"}, out, columns)
    assert caught.value.field == "source.columns[1].key"
    assert str(caught.value).startswith(
        "source.columns[1].key: no saved HashKey block named `no-such-hash-key`"
    )
    assert not out.exists()
