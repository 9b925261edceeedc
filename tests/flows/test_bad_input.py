"""A wrong configuration fails before any file is written, with one line that names the field,
the value and what is allowed.

Checked at two levels: the parameter models (`flows.core.config`), whose messages are what the
CLI, the gateway and Prefect show, and the real `export` flow against real SQLite files and
a real PostgreSQL server, which must fail without leaving anything in the output folder.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort
from prefect.exceptions import ParameterTypeError
from pydantic import BaseModel, ValidationError

from flows.core.config import FormatOptions, SourceConfig
from flows.core.errors import ConfigurationError, TransientExportError
from flows.core.formats import EXPORT_FORMATS
from flows.export import export
from flows.request import DestinationConfig, parse_format
from tests.servers import PostgresServer

TOKENS = ("{export}", "{deployment}", "{run_id}", "{date}", "{ext}", "{part}")


def _assert_names(line: str, field: str, value: str | None, allowed: tuple[str, ...]) -> None:
    """One line naming the field, the bad value in backticks and what is allowed."""
    assert "\n" not in line, f"message is more than one line: {line!r}"
    assert field in line, f"message does not name the field {field!r}: {line!r}"
    if value is not None:
        assert f"`{value}`" in line, f"message does not show `{value}` in backticks: {line!r}"
    for choice in allowed:
        assert choice in line, f"message does not say {choice!r} is allowed: {line!r}"


def _validation_message(model: type[BaseModel], values: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model(**values)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return str(errors[0]["msg"])


def _only_line_with(text: str, needle: str) -> str:
    """The one line of a multi-line report (Prefect's parameter errors) that holds `needle`."""
    lines = [line for line in text.splitlines() if needle in line]
    assert len(lines) == 1, f"expected one line with {needle!r} in:\n{text}"
    return lines[0]


def _files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    """A small SQLite database with two tables, outside the output folder."""
    path = tmp_path / "db" / "shop.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as conn:
        conn.execute("create table customers (id integer primary key, name text)")
        conn.execute("create table orders (id integer primary key, customer_id integer)")
        conn.executemany("insert into customers values (?, ?)", [(1, "Ann"), (2, "Bob")])
        conn.executemany("insert into orders values (?, ?)", [(1, 1), (2, 2), (3, 1)])
    conn.close()
    return path


@pytest.fixture
def garbage_db(tmp_path: Path) -> Path:
    """A file of garbage bytes posing as a SQLite database."""
    path = tmp_path / "db" / "garbage.sqlite"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(bytes(range(256)) * 64)
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """The output folder; every test checks it is still empty after the failed run."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def pg_tables(pg_url: str) -> str:
    """The per-test PostgreSQL database with two small tables."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("create table customers (id int primary key, name text)")
        conn.execute("create table orders (id int primary key, customer_id int)")
        conn.execute("insert into customers values (1, 'Ann'), (2, 'Bob')")
        conn.execute("insert into orders values (1, 1), (2, 2), (3, 1)")
    return pg_url


# ---------------------------------------------------------------------------------------------
# The parameter models: the message a user reads first
# ---------------------------------------------------------------------------------------------


@pytest.mark.unit
class TestFormatMessage:
    def test_unknown_format_names_value_and_choices(self) -> None:
        with pytest.raises(ConfigurationError) as caught:
            parse_format("xls")
        _assert_names(str(caught.value), "format", "xls", EXPORT_FORMATS)

    def test_configuration_error_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="xls"):
            parse_format("xls")

    @pytest.mark.parametrize("spelling", ["CSV", " jsonl ", "Parquet"])
    def test_known_formats_in_any_case(self, spelling: str) -> None:
        assert parse_format(spelling) == spelling.strip().lower()


@pytest.mark.unit
class TestDestinationMessages:
    def test_bad_url_scheme(self) -> None:
        message = _validation_message(DestinationConfig, {"url": "ftp://host/out/{export}.csv"})
        _assert_names(message, "destination.url", "ftp://", ("local path", "file://"))

    def test_unknown_token(self) -> None:
        message = _validation_message(DestinationConfig, {"url": "out/{foo}-{date}.{ext}"})
        _assert_names(message, "destination.url", "{foo}", TOKENS)

    def test_malformed_template(self) -> None:
        message = _validation_message(DestinationConfig, {"url": "out/{export.csv"})
        _assert_names(message, "destination.url", "out/{export.csv", ("{export}", "{{"))

    def test_unrenderable_format_spec(self) -> None:
        url = "out/{export}-{part:zz}.csv"
        message = _validation_message(DestinationConfig, {"url": url, "max_file_mb": 1})
        _assert_names(message, "destination.url", url, ("{part:03d}",))

    def test_folder_instead_of_file(self) -> None:
        message = _validation_message(DestinationConfig, {"url": "out/{export}/"})
        _assert_names(message, "destination.url", "out/{export}/", ("{ext}",))


@pytest.mark.unit
class TestSourceMessages:
    @pytest.mark.parametrize(
        "values",
        [
            {"url": "sqlite:///shop.sqlite", "block": "shop", "table": "orders"},
            {"table": "orders"},
        ],
        ids=["both", "neither"],
    )
    def test_exactly_one_of_url_or_block(self, values: dict[str, Any]) -> None:
        message = _validation_message(SourceConfig, values)
        _assert_names(message, "source", None, ("`url`", "`block`", "exactly one"))

    @pytest.mark.parametrize(
        "values",
        [
            {"url": "sqlite:///shop.sqlite", "table": "orders", "query": "select 1"},
            {"url": "sqlite:///shop.sqlite"},
        ],
        ids=["both", "neither"],
    )
    def test_exactly_one_of_table_or_query(self, values: dict[str, Any]) -> None:
        message = _validation_message(SourceConfig, values)
        _assert_names(message, "source", None, ("`table`", "`query`", "exactly one"))

    def test_table_that_is_not_a_name(self) -> None:
        values = {"url": "sqlite:///shop.sqlite", "table": "orders; drop table orders"}
        message = _validation_message(SourceConfig, values)
        _assert_names(message, "source.table", values["table"], ("schema.name", "`query`"))


@pytest.mark.unit
class TestFormatOptionMessages:
    @pytest.mark.parametrize("delimiter", [";;", '"', ""])
    def test_bad_delimiter(self, delimiter: str) -> None:
        message = _validation_message(FormatOptions, {"delimiter": delimiter})
        _assert_names(message, "format_options.delimiter", delimiter, ("one character", "`;`"))

    @pytest.mark.parametrize("delimiter", [";", "|", "\t"])
    def test_good_delimiter(self, delimiter: str) -> None:
        assert FormatOptions(delimiter=delimiter).delimiter == delimiter


# ---------------------------------------------------------------------------------------------
# The real flow: bad parameters fail the run and leave the output folder empty
# ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
class TestFlowRejectsBadParameters:
    """Parameter validation: Prefect raises ParameterTypeError before the flow body runs."""

    def test_unknown_format(self, sqlite_db: Path, out: Path) -> None:
        with pytest.raises(ParameterTypeError) as caught:
            export(
                source={"url": f"sqlite:///{sqlite_db}", "table": "orders"},
                destination={"url": f"{out}/{{export}}.{{ext}}"},
                format="xls",
            )
        line = _only_line_with(str(caught.value), "format")
        _assert_names(line, "format", "xls", EXPORT_FORMATS)
        assert _files_in(out) == []

    def test_bad_url_scheme(self, sqlite_db: Path, out: Path) -> None:
        with pytest.raises(ParameterTypeError) as caught:
            export(
                source={"url": f"sqlite:///{sqlite_db}", "table": "orders"},
                destination={"url": "ftp://example.com/{export}.{ext}"},
            )
        line = _only_line_with(str(caught.value), "ftp")
        _assert_names(line, "destination.url", "ftp://", ("file://",))
        assert _files_in(out) == []

    def test_unknown_token(self, sqlite_db: Path, out: Path) -> None:
        with pytest.raises(ParameterTypeError) as caught:
            export(
                source={"url": f"sqlite:///{sqlite_db}", "table": "orders"},
                destination={"url": f"{out}/{{foo}}.{{ext}}"},
            )
        line = _only_line_with(str(caught.value), "{foo}")
        _assert_names(line, "destination.url", "{foo}", TOKENS)
        assert _files_in(out) == []

    def test_malformed_template(self, sqlite_db: Path, out: Path) -> None:
        url = f"{out}/{{export.{{ext}}"
        with pytest.raises(ParameterTypeError) as caught:
            export(
                source={"url": f"sqlite:///{sqlite_db}", "table": "orders"},
                destination={"url": url},
            )
        line = _only_line_with(str(caught.value), "malformed")
        _assert_names(line, "destination.url", url, ("{export}",))
        assert _files_in(out) == []

    @pytest.mark.parametrize(
        ("source", "words"),
        [
            ({"url": "sqlite:///x.sqlite", "block": "shop", "table": "orders"}, ("url", "block")),
            ({"table": "orders"}, ("url", "block")),
            ({"url": "sqlite:///x.sqlite", "table": "orders", "query": "select 1"}, ("table",)),
            ({"url": "sqlite:///x.sqlite"}, ("table", "query")),
        ],
        ids=["url-and-block", "no-url-or-block", "table-and-query", "no-table-or-query"],
    )
    def test_exactly_one_of(
        self, source: dict[str, Any], words: tuple[str, ...], out: Path
    ) -> None:
        with pytest.raises(ParameterTypeError) as caught:
            export(source=source, destination={"url": f"{out}/{{export}}.{{ext}}"})
        line = _only_line_with(str(caught.value), "exactly one")
        _assert_names(line, "source", None, tuple(f"`{word}`" for word in words))
        assert _files_in(out) == []

    def test_bad_delimiter(self, sqlite_db: Path, out: Path) -> None:
        with pytest.raises(ParameterTypeError) as caught:
            export(
                source={"url": f"sqlite:///{sqlite_db}", "table": "orders"},
                destination={"url": f"{out}/{{export}}.{{ext}}"},
                format_options={"delimiter": ";;"},
            )
        line = _only_line_with(str(caught.value), "delimiter")
        _assert_names(line, "format_options.delimiter", ";;", ("one character",))
        assert _files_in(out) == []


@pytest.mark.usefixtures("prefect_api")
class TestFlowRejectsBadSource:
    """Problems only the database can reveal: found by inspect_source, before any writing."""

    def _fail(self, out: Path, source: dict[str, Any]) -> ConfigurationError:
        with pytest.raises(ConfigurationError) as caught:
            export(source=source, destination={"url": f"{out}/{{export}}.{{ext}}"})
        assert _files_in(out) == [], "a failed configuration must not leave files behind"
        return caught.value

    def test_unknown_table_lists_the_tables(self, sqlite_db: Path, out: Path) -> None:
        error = self._fail(out, {"url": f"sqlite:///{sqlite_db}", "table": "ordres"})
        _assert_names(str(error), "source.table", "ordres", ("customers", "orders"))

    def test_unreadable_database(self, garbage_db: Path, out: Path) -> None:
        error = self._fail(out, {"url": f"sqlite:///{garbage_db}", "table": "orders"})
        _assert_names(str(error), "source.url", f"sqlite:///{garbage_db}", ())
        assert "not a readable database" in str(error)

    def test_unreadable_database_with_a_query(self, garbage_db: Path, out: Path) -> None:
        error = self._fail(out, {"url": f"sqlite:///{garbage_db}", "query": "select * from t"})
        _assert_names(str(error), "source.url", f"sqlite:///{garbage_db}", ())
        assert "not a readable database" in str(error)

    def test_missing_sqlite_file(self, tmp_path: Path, out: Path) -> None:
        missing = tmp_path / "db" / "missing.sqlite"
        error = self._fail(out, {"url": f"sqlite:///{missing}", "table": "orders"})
        _assert_names(str(error), "source.url", str(missing), ("check the path",))
        assert not missing.exists(), "checking the source must not create the database"

    def test_unknown_driver(self, out: Path) -> None:
        error = self._fail(out, {"url": "nosuchdb://host/db", "table": "orders"})
        _assert_names(str(error), "source.url", "nosuchdb", ("postgresql://", "sqlite://"))

    def test_not_a_url(self, out: Path) -> None:
        error = self._fail(out, {"url": "shop database", "table": "orders"})
        _assert_names(str(error), "source.url", None, ("SQLAlchemy URL", "sqlite:///"))

    def test_sql_syntax_error(self, sqlite_db: Path, out: Path) -> None:
        error = self._fail(out, {"url": f"sqlite:///{sqlite_db}", "query": "selec * frm orders"})
        _assert_names(str(error), "source.query", None, ("syntax error", "fix the SQL"))

    def test_query_with_unknown_column(self, sqlite_db: Path, out: Path) -> None:
        query = "select id, nope from orders"
        error = self._fail(out, {"url": f"sqlite:///{sqlite_db}", "query": query})
        _assert_names(str(error), "source.query", None, ("nope", "fix the SQL"))

    def test_missing_bind_parameter(self, sqlite_db: Path, out: Path) -> None:
        query = "select * from orders where customer_id = :customer"
        error = self._fail(out, {"url": f"sqlite:///{sqlite_db}", "query": query})
        _assert_missing_parameter(str(error), "customer")

    @pytest.mark.parametrize(
        ("fmt", "source", "message"),
        [
            (
                "json",
                {"query": "select id as a, name as a from customers"},
                "two columns are written as `a` (columns 1 and 2 of the query)",
            ),
            (
                "xml",
                {"table": "spaced"},
                "`a b` and `a_b` are both written as the XML element <a_b>",
            ),
        ],
    )
    def test_duplicate_output_columns_fail_before_any_row(
        self, sqlite_db: Path, out: Path, fmt: str, source: dict[str, Any], message: str
    ) -> None:
        """Issue 24: two columns written under one name (`select id as a, name as a`, which
        SQLite renamed to `a` and `a:1`; a table's `a b` and `a_b`, both <a_b> in XML) fail
        the run in its inspection step with a ConfigurationError naming both columns: no
        write task runs, no file is left."""
        with sqlite3.connect(sqlite_db) as conn:
            conn.execute('create table spaced (id integer, "a b" text, a_b text)')
            conn.execute("insert into spaced values (1, 'x', 'y')")
        conn.close()
        state = export(
            source={"url": f"sqlite:///{sqlite_db}", **source},
            destination={"url": f"{out}/{{export}}.{{ext}}"},
            format=fmt,
            name="twins",
            return_state=True,
        )
        assert state.is_failed()
        with pytest.raises(ConfigurationError) as caught:
            state.result()
        _assert_names(str(caught.value), "source.columns", None, (message,))
        assert _files_in(out) == [], "a refused export must not leave files behind"
        assert _task_run_counts(state.state_details.flow_run_id) == {"inspect-twins": 1}

    def test_params_without_query(self, sqlite_db: Path, out: Path) -> None:
        source = {"url": f"sqlite:///{sqlite_db}", "table": "orders", "params": {"a": 1}}
        with pytest.raises(ParameterTypeError) as caught:
            export(source=source, destination={"url": f"{out}/{{export}}.{{ext}}"})
        line = _only_line_with(str(caught.value), "source.params")
        _assert_names(line, "source.params", None, ("`query`",))
        assert _files_in(out) == []


def _assert_missing_parameter(message: str, name: str) -> None:
    """The message sends the user to source.params and names the parameter in backticks."""
    assert "\n" not in message, message
    assert "source.params" in message, f"message does not name source.params: {message!r}"
    assert re.search(rf"`:?{name}`", message), f"message does not show `:{name}`: {message!r}"


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.postgres
class TestFlowRejectsBadPostgresSource:
    def _fail(self, out: Path, source: dict[str, Any]) -> ConfigurationError:
        with pytest.raises(ConfigurationError) as caught:
            export(source=source, destination={"url": f"{out}/{{export}}.{{ext}}"})
        assert _files_in(out) == [], "a failed configuration must not leave files behind"
        return caught.value

    def test_unknown_table_lists_the_tables(self, pg_tables: str, out: Path) -> None:
        error = self._fail(out, {"url": pg_tables, "table": "ordres"})
        _assert_names(str(error), "source.table", "ordres", ("customers", "orders"))

    def test_unknown_schema_table(self, pg_tables: str, out: Path) -> None:
        error = self._fail(out, {"url": pg_tables, "table": "sales.orders"})
        _assert_names(str(error), "source.table", "sales.orders", ())

    def test_sql_syntax_error(self, pg_tables: str, out: Path) -> None:
        error = self._fail(out, {"url": pg_tables, "query": "selec * frm orders"})
        _assert_names(str(error), "source.query", None, ("syntax error", "fix the SQL"))

    @pytest.mark.parametrize("reader", ["auto", "postgres_copy", "sqlalchemy"])
    def test_missing_bind_parameter(self, pg_tables: str, out: Path, reader: str) -> None:
        query = "select * from orders where customer_id = :customer"
        error = self._fail(out, {"url": pg_tables, "query": query, "reader": reader})
        _assert_missing_parameter(str(error), "customer")

    def test_copy_reader_needs_postgres(self, sqlite_db: Path, out: Path) -> None:
        source = {"url": f"sqlite:///{sqlite_db}", "table": "orders", "reader": "postgres_copy"}
        error = self._fail(out, source)
        _assert_names(str(error), "source.reader", "postgres_copy", ("`auto`", "`sqlalchemy`"))

    def test_database_that_does_not_exist_is_not_retried(
        self, postgres: PostgresServer, out: Path
    ) -> None:
        """A wrong database name is a configuration error: one attempt, no retry delays."""
        missing = f"missing_{uuid.uuid4().hex[:8]}"
        state = export(
            source={"url": postgres.url(missing), "table": "orders"},
            destination={"url": f"{out}/{{export}}.{{ext}}"},
            return_state=True,
        )
        assert state.is_failed()
        assert _files_in(out) == []
        with pytest.raises(Exception) as caught:
            state.result()
        assert not isinstance(caught.value, TransientExportError), (
            f"a database that does not exist was treated as transient and retried: {caught.value!r}"
        )
        assert isinstance(caught.value, ConfigurationError), repr(caught.value)
        _assert_names(str(caught.value), "source.url", None, (missing,))
        assert _task_run_counts(state.state_details.flow_run_id) == {"inspect-orders": 1}


def _task_run_counts(flow_run_id: Any) -> dict[str, int]:
    """How many times each task run of a flow run ran (retries included), from the Prefect API."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            limit=50,
        )
    return {run.name: run.run_count for run in task_runs}
