"""Hashed and masked columns' rules, without servers: what `source.columns` refuses (naming the
entry), the SQL masks over a real SQLite file read back by our reader, and the HMAC of a
column compared with Python's `hmac` value by value. The end-to-end runs (SQLite, PostgreSQL,
MariaDB, the key's block on a real Prefect server) are tests/flows/sources/test_masking.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError

from blocks.hash_key import HashKey
from flows.core.config import ColumnSpec, SourceConfig
from flows.core.errors import ConfigurationError
from flows.parameters import validate_export_parameters
from flows.runs.result import ExportResult, summary_sentence
from flows.sources.masking import (
    MASKING_DIALECTS,
    HashedColumn,
    hmac_sha256,
    protected_expression,
)
from flows.sources.plan import inspect_source
from flows.sources.read import read_batches

pytestmark = pytest.mark.unit

KEY = b"a unit test's key, not a secret"
EMAIL = {"name": "email", "hash": "hmac_sha256", "key": "partner-key"}


def _refusal(columns: list[Any]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        validate_export_parameters(
            {
                "source": {"url": "sqlite:///x.db", "table": "people", "columns": columns},
                "destination": {"url": "/tmp/out/{export}.{ext}"},
            }
        )
    return caught.value


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        (
            {**EMAIL, "mask": "last4"},
            "source.columns[1]",
            "source.columns[1]: `email` is both hashed and masked; give it either `hash` or `mask`",
        ),
        (
            {"name": "email", "hash": "sha256", "key": "k"},
            "source.columns[1].hash",
            "source.columns[1].hash: `sha256` is not a hash this export makes; use hmac_sha256",
        ),
        (
            {"name": "card", "mask": "first4"},
            "source.columns[1].mask",
            "source.columns[1].mask: `first4` is not a mask; use last4",
        ),
        (
            {"name": "email", "hash": "hmac_sha256"},
            "source.columns[1].key",
            "source.columns[1].key: hashing `email` needs a key; name a saved HashKey block",
        ),
        (
            {"name": "email", "key": "partner-key"},
            "source.columns[1].key",
            "source.columns[1].key: a key is for a hashed column; `email` has no `hash`",
        ),
    ],
)
def test_a_wrong_entry_is_refused_naming_it(
    entry: dict[str, Any], field: str, message: str
) -> None:
    error = _refusal(["id", entry])
    assert error.field == field
    assert str(error).startswith(message)


def test_mask_null_is_told_apart_from_no_mask() -> None:
    source = SourceConfig(
        url="sqlite:///x.db", table="t", columns=[{"name": "ssn", "mask": None}, "id"]
    )
    assert [column.mask for column in source.columns or []] == ["null", None]
    # Prefect stores a run's parameters as JSON (jsonable_encoder) and a deployment's run
    # validates them again: an unmasked column must not come back as `mask: null`.
    stored = json.loads(json.dumps(jsonable_encoder({"source": source})))
    assert [column.get("mask") for column in stored["source"]["columns"]] == ["null", None]
    assert SourceConfig.model_validate(stored["source"]) == source


# -- over a SQLite file -------------------------------------------------------------------------

ROWS = [
    (1, "ana@example.org", "4111111111111111", "123-45-6789", 7),
    (2, None, None, None, None),
    (3, "bé@例え.jp", "12", "x", 8),
    (4, "", "é€ü12345", "", 9),
    (5, "x", "abcd", "y", 10),
]


@pytest.fixture
def people(tmp_path: Path) -> str:
    database = tmp_path / "people.sqlite"
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, card VARCHAR(20), "
            "ssn TEXT, visits INTEGER)"
        )
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", ROWS)
    return f"sqlite:///{database}"


def _read(url: str, **source: Any) -> list[dict[str, Any]]:
    plan = inspect_source(SourceConfig(url=url, **source))
    return [row for batch in read_batches(plan) for row in batch.to_pylist()]


@pytest.mark.parametrize("shape", [{"table": "people"}, {"query": "SELECT * FROM people"}])
def test_masks_are_made_by_sqlite(people: str, shape: dict[str, str]) -> None:
    columns = [
        "id",
        {"name": "card", "mask": "last4", "as": "card_last4"},
        {"name": "ssn", "mask": None},
        {"name": "visits", "mask": None},
    ]
    assert _read(people, columns=columns, **shape) == [
        {"id": 1, "card_last4": "************1111", "ssn": None, "visits": None},
        {"id": 2, "card_last4": None, "ssn": None, "visits": None},
        {"id": 3, "card_last4": "12", "ssn": None, "visits": None},  # 4 or fewer: as it is
        {"id": 4, "card_last4": "****2345", "ssn": None, "visits": None},  # characters
        {"id": 5, "card_last4": "abcd", "ssn": None, "visits": None},
    ]


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"name": "visits", "hash": "hmac_sha256", "key": "k"}, "source.columns[1].hash"),
        ({"name": "visits", "mask": "last4"}, "source.columns[1].mask"),
    ],
)
def test_a_number_column_is_not_hashed_or_masked_to_last4(
    people: str, entry: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        inspect_source(SourceConfig(url=people, table="people", columns=["id", entry]))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: `visits` is a int column; ")
    assert "applies to text; export it as text from a query" in str(caught.value)


# -- the HMAC, a batch at a time ----------------------------------------------------------------

COLUMN = HashedColumn("email", "partner-key", "source.columns[1]")


_CARD = "CAST(card AS TEXT)"
_MYSQL_CARD = "CAST(card AS CHAR)"


@pytest.mark.parametrize(
    ("url", "sql"),
    [
        (
            "postgresql+psycopg://",
            f"(repeat('*', greatest(char_length({_CARD}) - 4, 0)) || right({_CARD}, 4))",
        ),
        *[
            (
                url,
                f"CONCAT(REPEAT('*', GREATEST(CHAR_LENGTH({_MYSQL_CARD}) - 4, 0)), "
                f"RIGHT({_MYSQL_CARD}, 4))",
            )
            for url in ("mysql+pymysql://", "mariadb+pymysql://")
        ],
        (
            "sqlite://",
            f"(replace(hex(zeroblob(max(length({_CARD}) - 4, 0))), '00', '*') "
            f"|| substr({_CARD}, -4))",
        ),
    ],
)
def test_last4_is_written_in_each_databases_own_sql(url: str, sql: str) -> None:
    dialect = sa.create_engine(url).dialect
    assert dialect.name in MASKING_DIALECTS
    card = ColumnSpec.model_validate({"name": "card", "mask": "last4"})
    expression = protected_expression(card, sa.column("card"))
    assert str(expression.compile(dialect=dialect)) == sql


@pytest.mark.parametrize("arrow_type", [pa.string(), pa.large_string()])
def test_each_value_is_its_hmac_sha256_and_null_stays_null(arrow_type: pa.DataType) -> None:
    values = [row[1] for row in ROWS]
    hashed = hmac_sha256(pa.array(values, arrow_type), KEY, COLUMN)
    assert hashed.type == arrow_type
    assert hashed.to_pylist() == [
        None if value is None else hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()
        for value in values
    ]


def test_a_column_of_numbers_is_not_hashed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        hmac_sha256(pa.array([1, 2]), KEY, COLUMN)
    assert caught.value.field == "source.columns[1].hash"
    assert str(caught.value).startswith(
        "source.columns[1].hash: `email` holds int64 values; hmac_sha256 applies to text"
    )


def test_a_short_key_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValidationError) as caught:
        HashKey(key="only-15-chars!!")
    assert "at least 16" in str(caught.value)
    assert "only-15-chars!!" not in str(caught.value)


def test_the_summary_sentence_names_the_hashed_and_masked_columns() -> None:
    moment = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    result = ExportResult(
        export_request_id="r",
        name="people",
        format="csv",
        rows=5,
        bytes=200,
        files=["/out/people.csv"],
        started=moment,
        finished=moment + timedelta(seconds=1),
        hashed=["email"],
        masked=["card_last4", "ssn"],
    )
    assert summary_sentence(result, "sqlite:///people.db", "Run Now", "ana") == (
        "Export `people`: **5 rows**, 200 bytes of csv in 1 file(s), columns hashed: `email`; "
        "masked: `card_last4`, `ssn`, from `sqlite:///people.db`; Run Now by `ana`, 1.0 s."
    )
